package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/auditlog"
)

func journalLeaf(i uint64) auditlog.Leaf {
	return auditlog.Leaf{Index: i, Data: []byte(fmt.Sprintf(`{"i":%d}`, i)), Hashes: bytes.Repeat([]byte{byte(i)}, 32+32*int(i%3)),
		Time: time.Unix(0, int64(1e18+i)).UTC(), Tenant: fmt.Sprintf("tn_%d", i%3), Principal: "pr_1", Action: "model.predict", Resource: "endpoint/e"}
}

func sameLeaf(a, b auditlog.Leaf) bool {
	return a.Index == b.Index && bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Hashes, b.Hashes) && a.Time.Equal(b.Time) &&
		a.Tenant == b.Tenant && a.Principal == b.Principal && a.Action == b.Action && a.Resource == b.Resource
}

func TestJournalRecordRoundTrip(t *testing.T) {
	var b []byte
	var want []auditlog.Leaf
	for i := uint64(0); i < 50; i++ {
		l := journalLeaf(i)
		want = append(want, l)
		b = appendJournalRecord(b, &l)
	}
	got, valid, err := parseJournal(b)
	if err != nil || valid != len(b) || len(got) != len(want) {
		t.Fatalf("parse: %d leaves, %d/%d bytes, %v", len(got), valid, len(b), err)
	}
	for i := range got {
		if !sameLeaf(got[i], want[i]) {
			t.Fatalf("leaf %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Every cut of the last record is a torn tail; every flipped byte of
	// a record is caught by its checksum (or its length check).
	last := len(b) - len(appendJournalRecord(nil, &want[49]))
	for cut := last + 1; cut < len(b); cut++ {
		got, valid, err := parseJournal(b[:cut])
		if !errors.Is(err, errJournalTorn) || valid != last || len(got) != 49 {
			t.Fatalf("cut at %d: %d leaves, valid %d, %v", cut, len(got), valid, err)
		}
	}
	for i := last; i < len(b); i++ {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		if got, _, err := parseJournal(c); err == nil && len(got) == 50 && sameLeaf(got[49], want[49]) {
			t.Fatalf("flipped byte %d went unnoticed", i)
		}
	}
}

func FuzzJournalRecord(f *testing.F) {
	l := journalLeaf(7)
	f.Add(appendJournalRecord(nil, &l))
	f.Add([]byte{})
	f.Add([]byte{16, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		leaves, valid, err := parseJournal(b)
		if valid > len(b) || (err == nil && valid != len(b)) {
			t.Fatalf("valid %d of %d, err %v", valid, len(b), err)
		}
		// What parses re-encodes to exactly the bytes it came from.
		var re []byte
		for i := range leaves {
			re = appendJournalRecord(re, &leaves[i])
		}
		if !bytes.Equal(re, b[:valid]) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// crash abandons the store as kill -9 would: no final copy into SQLite, the
// journal's files and lock released by the "process" ending.
func (s *AuditStore) crash() {
	if j := s.j; j != nil {
		close(j.stop)
		<-j.done
		j.mu.Lock()
		j.closeFiles()
		j.mu.Unlock()
		j.lock.Close()
	}
	s.mu.Lock()
	s.dropWriter()
	s.mu.Unlock()
	s.ckptWG.Wait()
}

func openJournalDB(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func countLeaves(t *testing.T, db *DB) int64 {
	t.Helper()
	var n int64
	if err := db.db.QueryRow(`SELECT COUNT(*) FROM audit_leaves`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestJournalRecovery (AUDIT-1, RES-2): deferred batches acknowledged before a
// crash are in audit_leaves after the next start, in order, whatever
// happened to the process; a torn last append is dropped.
func TestJournalRecovery(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, segs []string) // before reopening
		want   int64                             // leaves after reopening; -1: reopening fails
	}{
		{"clean", nil, 300},
		{"torn tail", func(t *testing.T, segs []string) {
			appendFile(t, segs[len(segs)-1], []byte{200, 0, 0, 0, 1, 2, 3})
		}, 300},
		{"cut last record", func(t *testing.T, segs []string) {
			p := segs[len(segs)-1]
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, fi.Size()-3); err != nil {
				t.Fatal(err)
			}
		}, 299},
		{"bad record in an earlier segment", func(t *testing.T, segs []string) {
			flipByte(t, segs[0], 20)
		}, -1},
		{"missing segment", func(t *testing.T, segs []string) {
			os.Remove(segs[0])
		}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.db")
			db := openJournalDB(t, path)
			st := db.Audit()
			// Three segments: some leaves stored, the rest only journaled.
			if err := st.AppendLeaves(ctx, []auditlog.Leaf{journalLeaf(0)}); err != nil {
				t.Fatal(err)
			}
			next := uint64(1)
			for seg := 0; seg < 3; seg++ {
				for k := 0; k < 3; k++ {
					var b []auditlog.Leaf
					for len(b) < 33 {
						b = append(b, journalLeaf(next))
						next++
					}
					if err := st.AppendLeavesDeferred(ctx, b); err != nil {
						t.Fatal(err)
					}
				}
				if seg < 2 {
					st.j.mu.Lock()
					st.j.curSize = journalSegmentBytes // start a new segment at the next append
					st.j.mu.Unlock()
				}
			}
			if next != 298 {
				t.Fatalf("next %d", next)
			}
			if err := st.AppendLeavesDeferred(ctx, []auditlog.Leaf{journalLeaf(298), journalLeaf(299)}); err != nil {
				t.Fatal(err)
			}
			st.crash()
			if n := countLeaves(t, db); n != 1 {
				t.Fatalf("%d leaves in SQLite before the restart, want 1 (the rest journaled)", n)
			}
			db.db.Close()
			segs, err := journalSegments(path)
			if err != nil || len(segs) != 3 {
				t.Fatalf("segments %v, %v", segs, err)
			}
			if tc.tamper != nil {
				tc.tamper(t, segs)
			}

			db = openJournalDB(t, path)
			defer db.Close()
			st = db.Audit()
			n, err := st.LeafCount(ctx)
			if tc.want < 0 {
				if err == nil {
					t.Fatalf("reopened a damaged journal: %d leaves", n)
				}
				return
			}
			if err != nil || int64(n) != tc.want {
				t.Fatalf("LeafCount %d, %v; want %d", n, err, tc.want)
			}
			got, err := st.ReadLeaves(ctx, 0, n)
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range got {
				if !sameLeaf(l, journalLeaf(uint64(i))) {
					t.Fatalf("leaf %d differs after recovery", i)
				}
			}
			if segs, _ := journalSegments(path); len(segs) != 0 {
				t.Fatalf("segments left after recovery: %v", segs)
			}
			// The log goes on from there.
			if err := st.AppendLeavesDeferred(ctx, []auditlog.Leaf{journalLeaf(n)}); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if c := countLeaves(t, db); c != int64(n)+1 {
				t.Fatalf("after Close %d leaves, want %d", c, n+1)
			}
			if segs, _ := journalSegments(path); len(segs) != 0 {
				t.Fatalf("segments left after Close: %v", segs)
			}
		})
	}
}

// TestJournalVisibleAndOrdered: a deferred leaf is visible to every read at
// once, a waiting append stores the journaled leaves before its own, a
// checkpoint is never stored ahead of the leaves it covers, and segments
// are deleted once stored.
func TestJournalVisibleAndOrdered(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	db := openJournalDB(t, path)
	defer db.Close()
	st := db.Audit()
	if err := st.AppendLeavesDeferred(ctx, []auditlog.Leaf{journalLeaf(0), journalLeaf(1)}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendLeavesDeferred(ctx, []auditlog.Leaf{journalLeaf(5)}); err == nil {
		t.Fatal("a gap was journaled")
	}
	q, err := st.QueryLeaves(ctx, auditlog.LeafQuery{After: -1, Tenant: "tn_1"})
	if err != nil || len(q) != 1 || q[0].Index != 1 {
		t.Fatalf("query: %v, %v", q, err)
	}
	if err := st.AppendLeavesDeferred(ctx, []auditlog.Leaf{journalLeaf(2)}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutCheckpoint(ctx, auditlog.StoredCheckpoint{Size: 3, Root: make([]byte, 32), Note: []byte("n"), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if n := countLeaves(t, db); n != 3 {
		t.Fatalf("checkpoint stored with %d leaves in SQLite, want 3", n)
	}
	if err := st.AppendLeavesDeferred(ctx, []auditlog.Leaf{journalLeaf(3)}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendLeaves(ctx, []auditlog.Leaf{journalLeaf(4)}); err != nil {
		t.Fatal(err)
	}
	if n := countLeaves(t, db); n != 5 {
		t.Fatalf("%d leaves after a waiting append, want 5", n)
	}
	if err := st.AppendLeaves(ctx, []auditlog.Leaf{journalLeaf(4)}); err == nil {
		t.Fatal("appended index 4 twice")
	}
	// Fill a few segments; the background copy deletes all but the current.
	next := uint64(5)
	big := bytes.Repeat([]byte("x"), 64<<10)
	for i := 0; i < 400; i++ {
		l := journalLeaf(next)
		l.Data = big
		if err := st.AppendLeavesDeferred(ctx, []auditlog.Leaf{l}); err != nil {
			t.Fatal(err)
		}
		next++
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LeafCount(ctx); err != nil {
		t.Fatal(err)
	}
	if segs, _ := journalSegments(path); len(segs) != 1 {
		t.Fatalf("%d segments after everything was stored, want 1 (the current)", len(segs))
	}
}

// TestJournalSecondOwner: a second store on the same database (here a second
// handle; in production another process) neither replays nor writes the
// journal the first one holds.
func TestJournalSecondOwner(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	db1 := openJournalDB(t, path)
	defer db1.Close()
	if err := db1.Audit().AppendLeavesDeferred(ctx, []auditlog.Leaf{journalLeaf(0)}); err != nil {
		t.Fatal(err)
	}
	db2 := openJournalDB(t, path)
	defer db2.Close()
	st2 := db2.Audit()
	if _, err := st2.LeafCount(ctx); err != nil {
		t.Fatal(err)
	}
	if st2.jstate.Load() != jstateShared {
		t.Fatalf("second store state %d, want shared", st2.jstate.Load())
	}
	if segs, _ := journalSegments(path); len(segs) != 1 {
		t.Fatalf("the second store touched the first one's journal: %v", segs)
	}
}

func appendFile(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, p string, off int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
