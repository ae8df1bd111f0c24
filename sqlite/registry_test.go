package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/sqlite"
)

func registryDB(t *testing.T) (*sqlite.DB, rampart.Tenant, rampart.Principal) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "reg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tn := rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: "t", CreatedAt: time.Now()}
	if err := db.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: tn.ID, Name: "p", Kind: rampart.PrincipalUser,
		Role: rampart.RoleModelDeveloper, CreatedAt: time.Now()}
	if err := db.CreatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	return db, tn, p
}

func record(tn rampart.Tenant, m rampart.Model, v int) rampart.ModelRecord {
	return rampart.ModelRecord{ModelVersion: rampart.ModelVersion{ModelID: m.ID, TenantID: tn.ID, ModelName: m.Name, Version: v,
		Stage: rampart.StageCandidate, Format: rampart.FormatXGBoost, Provenance: rampart.ProvenanceImported, Digest: "sha256:00",
		Size: 1, Metrics: map[string]float64{"auc": 0.5}, CreatedBy: m.Owner, CreatedAt: time.Unix(0, 123).UTC(), KeyID: "k"},
		ArtifactID: "art_x", Card: []byte("{}"), BOM: []byte("{}"), Attestation: []byte("{}"), Binding: []byte{1}}
}

// TestModelStore: version numbers are allocated without gaps or
// duplicates, rows are tenant-scoped (TEN-1), immutable but for the stage
// (MODEL-6), and moving a version to production archives the previous one
// atomically.
func TestModelStore(t *testing.T) {
	ctx := context.Background()
	db, tn, p := registryDB(t)
	m := rampart.Model{ID: rampart.NewID(rampart.PrefixModel), TenantID: tn.ID, Name: "m", Owner: p.ID, CreatedAt: time.Now().UTC()}
	if err := db.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateModel(ctx, rampart.Model{ID: rampart.NewID(rampart.PrefixModel), TenantID: tn.ID, Name: "m", Owner: p.ID}); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	for v := 1; v <= 3; v++ {
		if err := db.AddModelVersion(ctx, record(tn, m, v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []int{2, 3, 5} {
		if err := db.AddModelVersion(ctx, record(tn, m, v)); !errors.Is(err, rampart.ErrConflict) {
			t.Fatalf("version %d: %v", v, err)
		}
	}
	other := rampart.NewID(rampart.PrefixTenant)
	if _, err := db.GetModel(ctx, other, m.ID); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("foreign tenant model: %v", err)
	}
	if _, err := db.GetModelVersion(ctx, other, m.ID, 1); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("foreign tenant version: %v", err)
	}
	r, err := db.GetModelVersion(ctx, tn.ID, m.ID, 2)
	if err != nil || r.ArtifactID != "art_x" || r.Metrics["auc"] != 0.5 || !r.CreatedAt.Equal(time.Unix(0, 123)) {
		t.Fatalf("round trip: %+v %v", r, err)
	}
	vs, next, err := db.ListModelVersions(ctx, tn.ID, m.ID, rampart.Page{Limit: 2})
	if err != nil || len(vs) != 2 || vs[0].Version != 3 || next == "" {
		t.Fatalf("page 1: %+v %q %v", vs, next, err)
	}
	vs, next, err = db.ListModelVersions(ctx, tn.ID, m.ID, rampart.Page{Limit: 2, Cursor: next})
	if err != nil || len(vs) != 1 || vs[0].Version != 1 || next != "" {
		t.Fatalf("page 2: %+v %q %v", vs, next, err)
	}
	// Immutable but for the stage.
	for _, q := range []string{`UPDATE model_versions SET digest='sha256:ff' WHERE version=1`,
		`UPDATE model_versions SET attestation=x'00' WHERE version=1`, `UPDATE model_versions SET artifact_id='y' WHERE version=1`,
		`DELETE FROM model_versions WHERE version=1`} {
		if _, err := db.SQL().Exec(q); err == nil {
			t.Fatalf("%s: allowed", q)
		}
	}
	// Stage changes: guarded by the expected current stage.
	if err := db.SetStage(ctx, tn.ID, m.ID, 1, rampart.StageStaging, rampart.StageProduction); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("stale from-stage: %v", err)
	}
	if err := db.SetStage(ctx, tn.ID, m.ID, 1, rampart.StageCandidate, rampart.StageProduction); err != nil {
		t.Fatal(err)
	}
	if err := db.SetStage(ctx, tn.ID, m.ID, 2, rampart.StageCandidate, rampart.StageProduction); err != nil {
		t.Fatal(err)
	}
	got, _ := db.GetModel(ctx, tn.ID, m.ID)
	v1, _ := db.GetModelVersion(ctx, tn.ID, m.ID, 1)
	if got.ProductionVersion != 2 || v1.Stage != rampart.StageArchived || !v1.WasProduction {
		t.Fatalf("after second production: model %+v, v1 %+v", got, v1.ModelVersion)
	}
	if err := db.SetStage(ctx, other, m.ID, 3, rampart.StageCandidate, rampart.StageStaging); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("foreign stage change: %v", err)
	}
	// Approvals and export grants.
	ap := rampart.ModelApproval{ModelID: m.ID, Version: 3, Principal: p.ID, CreatedAt: time.Now()}
	if err := db.AddApproval(ctx, tn.ID, ap); err != nil {
		t.Fatal(err)
	}
	if err := db.AddApproval(ctx, tn.ID, ap); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("double approval: %v", err)
	}
	if aps, _ := db.ListApprovals(ctx, other, m.ID, 3); len(aps) != 0 {
		t.Fatal("foreign tenant sees approvals")
	}
	g := rampart.ExportGrant{ID: rampart.NewID(rampart.PrefixExportGrant), TenantID: tn.ID, ModelID: m.ID, PrincipalID: p.ID, GrantedBy: "x", CreatedAt: time.Now()}
	if err := db.CreateExportGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeExportGrant(ctx, other, g.ID, time.Now()); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("foreign revoke: %v", err)
	}
	if err := db.RevokeExportGrant(ctx, tn.ID, g.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	gs, err := db.ListExportGrants(ctx, tn.ID, m.ID)
	if err != nil || len(gs) != 1 || gs[0].Active(time.Now()) {
		t.Fatalf("grants after revoke: %+v %v", gs, err)
	}
}
