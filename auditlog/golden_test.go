package auditlog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/auditlogtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden pins the byte formats (canonical event, signed checkpoint,
// export) with a fixed key and clock: a change to any of them is a format
// change that every verifier in the field would reject.
func TestGolden(t *testing.T) {
	ctx := context.Background()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, 32))
	at := time.Date(2026, 11, 23, 2, 45, 0, 123456789, time.UTC)
	l := openLog(t, auditlogtest.NewMemStore(), key, func(c *auditlog.Config) { c.Now = func() time.Time { return at } })
	ev := auditlog.Event{Tenant: "tn_golden", Principal: "pr_golden", Role: rampart.RoleDataProvider,
		Action: "dataset.create", Resource: "dataset/ds_golden", Decision: auditlog.Allow, Reason: "role data-provider may create datasets",
		Outcome: "ok", RequestID: "req_golden", Digest: "sha256:" + strings.Repeat("ab", 32),
		Details: map[string]string{"name": "<iris & co>", "rows": "150"}, Sensitive: map[string][]byte{"email": []byte("a@example.com")}}
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, err := l.Events(ctx, auditlog.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer
	if _, err := l.Export(ctx, &export, "tn_golden"); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"event.json":      append(bytes.Clone(recs[2].Raw), '\n'),
		"checkpoint.note": cp.Note,
		"export.jsonl":    export.Bytes(),
		"key.txt":         []byte(l.VerifierKey() + "\n"),
	}
	for name, got := range files {
		path := filepath.Join("testdata", "golden", name)
		if *update {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed:\n got %s\nwant %s", name, got, want)
		}
	}
	// The golden export verifies with the golden key, offline.
	vkey, err := os.ReadFile(filepath.Join("testdata", "golden", "key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	exp, err := os.ReadFile(filepath.Join("testdata", "golden", "export.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.VerifyExport(bytes.NewReader(exp), string(vkey), auditlog.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestProofWireForm(t *testing.T) {
	p := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}
	got, err := auditlog.DecodeProof(auditlog.EncodeProof(p))
	if err != nil || len(got) != 2 || !bytes.Equal(got[1], p[1]) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	bad := [][]string{
		{"AAAA"},                        // too short
		{strings.Repeat("A", 43) + "B"}, // non-canonical padding bits
		{"not base64!"},
		make([]string, auditlog.MaxProofLen+1),
	}
	for _, b := range bad {
		if _, err := auditlog.DecodeProof(b); !errors.Is(err, rampart.ErrInvalid) {
			t.Errorf("DecodeProof(%q) = %v", b, err)
		}
	}
}
