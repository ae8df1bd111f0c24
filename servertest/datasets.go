package servertest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// The dataset fixtures (issue 5) put the dataset routes' parameters under
// the cross-tenant sweep (TEN-1). They are registered from this file so the
// capability's test support stays beside it.
func init() {
	Fixtures["dataset_id"] = func(t testing.TB, e *Env, w *World) []string {
		d := e.Dataset(t, w.Actors[rampart.RoleDataProvider], "sweep-"+rampart.RandomToken(4), "")
		e.Upload(t, w.Actors[rampart.RoleDataProvider], d.ID, "a,b\n1,x\n2,y\n")
		return []string{d.ID}
	}
	// Versions are small integers: the sweep pairs them with the foreign
	// tenant's dataset IDs, which hold version 1.
	Fixtures["version"] = func(t testing.TB, e *Env, w *World) []string { return []string{"1"} }
	Fixtures["grant_id"] = func(t testing.TB, e *Env, w *World) []string {
		dp := w.Actors[rampart.RoleDataProvider]
		d := e.Dataset(t, dp, "grant-"+rampart.RandomToken(4), "")
		g := e.Grant(t, dp, d.ID, httpapi.GrantRequest{To: e.OperatorActor(t).Tenant.ID, Purpose: "train"})
		return []string{g.ID}
	}
}

// Dataset creates a dataset as a.
func (e *Env) Dataset(t testing.TB, a *Actor, name, label string) dataset.Dataset {
	t.Helper()
	var d dataset.Dataset
	if err := a.C.Do(context.Background(), "POST", "/v1/datasets", nil, httpapi.CreateDatasetRequest{Name: name, Label: label}, &d); err != nil {
		t.Fatalf("create dataset %s: %v", name, err)
	}
	return d
}

// Upload uploads CSV text as a new version and fails the test on error.
func (e *Env) Upload(t testing.TB, a *Actor, datasetID, csv string) httpapi.UploadResponse {
	t.Helper()
	st, body := e.Raw(t, "POST", "/v1/datasets/"+datasetID+"/versions", a.Token, strings.NewReader(csv),
		map[string]string{"Content-Type": "text/csv"})
	if st != 201 {
		t.Fatalf("upload to %s: %d %s", datasetID, st, body)
	}
	var out httpapi.UploadResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Grant creates a grant as a.
func (e *Env) Grant(t testing.TB, a *Actor, datasetID string, g httpapi.GrantRequest) dataset.Grant {
	t.Helper()
	var out dataset.Grant
	if err := a.C.Do(context.Background(), "POST", "/v1/datasets/"+datasetID+"/grants", nil, g, &out); err != nil {
		t.Fatalf("grant on %s: %v", datasetID, err)
	}
	return out
}
