package jobs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/barrier"
	dsvc "github.com/rampart-mlaas/rampart/dataset"
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

// outcomeFails records decisions but fails to record outcomes.
type outcomeFails struct{}

func (outcomeFails) Record(_ context.Context, ev rampart.AuditEvent) error {
	if ev.Outcome == "pending" {
		return nil
	}
	return errors.New("audit log down")
}

// TestStreamedUseTamper covers the dataset use the job's start takes
// (dataset.UseOptions{Streamed, Latest}, DATA-3, DATA-7) on the real
// stores: the untampered stream reads back whole and ends in a clean EOF;
// after one flipped byte in the stored ciphertext, wherever it is, the
// streamed use never ends in EOF (the error matches barrier.ErrIntegrity),
// while the verified use (admission) is refused before anything is
// returned, and so is a job submitted on it. Version 0 with Latest is the
// latest version; without Latest it is not found.
func TestStreamedUseTamper(t *testing.T) {
	e := servertest.Start(t)
	owner := e.Tenant(t, "owner")
	dp := e.Actor(t, owner, "provider", rampart.RoleDataProvider)
	md := e.Actor(t, owner, "developer", rampart.RoleModelDeveloper)
	ds := e.Dataset(t, dp, "credit", "y")
	csv := classification(3000)
	e.Upload(t, dp, ds.ID, csv)
	e.Upload(t, dp, ds.ID, csv)
	svc := dsvc.New(e.Server.DB, e.Server.Barrier, nopAudit{}, nil, nil)
	ctx := rampart.WithCaller(context.Background(), rampart.Caller{Principal: md.Principal, RequestID: "test"})
	stream := func(version int) ([]byte, error) {
		u, err := svc.OpenUse(ctx, ds.ID, version, authz.PurposeTrain, dsvc.UseOptions{Latest: true, Streamed: true})
		if err != nil {
			t.Fatalf("streamed open: %v", err)
		}
		defer u.Close()
		if u.Version.Version != 2 {
			t.Fatalf("version %d opened for %d", u.Version.Version, version)
		}
		return io.ReadAll(u)
	}
	got, err := stream(0)
	if err != nil || string(got) != csv {
		t.Fatalf("untampered stream: %v (%d of %d bytes)", err, len(got), len(csv))
	}
	if _, err := svc.OpenUse(ctx, ds.ID, 0, authz.PurposeTrain, dsvc.UseOptions{}); rampart.ErrorCode(err) != rampart.CodeNotFound {
		t.Fatalf("version 0 without Latest: %v", err)
	}
	// DeferOutcome: the use's outcome record is written while the stream
	// is read; when it cannot be written, neither the end of the stream
	// nor Close is clean (AUDIT-3, fail closed), streamed or verified.
	failing := dsvc.New(e.Server.DB, e.Server.Barrier, outcomeFails{}, nil, nil)
	for _, streamed := range []bool{true, false} {
		u, err := failing.OpenUse(ctx, ds.ID, 0, authz.PurposeTrain, dsvc.UseOptions{Latest: true, Streamed: streamed, DeferOutcome: true})
		if err != nil {
			t.Fatalf("deferred outcome, streamed %v: %v", streamed, err)
		}
		got, rerr := io.ReadAll(u)
		cerr := u.Close()
		if rampart.ErrorCode(rerr) != rampart.CodeUnavailable || rampart.ErrorCode(cerr) != rampart.CodeUnavailable || len(got) != len(csv) {
			t.Fatalf("unrecorded use, streamed %v: read %d bytes, %v; close %v", streamed, len(got), rerr, cerr)
		}
	}
	u, err := svc.OpenUse(ctx, ds.ID, 0, authz.PurposeTrain, dsvc.UseOptions{Latest: true, Streamed: true, DeferOutcome: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(u); err != nil || string(got) != csv || u.Close() != nil {
		t.Fatalf("recorded deferred use: %v", err)
	}

	ref := barrier.Ref{Tenant: owner.ID, Kind: "dataset", ID: ds.ID, Version: 2}
	blobPath := filepath.Join(e.DataDir, "blobs", filepath.FromSlash(ref.BlobKey()))
	orig, err := os.ReadFile(blobPath)
	if err != nil {
		t.Fatalf("find blob: %v", err)
	}
	for _, at := range []int{len(orig) / 3, len(orig) / 2, len(orig) - 20} {
		raw := bytes.Clone(orig)
		raw[at] ^= 1
		if err := os.WriteFile(blobPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := stream(2); !errors.Is(err, barrier.ErrIntegrity) {
			t.Fatalf("byte %d flipped: streamed use ended with %v, want an integrity error", at, err)
		}
		if _, err := svc.OpenUse(ctx, ds.ID, 2, authz.PurposeTrain, dsvc.UseOptions{}); !errors.Is(err, barrier.ErrIntegrity) {
			t.Fatalf("byte %d flipped: verified use: %v", at, err)
		}
		body := fmt.Sprintf(`{"dataset_id":%q,"target":"y","algorithm":"logreg"}`, ds.ID)
		if st, b := e.Raw(t, "POST", "/v1/jobs", md.Token, strings.NewReader(body), map[string]string{"Content-Type": "application/json"}); st < 400 {
			t.Fatalf("byte %d flipped: job admitted: %d %s", at, st, b)
		}
	}
}
