package auditlog_test

import (
	"context"
	"testing"

	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/auditlogtest"
	"golang.org/x/mod/sumdb/tlog"
)

// TestAgainstSumdbTlog cross-checks the tree with an independent RFC 6962
// implementation (golang.org/x/mod/sumdb/tlog): every root and every
// inclusion proof the log serves agrees with it.
func TestAgainstSumdbTlog(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, auditlogtest.NewMemStore(), newKey(t))
	const n = 70
	var stored []tlog.Hash // tlog's own stored-hash layout
	var leaves [][]byte
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := 0; i < n; i++ {
		if _, err := l.Append(ctx, testEvent(i)); err != nil {
			t.Fatal(err)
		}
		recs, _, err := l.Events(ctx, auditlog.Query{Page: pageAfter(i)})
		if err != nil || len(recs) != 1 {
			t.Fatalf("event %d: %v", i, err)
		}
		leaves = append(leaves, recs[0].Raw)
		hs, err := tlog.StoredHashes(int64(i), recs[0].Raw, hr)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		size := int64(i + 1)
		want, err := tlog.TreeHash(size, hr)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := l.Publish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(cp.Root) != string(want[:]) {
			t.Fatalf("size %d: root %x, tlog says %x", size, cp.Root, want)
		}
		for j := int64(0); j < size; j += 7 {
			p, err := l.InclusionProof(ctx, uint64(j), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			rp := make(tlog.RecordProof, len(p))
			for k := range p {
				copy(rp[k][:], p[k])
			}
			if err := tlog.CheckRecord(rp, size, want, j, tlog.RecordHash(leaves[j])); err != nil {
				t.Fatalf("inclusion %d in %d rejected by tlog: %v", j, size, err)
			}
		}
		if i > 0 {
			p, err := l.ConsistencyProof(ctx, uint64(i/2+1), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			old, _ := tlog.TreeHash(int64(i/2+1), hr)
			tp := make(tlog.TreeProof, len(p))
			for k := range p {
				copy(tp[k][:], p[k])
			}
			if err := tlog.CheckTree(tp, size, want, int64(i/2+1), old); err != nil {
				t.Fatalf("consistency %d→%d rejected by tlog: %v", i/2+1, size, err)
			}
		}
	}
}
