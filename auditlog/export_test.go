package auditlog_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/tsa"
)

func exportFor(t *testing.T, withTSA bool) (export []byte, key string) {
	t.Helper()
	ctx := context.Background()
	var mod []func(*auditlog.Config)
	if withTSA {
		s := startTSA(t)
		mod = append(mod, func(c *auditlog.Config) { c.TSA = &tsa.Client{URL: s.URL, Roots: s.Roots()} })
	}
	st := newDB(t).Audit()
	l := openLog(t, st, newKey(t), mod...)
	appendN(t, l, 10)
	if withTSA {
		if _, err := l.Publish(ctx); err != nil {
			t.Fatal(err)
		}
		waitStamped(t, st, 1)
	}
	var buf bytes.Buffer
	n, err := l.Export(ctx, &buf, "tn_beta")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // events 1, 4, 7 belong to tn_beta
		t.Fatalf("exported %d events", n)
	}
	return buf.Bytes(), l.VerifierKey()
}

// TestExportVerifiesOffline (AUDIT-4): an export verifies with only the key.
func TestExportVerifiesOffline(t *testing.T) {
	for _, withTSA := range []bool{false, true} {
		export, key := exportFor(t, withTSA)
		rep, err := auditlog.VerifyExport(bytes.NewReader(export), key, auditlog.ExportOptions{RequireTimestamp: withTSA})
		if err != nil {
			t.Fatalf("tsa=%v: %v\n%s", withTSA, err, export)
		}
		if len(rep.Events) != 3 || rep.Checkpoint.Size != 10 || (rep.Timestamp != nil) != withTSA {
			t.Fatalf("report %+v", rep)
		}
		for _, ev := range rep.Events {
			if ev.Tenant != "tn_beta" {
				t.Fatalf("foreign event %+v", ev)
			}
		}
	}
	// The wrong key fails.
	export, _ := exportFor(t, false)
	other := openLog(t, newDB(t).Audit(), newKey(t))
	if _, err := auditlog.VerifyExport(bytes.NewReader(export), other.VerifierKey(), auditlog.ExportOptions{}); !errors.Is(err, auditlog.ErrVerify) {
		t.Fatalf("wrong key: %v", err)
	}
}

// TestExportAnyByteChangeFails (AUDIT-4): changing any single byte of an
// export — including the time-stamp token, which has bytes its own signature
// does not cover — makes offline verification fail.
func TestExportAnyByteChangeFails(t *testing.T) {
	export, key := exportFor(t, true)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range export {
		mut := bytes.Clone(export)
		mut[i] ^= byte(1 + rng.IntN(255))
		if _, err := auditlog.VerifyExport(bytes.NewReader(mut), key, auditlog.ExportOptions{}); err == nil {
			t.Fatalf("changed byte %d (%q) still verifies", i, export[max(0, i-20):min(len(export), i+20)])
		} else if !errors.Is(err, auditlog.ErrVerify) && !errors.Is(err, rampart.ErrInvalid) {
			t.Fatalf("byte %d: unexpected error class: %v", i, err)
		}
	}
	lines := strings.SplitAfter(string(export), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	structural := map[string]string{
		"drop event line":   strings.Join(append(append([]string{}, lines[:2]...), lines[3:]...), ""),
		"swap event lines":  strings.Join([]string{lines[0], lines[2], lines[1], lines[3], lines[4]}, ""),
		"duplicate event":   strings.Join([]string{lines[0], lines[1], lines[1], lines[2], lines[3], lines[4]}, ""),
		"drop end line":     strings.Join(lines[:4], ""),
		"trailing data":     string(export) + "\n",
		"no final newline":  strings.TrimSuffix(string(export), "\n"),
		"insert byte":       string(export[:100]) + " " + string(export[100:]),
		"delete byte":       string(export[:100]) + string(export[101:]),
		"empty":             "",
		"checkpoint only":   lines[0],
		"end before events": strings.Join([]string{lines[0], lines[4], lines[1]}, ""),
	}
	for name, mut := range structural {
		if _, err := auditlog.VerifyExport(strings.NewReader(mut), key, auditlog.ExportOptions{}); err == nil {
			t.Errorf("%s: still verifies", name)
		}
	}
}
