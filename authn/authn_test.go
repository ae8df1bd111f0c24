package authn_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authn"
	"github.com/rampart-mlaas/rampart/sqlite"
)

// hmacMAC is a plain HMAC-SHA256 (crypto/hmac) for tests; the server uses
// the keyring's Tink MAC.
type hmacMAC struct{ key []byte }

func (m hmacMAC) ComputeMAC(d []byte) ([]byte, error) {
	h := hmac.New(sha256.New, m.key)
	h.Write(d)
	return h.Sum(nil), nil
}

func (m hmacMAC) VerifyMAC(tag, d []byte) error {
	want, _ := m.ComputeMAC(d)
	if !hmac.Equal(tag, want) {
		return errors.New("mac mismatch")
	}
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func setup(t testing.TB) (*authn.Authenticator, *sqlite.DB, *clock, rampart.Principal) {
	db, err := sqlite.Open(context.Background(), t.TempDir()+"/m.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tn := rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: "t", CreatedAt: time.Now()}
	if err := db.CreateTenant(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := authn.New(db, hmacMAC{[]byte("k")}, c.now)
	p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: tn.ID, Name: "p", Kind: rampart.PrincipalUser,
		Role: rampart.RoleServiceUser, CreatedAt: c.t}
	return a, db, c, p
}

func TestAuthenticate(t *testing.T) {
	a, db, c, p := setup(t)
	ctx := context.Background()
	tok, k, err := a.CreatePrincipal(ctx, p, "first", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Stored form is only a keyed hash.
	stored, _ := db.GetAPIKey(ctx, k.ID)
	if strings.Contains(string(stored.Hash), tok.Reveal()[31:]) || len(stored.Hash) != 32 {
		t.Fatalf("stored hash looks wrong: %x", stored.Hash)
	}
	got, _, err := a.Authenticate(ctx, tok.Reveal())
	if err != nil || got.ID != p.ID {
		t.Fatalf("good key: %v", err)
	}
	reason := func(tok string) string {
		_, _, err := a.Authenticate(ctx, tok)
		var f *authn.Failure
		if !errors.As(err, &f) || !errors.Is(err, rampart.ErrUnauthenticated) {
			t.Fatalf("%q: %v is not an authentication failure", tok, err)
		}
		return f.Reason
	}
	r := tok.Reveal()
	cases := map[string]string{
		"":                               "malformed",
		r[:len(r)-1]:                     "malformed",
		r + "a":                          "malformed",
		strings.ToUpper(r):               "malformed",
		r[:len(r)-1] + flip(r[len(r)-1]): "wrong secret",
		"rmp_" + rampart.RandomToken(16) + "_" + rampart.RandomToken(32): "unknown key",
	}
	for in, want := range cases {
		if got := reason(in); got != want {
			t.Errorf("%q: reason %q, want %q", in, got, want)
		}
	}
	// Expiry, from the injected clock.
	c.t = c.t.Add(time.Hour)
	if got := reason(r); got != "expired" {
		t.Errorf("after expiry: %q", got)
	}
	// Revocation takes effect on the next request, through the cache.
	c.t = c.t.Add(-time.Minute)
	tok2, k2, err := a.Issue(ctx, p, "second", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Authenticate(ctx, tok2.Reveal()); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAPIKey(ctx, k2.ID, c.t); err != nil {
		t.Fatal(err)
	}
	a.InvalidateKey(k2.ID)
	if got := reason(tok2.Reveal()); got != "revoked" {
		t.Errorf("after revoke: %q", got)
	}
	// Disabling the principal.
	tok3, _, _ := a.Issue(ctx, p, "third", 0)
	if _, _, err := a.Authenticate(ctx, tok3.Reveal()); err != nil {
		t.Fatal(err)
	}
	db.SetPrincipalDisabled(ctx, p.ID, true)
	a.InvalidatePrincipal(p.ID)
	if got := reason(tok3.Reveal()); got != "principal disabled" {
		t.Errorf("after disable: %q", got)
	}
	// Last-used times are batched and flushed.
	db.SetPrincipalDisabled(ctx, p.ID, false)
	a.InvalidatePrincipal(p.ID)
	if _, _, err := a.Authenticate(ctx, tok3.Reveal()); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ks, _, _ := db.ListAPIKeys(ctx, p.ID, rampart.Page{})
	used := 0
	for _, k := range ks {
		if k.LastUsedAt != nil {
			used++
		}
	}
	if used == 0 {
		t.Error("no last-used time recorded")
	}
}

func flip(b byte) string {
	if b == 'a' {
		return "b"
	}
	return "a"
}

func TestTokenRedaction(t *testing.T) {
	a, _, _, p := setup(t)
	tok, _, err := a.Mint(p, "x", 0)
	if err != nil {
		t.Fatal(err)
	}
	secret := tok.Reveal()[31:]
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("minted", "token", tok)
	for _, s := range []string{tok.String(), fmt.Sprint(tok), fmt.Sprintf("%v %+v %s", tok, tok, tok), sb.String()} {
		if strings.Contains(s, secret) {
			t.Fatalf("secret leaked: %s", s)
		}
	}
	if len(secret) != 52 {
		t.Fatalf("secret is %d base32 chars, want 52 (256 bits)", len(secret))
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("rmp_aaaaaaaaaaaaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	f.Add("rmp_")
	f.Add("")
	f.Add("rmp_\x00_é")
	f.Fuzz(func(t *testing.T, s string) {
		id, sec, err := authn.ParseToken(s)
		if err != nil {
			return
		}
		if len(s) != authn.MaxTokenLen || !strings.HasPrefix(id, rampart.PrefixKey+"_") || len(sec) != 52 {
			t.Fatalf("accepted %q as %q %q", s, id, sec)
		}
		if !rampart.ValidID(rampart.PrefixKey, id) {
			t.Fatalf("parsed ID %q is not a valid key ID", id)
		}
	})
}

// BenchmarkAuthenticate measures one cached credential check: parse, cache
// lookup, constant-time comparison with the credential the entry verified
// (keyed hash on its first use), expiry and state checks.
func BenchmarkAuthenticate(b *testing.B) {
	a, _, _, p := setup(b)
	tok, _, err := a.CreatePrincipal(context.Background(), p, "b", 0)
	if err != nil {
		b.Fatal(err)
	}
	s := tok.Reveal()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.Authenticate(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// countingMAC counts VerifyMAC calls.
type countingMAC struct {
	hmacMAC
	verifies *int
}

func (m countingMAC) VerifyMAC(tag, d []byte) error {
	*m.verifies++
	return m.hmacMAC.VerifyMAC(tag, d)
}

// TestVerifiedFastPath: a key's repeated requests skip the keyed hash only
// for the very credential that passed it, within the cache entry's life;
// any other secret for the key is checked against the stored hash and
// refused (IAM-1).
func TestVerifiedFastPath(t *testing.T) {
	_, db, c, p := setup(t)
	ctx := context.Background()
	n := 0
	a := authn.New(db, countingMAC{hmacMAC{[]byte("k")}, &n}, c.now)
	tok, _, err := a.CreatePrincipal(ctx, p, "k", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := tok.Reveal()
	for range 5 {
		if _, _, err := a.Authenticate(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Fatalf("%d keyed-hash checks for 5 requests with one credential, want 1", n)
	}
	for i := range 3 {
		bad := r[:len(r)-1-i] + flip(r[len(r)-1-i]) + r[len(r)-i:]
		if _, _, err := a.Authenticate(ctx, bad); !errors.Is(err, rampart.ErrUnauthenticated) {
			t.Fatalf("wrong secret accepted after the right one: %v", err)
		}
	}
	if n != 4 {
		t.Fatalf("wrong secrets took %d keyed-hash checks, want 3", n-1)
	}
	if _, _, err := a.Authenticate(ctx, r); err != nil || n != 4 {
		t.Fatalf("good credential after wrong ones: %v, %d checks", err, n)
	}
	// A new cache entry (TTL passed) verifies against the stored hash again.
	c.t = c.t.Add(6 * time.Second)
	if _, _, err := a.Authenticate(ctx, r); err != nil || n != 5 {
		t.Fatalf("after the cache TTL: %v, %d checks, want 5", err, n)
	}
}
