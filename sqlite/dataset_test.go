package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/sqlite"
)

// TestDatasetStore exercises dataset.Store on SQLite: version numbers are
// never reused, pending versions are found and dropped, grants are listed
// for their grantee, lineage survives deletion flagged, names are reusable
// after deletion and policies default to warn.
func TestDatasetStore(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Unix(1700000000, 0).UTC()
	for _, id := range []string{"tn_a", "tn_b"} {
		if err := db.CreateTenant(ctx, rampart.Tenant{ID: id, Name: id, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	lo := 1.0
	d := dataset.Dataset{ID: "ds_one", TenantID: "tn_a", Name: "loans", Label: "y", CreatedAt: now, CreatedBy: "pr_x",
		Schema: &dataset.Schema{Columns: []dataset.Column{{Name: "y", Type: dataset.TypeInteger, Min: &lo}}}}
	if err := db.CreateDataset(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDataset(ctx, dataset.Dataset{ID: "ds_two", TenantID: "tn_a", Name: "loans", CreatedAt: now}); !errors.Is(err, rampart.ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	got, err := db.GetDataset(ctx, "ds_one")
	if err != nil || got.Schema == nil || *got.Schema.Columns[0].Min != 1 || got.Latest != 0 {
		t.Fatalf("get: %+v %v", got, err)
	}
	// Versions: reserve, finish, drop; numbers never reused.
	var vs []dataset.Version
	for range 3 {
		v, err := db.ReserveVersion(ctx, dataset.Version{DatasetID: "ds_one", TenantID: "tn_a", Status: dataset.StatusIngesting, Format: "csv", CreatedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if vs[0].Version != 1 || vs[2].Version != 3 {
		t.Fatalf("numbers %d..%d", vs[0].Version, vs[2].Version)
	}
	pend, err := db.PendingVersions(ctx)
	if err != nil || len(pend) != 3 {
		t.Fatalf("pending: %v %d", err, len(pend))
	}
	if err := db.DropVersion(ctx, "ds_one", 3); err != nil {
		t.Fatal(err)
	}
	v1 := vs[0]
	v1.Status, v1.Digest, v1.Rows, v1.PIIKinds, v1.Quarantined = dataset.StatusReady, "ab", 10, []string{"email", "phone"}, true
	if err := db.FinishVersion(ctx, v1); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishVersion(ctx, v1); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("finish twice: %v", err)
	}
	list, _, err := db.ListVersions(ctx, "ds_one", rampart.Page{})
	if err != nil || len(list) != 1 || list[0].Rows != 10 || len(list[0].PIIKinds) != 2 || !list[0].Quarantined {
		t.Fatalf("list versions: %v %+v", err, list)
	}
	if got, _ := db.GetDataset(ctx, "ds_one"); got.Latest != 1 {
		t.Fatalf("latest %d", got.Latest)
	}
	v4, err := db.ReserveVersion(ctx, dataset.Version{DatasetID: "ds_one", TenantID: "tn_a", Status: dataset.StatusIngesting, CreatedAt: now})
	if err != nil || v4.Version != 4 {
		t.Fatalf("after a dropped version: %d %v", v4.Version, err)
	}
	// Grants.
	eps := 2.5
	exp := now.Add(time.Hour)
	gs := []dataset.Grant{
		{ID: "dg_1", TenantID: "tn_a", DatasetID: "ds_one", GranteeTenantID: "tn_b", GranteePrincipalID: "pr_b1", Purpose: authz.PurposeTrain,
			Terms: dataset.Terms{RequireDP: true, MaxEpsilon: &eps}, ExpiresAt: &exp, CreatedAt: now},
		{ID: "dg_2", TenantID: "tn_a", DatasetID: "ds_one", GranteeTenantID: "tn_b", Purpose: authz.PurposeRead, CreatedAt: now},
		{ID: "dg_3", TenantID: "tn_a", DatasetID: "ds_one", GranteeTenantID: "tn_b", GranteePrincipalID: "pr_b2", Purpose: authz.PurposeEvaluate, CreatedAt: now},
	}
	for _, g := range gs {
		if err := db.CreateGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	to, _, err := db.ListGrantsTo(ctx, "pr_b1", "tn_b", rampart.Page{})
	if err != nil || len(to) != 2 || to[0].ID != "dg_1" || !to[0].Terms.RequireDP || *to[0].Terms.MaxEpsilon != 2.5 || !to[0].ExpiresAt.Equal(exp) {
		t.Fatalf("grants to pr_b1: %v %+v", err, to)
	}
	if err := db.RevokeGrant(ctx, "dg_1", now); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeGrant(ctx, "dg_1", now); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
	if g, _ := db.GetGrant(ctx, "dg_1"); g.RevokedAt == nil || g.Live(now) {
		t.Fatalf("revoked grant: %+v", g)
	}
	// Policy default and update.
	p, err := db.GetDatasetPolicy(ctx, "tn_a")
	if err != nil || p.PII != dataset.PIIWarn || p.Label != dataset.LabelWarn {
		t.Fatalf("default policy: %+v %v", p, err)
	}
	if err := db.PutDatasetPolicy(ctx, dataset.Policy{TenantID: "tn_a", PII: dataset.PIIBlock, Label: dataset.LabelQuarantine, UpdatedAt: now, UpdatedBy: "pr_x"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := db.GetDatasetPolicy(ctx, "tn_a"); p.PII != dataset.PIIBlock || p.Label != dataset.LabelQuarantine {
		t.Fatalf("policy: %+v", p)
	}
	// Lineage and deletion.
	l := dataset.Lineage{DatasetID: "ds_one", Version: 1, TenantID: "tn_a", Kind: "model", ObjectID: "mdl_1", ObjectTenantID: "tn_b", CreatedAt: now}
	for range 2 { // idempotent
		if err := db.AddLineage(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.MarkVersionDeleted(ctx, "ds_one", 1, now); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkLineageDeleted(ctx, "ds_one", 1, now); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeDatasetGrants(ctx, "ds_one", now); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkDatasetDeleted(ctx, "ds_one", now); err != nil {
		t.Fatal(err)
	}
	ls, err := db.ListLineage(ctx, "ds_one")
	if err != nil || len(ls) != 1 || ls[0].DatasetDeletedAt == nil {
		t.Fatalf("lineage: %v %+v", err, ls)
	}
	if v, _ := db.GetVersion(ctx, "ds_one", 1); v.Status != dataset.StatusDeleted || v.Digest != "ab" || v.ReportDigest != "" {
		t.Fatalf("deleted version: %+v", v)
	}
	if ds, _, _ := db.ListDatasets(ctx, "tn_a", rampart.Page{}); len(ds) != 0 {
		t.Fatalf("deleted dataset listed: %+v", ds)
	}
	if _, err := db.ReserveVersion(ctx, dataset.Version{DatasetID: "ds_one", TenantID: "tn_a", Status: dataset.StatusIngesting, CreatedAt: now}); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("version of a deleted dataset: %v", err)
	}
	// The name is free again.
	if err := db.CreateDataset(ctx, dataset.Dataset{ID: "ds_new", TenantID: "tn_a", Name: "loans", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
}
