package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/servertest"
)

// TestEndpointCLI drives `rampart endpoint …` and `rampart predict` in the
// real binary against a real server: create with a policy, list, show,
// predict from CSV and JSON with a verified signature, update (version and
// policy), grant, grants, revoke, delete, one-line errors.
func TestEndpointCLI(t *testing.T) {
	bin := buildBinary(t)
	e := servertest.Start(t)
	tn := e.Tenant(t, "ep-cli")
	dev := e.Actor(t, tn, "dev", rampart.RoleModelDeveloper)
	app := e.Actor(t, tn, "app", rampart.RoleServiceUser)
	other := e.Tenant(t, "ep-cli-other")
	servertest.ImportModel(t, dev, "tiny", []byte(servertest.TinyXGBoostJSON))
	dir := t.TempDir()
	md := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + dir, "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + dev.Token}}
	su := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + dir, "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + app.Token}}

	var ep rampart.Endpoint
	unmarshal(t, md.ok("endpoint", "create", "tiny-ep", "--model", "tiny@1", "--output", "proba:3", "--rate", "100/s",
		"--budget", "1000/day", "--sign", "--json"), &ep)
	if ep.ModelVersion != 1 || ep.Policy.Output != rampart.OutputProba || ep.Policy.Decimals != 3 || ep.Policy.RatePerSec != 100 ||
		ep.Policy.BudgetPerDay != 1000 || !ep.Policy.Sign || !strings.HasPrefix(ep.ModelDigest, "sha256:") {
		t.Fatalf("create: %+v", ep)
	}
	if out := md.ok("endpoint", "list"); !strings.Contains(out, "tiny-ep") || !strings.Contains(out, ep.ID) {
		t.Fatalf("list: %s", out)
	}
	if out := md.ok("endpoint", "show", "tiny-ep"); !strings.Contains(out, "proba:3") || !strings.Contains(out, "100/s") {
		t.Fatalf("show: %s", out)
	}

	csvFile := filepath.Join(dir, "rows.csv")
	must(t, os.WriteFile(csvFile, []byte("f0,f1\n0.2,1\n0.9,\n"), 0o600))
	out, errs, err := su.run("", "predict", "tiny-ep", "--file", csvFile, "--verify")
	if err != nil || !strings.Contains(out, "PROBABILITIES") || !strings.Contains(errs, "signature verified") || !strings.Contains(errs, ep.ModelDigest) {
		t.Fatalf("predict csv: %v\n%s%s", err, out, errs)
	}
	// The stump scores sigmoid(-0.5) = 0.378 for f0 < 0.5 and 0.622 above.
	var res struct {
		Predictions []struct {
			Label         string             `json:"label"`
			Probabilities map[string]float64 `json:"probabilities"`
		} `json:"predictions"`
	}
	out, errs, err = su.run(`[{"f0":0.2,"f1":1},{"f0":0.9,"f1":null}]`, "predict", "tiny-ep", "--json")
	if err != nil {
		t.Fatalf("predict json: %v %s", err, errs)
	}
	unmarshal(t, out, &res)
	if len(res.Predictions) != 2 || res.Predictions[0].Label != "0" || res.Predictions[0].Probabilities["1"] != 0.378 ||
		res.Predictions[1].Label != "1" || res.Predictions[1].Probabilities["1"] != 0.622 {
		t.Fatalf("predict json: %s", out)
	}

	unmarshal(t, md.ok("endpoint", "update", "tiny-ep", "--output", "label", "--no-sign", "--json"), &ep)
	if ep.Policy.Output != rampart.OutputLabel || ep.Policy.Decimals != -1 || ep.Policy.Sign || ep.Policy.RatePerSec != 100 || ep.Generation != 2 {
		t.Fatalf("update: %+v", ep.Policy)
	}
	out = su.ok("predict", "tiny-ep", "--file", csvFile, "--json")
	if strings.Contains(out, "probabilit") {
		t.Fatalf("label-only policy leaked probabilities: %s", out)
	}
	var g rampart.EndpointGrant
	unmarshal(t, md.ok("endpoint", "grant", "tiny-ep", "--to", other.ID, "--json"), &g)
	if g.ToTenant != other.ID {
		t.Fatalf("grant: %+v", g)
	}
	if out := md.ok("endpoint", "grants", "tiny-ep"); !strings.Contains(out, g.ID) {
		t.Fatalf("grants: %s", out)
	}
	md.ok("endpoint", "revoke", "tiny-ep", g.ID)
	// Errors: one line, non-zero exit.
	if _, errs, err := su.run("", "predict", "nope", "--file", csvFile); err == nil || strings.Count(strings.TrimSpace(errs), "\n") > 0 || !strings.Contains(errs, "not found") {
		t.Fatalf("missing endpoint: %v %q", err, errs)
	}
	if _, errs, err := su.run("f0,zz\n1,2\n", "predict", "tiny-ep"); err == nil || !strings.Contains(errs, "zz") {
		t.Fatalf("unknown feature: %v %q", err, errs)
	}
	if _, _, err := su.run("", "endpoint", "delete", "tiny-ep"); err == nil {
		t.Fatal("a service user deleted an endpoint")
	}
	md.ok("endpoint", "delete", "tiny-ep")
	var eps []rampart.Endpoint
	unmarshal(t, md.ok("endpoint", "list", "--json"), &eps)
	if len(eps) != 0 {
		t.Fatalf("after delete: %+v", eps)
	}
	_ = json.Valid
}
