package compliance

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestEvaluate(t *testing.T) {
	good := Facts{TLS: true, RootKeySource: "kms", UnauthProbeStatus: 401, AuthzDecisions: 100, AuditSize: 10,
		AuditCheckpointSize: 10, AuditCheckpointOK: true, TSAConfigured: true, TSAHealthy: true,
		ModelVersions: 2, ModelsVerified: 2, DPModels: 1, Endpoints: 1, ProductionModels: 1, ProductionAssessedRecent: 1,
		LastJobIsolation: []string{"netns", "rlimit_as", "seccomp"}}
	cases := []struct {
		name string
		mod  func(*Facts)
		id   string
		want Status
	}{
		{"probe refused", nil, "IAM-1", Pass},
		{"probe accepted", func(f *Facts) { f.UnauthProbeStatus = 200 }, "IAM-1", Fail},
		{"authz violation", func(f *Facts) { f.AuthzViolations = []string{"operator may dataset.read_rows"} }, "IAM-4", Fail},
		{"root key beside data", func(f *Facts) { f.RootKeyBesideData = true }, "DATA-1", Fail},
		{"plaintext loopback", func(f *Facts) { f.TLS, f.Loopback = false, true }, "DATA-2", Pass},
		{"plaintext public", func(f *Facts) { f.TLS, f.Loopback = false, false }, "DATA-2", Fail},
		{"tampered model", func(f *Facts) { f.ModelVerifyFailed = []string{"mdl_x@1: internal"} }, "MODEL-1", Fail},
		{"no models", func(f *Facts) { f.ModelVersions, f.ModelsVerified = 0, 0 }, "MODEL-1", NotApplicable},
		{"rate off", func(f *Facts) { f.EndpointsNoRate = 1 }, "INF-1", Fail},
		{"raw output", func(f *Facts) { f.EndpointsRawOutput = 1 }, "INF-2", Fail},
		{"extraction off", func(f *Facts) { f.EndpointsNoExtract = 1 }, "INF-3", Fail},
		{"no TSA", func(f *Facts) { f.TSAConfigured = false }, "AUDIT-2", Fail},
		{"TSA down", func(f *Facts) { f.TSAHealthy = false }, "AUDIT-2", Fail},
		{"checkpoint bad", func(f *Facts) { f.AuditCheckpointOK = false; f.AuditCheckpointErr = "signature" }, "AUDIT-1", Fail},
		{"unassessed production", func(f *Facts) { f.ProductionAssessedRecent = 0 }, "PRIV-1", Fail},
		{"no isolation", func(f *Facts) { f.LastJobIsolation = []string{"rlimit_as"} }, "TEN-2", Fail},
		{"not built", nil, "RES-5", Fail},
		{"test only", nil, "TRAIN-6", NotChecked},
	}
	for _, c := range cases {
		f := good
		if c.mod != nil {
			c.mod(&f)
		}
		r := Evaluate(f, time.Now())
		var got *Result
		for i := range r.Results {
			if r.Results[i].ID == c.id {
				got = &r.Results[i]
			}
		}
		if got == nil || got.Status != c.want {
			t.Errorf("%s: %s = %+v, want %s", c.name, c.id, got, c.want)
		}
	}
	// Every ID once; every verdict with evidence.
	r := Evaluate(good, time.Now())
	seen := map[string]bool{}
	for _, x := range r.Results {
		if seen[x.ID] {
			t.Errorf("%s twice", x.ID)
		}
		seen[x.ID] = true
		if strings.TrimSpace(x.Evidence) == "" {
			t.Errorf("%s: %s without evidence", x.ID, x.Status)
		}
	}
	if len(seen) != 50 {
		t.Errorf("%d requirements, want the catalogue's 50", len(seen))
	}
}

// TestTraceability: docs/requirements.md has a row for every requirement ID.
func TestTraceability(t *testing.T) {
	b, err := os.ReadFile("../docs/requirements.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range IDs() {
		if !strings.Contains(string(b), "\n| "+id+" ") && !strings.Contains(string(b), "\n| "+id+"|") {
			t.Errorf("docs/requirements.md has no row for %s", id)
		}
	}
}
