package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/keyring"
	"github.com/rampart-mlaas/rampart/server"
	"github.com/rampart-mlaas/rampart/servertest"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(dir string) server.Config {
	c := server.Defaults()
	c.DataDir = dir
	c.Addr = "127.0.0.1:0"
	c.Quiet = true
	return c
}

// snapshot records every file's bytes under dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[p] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStartupRefusals: a bad data dir or root key refuses to start with a
// clear message and touches nothing.
func TestStartupRefusals(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, err := server.Open(context.Background(), testConfig(dir), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	before := snapshot(t, dir)

	t.Run("wrong root key", func(t *testing.T) {
		other, err := keyring.NewRootKeyValue()
		if err != nil {
			t.Fatal(err)
		}
		c := testConfig(dir)
		c.RootKey = server.Secret(other)
		_, err = server.Open(context.Background(), c, quietLog())
		if !errors.Is(err, keyring.ErrRootKeyMismatch) {
			t.Fatalf("got %v, want root key mismatch", err)
		}
		if !strings.Contains(err.Error(), "root key") {
			t.Errorf("unclear message: %v", err)
		}
	})
	t.Run("root key readable by others", func(t *testing.T) {
		rk := filepath.Join(dir, "root.key")
		if err := os.Chmod(rk, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(rk, 0o600)
		_, err := server.Open(context.Background(), testConfig(dir), quietLog())
		if !errors.Is(err, keyring.ErrRootKeyPermissions) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("root key missing", func(t *testing.T) {
		rk := filepath.Join(dir, "root.key")
		if err := os.Rename(rk, rk+".moved"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(rk+".moved", rk)
		_, err := server.Open(context.Background(), testConfig(dir), quietLog())
		if err == nil || !strings.Contains(err.Error(), "no root key") {
			t.Fatalf("got %v", err)
		}
		if _, err := os.Stat(rk); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("a new root key was created over existing data")
		}
	})
	t.Run("data dir open to group", func(t *testing.T) {
		if err := os.Chmod(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		_, err := server.Open(context.Background(), testConfig(dir), quietLog())
		if err == nil || !strings.Contains(err.Error(), "chmod 700") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("plaintext on a public address", func(t *testing.T) {
		c := testConfig(dir)
		c.Addr = "0.0.0.0:0"
		_, err := server.Open(context.Background(), c, quietLog())
		if err == nil || !strings.Contains(err.Error(), "without TLS") {
			t.Fatalf("got %v", err)
		}
	})
	after := snapshot(t, dir)
	for p, b := range before {
		if strings.HasSuffix(p, "-wal") || strings.HasSuffix(p, "-shm") {
			continue // SQLite's WAL index is rewritten on open; the data is not
		}
		if !bytes.Equal(after[p], b) {
			t.Errorf("%s changed by a refused start", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && !strings.HasSuffix(p, "-wal") && !strings.HasSuffix(p, "-shm") {
			t.Errorf("%s created by a refused start", p)
		}
	}
}

// TestBootstrapOnce: the operator key is written once (0600) and never again.
func TestBootstrapOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, err := server.Open(context.Background(), testConfig(dir), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	tok := srv.OperatorToken.Reveal()
	srv.Close()
	if tok == "" {
		t.Fatal("no operator token on first start")
	}
	p := filepath.Join(dir, "operator.key")
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("operator.key: %v %v", fi, err)
	}
	b, _ := os.ReadFile(p)
	if strings.TrimSpace(string(b)) != tok {
		t.Fatal("operator.key does not hold the printed key")
	}
	if got := srv.OperatorToken.String(); strings.Contains(got, tok[len(tok)-20:]) {
		t.Fatalf("token String() leaks the secret: %s", got)
	}
	srv2, err := server.Open(context.Background(), testConfig(dir), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if srv2.OperatorToken.Reveal() != "" {
		t.Fatal("second start minted another operator key")
	}
	b2, _ := os.ReadFile(p)
	if !bytes.Equal(b, b2) {
		t.Fatal("operator.key rewritten")
	}
}

// TestTLS is DATA-2: a self-signed listener speaks TLS 1.3 by default,
// accepts 1.2 with AEAD suites only, and refuses 1.1 and CBC suites.
func TestTLS(t *testing.T) {
	e := servertest.Start(t, func(c *server.Config) { c.TLSSelfSigned = true })
	if !strings.HasPrefix(e.URL, "https://") {
		t.Fatalf("url %s", e.URL)
	}
	host := strings.TrimPrefix(e.URL, "https://")
	dial := func(c *tls.Config) (*tls.Conn, error) {
		c.InsecureSkipVerify = true // the test checks protocol, not identity
		return tls.Dial("tcp", host, c)
	}
	conn, err := dial(&tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("default version %x, want TLS 1.3", v)
	}
	conn.Close()
	conn, err = dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 refused: %v", err)
	}
	conn.Close()
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	for _, cs := range tls.CipherSuites() {
		if strings.Contains(cs.Name, "GCM") || strings.Contains(cs.Name, "CHACHA20") || slicesContains(cs.SupportedVersions, tls.VersionTLS13) {
			continue
		}
		if c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}}); err == nil {
			c.Close()
			t.Errorf("non-AEAD suite %s accepted", cs.Name)
		}
	}
	for _, cs := range tls.InsecureCipherSuites() {
		if c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}}); err == nil {
			c.Close()
			t.Errorf("insecure suite %s accepted", cs.Name)
		}
	}
	// The API works over TLS with the generated certificate as CA.
	cc, err := e.ClientWithCA(filepath.Join(e.DataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Do(context.Background(), "GET", "/v1/whoami", nil, nil, nil); err != nil {
		t.Fatalf("whoami over TLS: %v", err)
	}
}

func slicesContains(s []uint16, v uint16) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestCanary is DATA-1 at the server level: a distinctive plaintext stored
// through the barrier is in no file under the data dir (database, WAL,
// blobs, keys), while it reads back intact.
func TestCanary(t *testing.T) {
	e := servertest.Start(t)
	canary := []byte("CANARY-" + strings.Repeat("rampart-plaintext-7f3a9", 4))
	data := bytes.Repeat(append(canary, '\n'), 5000)
	ref := barrier.Ref{Tenant: "tn_canary", Kind: "dataset", ID: "ds_canary", Version: 1}
	sealed, err := e.Server.Barrier.PutBytes(context.Background(), ref, data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Server.Barrier.GetBytes(context.Background(), ref, sealed.Digest, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	// Let SQLite checkpoint nothing in particular: scan the WAL too.
	files := 0
	for p, b := range snapshot(t, e.DataDir) {
		files++
		if bytes.Contains(b, canary[:20]) {
			t.Errorf("canary plaintext found in %s", p)
		}
	}
	if files < 3 {
		t.Fatalf("scanned only %d files", files)
	}
}
