package servertest

import (
	"context"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// assessFixtures cover the assessment routes in the cross-tenant sweep
// (TEN-1): an extraction-only assessment of the world's fixture model.
// The fixture model is an imported XGBoost model, which the assessment
// service refuses to assess (it finishes failed with a reason), but the
// assessment exists and belongs to the world's tenant.
var assessFixtures = map[string]Fixture{
	"assessment_id": func(t testing.TB, e *Env, w *World) []string {
		m := worldModel(t, w)
		var a record.Assessment
		if err := w.Actors[rampart.RoleModelDeveloper].C.Do(context.Background(), "POST", "/v1/assessments", nil,
			httpapi.CreateAssessmentRequest{ModelID: m.ID, Attacks: []string{"extraction"}}, &a); err != nil {
			t.Fatalf("create assessment: %v", err)
		}
		return []string{a.ID}
	},
	// A held-out dataset of an assessment is any dataset of the world.
	"holdout_dataset_id": func(t testing.TB, e *Env, w *World) []string { return Fixtures["dataset_id"](t, e, w) },
}

var _ = func() bool {
	for k, f := range assessFixtures {
		if _, ok := Fixtures[k]; !ok {
			Fixtures[k] = f
		}
	}
	return true
}()
