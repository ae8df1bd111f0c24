package auditlog_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/auditlogtest"
)

// TestClientWitnessFlow is what `rampart audit verify` does twice in a row:
// the first run has no witness, stores the checkpoint; the second proves
// consistency from it; a server that rolled back fails.
func TestClientWitnessFlow(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, auditlogtest.NewMemStore(), newKey(t))
	path := filepath.Join(t.TempDir(), "rampart", "audit-witness.note")
	verifyOnce := func(cpNote []byte, size uint64) error {
		w, err := auditlog.LoadWitness(path)
		if err != nil {
			return err
		}
		req := auditlog.VerifyRequest{Key: l.VerifierKey(), Checkpoint: cpNote, Witness: w}
		if w != nil {
			old, err := auditlog.ParseCheckpoint(w, mustVerifier(t, l.VerifierKey()))
			if err != nil {
				return err
			}
			if old.Size <= size {
				if req.Consistency, err = l.ConsistencyProof(ctx, old.Size, size); err != nil {
					return err
				}
			}
		}
		res, err := auditlog.Verify(req)
		if err != nil {
			return err
		}
		return auditlog.SaveWitness(path, res.Checkpoint.Note)
	}
	appendN(t, l, 5)
	cp1, _ := l.Publish(ctx)
	if err := verifyOnce(cp1.Note, cp1.Size); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 9)
	cp2, _ := l.Publish(ctx)
	if err := verifyOnce(cp2.Note, cp2.Size); err != nil {
		t.Fatal(err)
	}
	if w, _ := auditlog.LoadWitness(path); !bytes.Equal(w, cp2.Note) {
		t.Fatal("witness not updated")
	}
	// The server shows the older checkpoint again: a rollback.
	if err := verifyOnce(cp1.Note, cp1.Size); err == nil {
		t.Fatal("rollback to an older checkpoint accepted")
	}
}
