package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

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
