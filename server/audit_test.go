package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/compliance"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/server"
	"github.com/rampart-mlaas/rampart/servertest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestAuditScenario is AUDIT-3: a scripted run of more than 50
// security-relevant actions across roles (successes, authorization denials,
// authentication failures, reads) finds every one in the log with all
// mandatory fields, and a canary secret sent in requests appears neither in
// the log, nor in any file of the data dir, nor in the server's own log.
func TestAuditScenario(t *testing.T) {
	logs := &syncBuf{}
	e := servertest.StartWithLog(t, logs)
	canary := "rmp_" + strings.Repeat("c4n4ry", 4) + "zz_" + strings.Repeat("s3cr3t", 8) + "qqqq"

	type step struct {
		who          string
		method, path string
		body         string
		token        string
		wantAction   string
		wantDecision auditlog.Decision
	}
	a := e.NewWorld(t, "aud-a")
	b := e.NewWorld(t, "aud-b")
	dp, md, su, au := a.Actors[rampart.RoleDataProvider], a.Actors[rampart.RoleModelDeveloper], a.Actors[rampart.RoleServiceUser], a.Actors[rampart.RoleAuditor]
	op := e.OperatorActor(t)
	var steps []step
	add := func(who string, tok, method, path, body, action string, d auditlog.Decision) {
		steps = append(steps, step{who: who, method: method, path: path, body: body, token: tok, wantAction: action, wantDecision: d})
	}
	for i := 0; i < 6; i++ {
		add("operator", op.Token, "POST", "/v1/tenants", fmt.Sprintf(`{"name":"sc-%d"}`, i), "tenant.create", auditlog.Allow)
	}
	add("operator", op.Token, "GET", "/v1/tenants", "", "tenant.list", auditlog.Allow)
	add("operator", op.Token, "GET", "/metrics", "", "metrics.read", auditlog.Allow)
	for _, r := range []*servertest.Actor{dp, md, su, au} {
		add(string(r.Principal.Role), r.Token, "GET", "/v1/tenants", "", "tenant.list", auditlog.Deny)
		add(string(r.Principal.Role), r.Token, "POST", "/v1/tenants", `{"name":"nope"}`, "tenant.create", auditlog.Deny)
		add(string(r.Principal.Role), r.Token, "GET", "/v1/tenants/"+b.Tenant.ID, "", "tenant.read", auditlog.Deny)
		add(string(r.Principal.Role), r.Token, "GET", "/v1/tenants/"+a.Tenant.ID, "", "tenant.read", auditlog.Allow)
		add(string(r.Principal.Role), r.Token, "GET", "/v1/principals/"+b.Actors[rampart.RoleDataProvider].Principal.ID, "", "principal.read", auditlog.Deny)
		add(string(r.Principal.Role), r.Token, "GET", "/v1/principals/"+r.Principal.ID, "", "principal.read", auditlog.Allow)
		add(string(r.Principal.Role), r.Token, "POST", "/v1/keys", `{"name":"k"}`, "key.create", auditlog.Allow)
		add(string(r.Principal.Role), r.Token, "GET", "/v1/keys", "", "key.list", auditlog.Allow)
		add(string(r.Principal.Role), r.Token, "POST", "/v1/keys/"+b.Actors[rampart.RoleServiceUser].KeyID+"/revoke", "", "key.revoke", auditlog.Deny)
		add(string(r.Principal.Role), r.Token, "GET", "/metrics", "", "metrics.read", auditlog.Deny)
	}
	add("auditor", au.Token, "GET", "/v1/principals", "", "principal.list", auditlog.Allow)
	add("auditor", au.Token, "GET", "/v1/audit/events", "", "audit.read", auditlog.Allow)
	add("service-user", su.Token, "GET", "/v1/audit/events", "", "audit.read", auditlog.Deny)
	add("operator", op.Token, "POST", "/v1/principals/"+b.Actors[rampart.RoleServiceUser].Principal.ID+"/disable", "", "principal.disable", auditlog.Allow)
	add("operator", op.Token, "POST", "/v1/principals/"+b.Actors[rampart.RoleServiceUser].Principal.ID+"/enable", "", "principal.disable", auditlog.Allow)
	add("operator", op.Token, "POST", "/v1/principals", `{"tenant_id":"`+b.Tenant.ID+`","name":"new-one","role":"auditor"}`, "principal.create", auditlog.Allow)
	add("operator", op.Token, "POST", "/v1/keys/"+b.Actors[rampart.RoleAuditor].KeyID+"/revoke", "", "key.revoke", auditlog.Allow)
	// Authentication failures, one carrying the canary as its credential.
	add("anonymous", canary, "GET", "/v1/whoami", "", "authn.failure", auditlog.Deny)
	add("anonymous", "", "GET", "/v1/tenants", "", "authn.failure", auditlog.Deny)
	add("anonymous", dp.Token[:40], "GET", "/v1/keys", "", "authn.failure", auditlog.Deny)
	// The key ID half of a token is an identifier (it is logged, like an
	// access-key ID); the secret half must never be.
	secretPart := canary[31:]
	if len(steps) < 50 {
		t.Fatalf("only %d steps", len(steps))
	}
	type done struct {
		step
		rid    string
		status int
	}
	var ran []done
	for _, s := range steps {
		req, _ := http.NewRequest(s.method, e.URL+s.path, strings.NewReader(s.body))
		req.Header.Set("Content-Type", "application/json")
		// The canary also travels in a header a careless server might log.
		req.Header.Set("X-Debug-Secret", canary)
		if s.token != "" {
			req.Header.Set("Authorization", "Bearer "+s.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ran = append(ran, done{s, resp.Header.Get("X-Request-Id"), resp.StatusCode})
	}
	// Read the whole log as the operator.
	recs := map[string][]auditlog.Event{}
	var all []httpapi.AuditRecord
	q := map[string][]string{}
	for {
		var page httpapi.List[httpapi.AuditRecord]
		if err := e.Operator.Do(context.Background(), "GET", "/v1/audit/events", q, nil, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			break
		}
		q = map[string][]string{"cursor": {page.NextCursor}}
	}
	for _, r := range all {
		recs[r.Event.RequestID] = append(recs[r.Event.RequestID], r.Event)
		if bytes.Contains(r.Raw, []byte(secretPart)) {
			t.Errorf("canary in audit event %d", r.Index)
		}
	}
	distinct := map[string]bool{}
	for _, d := range ran {
		evs := recs[d.rid]
		var hit *auditlog.Event
		for i := range evs {
			if evs[i].Action == d.wantAction && evs[i].Decision == d.wantDecision {
				hit = &evs[i]
			}
		}
		if hit == nil {
			t.Errorf("%s %s %s (status %d, request %s): no %s/%s event; got %+v", d.who, d.method, d.path, d.status, d.rid, d.wantAction, d.wantDecision, evs)
			continue
		}
		if hit.Time.IsZero() || hit.Action == "" || hit.Resource == "" || hit.RequestID == "" || hit.Outcome == "" || hit.Reason == "" {
			t.Errorf("%s %s: missing fields: %+v", d.method, d.path, *hit)
		}
		if d.wantAction != "authn.failure" && (hit.Tenant == "" || hit.Principal == "" || hit.Role == "") {
			t.Errorf("%s %s: missing who: %+v", d.method, d.path, *hit)
		}
		distinct[d.wantAction+"/"+string(d.wantDecision)+"/"+d.who] = true
	}
	t.Logf("%d scripted actions (%d distinct action/decision/role), all found in the log of %d events", len(ran), len(distinct), len(all))
	// The canary is nowhere on disk or in the server's log.
	filepath.WalkDir(e.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secretPart)) {
				t.Errorf("canary in %s", p)
			}
		}
		return nil
	})
	if bytes.Contains(logs.Bytes(), []byte(secretPart)) {
		t.Error("canary in the server log")
	}
	if len(logs.Bytes()) == 0 {
		t.Log("(server log empty)")
	}
}

// TestAuditBadInputAndTSA: proofs outside the tree are 400 naming the valid
// range; an unreachable TSA never blocks events and shows in /readyz.
func TestAuditBadInputAndTSA(t *testing.T) {
	e := servertest.Start(t, func(c *server.Config) { c.TSAURL = "http://127.0.0.1:1/tsr" })
	for i := 0; i < 3; i++ {
		e.Tenant(t, fmt.Sprintf("t%d", i)) // events, appended without waiting for the TSA
	}
	var cp httpapi.AuditCheckpoint
	if err := e.Operator.Do(context.Background(), "GET", "/v1/audit/checkpoint", nil, nil, &cp); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		fmt.Sprintf("/v1/audit/proofs/inclusion?index=%d&size=%d", cp.Size, cp.Size),
		fmt.Sprintf("/v1/audit/proofs/inclusion?index=0&size=%d", cp.Size+100),
		fmt.Sprintf("/v1/audit/proofs/consistency?from=%d&to=%d", cp.Size, cp.Size-1),
		"/v1/audit/proofs/inclusion?index=-1&size=2",
	} {
		st, body := e.Raw(t, "GET", path, e.OpToken, nil, nil)
		if st != 400 || !bytes.Contains(body, []byte("invalid")) {
			t.Errorf("%s: %d %s", path, st, body)
		}
	}
	st, body := e.Raw(t, "GET", "/v1/audit/proofs/inclusion?index=0&size=5000000", e.OpToken, nil, nil)
	if st != 400 || !bytes.Contains(body, []byte(fmt.Sprint(cp.Size))) {
		t.Errorf("range not named: %s", body)
	}
	st, body = e.Raw(t, "GET", "/readyz", "", nil, nil)
	if st != 200 || !bytes.Contains(body, []byte("tsa")) {
		t.Errorf("readyz: %d %s", st, body)
	}
	t.Logf("readyz with an unreachable TSA: %s", body)
}

// TestCompliance: GET /v1/compliance evaluates every requirement ID with
// evidence for the operator; tenant roles other than auditors are refused.
func TestCompliance(t *testing.T) {
	e := servertest.Start(t)
	tn := e.Tenant(t, "comp")
	dp := e.Actor(t, tn, "dp", rampart.RoleDataProvider)
	au := e.Actor(t, tn, "au", rampart.RoleAuditor)
	var rep compliance.Evaluation
	if err := e.Operator.Do(context.Background(), "GET", "/v1/compliance", nil, nil, &rep); err != nil {
		t.Fatal(err)
	}
	byID := map[string]compliance.Result{}
	for _, r := range rep.Results {
		byID[r.ID] = r
	}
	for _, id := range compliance.IDs() {
		if _, ok := byID[id]; !ok {
			t.Errorf("%s missing", id)
		}
	}
	want := map[string]compliance.Status{"IAM-1": compliance.Pass, "IAM-2": compliance.Pass, "DATA-1": compliance.Fail,
		"DATA-2": compliance.Pass, "AUDIT-1": compliance.Pass, "AUDIT-2": compliance.Fail, "MODEL-1": compliance.NotApplicable}
	for id, st := range want {
		if byID[id].Status != st {
			t.Errorf("%s: %+v, want %s", id, byID[id], st)
		}
	}
	if err := au.C.Do(context.Background(), "GET", "/v1/compliance", nil, nil, &rep); err != nil {
		t.Errorf("auditor: %v", err)
	}
	if st, _ := e.Raw(t, "GET", "/v1/compliance", dp.Token, nil, nil); st != 403 {
		t.Errorf("data provider: %d", st)
	}
}

// TestAssessmentThresholds: model developers set their tenant's thresholds
// (validated, audited); other roles cannot; tenants are separate.
func TestAssessmentThresholds(t *testing.T) {
	e := servertest.Start(t)
	a := e.NewWorld(t, "th-a")
	b := e.NewWorld(t, "th-b")
	md := a.Actors[rampart.RoleModelDeveloper]
	body := `{"thresholds":[{"metric":"membership.auc","max":0.6},{"metric":"extraction.fidelity","max":0.8}]}`
	if st, out := e.Raw(t, "PUT", "/v1/assessment-thresholds", md.Token, strings.NewReader(body), map[string]string{"Content-Type": "application/json"}); st != 200 {
		t.Fatalf("set: %d %s", st, out)
	}
	for _, bad := range []string{`{"thresholds":[{"metric":"membership.auc"}]}`, `{"thresholds":[{"metric":"Bad Name","max":1}]}`,
		`{"thresholds":[{"metric":"a.b","min":2,"max":1}]}`, `{"thresholds":[{"metric":"a.b","max":1},{"metric":"a.b","max":2}]}`} {
		if st, out := e.Raw(t, "PUT", "/v1/assessment-thresholds", md.Token, strings.NewReader(bad), map[string]string{"Content-Type": "application/json"}); st != 400 {
			t.Errorf("%s: %d %s", bad, st, out)
		}
	}
	var got httpapi.ThresholdsBody
	if err := a.Actors[rampart.RoleAuditor].C.Do(context.Background(), "GET", "/v1/assessment-thresholds", nil, nil, &got); err != nil || len(got.Thresholds) != 2 {
		t.Fatalf("auditor read: %v %v", got, err)
	}
	if err := b.Actors[rampart.RoleModelDeveloper].C.Do(context.Background(), "GET", "/v1/assessment-thresholds", nil, nil, &got); err != nil || len(got.Thresholds) != 0 {
		t.Fatalf("other tenant sees: %v %v", got, err)
	}
	for _, r := range []rampart.Role{rampart.RoleDataProvider, rampart.RoleServiceUser, rampart.RoleAuditor} {
		if st, _ := e.Raw(t, "PUT", "/v1/assessment-thresholds", a.Actors[r].Token, strings.NewReader(`{"thresholds":[]}`), map[string]string{"Content-Type": "application/json"}); st != 403 {
			t.Errorf("%s set thresholds: %d", r, st)
		}
	}
	if st, _ := e.Raw(t, "PUT", "/v1/assessment-thresholds", e.OpToken, strings.NewReader(`{"thresholds":[]}`), map[string]string{"Content-Type": "application/json"}); st != 403 {
		t.Errorf("operator set thresholds: %d", st)
	}
}

// TestPredictionAuditAckOnCommit (AUDIT-3, AUDIT-5): every prediction is in
// the log when it is answered. By default its event is acknowledged on commit
// and flushed to disk in the background; with audit_fsync_predictions each is
// on disk when it is answered.
func TestPredictionAuditAckOnCommit(t *testing.T) {
	for _, strict := range []bool{false, true} {
		strict := strict
		t.Run(fmt.Sprintf("fsync=%v", strict), func(t *testing.T) {
			e := servertest.Start(t, func(c *server.Config) { c.AuditFsyncPredictions = strict })
			w := e.NewWorld(t, "acme")
			ep := servertest.Fixtures["endpoint"](t, e, w)[0]
			servertest.Fixtures["endpoint_grant_id"](t, e, w)
			su := w.Actors[rampart.RoleServiceUser]
			before := e.Server.AuditLog.Status()
			const n = 20
			for i := 0; i < n; i++ {
				body := fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[0.%d,0.5]}]}`, i)
				st, out := e.Raw(t, "POST", "/v2/models/"+ep+"/infer", su.Token, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
				if st != 200 {
					t.Fatalf("infer: %d %s", st, out)
				}
				// Answered, so already in the log.
				var page httpapi.List[httpapi.AuditRecord]
				q := url.Values{"action": {string(authz.Predict)}, "principal": {su.Principal.ID}}
				if err := e.Operator.Do(context.Background(), "GET", "/v1/audit/events", q, nil, &page); err != nil {
					t.Fatal(err)
				}
				if len(page.Items) != i+1 {
					t.Fatalf("after %d predictions the log holds %d", i+1, len(page.Items))
				}
				if last := page.Items[len(page.Items)-1].Index; strict && e.Server.AuditLog.Status().DurableSize <= last {
					t.Fatalf("audit_fsync_predictions: prediction %d answered before its event %d was on disk", i, last)
				}
			}
			if after := e.Server.AuditLog.Status(); !strict && after.Syncs == before.Syncs {
				t.Errorf("no background flush ran: predictions waited for the disk")
			}
			deadline := time.Now().Add(10 * time.Second)
			for st := e.Server.AuditLog.Status(); st.DurableSize < st.Size; st = e.Server.AuditLog.Status() {
				if time.Now().After(deadline) {
					t.Fatalf("the log never flushed: %d of %d on disk", st.DurableSize, st.Size)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
