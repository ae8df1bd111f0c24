package registry

import (
	"context"
	"errors"
	"testing"

	"github.com/rampart-mlaas/rampart"
)

// TestPreSeal: an artifact presealed while its job ended is the one the
// version references (no second seal) and loads with its checks
// (MODEL-1); a presealed object that is not taken over (other bytes, an
// early refusal, Discard) is shredded; an owner who may not register
// gets nothing sealed.
func TestPreSeal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := e.trained("pre", "job_pre1")
	in.Presealed = e.svc.PreSeal(ctx, e.dev, in.Artifact)
	if in.Presealed == nil {
		t.Fatal("nothing presealed for a model developer")
	}
	id := in.Presealed.p.artifactID
	v, err := e.svc.RegisterTrained(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.db.GetModelVersion(ctx, e.tenant.ID, v.ModelID, v.Version)
	if err != nil || rec.ArtifactID != id {
		t.Fatalf("version references artifact %q, presealed %q (%v)", rec.ArtifactID, id, err)
	}
	if _, err := e.svc.Load(ctx, e.tenant.ID, v.ModelID, v.Version); err != nil {
		t.Fatalf("load: %v", err)
	}
	if n := e.blobCount(); n != 1 {
		t.Fatalf("%d blobs after one presealed registration; want 1", n)
	}

	// Other bytes: the presealed object is shredded, the artifact sealed anew.
	in = e.trained("pre", "job_pre2")
	other := append([]byte(nil), in.Artifact...)
	other[len(other)-1] ^= 1
	in.Presealed = e.svc.PreSeal(ctx, e.dev, other)
	id = in.Presealed.p.artifactID
	v, err = e.svc.RegisterTrained(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := e.db.GetModelVersion(ctx, e.tenant.ID, v.ModelID, v.Version); err != nil || rec.ArtifactID == id {
		t.Fatalf("version references the presealed object of other bytes (%v)", err)
	}
	if n := e.blobCount(); n != 2 {
		t.Fatalf("%d blobs after two registrations; want 2", n)
	}

	// An early refusal (bad name) and a Discard leave nothing; Discard is
	// idempotent and nil-safe.
	in = e.trained("bad name!", "job_pre3")
	in.Presealed = e.svc.PreSeal(ctx, e.dev, in.Artifact)
	if _, err := e.svc.RegisterTrained(ctx, in); err == nil {
		t.Fatal("registered under an invalid name")
	}
	p := e.svc.PreSeal(ctx, e.dev, in.Artifact)
	p.Discard(ctx)
	p.Discard(ctx)
	(*Presealed)(nil).Discard(ctx)
	if n := e.blobCount(); n != 2 {
		t.Fatalf("%d blobs after a refused and a discarded preseal; want 2", n)
	}

	// A service user may not register: nothing is sealed.
	if p := e.svc.PreSeal(ctx, e.user, in.Artifact); p != nil {
		p.Discard(ctx)
		t.Fatal("presealed for a service user")
	}
	if n := e.blobCount(); n != 2 {
		t.Fatalf("%d blobs; want 2", n)
	}
}

// TestRegisterReady: Ready is called after the register decision is
// recorded and before the lineage event and the version; an error is the
// registration's error, recorded as the decision's outcome, and leaves no
// version, no lineage event and no blob (the seal is shredded).
func TestRegisterReady(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	runFailed := errors.New("the training run did not succeed")
	for _, want := range []error{runFailed, nil} {
		in := e.trained("ready", "job_ready")
		in.Presealed = e.svc.PreSeal(ctx, e.dev, in.Artifact)
		calls := 0
		in.Ready = func() error {
			calls++
			if n := len(e.audit.find("model.register", true)); n == 0 {
				t.Error("Ready called before the decision was recorded")
			}
			if n := len(e.audit.find("model.version.create", true)); n != 0 {
				t.Error("Ready called after the lineage event")
			}
			return want
		}
		_, err := e.svc.RegisterTrained(ctx, in)
		if calls != 1 || !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("Ready → %v: %d calls, registration %v", want, calls, err)
		}
		_, gerr := e.db.GetModelVersionByJob(ctx, e.tenant.ID, "job_ready")
		if want != nil {
			if !errors.Is(gerr, rampart.ErrNotFound) || e.blobCount() != 0 {
				t.Fatalf("a stopped registration stored a version (%v) or %d blobs", gerr, e.blobCount())
			}
			refused := 0
			for _, ev := range e.audit.find("model.register", true) { // the decision event again, with its outcome
				if ev.RequestID == "job:job_ready" && ev.Outcome != "ok" {
					refused++
				}
			}
			if refused != 1 {
				t.Fatalf("%d refusal outcomes recorded for the stopped registration; want 1", refused)
			}
		} else if gerr != nil || e.blobCount() != 1 {
			t.Fatalf("registration after Ready: %v, %d blobs", gerr, e.blobCount())
		}
	}
}
