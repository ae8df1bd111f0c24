package jobs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/jobs"
	"github.com/rampart-mlaas/rampart/sqlite"
)

// TestMain doubles as the training worker the executor re-executes.
func TestMain(m *testing.M) {
	if rest, ok := executor.IsWorker(os.Args); ok {
		train := executor.Train
		if len(rest) == 1 && rest[0] == "artifact-then-crash" {
			train = artifactThenCrash
		}
		os.Exit(executor.ServeChild(os.Stdin, os.Stdout, train))
	}
	if dir := os.Getenv(crashEnv); dir != "" {
		crashServer(dir)
		return
	}
	os.Exit(m.Run())
}

// dataset is one test dataset with its grant terms for the caller.
type dataset struct {
	csv        string
	requireDP  bool
	maxEpsilon float64
	tamper     bool
	// tamperStream makes the stream at the job's start fail its digest
	// check at the end, as barrier's verifying reader does (DATA-3).
	tamperStream bool
	// cut, with tamperStream, fails the stream after that many bytes
	// instead of at the end (a segment that fails authentication).
	cut int
	// closeErr is what the use's Close returns: its outcome record failed.
	closeErr error
	opens    int
}

// datasets serves CSV from memory with the terms a grant would carry. It
// stands in for the dataset service, whose own tests cover authorization
// and digests; the server tests use the real one.
type datasets struct {
	mu   sync.Mutex
	sets map[string]dataset
}

func (d *datasets) OpenForTraining(ctx context.Context, id string, version int, mode jobs.OpenMode) (*jobs.TrainingData, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ds, ok := d.sets[id]
	if !ok {
		return nil, &rampart.Error{Code: rampart.CodeNotFound, Message: "dataset not found"}
	}
	ds.opens++
	d.sets[id] = ds
	sum := sha256.Sum256([]byte(ds.csv))
	digest := hex.EncodeToString(sum[:])
	if ds.tamper && ds.opens > 1 {
		digest = "0" + digest[1:]
	}
	c, _ := rampart.CallerFrom(ctx)
	header := strings.Split(strings.SplitN(ds.csv, "\n", 2)[0], ",")
	var r io.Reader = strings.NewReader(ds.csv)
	if ds.tamperStream && mode == jobs.OpenTrain {
		head := ds.csv
		if ds.cut > 0 {
			head = head[:ds.cut]
		}
		r = io.MultiReader(strings.NewReader(head), iotest.ErrReader(fmt.Errorf("plaintext digest mismatch: %w", barrier.ErrIntegrity)))
	}
	var rc io.ReadCloser = io.NopCloser(r)
	if ds.closeErr != nil {
		rc = struct {
			io.Reader
			io.Closer
		}{r, closer(func() error { return ds.closeErr })}
	}
	return &jobs.TrainingData{ReadCloser: rc, DatasetID: id, TenantID: c.Principal.TenantID,
		Version: 1, Digest: digest, Columns: header, GrantID: "dg_test", Grantee: "principal:" + c.Principal.ID,
		RequireDP: ds.requireDP, MaxEpsilon: ds.maxEpsilon}, nil
}

type closer func() error

func (c closer) Close() error { return c() }

type sealer struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func (s *sealer) PutBytes(_ context.Context, ref barrier.Ref, b []byte) (barrier.Sealed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[ref.String()] = b
	sum := sha256.Sum256(b)
	return barrier.Sealed{Digest: hex.EncodeToString(sum[:]), Size: int64(len(b))}, nil
}

type nopAudit struct{}

func (nopAudit) Record(context.Context, rampart.AuditEvent) error { return nil }

func classification(n int) string {
	var sb strings.Builder
	sb.WriteString("a,b,c,y\n")
	for i := range n {
		a, b := float64(i%13), float64((i*7)%11)
		y := 0
		if a+b > 11 {
			y = 1
		}
		fmt.Fprintf(&sb, "%g,%g,%d,%d\n", a, b, i%3, y)
	}
	return sb.String()
}

func diverging() string {
	var sb strings.Builder
	sb.WriteString("x,t\n")
	for i := range 200 {
		fmt.Fprintf(&sb, "%d,%g\n", i%17, 1e300*float64(i%3))
	}
	return sb.String()
}

type env struct {
	svc *jobs.Service
	db  *sqlite.DB
	ctx context.Context
	ds  *datasets
}

func newEnv(t *testing.T, slots int) *env { return newEnvCfg(t, jobs.Config{Slots: slots}) }

func newEnvCfg(t *testing.T, cfg jobs.Config, mod ...func(*jobs.Deps)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir()+"/meta.db")
	if err != nil {
		t.Fatal(err)
	}
	tn := rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: "t", CreatedAt: time.Now()}
	p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: tn.ID, Name: "dev", Kind: rampart.PrincipalUser,
		Role: rampart.RoleModelDeveloper, CreatedAt: time.Now()}
	if err := db.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	ex, err := executor.New(executor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ds := &datasets{sets: map[string]dataset{}}
	cfg.PollInterval, cfg.RetryDelay = 20*time.Millisecond, 50*time.Millisecond
	deps := jobs.Deps{Store: db, DB: db.SQL(), Datasets: ds, Sealer: &sealer{objs: map[string][]byte{}}, Executor: ex, Audit: nopAudit{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mod {
		m(&deps)
	}
	svc, err := jobs.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Stop(sctx)
		ex.Close()
		db.Close()
	})
	return &env{svc: svc, db: db, ds: ds, ctx: rampart.WithCaller(ctx, rampart.Caller{Principal: p, RequestID: "test"})}
}

func (e *env) add(d dataset) string {
	id := rampart.NewID("ds")
	e.ds.mu.Lock()
	e.ds.sets[id] = d
	e.ds.mu.Unlock()
	return id
}

// wait follows a job's events until it ends and returns the final job.
func (e *env) wait(t *testing.T, id string) (rampart.Job, []rampart.JobEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 60*time.Second)
	defer cancel()
	ch, err := e.svc.Events(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var evs []rampart.JobEvent
	for ev := range ch {
		evs = append(evs, ev)
	}
	j, err := e.svc.Get(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !j.State.Final() {
		t.Fatalf("job %s still %s after its event stream ended: %+v", id, j.State, evs)
	}
	return j, evs
}

func TestJobSucceedsWithEvents(t *testing.T) {
	e := newEnv(t, 2)
	ds := e.add(dataset{csv: classification(400)})
	j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "gbdt", Seed: 3,
		Params: map[string]string{"n_estimators": "20"}})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != rampart.JobQueued {
		t.Fatalf("state %s", j.State)
	}
	j, evs := e.wait(t, j.ID)
	if j.State != rampart.JobSucceeded || j.Result == nil || !strings.HasPrefix(j.Result.ArtifactDigest, "sha256:") {
		t.Fatalf("job %+v", j)
	}
	types := map[rampart.JobEventType]int{}
	for i, ev := range evs {
		types[ev.Type]++
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	if types[rampart.EventQueued] != 1 || types[rampart.EventRunning] != 1 || types[rampart.EventProgress] == 0 || types[rampart.EventSucceeded] != 1 {
		t.Fatalf("events %v", types)
	}
	// The worker starts while the running update commits: its progress
	// is still stored after the running event, and before the final one.
	order := map[rampart.JobEventType]int{rampart.EventQueued: 0, rampart.EventRunning: 1, rampart.EventProgress: 2, rampart.EventSucceeded: 3}
	for i := 1; i < len(evs); i++ {
		if order[evs[i].Type] < order[evs[i-1].Type] {
			t.Fatalf("event %d (%s) after %s", i, evs[i].Type, evs[i-1].Type)
		}
	}
	if j.Result.Metrics["train_accuracy"] < 0.8 {
		t.Fatalf("metrics %v", j.Result.Metrics)
	}
	if os.Geteuid() == 0 && !strings.Contains(strings.Join(j.Isolation, ","), "seccomp") {
		t.Fatalf("isolation %v", j.Isolation)
	}
}

// TestDeterminism is TRAIN-6: ten jobs with the same spec and seed give one
// artifact digest.
func TestDeterminism(t *testing.T) {
	e := newEnv(t, 2)
	ds := e.add(dataset{csv: classification(300)})
	digests := map[string]int{}
	var ids []string
	for range 10 {
		j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "mlp", Seed: 42,
			Params: map[string]string{"hidden_layer_sizes": "8", "epochs": "5"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	for _, id := range ids {
		j, _ := e.wait(t, id)
		if j.State != rampart.JobSucceeded {
			t.Fatalf("job %s: %s %s", id, j.State, j.Reason)
		}
		digests[j.Result.ArtifactDigest]++
	}
	if len(digests) != 1 {
		t.Fatalf("10 identical jobs gave %d digests: %v", len(digests), digests)
	}
}

// TestPrivacyBudget is TRAIN-3: max_epsilon 3 admits ε 1 + 1.5, refuses the
// next ε 1 before it is queued; require_dp refuses GBDT; the ledger equals
// the sum recomputed from the job records.
func TestPrivacyBudget(t *testing.T) {
	e := newEnv(t, 2)
	ds := e.add(dataset{csv: classification(500), requireDP: true, maxEpsilon: 3})
	submit := func(alg string, eps float64) (rampart.Job, error) {
		s := rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: alg, Seed: 1}
		if eps > 0 {
			s.DP = &rampart.JobDP{Epsilon: eps}
		}
		return e.svc.Submit(e.ctx, s)
	}
	var admitted []rampart.Job
	for _, c := range []struct {
		alg   string
		eps   float64
		want  rampart.Code
		field string
	}{
		{"logreg", 1, "", ""},
		{"gbdt", 0, rampart.CodeForbidden, "dp"},
		{"logreg", 0, rampart.CodeForbidden, "dp"},
		{"mlp", 1.5, "", ""},
		{"logreg", 1, rampart.CodeForbidden, "dp.epsilon"},
		{"logreg", 0.5, "", ""},
		{"logreg", 0.01, rampart.CodeForbidden, "dp.epsilon"},
	} {
		j, err := submit(c.alg, c.eps)
		if c.want == "" {
			if err != nil {
				t.Fatalf("%s ε %g refused: %v", c.alg, c.eps, err)
			}
			admitted = append(admitted, j)
			continue
		}
		var re *rampart.Error
		if !errors.As(err, &re) || re.Code != c.want || re.Field != c.field {
			t.Fatalf("%s ε %g: got %v, want %s on %s", c.alg, c.eps, err, c.want, c.field)
		}
	}
	all, _, err := e.svc.List(e.ctx, rampart.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(admitted) {
		t.Fatalf("%d jobs stored, %d admitted: a refused job was queued", len(all), len(admitted))
	}
	var sum float64
	for _, j := range all {
		sum += j.EpsilonCharged
	}
	spent, err := e.svc.Ledger(e.ctx, ds, admitted[0].Grantee)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(spent-sum) > 1e-12 || math.Abs(spent-3) > 1e-12 {
		t.Fatalf("ledger %g, sum over jobs %g, want 3", spent, sum)
	}
	for _, j := range admitted {
		j, _ = e.wait(t, j.ID)
		if j.State != rampart.JobSucceeded || j.Result.DPEpsilon <= 0 || j.Result.DPEpsilon > j.Spec.DP.Epsilon*1.0001 {
			t.Fatalf("DP job %s: %s %s %+v", j.ID, j.State, j.Reason, j.Result)
		}
	}
}

// TestBadInput: each bad spec is a 4xx naming the field and queues nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t, 1)
	ds := e.add(dataset{csv: classification(50)})
	base := rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "logreg"}
	cases := []struct {
		name  string
		mod   func(*rampart.JobSpec)
		code  rampart.Code
		field string
	}{
		{"unknown algorithm", func(s *rampart.JobSpec) { s.Algorithm = "svm" }, rampart.CodeInvalid, "algorithm"},
		{"unknown param", func(s *rampart.JobSpec) { s.Params = map[string]string{"depth": "3"} }, rampart.CodeInvalid, "params.depth"},
		{"param type", func(s *rampart.JobSpec) { s.Params = map[string]string{"max_iter": "many"} }, rampart.CodeInvalid, "params.max_iter"},
		{"missing target", func(s *rampart.JobSpec) { s.Target = "nope" }, rampart.CodeInvalid, "target"},
		{"missing feature", func(s *rampart.JobSpec) { s.Features = []string{"a", "zz"} }, rampart.CodeInvalid, "features"},
		{"target as feature", func(s *rampart.JobSpec) { s.Features = []string{"y"} }, rampart.CodeInvalid, "features"},
		{"task mismatch", func(s *rampart.JobSpec) { s.Task = "regression" }, rampart.CodeInvalid, "task"},
		{"epsilon range", func(s *rampart.JobSpec) { s.DP = &rampart.JobDP{Epsilon: -1} }, rampart.CodeInvalid, "dp.epsilon"},
		{"delta range", func(s *rampart.JobSpec) { s.DP = &rampart.JobDP{Epsilon: 1, Delta: 2} }, rampart.CodeInvalid, "dp.delta"},
		{"dp on gbdt", func(s *rampart.JobSpec) { s.Algorithm = "gbdt"; s.DP = &rampart.JobDP{Epsilon: 1} }, rampart.CodeInvalid, "dp"},
		{"memory limit", func(s *rampart.JobSpec) { s.Limits.MemoryMB = 1 }, rampart.CodeInvalid, "limits.memory_mb"},
		{"bad dataset id", func(s *rampart.JobSpec) { s.DatasetID = "x" }, rampart.CodeInvalid, "dataset_id"},
		{"no grant", func(s *rampart.JobSpec) { s.DatasetID = rampart.NewID("ds") }, rampart.CodeNotFound, "dataset_id"},
		{"model name", func(s *rampart.JobSpec) { s.ModelName = "Bad Name" }, rampart.CodeInvalid, "model_name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := base
			c.mod(&s)
			_, err := e.svc.Submit(e.ctx, s)
			var re *rampart.Error
			if !errors.As(err, &re) || re.Code != c.code || re.Field != c.field {
				t.Fatalf("got %v, want %s naming %s", err, c.code, c.field)
			}
		})
	}
	all, _, _ := e.svc.List(e.ctx, rampart.Page{})
	if len(all) != 0 {
		t.Fatalf("%d jobs queued by bad input", len(all))
	}
}

// TestFailures: NaN loss (TRAIN-4), a digest that changed after admission
// (DATA-3) and a wall-clock limit each fail the job with the reason.
func TestFailures(t *testing.T) {
	e := newEnv(t, 2)
	cases := []struct {
		name   string
		d      dataset
		spec   rampart.JobSpec
		reason string
	}{
		{"nan", dataset{csv: diverging()}, rampart.JobSpec{Target: "t", Algorithm: "mlp", Task: "regression"}, "NaN"},
		{"tampered", dataset{csv: classification(50), tamper: true}, rampart.JobSpec{Target: "y", Algorithm: "logreg"}, "digest changed"},
		{"engine refuses", dataset{csv: classification(50)}, rampart.JobSpec{Target: "y", Algorithm: "logreg", Params: map[string]string{"C": "-1"}}, "C"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.spec
			s.DatasetID = e.add(c.d)
			j, err := e.svc.Submit(e.ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			j, evs := e.wait(t, j.ID)
			last := evs[len(evs)-1]
			if j.State != rampart.JobFailed || !strings.Contains(j.Reason, c.reason) || last.Type != rampart.EventFailed || last.Message != j.Reason {
				t.Fatalf("job %s %q; last event %+v", j.State, j.Reason, last)
			}
			t.Logf("%s: %s", c.name, j.Reason)
		})
	}
}

// TestTamperedStream: data verified as it streams (jobs.OpenTrain) that
// fails its check at the end, or part-way, fails the job at its first
// attempt with the reason, and nothing is trained: no progress event (the
// worker reports progress only once it has parsed all its data, which it
// never gets the end of) and no artifact (DATA-3, fail closed).
func TestTamperedStream(t *testing.T) {
	e := newEnv(t, 2)
	csv := classification(2000)
	for _, cut := range []int{0, len(csv) / 2} {
		id := e.add(dataset{csv: csv, tamperStream: true, cut: cut})
		j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: id, Target: "y", Algorithm: "logreg"})
		if err != nil {
			t.Fatal(err)
		}
		j, evs := e.wait(t, j.ID)
		if j.State != rampart.JobFailed || !strings.Contains(j.Reason, "integrity") || j.Attempt != 1 || j.Result != nil {
			t.Fatalf("cut %d: job %s attempt %d %q result %+v", cut, j.State, j.Attempt, j.Reason, j.Result)
		}
		for _, ev := range evs {
			if ev.Type == rampart.EventProgress || ev.Type == rampart.EventRetrying {
				t.Fatalf("cut %d: the tampered data reached training: %+v", cut, evs)
			}
		}
		t.Logf("cut %d: %s", cut, j.Reason)
	}
	// The same data, untampered, trains (the test is not vacuous).
	id := e.add(dataset{csv: csv})
	j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: id, Target: "y", Algorithm: "logreg"})
	if err != nil {
		t.Fatal(err)
	}
	if j, evs := e.wait(t, j.ID); j.State != rampart.JobSucceeded || !slices.ContainsFunc(evs, func(ev rampart.JobEvent) bool { return ev.Type == rampart.EventProgress }) {
		t.Fatalf("untampered: %s %q %+v", j.State, j.Reason, evs)
	}
}

// TestUseOutcomeUnrecorded: a submission whose dataset use could not be
// recorded (its Close fails, AUDIT-3) is refused and queues nothing.
func TestUseOutcomeUnrecorded(t *testing.T) {
	e := newEnv(t, 1)
	down := &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable; action refused"}
	id := e.add(dataset{csv: classification(50), closeErr: down})
	if _, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: id, Target: "y", Algorithm: "logreg"}); rampart.ErrorCode(err) != rampart.CodeUnavailable {
		t.Fatalf("submit with an unrecorded use: %v", err)
	}
	if all, _, _ := e.svc.List(e.ctx, rampart.Page{}); len(all) != 0 {
		t.Fatalf("%d jobs queued", len(all))
	}
}

// TestCancel: cancelling a running job kills it at once and frees its
// slot; the per-tenant quota (TRAIN-4) refuses a job beyond it with 429
// and admits one again once the tenant is under it.
func TestCancel(t *testing.T) {
	e := newEnvCfg(t, jobs.Config{Slots: 1, MaxLivePerTenant: 1})
	ds := e.add(dataset{csv: classification(3000)})
	j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "mlp",
		Params: map[string]string{"epochs": "100000", "hidden_layer_sizes": "64,64", "n_iter_no_change": "100000", "tol": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	ch, err := e.svc.Events(ctx, j.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for ev := range ch {
		if ev.Type == rampart.EventProgress {
			break
		}
	}
	_, err = e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "logreg"})
	if rampart.ErrorCode(err) != rampart.CodeRateLimited {
		t.Fatalf("job over the tenant quota: %v", err)
	}
	start := time.Now()
	if _, err := e.svc.Cancel(e.ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	j, _ = e.wait(t, j.ID)
	if j.State != rampart.JobCancelled {
		t.Fatalf("state %s", j.State)
	}
	// The slot is free again at once: the next job runs.
	k, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "logreg"})
	if err != nil {
		t.Fatal(err)
	}
	k, _ = e.wait(t, k.ID)
	if k.State != rampart.JobSucceeded || time.Since(start) > 10*time.Second {
		t.Fatalf("next job %s after %s", k.State, time.Since(start))
	}
}
