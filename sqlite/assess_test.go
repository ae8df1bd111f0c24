package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	rec "github.com/rampart-mlaas/rampart/assess/record"
)

// TestAssessmentStore: an assessment is written running, then finished in
// one update and never changed again; running ones are failed at start-up
// (crash recovery); rows and thresholds are tenant-scoped.
func TestAssessmentStore(t *testing.T) {
	ctx := context.Background()
	db, tn, p := registryDB(t)
	now := time.Unix(1000, 0).UTC()
	a := rec.Assessment{ID: "asm_1", TenantID: tn.ID, ModelID: "mdl_1", ModelVersion: 2, Attacks: []string{"membership", "evasion"},
		Status: rec.Running, CreatedBy: p.ID, CreatedAt: now}
	if err := db.CreateAssessment(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.LatestAssessment(ctx, tn.ID, "mdl_1", 2); err != nil || ok {
		t.Fatalf("running assessment counted as latest: %v %v", ok, err)
	}
	fin := now.Add(time.Minute)
	a.Status, a.Metrics, a.Report, a.FinishedAt = rec.Succeeded, map[string]float64{"membership.auc": 0.73}, []byte(`{"title":"x"}`), &fin
	if err := db.FinishAssessment(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetAssessment(ctx, tn.ID, "asm_1")
	if err != nil || got.Status != rec.Succeeded || got.Metrics["membership.auc"] != 0.73 || string(got.Report) != `{"title":"x"}` ||
		len(got.Attacks) != 2 || got.FinishedAt == nil || !got.FinishedAt.Equal(fin) {
		t.Fatalf("get: %+v, %v", got, err)
	}
	latest, ok, err := db.LatestAssessment(ctx, tn.ID, "mdl_1", 2)
	if err != nil || !ok || latest.ID != "asm_1" {
		t.Fatalf("latest: %+v %v %v", latest, ok, err)
	}
	// Finished is final.
	a.Status = rec.Failed
	if err := db.FinishAssessment(ctx, a); !errors.Is(err, rampart.ErrConflict) {
		t.Errorf("refinishing: %v", err)
	}
	// Another tenant sees nothing.
	if _, err := db.GetAssessment(ctx, "ten_other", "asm_1"); !errors.Is(err, rampart.ErrNotFound) {
		t.Errorf("foreign tenant: %v", err)
	}
	// Crash recovery.
	b := rec.Assessment{ID: "asm_2", TenantID: tn.ID, ModelID: "mdl_1", ModelVersion: 2, Attacks: []string{"extraction"}, Status: rec.Running,
		CreatedBy: p.ID, CreatedAt: now.Add(time.Hour)}
	if err := db.CreateAssessment(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n, err := db.FailRunningAssessments(ctx, "interrupted by a restart", now.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("fail running: %d %v", n, err)
	}
	list, err := db.ListAssessments(ctx, tn.ID, "mdl_1", 0)
	if err != nil || len(list) != 2 || list[0].ID != "asm_2" || list[0].Status != rec.Failed || list[0].Reason != "interrupted by a restart" || list[0].Report != nil {
		t.Fatalf("list: %+v %v", list, err)
	}
	// Thresholds replace, per tenant.
	hi := 0.02
	if err := db.SetAssessmentThresholds(ctx, tn.ID, []rampart.GateSpec{{Metric: "membership.tpr_at_1pct_fpr", Max: &hi}}); err != nil {
		t.Fatal(err)
	}
	th, err := db.AssessmentThresholds(ctx, tn.ID)
	if err != nil || len(th) != 1 || th[0].Max == nil || *th[0].Max != 0.02 || th[0].Min != nil {
		t.Fatalf("thresholds: %+v %v", th, err)
	}
	if th, _ := db.AssessmentThresholds(ctx, "ten_other"); len(th) != 0 {
		t.Errorf("foreign thresholds: %+v", th)
	}
}
