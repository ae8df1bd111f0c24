package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/servertest"
)

// TestDatasetCLI drives `rampart dataset …` in the real binary against a
// real server: create with a label and a schema file, put, list, show,
// report, grant, grants, received, revoke, download, policy, delete, with
// --json everywhere and one-line errors.
func TestDatasetCLI(t *testing.T) {
	bin := buildBinary(t)
	e := servertest.Start(t)
	provider := e.Actor(t, e.Tenant(t, "cli-a"), "prov", rampart.RoleDataProvider)
	dev := e.Actor(t, e.Tenant(t, "cli-b"), "dev", rampart.RoleModelDeveloper)
	dir := t.TempDir()
	dp := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + dir, "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + provider.Token}}
	md := cli{t, bin, []string{"RAMPART_CONFIG_DIR=" + dir, "RAMPART_SERVER=" + e.URL, "RAMPART_KEY=" + dev.Token}}

	schema := filepath.Join(dir, "schema.json")
	csvFile := filepath.Join(dir, "data.csv")
	must(t, os.WriteFile(schema, []byte(`{"columns":[{"name":"x","type":"numeric"},{"name":"note","type":"text","nullable":true},{"name":"y","type":"categorical","values":["a","b"]}]}`), 0o600))
	must(t, os.WriteFile(csvFile, []byte("x,note,y\n1,=cmd(),a\n2,,b\n3.5,hello,a\n"), 0o600))

	var d dataset.Dataset
	unmarshal(t, dp.ok("dataset", "create", "cli-ds", "--label", "y", "--schema", schema, "--json"), &d)
	if d.Label != "y" || d.Schema == nil || len(d.Schema.Columns) != 3 {
		t.Fatalf("create: %+v", d)
	}
	out := dp.ok("dataset", "put", "cli-ds", csvFile)
	if !strings.Contains(out, "formulas") || !strings.Contains(out, "sha256:") {
		t.Fatalf("put table: %s", out)
	}
	var ds []dataset.Dataset
	unmarshal(t, dp.ok("dataset", "list", "--json"), &ds)
	if len(ds) != 1 || ds[0].Latest != 1 {
		t.Fatalf("list: %+v", ds)
	}
	var v dataset.Version
	unmarshal(t, dp.ok("dataset", "show", "cli-ds@1", "--json"), &v)
	if v.Rows != 3 || v.Status != "ready" {
		t.Fatalf("show: %+v", v)
	}
	var rep dataset.Report
	unmarshal(t, dp.ok("dataset", "report", "cli-ds", "--json"), &rep)
	if rep.Rows != 3 || rep.Formula.Cells != 1 {
		t.Fatalf("report: %+v", rep)
	}
	if out := dp.ok("dataset", "report", "cli-ds"); !strings.Contains(out, "COLUMN") {
		t.Fatalf("report table: %s", out)
	}
	// A schema-violating upload fails with the row and column, exit ≠ 0.
	bad := filepath.Join(dir, "bad.csv")
	must(t, os.WriteFile(bad, []byte("x,note,y\nten,,a\n2,,c\n"), 0o600))
	if _, errs, err := dp.run("", "dataset", "put", "cli-ds", bad); err == nil || !strings.Contains(errs, `row 1 (line 2), column "x": not a number`) ||
		!strings.Contains(errs, `row 2 (line 3), column "y"`) {
		t.Fatalf("bad put: %v %s", err, errs)
	}
	// Grants.
	var g dataset.Grant
	unmarshal(t, dp.ok("dataset", "grant", "cli-ds", "--to", dev.Principal.ID, "--purpose", "train",
		"--expires", "30d", "--max-epsilon", "1.5", "--require-dp", "--json"), &g)
	if g.Terms.MaxEpsilon == nil || *g.Terms.MaxEpsilon != 1.5 || !g.Terms.RequireDP || g.ExpiresAt == nil {
		t.Fatalf("grant: %+v", g)
	}
	var recv []dataset.Grant
	unmarshal(t, md.ok("dataset", "received", "--json"), &recv)
	if len(recv) != 1 || recv[0].ID != g.ID {
		t.Fatalf("received: %+v", recv)
	}
	if _, errs, err := md.run("", "dataset", "download", d.ID+"@1"); err == nil || !strings.Contains(errs, "not found") {
		t.Fatalf("train grantee downloaded: %v %s", err, errs)
	}
	if out := dp.ok("dataset", "grants", "cli-ds"); !strings.Contains(out, g.ID) || !strings.Contains(out, "live") {
		t.Fatalf("grants: %s", out)
	}
	dp.ok("dataset", "revoke", g.ID)
	if out := dp.ok("dataset", "grants", "cli-ds"); !strings.Contains(out, "revoked") {
		t.Fatalf("grants after revoke: %s", out)
	}
	if out := dp.ok("dataset", "download", "cli-ds@1"); !strings.Contains(out, "'=cmd()") {
		t.Fatalf("download: %s", out)
	}
	var p dataset.Policy
	unmarshal(t, dp.ok("dataset", "policy", "--pii", "block", "--json"), &p)
	if p.PII != "block" || p.Label != "warn" {
		t.Fatalf("policy: %+v", p)
	}
	var del dataset.Deletion
	unmarshal(t, dp.ok("dataset", "delete", "cli-ds", "--json"), &del)
	if len(del.Versions) != 1 {
		t.Fatalf("delete: %+v", del)
	}
	if _, errs, err := dp.run("", "dataset", "show", "cli-ds"); err == nil || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Fatalf("show deleted: %v %q", err, errs)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func unmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
}
