package registry

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/rampart-mlaas/rampart"
)

// TestRegisterSealFails: the artifact is sealed while the lineage event is
// recorded (AUDIT-5), but the version row is stored only once the seal
// has succeeded. When sealing fails, no version exists, the error is
// returned, and the log holds the lineage event followed by its refusal
// (the same record a failing row insert gets).
func TestRegisterSealFails(t *testing.T) {
	e := newEnv(t)
	v := e.register("churn") // the model exists; its next version is 2
	if err := e.blobs.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.RegisterTrained(context.Background(), e.trained("churn", "job_sealfail"))
	if err == nil {
		t.Fatal("registered with a failing blob store")
	}
	if _, gerr := e.db.GetModelVersionByJob(context.Background(), e.tenant.ID, "job_sealfail"); !errors.Is(gerr, rampart.ErrNotFound) {
		t.Fatalf("a version exists without its artifact: %v", gerr)
	}
	m, gerr := e.db.GetModelByName(context.Background(), e.tenant.ID, "churn")
	if gerr != nil || m.LatestVersion != v.Version {
		t.Fatalf("model %+v %v", m, gerr)
	}
	var ok, refused int
	for _, ev := range e.audit.find("model.version.create", true) {
		if ev.Details["job"] == "job_sealfail" {
			ok++
		}
	}
	for _, ev := range e.audit.find("model.version.create", false) {
		if ev.Details["job"] == "job_sealfail" && ev.Outcome != "ok" {
			refused++
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("lineage events: %d recorded, %d refusals; want 1 and 1 (%v)", ok, refused, err)
	}
}

// TestRegisterRefusedLeavesNoArtifact: the artifact is sealed while the
// decision is recorded, so a decision that cannot be recorded (audit log
// down) or a refused owner must leave no ciphertext behind, and no version.
func TestRegisterRefusedLeavesNoArtifact(t *testing.T) {
	e := newEnv(t)
	e.register("churn")
	blobs := e.blobCount
	before := blobs()
	if before == 0 {
		t.Fatal("no blob found for the registered version")
	}
	e.audit.mu.Lock()
	e.audit.fail = true
	e.audit.mu.Unlock()
	if _, err := e.svc.RegisterTrained(context.Background(), e.trained("churn", "job_auditdown")); rampart.ErrorCode(err) != rampart.CodeUnavailable {
		t.Fatalf("audit down: %v", err)
	}
	e.audit.mu.Lock()
	e.audit.fail = false
	e.audit.mu.Unlock()
	in := e.trained("churn", "job_denied")
	in.Owner.ID = rampart.NewID(rampart.PrefixPrincipal) // unknown: treated as disabled
	if _, err := e.svc.RegisterTrained(context.Background(), in); err == nil {
		t.Fatal("a service user registered a model")
	}
	if after := blobs(); after != before {
		t.Fatalf("%d blobs before, %d after refused registrations", before, after)
	}
	for _, job := range []string{"job_auditdown", "job_denied"} {
		if _, err := e.db.GetModelVersionByJob(context.Background(), e.tenant.ID, job); !errors.Is(err, rampart.ErrNotFound) {
			t.Fatalf("%s: version stored: %v", job, err)
		}
	}
}

// TestRegisterThen: TrainedInput.Then runs in the transaction that stores
// the version (it sees the row before the commit) and its failure rolls
// the version back, shredding the artifact: a training job's final state
// and its model version are durable together or not at all.
func TestRegisterThen(t *testing.T) {
	e := newEnv(t)
	in := e.trained("churn", "job_then")
	var seen int
	in.Then = func(tx *sql.Tx, v rampart.ModelVersion) error {
		return tx.QueryRow(`SELECT count(*) FROM model_versions WHERE model_id=? AND version=? AND job_id=?`, v.ModelID, v.Version, "job_then").Scan(&seen)
	}
	v, err := e.svc.RegisterTrained(context.Background(), in)
	if err != nil || seen != 1 || v.Version != 1 {
		t.Fatalf("then saw %d rows; %+v %v", seen, v, err)
	}
	blobs := func() int {
		n := 0
		_ = filepath.WalkDir(filepath.Join(e.dir, "blobs"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	before := blobs()
	in = e.trained("churn", "job_then_fails")
	in.Then = func(*sql.Tx, rampart.ModelVersion) error { return errors.New("job update failed") }
	if _, err := e.svc.RegisterTrained(context.Background(), in); err == nil {
		t.Fatal("registered although Then failed")
	}
	if _, err := e.db.GetModelVersionByJob(context.Background(), e.tenant.ID, "job_then_fails"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("version stored although Then failed: %v", err)
	}
	if after := blobs(); after != before {
		t.Fatalf("%d blobs before, %d after the rolled-back registration", before, after)
	}
}
