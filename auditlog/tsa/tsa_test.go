package tsa_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/auditlog/tsa"
	"github.com/rampart-mlaas/rampart/auditlog/tsa/tsatest"
)

func startTSA(t *testing.T) *tsatest.Server {
	t.Helper()
	s, err := tsatest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestTimestampAndVerify(t *testing.T) {
	s := startTSA(t)
	other := startTSA(t) // a different CA
	d := sha256.Sum256([]byte("checkpoint body\n"))
	c := &tsa.Client{URL: s.URL, Roots: s.Roots()}
	token, err := c.Timestamp(context.Background(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	info, err := tsa.Verify(token, d[:], s.Roots())
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(info.Time) > time.Minute || !info.Signer.Equal(s.TSACert) {
		t.Fatalf("info %+v", info)
	}
	wrong := sha256.Sum256([]byte("another body\n"))
	// Flip a byte of the signed imprint, and one of the signature (the token
	// ends with it). Some bytes of a CMS structure are not covered by its
	// signature (outer lengths, unsigned sets); exports are protected against
	// those by their own signed digest (auditlog.VerifyExport).
	at := bytes.Index(token, d[:])
	if at < 0 {
		t.Fatal("imprint not found in token")
	}
	flipped := bytes.Clone(token)
	flipped[at+5] ^= 1
	badSig := bytes.Clone(token)
	badSig[len(badSig)-1] ^= 1
	tests := []struct {
		name   string
		token  []byte
		digest []byte
		roots  *x509.CertPool
		ok     bool
	}{
		{"good, chain checked", token, d[:], s.Roots(), true},
		{"good, signature only", token, d[:], nil, true},
		{"other imprint", token, wrong[:], nil, false},
		{"untrusted CA", token, d[:], other.Roots(), false},
		{"flipped imprint byte", flipped, d[:], nil, false},
		{"flipped imprint byte, chain checked", flipped, d[:], s.Roots(), false},
		{"flipped signature byte", badSig, d[:], nil, false},
		{"truncated", token[:len(token)-10], d[:], nil, false},
		{"empty", nil, d[:], nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tsa.Verify(tt.token, tt.digest, tt.roots)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, tsa.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	s := startTSA(t)
	d := sha256.Sum256([]byte("x"))
	s.SetDown(true)
	if _, err := (&tsa.Client{URL: s.URL}).Timestamp(context.Background(), d[:]); err == nil {
		t.Fatal("a TSA answering 503 gave a token")
	}
	s.SetDown(false)
	other := startTSA(t)
	if _, err := (&tsa.Client{URL: s.URL, Roots: other.Roots()}).Timestamp(context.Background(), d[:]); err == nil {
		t.Fatal("accepted a token from an untrusted TSA")
	}
	closed := startTSA(t)
	url := closed.URL
	closed.Close()
	c := &tsa.Client{URL: url, HTTP: &http.Client{Timeout: time.Second}}
	if _, err := c.Timestamp(context.Background(), d[:]); err == nil {
		t.Fatal("an unreachable TSA gave a token")
	}
}

// TestOpenSSLInterop verifies our tokens with `openssl ts -verify`, an
// independent RFC 3161 implementation (skipped only when openssl is absent).
func TestOpenSSLInterop(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	s := startTSA(t)
	body := []byte("rampart.test/audit\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	d := sha256.Sum256(body)
	token, err := (&tsa.Client{URL: s.URL, Roots: s.Roots()}).Timestamp(context.Background(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok, ca, data := write("token.der", token), write("ca.pem", s.CAPEM()), write("body", body)
	run := func(args ...string) error {
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	if err := run("ts", "-verify", "-token_in", "-in", tok, "-data", data, "-CAfile", ca); err != nil {
		t.Fatalf("openssl rejects our token: %v", err)
	}
	if err := run("ts", "-verify", "-token_in", "-in", tok, "-digest", hex.EncodeToString(d[:]), "-CAfile", ca); err != nil {
		t.Fatalf("openssl rejects our token by digest: %v", err)
	}
	other := write("other", []byte("tampered"))
	if err := run("ts", "-verify", "-token_in", "-in", tok, "-data", other, "-CAfile", ca); err == nil {
		t.Fatal("openssl accepts the token for other data")
	}
}
