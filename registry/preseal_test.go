package registry

import (
	"context"
	"testing"
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
