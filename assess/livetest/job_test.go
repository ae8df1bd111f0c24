package livetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

// assessmentJob: POST /v1/assessments runs asynchronously with progress
// events and stores a report with the version (PRIV-1..3); bad input is
// 400, a foreign tenant gets 404.
func assessmentJob(t *testing.T, e *servertest.Env, md *servertest.Actor, modelID, holdoutID string) {
	ctx := context.Background()
	for _, c := range []struct{ body, field string }{
		{`{"model_id":"` + modelID + `","queries":5}`, "queries"},
		{`{"model_id":"` + modelID + `","attacks":["telepathy"]}`, "attacks"},
		{`{"model_id":"` + modelID + `","attacks":["membership"]}`, "holdout_dataset_id"},
	} {
		st, b := e.Raw(t, "POST", "/v1/assessments", md.Token, strings.NewReader(c.body), map[string]string{"Content-Type": "application/json"})
		if st != 400 && st != 422 || !strings.Contains(string(b), c.field) {
			t.Errorf("%s: %d %s", c.body, st, b)
		}
	}
	other := e.Actor(t, e.Tenant(t, "other"), "dev", rampart.RoleModelDeveloper)
	st, b := e.Raw(t, "POST", "/v1/assessments", other.Token, strings.NewReader(`{"model_id":"`+modelID+`","attacks":["extraction"]}`),
		map[string]string{"Content-Type": "application/json"})
	if st != 404 {
		t.Errorf("foreign model: %d %s", st, b)
	}
	var a record.Assessment
	if err := md.C.Do(ctx, "POST", "/v1/assessments", nil, httpapi.CreateAssessmentRequest{ModelID: modelID, Queries: 400, Seed: 3,
		Attacks: []string{"membership", "extraction", "evasion"}, HoldoutID: holdoutID}, &a); err != nil {
		t.Fatal(err)
	}
	if a.Status != record.Running {
		t.Fatalf("created %+v", a)
	}
	// Progress events until the end.
	st, body := e.Raw(t, "GET", "/v1/assessments/"+a.ID+"/events", md.Token, nil, nil)
	if st != 200 || !strings.Contains(string(body), `"done":true`) || strings.Count(string(body), "event: progress") < 3 {
		t.Fatalf("events: %d %s", st, body)
	}
	deadline := time.Now().Add(time.Minute)
	for a.Status == record.Running && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if err := md.C.Do(ctx, "GET", "/v1/assessments/"+a.ID, nil, nil, &a); err != nil {
			t.Fatal(err)
		}
	}
	if a.Status != record.Succeeded || a.Metrics[assess.MetricMembershipAUC] <= 0.5 || a.Metrics[assess.MetricExtraction] <= 0.5 {
		t.Fatalf("assessment %+v", a)
	}
	t.Logf("metrics %v", a.Metrics)
	st, body = e.Raw(t, "GET", "/v1/assessments/"+a.ID+"/report", md.Token, nil, nil)
	var rep assess.Report
	if st != 200 || json.Unmarshal(body, &rep) != nil || rep.Membership == nil || len(rep.Extraction) != 1 || len(rep.Evasion) != 1 || rep.Model.Version != a.ModelVersion {
		t.Fatalf("report: %d %.300s", st, body)
	}
	st, body = e.Raw(t, "GET", "/v1/assessments/"+a.ID+"/report?format=html", md.Token, nil, nil)
	if st != 200 || strings.Count(string(body), "<svg") != 3 {
		t.Fatalf("html report: %d %.200s", st, body)
	}
	var l httpapi.List[record.Assessment]
	if err := md.C.Do(ctx, "GET", "/v1/models/"+modelID+"/assessments", nil, nil, &l); err != nil || len(l.Items) != 1 || l.Items[0].ID != a.ID {
		t.Fatalf("list: %+v %v", l, err)
	}
	for _, p := range []string{"/v1/assessments/" + a.ID, "/v1/assessments/" + a.ID + "/report", "/v1/models/" + modelID + "/assessments"} {
		if st, b := e.Raw(t, "GET", p, other.Token, nil, nil); st != 404 {
			t.Errorf("foreign %s: %d %s", p, st, b)
		}
	}
}
