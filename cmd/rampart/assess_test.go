package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

// TestAssessCLI drives `rampart assess` in the real binary: a budget out
// of range is refused naming the field; an assessment of a trained model
// follows its progress, prints the metrics as JSON and writes the HTML
// report (PRIV-1..3).
func TestAssessCLI(t *testing.T) {
	bin := buildBinary(t)
	e := servertest.Start(t)
	tn := e.Tenant(t, "cli-assess")
	dp := e.Actor(t, tn, "provider", rampart.RoleDataProvider)
	md := e.Actor(t, tn, "developer", rampart.RoleModelDeveloper)
	csv := string(mustRead(t, "../../assess/testdata/breast_cancer.csv"))
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	train, hold := []string{lines[0]}, []string{lines[0]}
	for i, l := range lines[1:] {
		if i%2 == 0 {
			train = append(train, l)
		} else {
			hold = append(hold, l)
		}
	}
	ds := e.Dataset(t, dp, "bc", "diagnosis")
	e.Upload(t, dp, ds.ID, strings.Join(train, "\n")+"\n")
	hd := e.Dataset(t, dp, "bc-holdout", "diagnosis")
	e.Upload(t, dp, hd.ID, strings.Join(hold, "\n")+"\n")
	j := e.Job(t, md, httpapi.CreateJobRequest{DatasetID: ds.ID, Target: "diagnosis", Algorithm: "logreg", ModelName: "bc"})
	for deadline := time.Now().Add(2 * time.Minute); j.State != rampart.JobSucceeded; {
		if j.State == rampart.JobFailed || time.Now().After(deadline) {
			t.Fatalf("job %+v", j)
		}
		time.Sleep(200 * time.Millisecond)
		must(t, md.C.Do(t.Context(), "GET", "/v1/jobs/"+j.ID, nil, nil, &j))
	}
	dir := t.TempDir()
	c := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + dir, "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + md.Token}}
	if _, errs, err := c.run("", "assess", "bc", "--queries", "5"); err == nil || !strings.Contains(errs, "queries") {
		t.Fatalf("bad budget: %v %q", err, errs)
	}
	report := filepath.Join(dir, "report.html")
	var a record.Assessment
	unmarshal(t, c.ok("assess", "bc@1", "--attacks", "membership,extraction,evasion", "--holdout", hd.ID, "--queries", "200",
		"--report", report, "--json"), &a)
	if a.Status != record.Succeeded || a.Metrics["membership.auc"] == 0 || a.Metrics["extraction.fidelity"] == 0 {
		t.Fatalf("assessment %+v", a)
	}
	page, err := os.ReadFile(report)
	if err != nil || strings.Count(string(page), "<svg") != 3 {
		t.Fatalf("report: %v %.200s", err, page)
	}
}
