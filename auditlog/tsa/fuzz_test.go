package tsa_test

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/rampart-mlaas/rampart/auditlog/tsa"
	"github.com/rampart-mlaas/rampart/auditlog/tsa/tsatest"
)

// FuzzVerify: arbitrary tokens never panic and never verify for a digest
// that no TSA signed.
func FuzzVerify(f *testing.F) {
	s, err := tsatest.Start()
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	d := sha256.Sum256([]byte("seed"))
	token, err := (&tsa.Client{URL: s.URL}).Timestamp(context.Background(), d[:])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(token)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	unsigned := sha256.Sum256([]byte("never signed"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := tsa.Verify(b, unsigned[:], nil); err == nil {
			t.Fatal("a token for a digest nobody signed verifies")
		}
		_, _ = tsa.Verify(b, d[:], nil)
	})
}
