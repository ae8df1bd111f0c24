package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/auditlogtest"
	"github.com/rampart-mlaas/rampart/sqlite"
)

func openAuditDB(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAuditStoreConformance(t *testing.T) {
	auditlogtest.Run(t, func(t *testing.T) auditlog.Store { return openAuditDB(t).Audit() })
}

// TestAuditTablesAreAppendOnly: the triggers of 00002_audit.sql refuse
// rewriting history (the Merkle tree is what detects it when they are dropped).
func TestAuditTablesAreAppendOnly(t *testing.T) {
	ctx := context.Background()
	db := openAuditDB(t)
	st := db.Audit()
	if err := st.AppendLeaves(ctx, []auditlog.Leaf{{Index: 0, Data: []byte("{}"), Hashes: make([]byte, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutCheckpoint(ctx, auditlog.StoredCheckpoint{Size: 1, Root: make([]byte, 32), Note: []byte("n")}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE audit_leaves SET data = x'00'`,
		`DELETE FROM audit_leaves`,
		`DELETE FROM audit_checkpoints`,
		`UPDATE audit_checkpoints SET note = x'00'`,
		`UPDATE audit_checkpoints SET root = x'00'`,
	} {
		_, err := db.SQL().ExecContext(ctx, q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refusal", q, err)
		}
	}
	// Adding the missing time-stamp is the one update allowed, once.
	if err := st.SetCheckpointTimestamp(ctx, 1, []byte("tok")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `UPDATE audit_checkpoints SET tsa_token = x'01'`); err == nil {
		t.Error("a stored time-stamp was replaced")
	}
}

// TestAuditWALBounded: under appends that never pause, the write-ahead log
// still stops growing (background checkpoints plus the writer's backstop
// checkpoint let it restart), instead of holding everything ever appended.
func TestAuditWALBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 100 MB")
	}
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := db.Audit()
	t.Cleanup(func() { st.Close() })
	data := bytes.Repeat([]byte("x"), 4000)
	const total = 100 << 20
	var idx uint64
	for written := 0; written < total; {
		batch := make([]auditlog.Leaf, 256)
		for i := range batch {
			batch[i] = auditlog.Leaf{Index: idx, Data: data, Hashes: make([]byte, 32), Time: time.Unix(0, int64(idx)), Tenant: "tn_a"}
			idx++
			written += len(data)
		}
		if err := st.AppendLeavesDeferred(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "audit.db-wal"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 80<<20 {
		t.Fatalf("write-ahead log is %d MiB after %d MiB of appends: it never restarts", fi.Size()>>20, total>>20)
	}
	t.Logf("write-ahead log %d MiB after %d MiB of appends", fi.Size()>>20, total>>20)
}
