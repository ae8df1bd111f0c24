package livetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/servertest"
)

// TestMain doubles as the training worker the executor re-executes.
func TestMain(m *testing.M) {
	if _, ok := executor.IsWorker(os.Args); ok {
		os.Exit(executor.ServeChild(os.Stdin, os.Stdout, executor.Train))
	}
	os.Exit(m.Run())
}

// TestExtractionThroughEndpoints: the same extraction attack through a
// live endpoint with the default guards and with every guard off, each
// strategy as a fresh service-user principal (PRIV-2). With the guards
// on, at least one attacker is flagged by the extraction monitor (INF-3)
// and throttled (measured: the synthetic one, after 200 queries); with them
// off nobody is.
func TestExtractionThroughEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and trains a model")
	}
	ctx := context.Background()
	lines := readLines(t, "../testdata/credit_data.csv")
	data, err := ml.ReadCSV(strings.NewReader(strings.Join(lines, "\n")), ml.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status, _ := data.Column("Status")
	trIdx, rest := ml.StratifiedSplit(status.Labels(), 0.5, 11)
	trainCSV := []string{lines[0]}
	for _, i := range trIdx {
		trainCSV = append(trainCSV, lines[i+1])
	}
	spec := ml.TrainSpec{Algorithm: ml.GBDT, Target: "Status", Seed: 11, Params: map[string]string{"n_estimators": "30"}}
	// The published schema (same data, spec and seed give the same model, TRAIN-6).
	local, err := ml.Train(ctx, data.Take(trIdx), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	space := assess.SpaceOf(local)

	e := servertest.Start(t)
	tn := e.Tenant(t, "bank")
	dp := e.Actor(t, tn, "provider", rampart.RoleDataProvider)
	md := e.Actor(t, tn, "developer", rampart.RoleModelDeveloper)
	ds := e.Dataset(t, dp, "credit", "Status")
	e.Upload(t, dp, ds.ID, strings.Join(trainCSV, "\n")+"\n")
	holdCSV := []string{lines[0]}
	for _, i := range rest[:800] {
		holdCSV = append(holdCSV, lines[i+1])
	}
	hold := e.Dataset(t, dp, "credit-holdout", "Status")
	e.Upload(t, dp, hold.ID, strings.Join(holdCSV, "\n")+"\n")
	j := e.Job(t, md, httpapi.CreateJobRequest{DatasetID: ds.ID, Target: "Status", Algorithm: "gbdt", Seed: 11, Params: spec.Params, ModelName: "credit"})
	deadline := time.Now().Add(3 * time.Minute)
	for j.State != rampart.JobSucceeded {
		if j.State == rampart.JobFailed || time.Now().After(deadline) {
			t.Fatalf("training job: %+v", j)
		}
		time.Sleep(200 * time.Millisecond)
		if err := md.C.Do(ctx, "GET", "/v1/jobs/"+j.ID, nil, nil, &j); err != nil {
			t.Fatal(err)
		}
	}
	open := rampart.GuardPolicy{RatePerSec: -1, BudgetPerDay: -1, BudgetTotal: -1, MaxRows: 10_000, RangeMargin: -1,
		OOD: rampart.OODOff, Output: rampart.OutputProba, Decimals: 6, Extraction: rampart.ExtractionOff}
	for _, ep := range []httpapi.CreateEndpointRequest{{Name: "guarded", Model: j.Result.ModelID}, {Name: "open", Model: j.Result.ModelID, Policy: &open}} {
		var out rampart.Endpoint
		if err := md.C.Do(ctx, "POST", "/v1/endpoints", nil, ep, &out); err != nil {
			t.Fatalf("endpoint %s: %v", ep.Name, err)
		}
	}
	rows, err := space.Rows(data.Take(rest))
	if err != nil {
		t.Fatal(err)
	}
	natural, eval := rows[:600], rows[600:1000]
	// The assessor labels the evaluation rows through the open endpoint.
	assessor := e.Actor(t, tn, "assessor", rampart.RoleServiceUser)
	ref := &assess.HTTPOracle{BaseURL: e.URL, Endpoint: "open", Token: assess.Token(assessor.Token), Space: space}
	p, err := ref.Predict(ctx, eval)
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int, len(p))
	local2, _ := assess.NewModelOracle(local, assess.OutputPolicy{Mode: assess.OutputLabel, Decimals: -1}).Predict(ctx, eval)
	for i := range p {
		labels[i] = p[i].Class
		if p[i].Class != local2[i].Class {
			t.Fatalf("row %d: the endpoint's model differs from the local one", i)
		}
	}
	t.Run("job", func(t *testing.T) { assessmentJob(t, e, md, j.Result.ModelID, hold.ID) })
	n := 0
	for _, guards := range []string{"guarded", "open"} {
		rep, err := assess.Extraction(ctx, assess.ExtractionConfig{
			Target: func(ctx context.Context, strategy string) (assess.Oracle, error) {
				n++
				a := e.Actor(t, tn, fmt.Sprintf("attacker-%d", n), rampart.RoleServiceUser)
				return &assess.HTTPOracle{BaseURL: e.URL, Endpoint: guards, Token: assess.Token(a.Token), Space: space, MaxWait: 2 * time.Second}, nil
			},
			Space: space, Budgets: []int{100, 300, 600}, Natural: natural, Eval: eval, EvalLabels: labels, Seed: 11,
			Surrogate: ml.TrainSpec{Algorithm: ml.GBDT, Params: map[string]string{"n_estimators": "30", "max_depth": "4"}}})
		if err != nil {
			t.Fatalf("%s: %v", guards, err)
		}
		for _, c := range rep.Curves {
			t.Logf("%s %s: %+v obtained %d flagged at %d (%s) refused %q", guards, c.Strategy, c.Points, c.Obtained, c.FlaggedAt, c.FlagReason, c.Refused)
			if guards == "open" && (c.FlaggedAt != 0 || c.Refused != "" || c.Obtained != 600) {
				t.Errorf("open endpoint interfered: %+v", c)
			}
			if last := c.Points[len(c.Points)-1]; c.Strategy != assess.Synthetic && last.Fidelity < 0.75 {
				t.Errorf("%s %s: fidelity %.3f", guards, c.Strategy, last.Fidelity)
			}
		}
		flagged := 0
		for _, c := range rep.Curves {
			if c.FlaggedAt > 0 {
				flagged++
			}
		}
		if guards == "guarded" && flagged == 0 {
			t.Errorf("no attacker flagged by the default guards: %+v", rep.Curves)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sc.Text() != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}
