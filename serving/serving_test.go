package serving_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// TestVerticalSlice: an endpoint on a registered (signed) model answers OIP
// [N, F] and per-feature requests and /v1 rows with the default output
// policy, the model digest header, authentication, and one audit event per
// prediction carrying model digest, input and output digests.
func TestVerticalSlice(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, "logreg", nil)
	v := register(t, w.e, w.md, "bc", tr.art)
	ep := w.endpoint(t, "bc", "bc", 0, nil)
	if ep.ModelDigest != v.Digest || ep.ModelVersion != v.Version {
		t.Fatalf("endpoint %+v does not pin %s@%d", ep, v.Digest, v.Version)
	}
	rows := seq(0, 20)
	want, err := tr.model.PredictLabels(tr.test.Take(rows))
	if err != nil {
		t.Fatal(err)
	}

	// OIP [N, F] tensor.
	r := post(t, w.e, w.su.Token, "/v2/models/bc/infer", tensorBody(tr.test, tr.features, rows))
	if r.status != 200 {
		t.Fatalf("infer: %d %s", r.status, r.body)
	}
	if r.hdr.Get("X-Rampart-Model-Digest") != v.Digest || r.hdr.Get("X-Rampart-Model-Version") != "1" {
		t.Fatalf("headers %v", r.hdr)
	}
	var out struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Name     string            `json:"name"`
			Datatype string            `json:"datatype"`
			Shape    []int             `json:"shape"`
			Data     []json.RawMessage `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if out.ModelName != "bc" || out.ModelVersion != "1" || len(out.Outputs) != 3 || out.Outputs[0].Name != "label" ||
		out.Outputs[1].Name != "probability" || out.Outputs[2].Name != "ood" {
		t.Fatalf("response %s", r.body)
	}
	for i, d := range out.Outputs[0].Data {
		var l string
		_ = json.Unmarshal(d, &l)
		if l != want[i] {
			t.Fatalf("row %d: label %s, model says %s", i, l, want[i])
		}
		p := string(out.Outputs[1].Data[i])
		if dot := strings.IndexByte(p, '.'); dot >= 0 && len(p)-dot-1 > 2 {
			t.Fatalf("probability %s has more than 2 decimals (INF-2)", p)
		}
	}

	// OIP one input per feature, through the name and the ID, version path.
	var inputs []map[string]any
	for _, name := range tr.features {
		c, _ := tr.test.Column(name)
		inputs = append(inputs, map[string]any{"name": name, "shape": []int{len(rows)}, "datatype": "FP32", "data": c.Num[:len(rows)]})
	}
	b, _ := json.Marshal(map[string]any{"id": "req-42", "inputs": inputs})
	for _, path := range []string{"/v2/models/bc/infer", "/v2/models/" + ep.ID + "/versions/1/infer"} {
		r = post(t, w.e, w.su.Token, path, b)
		if r.status != 200 || !strings.Contains(string(r.body), `"id":"req-42"`) {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
	}
	if r = post(t, w.e, w.su.Token, "/v2/models/bc/versions/2/infer", b); r.status != 404 {
		t.Fatalf("unserved version: %d", r.status)
	}

	// /v1 rows.
	r = post(t, w.e, w.su.Token, "/v1/endpoints/bc/predict", rowsBody(tr.test, tr.features, rows))
	if r.status != 200 {
		t.Fatalf("predict: %d %s", r.status, r.body)
	}
	var pr struct {
		ModelDigest string `json:"model_digest"`
		Predictions []struct {
			Label       string   `json:"label"`
			Probability *float64 `json:"probability"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(r.body, &pr); err != nil || len(pr.Predictions) != len(rows) || pr.ModelDigest != v.Digest {
		t.Fatalf("predict body %s: %v", r.body, err)
	}
	for i, p := range pr.Predictions {
		if p.Label != want[i] || p.Probability == nil {
			t.Fatalf("row %d: %+v, want %s", i, p, want[i])
		}
	}

	// Authentication on every inference route but the health probes.
	for _, path := range []string{"/v2/models/bc/infer", "/v1/endpoints/bc/predict"} {
		if r := post(t, w.e, "", path, b); r.status != 401 {
			t.Fatalf("%s unauthenticated: %d", path, r.status)
		}
	}
	for _, path := range []string{"/v2/health/live", "/v2/health/ready"} {
		st, body := w.e.Raw(t, "GET", path, "", nil, nil)
		if st != 200 {
			t.Fatalf("%s: %d %s", path, st, body)
		}
	}
	for _, path := range []string{"/v2/models/bc", "/v2/models/bc/ready", "/v2"} {
		if st, _ := w.e.Raw(t, "GET", path, "", nil, nil); st != 401 {
			t.Fatalf("%s without credential: %d", path, st)
		}
		if st, body := w.e.Raw(t, "GET", path, w.su.Token, nil, nil); st != 200 {
			t.Fatalf("%s: %d %s", path, st, body)
		}
	}

	// Audit: one endpoint.predict event per prediction, with digests.
	recs, _, err := w.e.Server.AuditLog.Events(context.Background(), auditlog.Query{Tenant: w.tn.ID, Action: "endpoint.predict",
		Page: rampart.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("%d predict events, want 5", len(recs))
	}
	raw := string(recs[0].Raw)
	for _, s := range []string{v.Digest[len("sha256:"):], "input_digest", "output_digest", "guards", "rate=ok"} {
		if !strings.Contains(raw, s) {
			t.Fatalf("audit event lacks %q: %s", s, raw)
		}
	}
}

// TestEndpointAccess: roles, grants to another tenant by endpoint ID, and
// foreign endpoints answering 404 exactly like missing ones.
func TestEndpointAccess(t *testing.T) {
	w := newWorld(t)
	tr := train(t, breast, "logreg", nil)
	register(t, w.e, w.md, "bc", tr.art)
	ep := w.endpoint(t, "bc", "bc", 0, nil)
	other := w.e.Tenant(t, "other")
	osu := w.e.Actor(t, other, "osu", rampart.RoleServiceUser)
	dp := w.e.Actor(t, w.tn, "dp", rampart.RoleDataProvider)
	body := tensorBody(tr.test, tr.features, seq(0, 3))
	cases := []struct {
		name  string
		token string
		path  string
		want  int
	}{
		{"own service user by name", w.su.Token, "/v2/models/bc/infer", 200},
		{"own developer", w.md.Token, "/v1/endpoints/bc/predict", 400}, // allowed; body is OIP not rows
		{"data provider", dp.Token, "/v2/models/bc/infer", 403},
		{"foreign by ID, no grant", osu.Token, "/v2/models/" + ep.ID + "/infer", 404},
		{"foreign by name", osu.Token, "/v2/models/bc/infer", 404},
		{"missing", w.su.Token, "/v2/models/nope/infer", 404},
		{"missing ID", w.su.Token, "/v2/models/ep_aaaaaaaaaaaaaaaaaaaaaaaaaa/infer", 404},
	}
	for _, c := range cases {
		if r := post(t, w.e, c.token, c.path, body); r.status != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, r.status, c.want, r.body)
		}
	}
	var g rampart.EndpointGrant
	if err := w.md.C.Do(context.Background(), "POST", "/v1/endpoints/bc/grants", nil, httpapi.EndpointGrantRequest{TenantID: other.ID}, &g); err != nil {
		t.Fatal(err)
	}
	if r := post(t, w.e, osu.Token, "/v2/models/"+ep.ID+"/infer", body); r.status != 200 {
		t.Fatalf("granted: %d %s", r.status, r.body)
	}
	if r := post(t, w.e, osu.Token, "/v2/models/bc/infer", body); r.status != 404 {
		t.Fatalf("granted endpoint by name from another tenant: %d", r.status)
	}
	// The grantee's tenant sees its own principal's predictions too.
	recs, _, err := w.e.Server.AuditLog.Events(context.Background(), auditlog.Query{Tenant: other.ID, Action: "endpoint.predict", Page: rampart.Page{Limit: 10}})
	if err != nil || len(recs) == 0 {
		t.Fatalf("grantee tenant audit: %d %v", len(recs), err)
	}
	if err := w.md.C.Do(context.Background(), "DELETE", "/v1/endpoints/bc/grants/"+g.ID, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if r := post(t, w.e, osu.Token, "/v2/models/"+ep.ID+"/infer", body); r.status != 404 {
		t.Fatalf("revoked grant: %d", r.status)
	}
	if st, _ := w.e.Raw(t, "GET", "/v1/endpoints/bc", w.su.Token, nil, nil); st != http.StatusOK {
		t.Fatalf("service user show: %d", st)
	}
	_ = strconv.Itoa
}
