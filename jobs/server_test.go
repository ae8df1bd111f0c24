package jobs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

// followSSE reads a job's event stream over HTTP until a final event.
func followSSE(t *testing.T, e *servertest.Env, a *servertest.Actor, id string) []rampart.JobEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", e.URL+"/v1/jobs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+a.Token)
	hc := &http.Client{Timeout: 60 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var evs []rampart.JobEvent
	sc := bufio.NewScanner(resp.Body)
	var typ string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			typ = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			var ev rampart.JobEvent
			if err := json.Unmarshal([]byte(v), &ev); err != nil {
				t.Fatal(err)
			}
			if string(ev.Type) != typ {
				t.Fatalf("SSE event name %q but data type %q", typ, ev.Type)
			}
			evs = append(evs, ev)
			if ev.Final() {
				return evs
			}
		}
	}
	t.Fatalf("stream ended without a final event: %+v (%v)", evs, sc.Err())
	return nil
}

func getJob(t *testing.T, a *servertest.Actor, id string) rampart.Job {
	t.Helper()
	var j rampart.Job
	if err := a.C.Do(context.Background(), "GET", "/v1/jobs/"+id, nil, nil, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestServerJobs drives the real server: a data provider grants another
// tenant's model developer train use with require_dp and max_epsilon 3;
// the developer trains over HTTP and follows SSE; the grant's terms are
// enforced before anything runs (TRAIN-3); bad input names the field and
// queues nothing.
func TestServerJobs(t *testing.T) {
	e := servertest.Start(t)
	owner := e.Tenant(t, "owner")
	dev := e.Tenant(t, "dev")
	dp := e.Actor(t, owner, "provider", rampart.RoleDataProvider)
	md := e.Actor(t, dev, "developer", rampart.RoleModelDeveloper)
	ownMD := e.Actor(t, owner, "inhouse", rampart.RoleModelDeveloper)
	ds := e.Dataset(t, dp, "credit", "y")
	e.Upload(t, dp, ds.ID, classification(400))
	three := 3.0
	e.Grant(t, dp, ds.ID, httpapi.GrantRequest{To: md.Principal.ID, Purpose: "train", RequireDP: true, MaxEpsilon: &three})

	// The owner's tenant trains without terms; SSE shows the whole life.
	j := e.Job(t, ownMD, httpapi.CreateJobRequest{DatasetID: ds.ID, Target: "y", Algorithm: "gbdt", Seed: 7,
		Params: map[string]string{"n_estimators": "10"}})
	evs := followSSE(t, e, ownMD, j.ID)
	if evs[0].Type != rampart.EventQueued || evs[len(evs)-1].Type != rampart.EventSucceeded {
		t.Fatalf("events %+v", evs)
	}
	j = getJob(t, ownMD, j.ID)
	if j.State != rampart.JobSucceeded || !strings.HasPrefix(j.Result.ArtifactDigest, "sha256:") || j.Result.ModelID == "" {
		t.Fatalf("job %+v result %+v", j, j.Result)
	}
	// The grantee's jobs are charged to its ledger; the next one is refused.
	for _, c := range []struct {
		alg    string
		eps    float64
		status int
		field  string
	}{
		{"gbdt", 0, 403, "dp"},
		{"logreg", 1, 201, ""},
		{"mlp", 1.5, 201, ""},
		{"logreg", 1, 403, "dp.epsilon"},
	} {
		body := fmt.Sprintf(`{"dataset_id":%q,"target":"y","algorithm":%q`, ds.ID, c.alg)
		if c.eps > 0 {
			body += fmt.Sprintf(`,"dp":{"epsilon":%g}`, c.eps)
		}
		st, b := e.Raw(t, "POST", "/v1/jobs", md.Token, strings.NewReader(body+"}"), map[string]string{"Content-Type": "application/json"})
		if st != c.status {
			t.Fatalf("%s ε %g: %d %s", c.alg, c.eps, st, b)
		}
		if c.field != "" {
			var p httpapi.Problem
			if err := json.Unmarshal(b, &p); err != nil || p.Field != c.field || !strings.HasPrefix(p.Type, httpapi.ProblemTypeBase) {
				t.Fatalf("%s ε %g: problem %s", c.alg, c.eps, b)
			}
		} else {
			var got rampart.Job
			_ = json.Unmarshal(b, &got)
			if evs := followSSE(t, e, md, got.ID); evs[len(evs)-1].Type != rampart.EventSucceeded {
				t.Fatalf("granted DP job: %+v", evs[len(evs)-1])
			}
		}
	}
	// Bad input: 4xx problem+json naming the field; nothing queued.
	before := len(listJobs(t, md))
	for _, c := range []struct{ body, field string }{
		{`{"dataset_id":"` + ds.ID + `","target":"y","algorithm":"svm"}`, "body.algorithm"},
		{`{"dataset_id":"` + ds.ID + `","target":"nope","algorithm":"logreg","dp":{"epsilon":1}}`, "target"},
		{`{"dataset_id":"` + ds.ID + `","target":"y","algorithm":"logreg","params":{"depth":"2"},"dp":{"epsilon":1}}`, "params.depth"},
		{`{"dataset_id":"` + ds.ID + `","target":"y","algorithm":"logreg","dp":{"epsilon":"one"}}`, "body.dp.epsilon"},
		{`{"dataset_id":"` + ds.ID + `","target":"y","algorithm":"logreg","dp":{"epsilon":1000}}`, "dp.epsilon"},
		{`{"dataset_id":"` + rampart.NewID("ds") + `","target":"y","algorithm":"logreg"}`, "dataset_id"},
	} {
		st, b := e.Raw(t, "POST", "/v1/jobs", md.Token, strings.NewReader(c.body), map[string]string{"Content-Type": "application/json"})
		var p httpapi.Problem
		_ = json.Unmarshal(b, &p)
		named := p.Field == c.field
		for _, d := range p.Errors {
			named = named || d.Location == c.field
		}
		if st < 400 || st >= 500 || !named {
			t.Fatalf("%s: %d %s", c.body, st, b)
		}
	}
	if after := len(listJobs(t, md)); after != before {
		t.Fatalf("bad input queued %d jobs", after-before)
	}
	// Another tenant cannot see the job: 404 like a missing one (TEN-1).
	st, _ := e.Raw(t, "GET", "/v1/jobs/"+j.ID, md.Token, nil, nil)
	if st != 404 {
		t.Fatalf("foreign job: %d", st)
	}
}

func listJobs(t *testing.T, a *servertest.Actor) []rampart.Job {
	t.Helper()
	var l httpapi.List[rampart.Job]
	if err := a.C.Do(context.Background(), "GET", "/v1/jobs", nil, nil, &l); err != nil {
		t.Fatal(err)
	}
	return l.Items
}
