// Package jobs is Rampart's training-job service: admission (validation,
// grant and privacy-budget checks, TRAIN-3), a persistent queue with
// leases, retries and a bounded number of worker slots (River, in the
// metadata store, TRAIN-5), the job state machine with its event stream
// (TRAIN-4) and the worker that runs each job in a confined child process
// through the executor (TEN-2).
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/executor"
)

// Store is the job metadata the service keeps (sqlite.DB implements it).
type Store interface {
	CreateJob(ctx context.Context, j rampart.Job, ev rampart.JobEvent, charge rampart.PrivacyCharge, enqueue func(*sql.Tx) error) error
	GetJob(ctx context.Context, id string) (rampart.Job, error)
	ListJobs(ctx context.Context, tenantID string, p rampart.Page) ([]rampart.Job, string, error)
	ListJobsInState(ctx context.Context, states ...rampart.JobState) ([]rampart.Job, error)
	UpdateJob(ctx context.Context, id string, change func(*rampart.Job) (*rampart.JobEvent, bool)) (rampart.Job, *rampart.JobEvent, error)
	// UpdateJobTx is UpdateJob in the caller's transaction on the same
	// database (the registry's, see Trained.Then).
	UpdateJobTx(ctx context.Context, tx *sql.Tx, id string, change func(*rampart.Job) (*rampart.JobEvent, bool)) (rampart.Job, *rampart.JobEvent, error)
	ListJobEvents(ctx context.Context, jobID string, after int64, limit int) ([]rampart.JobEvent, error)
	LedgerSpent(ctx context.Context, datasetID, grantee string) (float64, error)
	CountLiveJobs(ctx context.Context, tenantID string) (int, error)
	GetPrincipal(ctx context.Context, id string) (rampart.Principal, error)
}

// TrainingData is an authorized, recorded use of one dataset version for
// training, as the dataset service grants it: the caller owns the dataset
// or holds a live train grant (DATA-7), the stored bytes match Digest
// (DATA-3, see Datasets), and the grant's privacy terms come with it. The
// use's outcome record may still be in flight when it is returned: its
// failure is the error of the stream's last Read (instead of io.EOF) and
// of Close, so nothing may act on the data before a clean EOF or Close
// (AUDIT-3, fail closed).
type TrainingData struct {
	io.ReadCloser
	DatasetID   string
	DatasetName string
	TenantID    string // the dataset's owner
	Version     int
	Digest      string
	Columns     []string // header of the stream; nil if unknown
	GrantID     string   // "" for the owner's tenant
	// Grantee keys the privacy-budget ledger: "principal:…" or "tenant:…"
	// for a grant, "owner:…" for the owning tenant.
	Grantee    string
	RequireDP  bool
	MaxEpsilon float64 // 0: no budget
}

// Datasets is what jobs need from the dataset service. OpenForTraining
// runs with the context of the principal on whose behalf the job trains,
// at admission and again when the job starts, so a revoked grant stops it.
// A foreign or missing dataset is rampart.ErrNotFound; version 0 is the
// dataset's latest version.
//
// DATA-3: at admission (OpenAdmit) the stored bytes matched Digest before
// the stream is returned, so a tampered version is refused at submit. At
// the start (OpenTrain) the stream may instead be verified as it is read
// (each segment authenticated, the digest compared at the end, a mismatch
// being the last Read's error instead of io.EOF): the executor hands its
// worker the end of the data only after a clean io.EOF and kills it on any
// read error, so a tampered version still never reaches training, and the
// data is decrypted once instead of twice.
type Datasets interface {
	OpenForTraining(ctx context.Context, datasetID string, version int, mode OpenMode) (*TrainingData, error)
}

// OpenMode says why a dataset is opened (see Datasets).
type OpenMode int

// Open modes.
const (
	OpenAdmit OpenMode = iota // submit: verified before it is returned
	OpenTrain                 // job start: may be verified while it streams
)

// Trained is what a successful job hands the model registry.
type Trained struct {
	Job            rampart.Job
	Artifact       []byte
	ArtifactDigest string // "sha256:…"
	Metrics        map[string]float64
	DatasetName    string
	DatasetVersion int
	DatasetDigest  string
	GrantID        string
	DPEpsilon      float64
	DPDelta        float64
	StartedAt      time.Time
	FinishedAt     time.Time
	// Then records the job's final state in the transaction that stores
	// its model version (same database): one commit instead of two, and
	// the job is never succeeded without its version, nor the version
	// without its job's state. A registrar calls it when it can; when it
	// did not (see registry.TrainedInput.Then), the job records its state
	// itself.
	Then func(tx *sql.Tx, modelID string, version int) error
	// Presealed is the artifact's seal started by PreSeal when the worker
	// sent it (nil if none): the registrar takes it over in every case
	// (referenced by the stored version, or shredded).
	Presealed Presealed
}

// Presealed is an artifact whose seal a registrar started early.
type Presealed interface {
	// Discard shreds it (idempotent).
	Discard(ctx context.Context)
}

// PreSealer is a Registrar that can start sealing a job's artifact as
// soon as the worker has sent it, while the run ends (the worker's exit
// and the checks of its outcome), instead of after. The caller (ctx's
// principal) is the job's creator. PreSeal returns nil when nothing was
// started. A job that does not hand the result to RegisterTrained
// discards it.
type PreSealer interface {
	PreSeal(ctx context.Context, artifact []byte) Presealed
}

// Registrar registers a trained model version (the registry service:
// signing, attestation and card, TRAIN-1, MODEL-1, MODEL-3).
type Registrar interface {
	RegisterTrained(ctx context.Context, t Trained) (modelID string, version int, err error)
}

// Sealer stores artifacts when no registrar is wired (barrier.Barrier).
type Sealer interface {
	PutBytes(ctx context.Context, ref barrier.Ref, data []byte) (barrier.Sealed, error)
}

// Config tunes the service.
type Config struct {
	// Slots is the number of jobs trained at once; default runtime.NumCPU().
	Slots int
	// MaxAttempts bounds retries after worker crashes (TRAIN-5); default 3.
	MaxAttempts int
	// PollInterval is how often idle workers look for jobs no notification
	// announced: jobs queued here wake the workers at once (queue.wake);
	// the poll covers other processes and the rare insert whose
	// notification River's per-queue limiter (1 ms) suppressed. Default
	// 250 ms: each poll is one SQLite query (~1 ms of CPU).
	PollInterval time.Duration
	// RetryDelay is the pause before a crashed job is retried; default 1 s.
	RetryDelay time.Duration
	// MaxLivePerTenant bounds a tenant's queued and running jobs (TRAIN-4
	// quota); more are refused with 429. Default 100.
	MaxLivePerTenant int
}

// Deps are the service's collaborators.
type Deps struct {
	Store     Store
	DB        *sql.DB // the metadata database; River's tables live there too
	Datasets  Datasets
	Registrar Registrar // may be nil: artifacts are then sealed by Sealer
	Sealer    Sealer
	Executor  *executor.Executor
	Audit     rampart.Auditor
	Log       *slog.Logger
	Now       func() time.Time
}

// Service is the training-job service.
type Service struct {
	cfg   Config
	d     Deps
	now   func() time.Time
	log   *slog.Logger
	queue *queue

	mu      sync.Mutex
	subs    map[string]map[chan rampart.JobEvent]struct{}
	running map[string]context.CancelFunc
}

// New assembles the service; call Start to run workers.
func New(cfg Config, d Deps) (*Service, error) {
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.NumCPU()
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.MaxLivePerTenant <= 0 {
		cfg.MaxLivePerTenant = 100
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Registrar == nil && d.Sealer == nil {
		return nil, errors.New("jobs: need a registrar or a sealer for artifacts")
	}
	s := &Service{cfg: cfg, d: d, now: d.Now, log: d.Log,
		subs: map[string]map[chan rampart.JobEvent]struct{}{}, running: map[string]context.CancelFunc{}}
	q, err := newQueue(s)
	if err != nil {
		return nil, err
	}
	s.queue = q
	return s, nil
}

// SetRegistrar wires the registry once it exists (it may be assembled
// after the job service).
func (s *Service) SetRegistrar(r Registrar) { s.d.Registrar = r }

// Start migrates River's tables, recovers jobs orphaned by a crash and
// starts the workers, with one confined worker process started ahead for
// each slot (executor.SetSpares): a job then skips process start-up.
func (s *Service) Start(ctx context.Context) error {
	if err := s.queue.start(ctx); err != nil {
		return err
	}
	if s.d.Executor != nil {
		s.d.Executor.SetSpares(s.cfg.Slots)
	}
	return nil
}

// Stop stops taking jobs and cancels running ones; they are retried on
// the next start (their River rows are left running and rescued).
func (s *Service) Stop(ctx context.Context) error {
	err := s.queue.stop(ctx)
	if s.d.Executor != nil {
		s.d.Executor.SetSpares(0)
	}
	return err
}

// guard authorizes and records the decision before answering (AUDIT-3,
// fail closed).
func (s *Service) guard(ctx context.Context, action authz.Action, res authz.Resource, details map[string]string) (rampart.Caller, func(error) error, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return c, nil, rampart.ErrUnauthenticated
	}
	d := authz.Decide(c.Principal, action, res)
	ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: c.Principal.TenantID, Principal: c.Principal.ID, Role: c.Principal.Role,
		Action: string(action), Resource: res.Kind + "/" + res.ID, Allow: d.Allow, Reason: d.Reason, RequestID: c.RequestID, Details: details}
	if !d.Allow {
		ev.Outcome = string(rampart.ErrorCode(d.Err(res.Kind)))
		if err := s.d.Audit.Record(ctx, ev); err != nil {
			return c, nil, unavailable(err)
		}
		return c, nil, d.Err(res.Kind)
	}
	ev.Outcome = "pending"
	if err := s.d.Audit.Record(ctx, ev); err != nil {
		return c, nil, unavailable(err)
	}
	done := func(err error) error {
		ev.Outcome = "ok"
		if err != nil {
			ev.Outcome = string(rampart.ErrorCode(err))
		}
		ev.Time = s.now().UTC()
		if aerr := s.d.Audit.Record(ctx, ev); aerr != nil {
			return errors.Join(err, unavailable(aerr))
		}
		return err
	}
	return c, done, nil
}

func unavailable(err error) error {
	return &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable; action refused", Err: err}
}

func notFound() error { return &rampart.Error{Code: rampart.CodeNotFound, Message: "job not found"} }

// Submit admits a training job: validation (naming the field at fault),
// the dataset reference (404 if the caller has neither ownership nor a
// train grant — checked first, so a foreign ID answers exactly like a
// missing one, TEN-1), the grant's privacy terms (TRAIN-3: require_dp,
// max_epsilon charged on the ledger in the same transaction that queues
// the job) and the target and features against the dataset's columns.
// Nothing is queued unless every check passes.
func (s *Service) Submit(ctx context.Context, spec rampart.JobSpec) (rampart.Job, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.Job{}, rampart.ErrUnauthenticated
	}
	if err := validate(&spec); err != nil {
		return rampart.Job{}, err
	}
	td, err := s.d.Datasets.OpenForTraining(ctx, spec.DatasetID, spec.DatasetVersion, OpenAdmit)
	if err != nil {
		if rampart.ErrorCode(err) == rampart.CodeNotFound {
			return rampart.Job{}, &rampart.Error{Code: rampart.CodeNotFound, Field: "dataset_id", Message: "dataset not found", Err: err}
		}
		return rampart.Job{}, err
	}
	// The use's outcome record is written while the job's own decision is
	// recorded (one group commit of the audit log instead of two); the
	// job is created only once both are durable.
	var tdErr error
	tdClosed := false
	closeTD := func() error {
		if !tdClosed {
			tdErr, tdClosed = td.Close(), true
		}
		return tdErr
	}
	defer closeTD()
	spec.DatasetVersion = td.Version
	id := rampart.NewID(rampart.PrefixJob)
	details := map[string]string{"dataset": spec.DatasetID, "dataset_version": strconv.Itoa(td.Version), "algorithm": spec.Algorithm}
	if spec.DP != nil {
		details["dp_epsilon"] = strconv.FormatFloat(spec.DP.Epsilon, 'g', -1, 64)
	}
	if td.GrantID != "" {
		details["grant"] = td.GrantID
	}
	_, done, err := s.guard(ctx, authz.JobCreate, authz.Resource{Kind: "job", ID: id, TenantID: c.Principal.TenantID}, details)
	if err != nil {
		return rampart.Job{}, err
	}
	if err := closeTD(); err != nil {
		return rampart.Job{}, done(err)
	}
	if err := checkColumns(spec, td.Columns); err != nil {
		return rampart.Job{}, done(err)
	}
	// TRAIN-3: a grant that requires DP refuses non-DP training outright.
	if td.RequireDP && spec.DP == nil {
		return rampart.Job{}, done(&rampart.Error{Code: rampart.CodeForbidden, Field: "dp",
			Message: "the dataset's grant requires differentially private training: give dp.epsilon (logreg or mlp)"})
	}
	// TRAIN-4: a tenant's queue is bounded, so one tenant cannot hold
	// every worker slot indefinitely or grow the queue without limit.
	live, err := s.d.Store.CountLiveJobs(ctx, c.Principal.TenantID)
	if err != nil {
		return rampart.Job{}, done(err)
	}
	if live >= s.cfg.MaxLivePerTenant {
		return rampart.Job{}, done(&rampart.Error{Code: rampart.CodeRateLimited,
			Message: fmt.Sprintf("the tenant has %d queued or running jobs, the most allowed; wait for some to finish", live)})
	}
	charge := rampart.PrivacyCharge{DatasetID: td.DatasetID, Grantee: td.Grantee, MaxEpsilon: td.MaxEpsilon}
	if spec.DP != nil {
		charge.Epsilon, charge.Delta = spec.DP.Epsilon, spec.DP.Delta
	}
	now := s.now().UTC()
	j := rampart.Job{ID: id, TenantID: c.Principal.TenantID, CreatedBy: c.Principal.ID, DatasetDigest: td.Digest, Spec: spec,
		State: rampart.JobQueued, MaxAttempts: s.cfg.MaxAttempts, Grantee: td.Grantee, EpsilonCharged: charge.Epsilon, CreatedAt: now}
	ev := rampart.JobEvent{JobID: id, Time: now, Type: rampart.EventQueued}
	if err := s.d.Store.CreateJob(ctx, j, ev, charge, s.queue.enqueuer(id)); err != nil {
		return rampart.Job{}, done(err)
	}
	s.queue.wake()
	return j, done(nil)
}

func checkColumns(spec rampart.JobSpec, cols []string) error {
	if cols == nil {
		return nil
	}
	has := make(map[string]bool, len(cols))
	for _, c := range cols {
		has[c] = true
	}
	if !has[spec.Target] {
		return rampart.Invalid("target", "target column %q is not in the dataset", spec.Target)
	}
	for _, f := range spec.Features {
		if !has[f] {
			return rampart.Invalid("features", "feature column %q is not in the dataset", f)
		}
	}
	return nil
}

// load fetches a job for action; a missing job and a foreign one are the
// same 404 after the same authorization path (TEN-1).
func (s *Service) load(ctx context.Context, id string, action authz.Action) (rampart.Job, func(error) error, error) {
	res := authz.Resource{Kind: "job", ID: id}
	var j rampart.Job
	var err error
	if rampart.ValidID(rampart.PrefixJob, id) {
		j, err = s.d.Store.GetJob(ctx, id)
		if err != nil && !errors.Is(err, rampart.ErrNotFound) {
			return j, nil, err
		}
	}
	if err == nil && j.ID != "" {
		res.TenantID = j.TenantID
	} else {
		res.TenantID = "missing" // matches no caller's tenant: denied as foreign
	}
	_, done, gerr := s.guard(ctx, action, res, nil)
	if gerr != nil {
		if rampart.ErrorCode(gerr) == rampart.CodeNotFound {
			return j, nil, notFound()
		}
		return j, nil, gerr
	}
	return j, done, nil
}

// Get returns one job.
func (s *Service) Get(ctx context.Context, id string) (rampart.Job, error) {
	j, done, err := s.load(ctx, id, authz.JobRead)
	if err != nil {
		return rampart.Job{}, err
	}
	return j, done(nil)
}

// List lists the caller's tenant's jobs.
func (s *Service) List(ctx context.Context, p rampart.Page) ([]rampart.Job, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	_, done, err := s.guard(ctx, authz.JobRead, authz.Resource{Kind: "job", TenantID: c.Principal.TenantID}, nil)
	if err != nil {
		return nil, "", err
	}
	js, next, err := s.d.Store.ListJobs(ctx, c.Principal.TenantID, p)
	return js, next, done(err)
}

// Cancel cancels a queued or running job; the child is killed at once.
func (s *Service) Cancel(ctx context.Context, id string) (rampart.Job, error) {
	j, done, err := s.load(ctx, id, authz.JobCancel)
	if err != nil {
		return rampart.Job{}, err
	}
	if j.State.Final() {
		return j, done(nil)
	}
	c, _ := rampart.CallerFrom(ctx)
	j, err = s.finish(ctx, id, rampart.JobCancelled, "cancelled by "+c.Principal.ID, nil)
	if err != nil {
		return rampart.Job{}, done(err)
	}
	s.mu.Lock()
	cancel := s.running[id]
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return j, done(nil)
}

// finish moves a live job to a final state with an event; a job already
// final is left alone (a cancel racing a completion keeps the first).
func (s *Service) finish(ctx context.Context, id string, state rampart.JobState, reason string, res *rampart.JobResult) (rampart.Job, error) {
	return s.finishRun(ctx, id, state, reason, res, nil)
}

// finishRun is finish recording, in the same update, the isolation the
// run got (TEN-2); a job already final still gets the isolation.
func (s *Service) finishRun(ctx context.Context, id string, state rampart.JobState, reason string, res *rampart.JobResult, iso []string) (rampart.Job, error) {
	j, ev, err := s.d.Store.UpdateJob(ctx, id, finishChange(state, reason, res, iso, s.now().UTC()))
	if err != nil {
		return j, err
	}
	if ev != nil {
		s.publish(*ev)
	}
	return j, nil
}

// finishChange is the final update of finishRun.
func finishChange(state rampart.JobState, reason string, res *rampart.JobResult, iso []string, now time.Time) func(j *rampart.Job) (*rampart.JobEvent, bool) {
	return func(j *rampart.Job) (*rampart.JobEvent, bool) {
		if iso != nil {
			j.Isolation = iso
		}
		if j.State.Final() {
			return nil, iso != nil
		}
		j.State, j.Reason, j.FinishedAt = state, reason, &now
		if res != nil {
			j.Result = res
		}
		t := rampart.EventFailed
		switch state {
		case rampart.JobSucceeded:
			t = rampart.EventSucceeded
		case rampart.JobCancelled:
			t = rampart.EventCancelled
		}
		e := &rampart.JobEvent{Time: now, Type: t, Attempt: j.Attempt, Message: reason}
		if res != nil {
			e.Metrics = res.Metrics
		}
		return e, true
	}
}

// Ledger returns the ε spent on a dataset by a grantee (TRAIN-3).
func (s *Service) Ledger(ctx context.Context, datasetID, grantee string) (float64, error) {
	return s.d.Store.LedgerSpent(ctx, datasetID, grantee)
}

// Events authorizes the caller to read job id and returns its events after
// seq: first the stored ones, then live ones until the job ends or ctx is
// done. The channel is closed after a final event.
func (s *Service) Events(ctx context.Context, id string, after int64) (<-chan rampart.JobEvent, error) {
	_, done, err := s.load(ctx, id, authz.JobRead)
	if err != nil {
		return nil, err
	}
	if err := done(nil); err != nil {
		return nil, err
	}
	live := make(chan rampart.JobEvent, 256)
	s.subscribe(id, live)
	out := make(chan rampart.JobEvent, 16)
	go func() {
		defer close(out)
		defer s.unsubscribe(id, live)
		send := func(ev rampart.JobEvent) bool {
			if ev.Seq <= after {
				return true
			}
			after = ev.Seq
			select {
			case out <- ev:
			case <-ctx.Done():
				return false
			}
			return !ev.Final()
		}
		for {
			evs, err := s.d.Store.ListJobEvents(ctx, id, after, 500)
			if err != nil {
				return
			}
			for _, ev := range evs {
				if !send(ev) {
					return
				}
			}
			if len(evs) < 500 {
				break
			}
		}
		for {
			select {
			case ev := <-live:
				if ev.Seq > after+1 {
					// Missed events (slow reader): catch up from the store.
					evs, err := s.d.Store.ListJobEvents(ctx, id, after, 500)
					if err != nil {
						return
					}
					for _, e := range evs {
						if !send(e) {
							return
						}
					}
					continue
				}
				if !send(ev) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (s *Service) subscribe(id string, ch chan rampart.JobEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.subs[id]
	if m == nil {
		m = map[chan rampart.JobEvent]struct{}{}
		s.subs[id] = m
	}
	m[ch] = struct{}{}
}

func (s *Service) unsubscribe(id string, ch chan rampart.JobEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs[id], ch)
	if len(s.subs[id]) == 0 {
		delete(s.subs, id)
	}
}

// publish hands a stored event to live subscribers without blocking; a
// subscriber that falls behind catches up from the store.
func (s *Service) publish(ev rampart.JobEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs[ev.JobID] {
		select {
		case ch <- ev:
		default:
		}
	}
}

// errString keeps internal errors out of reasons.
func errString(err error) string {
	var re *rampart.Error
	if errors.As(err, &re) {
		return re.Message
	}
	return fmt.Sprintf("internal error (%s)", rampart.CodeInternal)
}
