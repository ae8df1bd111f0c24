// Package auditlogtest is the conformance suite for auditlog.Store: every
// implementation (SQLite now, PostgreSQL later) must pass Run.
package auditlogtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
)

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) auditlog.Store) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("AppendAndRead", func(t *testing.T) { testAppendAndRead(t, newStore(t)) })
	t.Run("AppendConflicts", func(t *testing.T) { testAppendConflicts(t, newStore(t)) })
	t.Run("Query", func(t *testing.T) { testQuery(t, newStore(t)) })
	t.Run("Checkpoints", func(t *testing.T) { testCheckpoints(t, newStore(t)) })
	t.Run("Deferred", func(t *testing.T) {
		st := newStore(t)
		ds, ok := st.(auditlog.DeferredSyncer)
		if !ok {
			t.Skip("the store does not implement auditlog.DeferredSyncer")
		}
		testDeferred(t, st, ds)
	})
}

// testDeferred: deferred and waiting appends interleave on one sequence of
// indexes with the same conflict rules, deferred leaves are visible at once,
// and Sync succeeds with or without anything outstanding.
func testDeferred(t *testing.T, st auditlog.Store, ds auditlog.DeferredSyncer) {
	ctx := context.Background()
	if err := ds.Sync(ctx); err != nil {
		t.Fatalf("Sync on empty: %v", err)
	}
	for i, b := range [][2]uint64{{0, 300}, {300, 1}, {301, 40}, {341, 2}} {
		var err error
		if i%2 == 0 {
			err = ds.AppendLeavesDeferred(ctx, leaves(b[0], b[1]))
		} else {
			err = st.AppendLeaves(ctx, leaves(b[0], b[1]))
		}
		if err != nil {
			t.Fatalf("append %v: %v", b, err)
		}
		if n, err := st.LeafCount(ctx); err != nil || n != b[0]+b[1] {
			t.Fatalf("after append %v: LeafCount %d, %v", b, n, err)
		}
	}
	if err := ds.AppendLeavesDeferred(ctx, leaves(100, 2)); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("deferred append over existing leaves: %v, want ErrConflict", err)
	}
	bad := leaves(343, 2)
	bad[1].Index = 400
	if err := ds.AppendLeavesDeferred(ctx, bad); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("non-consecutive deferred append: %v, want ErrConflict", err)
	}
	if err := ds.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got, err := st.ReadLeaves(ctx, 0, 343)
	if err != nil || len(got) != 343 {
		t.Fatalf("ReadLeaves: %d leaves, %v", len(got), err)
	}
	for i, l := range got {
		if !equalLeaf(l, leaf(uint64(i))) {
			t.Fatalf("leaf %d differs after deferred appends", i)
		}
	}
}

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func leaf(i uint64) auditlog.Leaf {
	data := []byte(fmt.Sprintf(`{"i":%d}`, i))
	h := sha256.Sum256(data)
	hashes := bytes.Repeat(h[:], 1+int(i%3))
	return auditlog.Leaf{
		Index: i, Data: data, Hashes: hashes, Time: base.Add(time.Duration(i) * time.Second),
		Tenant: []string{"tn_a", "tn_b"}[i%2], Principal: fmt.Sprintf("pr_%d", i%3),
		Action: []string{"x.read", "x.write", "x.delete"}[i%3], Resource: fmt.Sprintf("r/%d", i%5),
	}
}

func leaves(from, n uint64) []auditlog.Leaf {
	out := make([]auditlog.Leaf, n)
	for i := range out {
		out[i] = leaf(from + uint64(i))
	}
	return out
}

func testEmpty(t *testing.T, st auditlog.Store) {
	ctx := context.Background()
	if n, err := st.LeafCount(ctx); err != nil || n != 0 {
		t.Fatalf("LeafCount = %d, %v", n, err)
	}
	if _, err := st.LatestCheckpoint(ctx); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("LatestCheckpoint on empty: %v", err)
	}
	if _, err := st.CheckpointAt(ctx, 0); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("CheckpointAt on empty: %v", err)
	}
	if ls, err := st.ReadLeaves(ctx, 0, 10); err != nil || len(ls) != 0 {
		t.Fatalf("ReadLeaves on empty: %v %v", ls, err)
	}
	if m, err := st.LeafHashes(ctx, []uint64{0, 1}); err != nil || len(m) != 0 {
		t.Fatalf("LeafHashes on empty: %v %v", m, err)
	}
}

func equalLeaf(a, b auditlog.Leaf) bool {
	return a.Index == b.Index && bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Hashes, b.Hashes) &&
		a.Time.Equal(b.Time) && a.Tenant == b.Tenant && a.Principal == b.Principal &&
		a.Action == b.Action && a.Resource == b.Resource
}

func testAppendAndRead(t *testing.T, st auditlog.Store) {
	ctx := context.Background()
	// Batches larger than any internal chunking, and single leaves.
	for _, b := range [][2]uint64{{0, 1}, {1, 1000}, {1001, 3}, {1004, 1}} {
		if err := st.AppendLeaves(ctx, leaves(b[0], b[1])); err != nil {
			t.Fatalf("append %v: %v", b, err)
		}
	}
	if n, err := st.LeafCount(ctx); err != nil || n != 1005 {
		t.Fatalf("LeafCount = %d, %v", n, err)
	}
	tests := []struct{ begin, end uint64 }{{0, 1}, {0, 1005}, {500, 510}, {1000, 2000}, {7, 7}, {9, 3}}
	for _, tt := range tests {
		got, err := st.ReadLeaves(ctx, tt.begin, tt.end)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if tt.end > tt.begin {
			want = int(min(tt.end, 1005) - tt.begin)
		}
		if len(got) != want {
			t.Fatalf("ReadLeaves(%d, %d) = %d leaves, want %d", tt.begin, tt.end, len(got), want)
		}
		for i, l := range got {
			if !equalLeaf(l, leaf(tt.begin+uint64(i))) {
				t.Fatalf("leaf %d = %+v", tt.begin+uint64(i), l)
			}
		}
	}
	m, err := st.LeafHashes(ctx, []uint64{0, 17, 1004, 1005, 99999})
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || !bytes.Equal(m[17], leaf(17).Hashes) || !bytes.Equal(m[1004], leaf(1004).Hashes) {
		t.Fatalf("LeafHashes = %v", m)
	}
	many := make([]uint64, 1200)
	for i := range many {
		many[i] = uint64(i)
	}
	if m, err := st.LeafHashes(ctx, many); err != nil || len(m) != 1005 {
		t.Fatalf("LeafHashes of 1200 indexes: %d, %v", len(m), err)
	}
}

func testAppendConflicts(t *testing.T, st auditlog.Store) {
	ctx := context.Background()
	if err := st.AppendLeaves(ctx, leaves(0, 5)); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]auditlog.Leaf{
		"gap":             leaves(6, 2),
		"overlap":         leaves(4, 2),
		"from zero again": leaves(0, 1),
		"not consecutive": {leaf(5), leaf(7)},
		"dup in batch":    {leaf(5), leaf(5)},
	}
	for name, ls := range bad {
		if err := st.AppendLeaves(ctx, ls); !errors.Is(err, rampart.ErrConflict) {
			t.Fatalf("%s: err = %v, want conflict", name, err)
		}
	}
	if n, _ := st.LeafCount(ctx); n != 5 {
		t.Fatalf("a refused batch left leaves behind: %d", n)
	}
	if err := st.AppendLeaves(ctx, leaves(5, 2)); err != nil {
		t.Fatal(err)
	}
}

func testQuery(t *testing.T, st auditlog.Store) {
	ctx := context.Background()
	const n = 60
	// Several batches, so that per-batch structures (such as tenant ranges)
	// are exercised across batch boundaries.
	from := uint64(0)
	for _, size := range []uint64{7, 1, 13, 2, 37} {
		if err := st.AppendLeaves(ctx, leaves(from, size)); err != nil {
			t.Fatal(err)
		}
		from += size
	}
	tests := []struct {
		name string
		q    auditlog.LeafQuery
		want func(auditlog.Leaf) bool
	}{
		{"all", auditlog.LeafQuery{}, func(auditlog.Leaf) bool { return true }},
		{"tenant", auditlog.LeafQuery{Tenant: "tn_b"}, func(l auditlog.Leaf) bool { return l.Tenant == "tn_b" }},
		{"principal", auditlog.LeafQuery{Principal: "pr_1"}, func(l auditlog.Leaf) bool { return l.Principal == "pr_1" }},
		{"action", auditlog.LeafQuery{Action: "x.delete"}, func(l auditlog.Leaf) bool { return l.Action == "x.delete" }},
		{"resource", auditlog.LeafQuery{Resource: "r/3"}, func(l auditlog.Leaf) bool { return l.Resource == "r/3" }},
		{"combined", auditlog.LeafQuery{Tenant: "tn_a", Action: "x.read"},
			func(l auditlog.Leaf) bool { return l.Tenant == "tn_a" && l.Action == "x.read" }},
		{"since", auditlog.LeafQuery{Since: base.Add(40 * time.Second)}, func(l auditlog.Leaf) bool { return l.Index >= 40 }},
		{"until", auditlog.LeafQuery{Until: base.Add(10 * time.Second)}, func(l auditlog.Leaf) bool { return l.Index < 10 }},
		{"none", auditlog.LeafQuery{Tenant: "tn_zzz"}, func(auditlog.Leaf) bool { return false }},
		{"tenant+since", auditlog.LeafQuery{Tenant: "tn_a", Since: base.Add(21 * time.Second)},
			func(l auditlog.Leaf) bool { return l.Tenant == "tn_a" && l.Index >= 21 }},
		{"tenant+principal+until", auditlog.LeafQuery{Tenant: "tn_b", Principal: "pr_2", Until: base.Add(50 * time.Second)},
			func(l auditlog.Leaf) bool { return l.Tenant == "tn_b" && l.Principal == "pr_2" && l.Index < 50 }},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 7, 100} {
			t.Run(fmt.Sprintf("%s/limit%d", tt.name, limit), func(t *testing.T) {
				var got []auditlog.Leaf
				q := tt.q
				q.After, q.Limit = -1, limit
				for {
					page, err := st.QueryLeaves(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit {
						t.Fatalf("page of %d > limit", len(page))
					}
					got = append(got, page...)
					if len(page) < limit {
						break
					}
					q.After = int64(page[len(page)-1].Index)
				}
				var want []uint64
				for i := uint64(0); i < n; i++ {
					if tt.want(leaf(i)) {
						want = append(want, i)
					}
				}
				if len(got) != len(want) {
					t.Fatalf("got %d leaves, want %d", len(got), len(want))
				}
				for i, l := range got {
					if l.Index != want[i] || !equalLeaf(l, leaf(l.Index)) {
						t.Fatalf("leaf %d = %+v, want index %d", i, l, want[i])
					}
				}
			})
		}
	}
}

func testCheckpoints(t *testing.T, st auditlog.Store) {
	ctx := context.Background()
	cp := func(size uint64) auditlog.StoredCheckpoint {
		return auditlog.StoredCheckpoint{Size: size, Root: bytes.Repeat([]byte{byte(size)}, 32),
			Note: []byte(fmt.Sprintf("note %d\n", size)), CreatedAt: base.Add(time.Duration(size) * time.Second)}
	}
	for _, s := range []uint64{0, 3, 10, 11, 25} {
		if err := st.PutCheckpoint(ctx, cp(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutCheckpoint(ctx, cp(10)); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("duplicate checkpoint: %v", err)
	}
	latest, err := st.LatestCheckpoint(ctx)
	if err != nil || latest.Size != 25 || !bytes.Equal(latest.Note, cp(25).Note) || !latest.CreatedAt.Equal(cp(25).CreatedAt) {
		t.Fatalf("latest = %+v, %v", latest, err)
	}
	if c, err := st.CheckpointAt(ctx, 10); err != nil || !bytes.Equal(c.Root, cp(10).Root) || c.Timestamp != nil {
		t.Fatalf("CheckpointAt(10) = %+v, %v", c, err)
	}
	if _, err := st.CheckpointAt(ctx, 12); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("CheckpointAt(12): %v", err)
	}
	page, err := st.Checkpoints(ctx, 0, 2)
	if err != nil || len(page) != 2 || page[0].Size != 0 || page[1].Size != 3 {
		t.Fatalf("Checkpoints(0, 2) = %+v, %v", page, err)
	}
	page, err = st.Checkpoints(ctx, 4, 10)
	if err != nil || len(page) != 3 || page[0].Size != 10 || page[2].Size != 25 {
		t.Fatalf("Checkpoints(4, 10) = %+v, %v", page, err)
	}
	pending, err := st.UntimestampedCheckpoints(ctx, time.Time{}, 10)
	if err != nil || len(pending) != 5 || pending[0].Size != 0 {
		t.Fatalf("Untimestamped = %+v, %v", pending, err)
	}
	if err := st.SetCheckpointTimestamp(ctx, 3, []byte("token3")); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCheckpointTimestamp(ctx, 3, []byte("again")); err == nil {
		t.Fatal("a time-stamp was replaced")
	}
	if err := st.SetCheckpointTimestamp(ctx, 12, []byte("t")); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("time-stamp of a missing checkpoint: %v", err)
	}
	if c, _ := st.CheckpointAt(ctx, 3); !bytes.Equal(c.Timestamp, []byte("token3")) {
		t.Fatalf("token not stored: %+v", c)
	}
	pending, err = st.UntimestampedCheckpoints(ctx, base.Add(10*time.Second), 10)
	if err != nil || len(pending) != 3 || pending[0].Size != 10 {
		t.Fatalf("Untimestamped since 10s = %+v, %v", pending, err)
	}
}
