package servertest

import (
	"context"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// The job fixtures (issue 6) put the job routes' job_id under the
// cross-tenant sweep (TEN-1), registered beside the dataset fixtures.
func init() {
	Fixtures["job_id"] = func(t testing.TB, e *Env, w *World) []string {
		dp := w.Actors[rampart.RoleDataProvider]
		d := e.Dataset(t, dp, "jobs-"+rampart.RandomToken(4), "")
		e.Upload(t, dp, d.ID, "a,b,y\n1,2,0\n2,1,1\n3,3,0\n4,1,1\n")
		j := e.Job(t, w.Actors[rampart.RoleModelDeveloper], httpapi.CreateJobRequest{DatasetID: d.ID, Target: "y", Algorithm: "logreg"})
		return []string{j.ID}
	}
}

// Job submits a training job as a and fails the test on error.
func (e *Env) Job(t testing.TB, a *Actor, req httpapi.CreateJobRequest) rampart.Job {
	t.Helper()
	var j rampart.Job
	if err := a.C.Do(context.Background(), "POST", "/v1/jobs", nil, req, &j); err != nil {
		t.Fatalf("submit job on %s: %v", req.DatasetID, err)
	}
	return j
}
