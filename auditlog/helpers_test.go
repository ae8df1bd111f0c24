package auditlog_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/sqlite"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "rampart.test/audit"

func openDB(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newDB(t testing.TB) *sqlite.DB {
	return openDB(t, filepath.Join(t.TempDir(), "rampart.db"))
}

func newKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testHMAC is a per-tenant HMAC-SHA256 as the keyring would supply.
func testHMAC(ctx context.Context, tenant string, v []byte) ([]byte, error) {
	m := hmac.New(sha256.New, []byte("tenant-key:"+tenant))
	m.Write(v)
	return m.Sum(nil), nil
}

func openLog(t testing.TB, st auditlog.Store, key ed25519.PrivateKey, mod ...func(*auditlog.Config)) *auditlog.Log {
	t.Helper()
	cfg := auditlog.Config{Store: st, Origin: testOrigin, SigningKey: key, HMAC: testHMAC, PublishInterval: time.Hour}
	for _, m := range mod {
		m(&cfg)
	}
	l, err := auditlog.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func testEvent(i int) auditlog.Event {
	tenants := []string{"tn_alpha", "tn_beta", "tn_gamma"}
	actions := []string{"dataset.create", "model.predict", "auth.login", "key.revoke"}
	d := auditlog.Allow
	if i%7 == 3 {
		d = auditlog.Deny
	}
	return auditlog.Event{
		Tenant: tenants[i%len(tenants)], Principal: fmt.Sprintf("pr_%d", i%11), Role: rampart.RoleServiceUser,
		Action: actions[i%len(actions)], Resource: fmt.Sprintf("mdl_%d", i%5), Decision: d,
		Reason: "policy", Outcome: "success", RequestID: fmt.Sprintf("req_%d", i),
		Digest:  auditlog.ContentDigest(sha256.Sum256([]byte(fmt.Sprint(i)))),
		Details: map[string]string{"n": fmt.Sprint(i)},
	}
}

func appendN(t testing.TB, l *auditlog.Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), testEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// pageAfter returns the page holding exactly event i.
func pageAfter(i int) rampart.Page {
	if i == 0 {
		return rampart.Page{Limit: 1}
	}
	return rampart.Page{Limit: 1, Cursor: base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprint(i - 1)))}
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
