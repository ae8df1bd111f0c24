package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

// TestMain lets the servers these tests start re-execute this test binary
// as their training worker.
func TestMain(m *testing.M) {
	if _, ok := executor.IsWorker(os.Args); ok {
		os.Exit(executor.ServeChild(os.Stdin, os.Stdout, executor.Train))
	}
	os.Exit(m.Run())
}

// TestTrainCLI drives `rampart train` and `rampart job …` through the real
// binary: a granted dataset by name, --json with digest and model version,
// exit status = the job's outcome, refusals naming the field.
func TestTrainCLI(t *testing.T) {
	bin := buildBinary(t)
	e := servertest.Start(t)
	provider := e.Actor(t, e.Tenant(t, "train-a"), "prov", rampart.RoleDataProvider)
	dev := e.Actor(t, e.Tenant(t, "train-b"), "dev", rampart.RoleModelDeveloper)
	d := e.Dataset(t, provider, "loans", "y")
	var sb strings.Builder
	sb.WriteString("a,b,y\n")
	for i := range 300 {
		fmt.Fprintf(&sb, "%d,%d,%d\n", i%13, (i*7)%11, map[bool]int{true: 1}[i%13+(i*7)%11 > 11])
	}
	e.Upload(t, provider, d.ID, sb.String())
	e.Grant(t, provider, d.ID, httpapi.GrantRequest{To: dev.Principal.ID, Purpose: "train"})
	md := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + t.TempDir(), "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + dev.Token}}

	var j rampart.Job
	out := md.ok("train", "--dataset", "loans@1", "--target", "y", "--algorithm", "gbdt", "--param", "n_estimators=10", "--seed", "5", "--json")
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("train --json: %v\n%s", err, out)
	}
	if j.State != rampart.JobSucceeded || !strings.HasPrefix(j.Result.ArtifactDigest, "sha256:") || j.Result.ModelID == "" || len(j.Result.Metrics) == 0 {
		t.Fatalf("train: %+v %+v", j, j.Result)
	}
	// The human form prints progress and the outcome; same seed, same digest.
	o, errs, err := md.run("", "train", "--dataset", "loans", "--target", "y", "--algorithm", "gbdt", "--param", "n_estimators=10", "--seed", "5")
	if err != nil || !strings.Contains(o, j.Result.ArtifactDigest) || !strings.Contains(errs, "succeeded") {
		t.Fatalf("train: %v\n%s%s", err, o, errs)
	}
	// A job that fails exits 1 with the reason; a refused one names the field.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--algorithm", "logreg", "--param", "C=-1"}, "C"},
		{[]string{"--algorithm", "svm"}, "algorithm"},
		{[]string{"--algorithm", "logreg", "--param", "depth=3"}, "params.depth"},
		{[]string{"--algorithm", "logreg", "--target", "nope"}, "target"},
	} {
		args := append([]string{"train", "--dataset", "loans", "--target", "y"}, c.args...)
		o, errs, err := md.run("", args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(errs, c.want) {
			t.Fatalf("%v: %v\n%s%s", c.args, err, o, errs)
		}
	}
	var js []rampart.Job
	if err := json.Unmarshal([]byte(md.ok("job", "list", "--json")), &js); err != nil || len(js) != 3 {
		t.Fatalf("job list: %v %d", err, len(js))
	}
	if o := md.ok("job", "show", j.ID); !strings.Contains(o, j.Result.ArtifactDigest) || !strings.Contains(o, "isolation") {
		t.Fatalf("job show: %s", o)
	}
	if _, errs, err := md.run("", "job", "events", j.ID); err != nil || !strings.Contains(errs, "succeeded") {
		t.Fatalf("job events: %v %s", err, errs)
	}
	if o := md.ok("job", "cancel", j.ID); !strings.Contains(o, "succeeded") {
		t.Fatalf("cancel of a finished job: %s", o)
	}
}
