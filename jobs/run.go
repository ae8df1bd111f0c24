package jobs

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/barrier"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/ml"
)

// invalidArtifact is the reason of a job whose worker returned bytes that
// are not a canonical model.
const invalidArtifact = "the training process returned an invalid artifact"

// progressEvery throttles stored progress events per job; the first one
// is always stored at once.
const progressEvery = 500 * time.Millisecond

// run executes one attempt of a job. It returns nil when the job reached a
// final state (or already had one) and an error only when the attempt
// should be retried by the queue (TRAIN-5).
func (s *Service) run(ctx context.Context, id string, attempt, maxAttempts int) error {
	// Store writes outlive a cancelled attempt (shutdown), so that state and
	// events stay consistent. A job already final (cancelled while queued)
	// is left alone by the update below.
	wctx := context.WithoutCancel(ctx)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.running[id] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
	}()

	// The creator and the dataset never change after admission: read them
	// first, so that opening the data (authorization, use record, DATA-7)
	// overlaps the durable `running` update instead of following it.
	cur, err := s.d.Store.GetJob(wctx, id)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if cur.State.Final() {
		return nil
	}
	type openResult struct {
		p        rampart.Principal
		td       *TrainingData
		err      error
		inactive bool
	}
	opened := make(chan openResult, 1)
	go func() {
		// The job runs as its creator: a disabled principal or a revoked
		// grant stops it before any data is read (DATA-7).
		p, err := s.d.Store.GetPrincipal(wctx, cur.CreatedBy)
		if err != nil || p.Disabled {
			opened <- openResult{inactive: true}
			return
		}
		actx := rampart.WithCaller(runCtx, rampart.Caller{Principal: p, RequestID: "job:" + id})
		td, err := s.d.Datasets.OpenForTraining(actx, cur.Spec.DatasetID, cur.Spec.DatasetVersion, OpenTrain)
		opened <- openResult{p: p, td: td, err: err}
	}()

	started := s.now().UTC()
	// The durable `running` update and the start of training overlap: the
	// worker gets its spec at once and, once the data is open (authorized,
	// DATA-7) and is the version admitted (DATA-3), its data while the
	// update commits, instead of one durable write later. Nothing the worker returns is
	// used before the update has committed; if it fails, or the job became
	// final meanwhile (cancelled while queued), the worker is killed and
	// its output discarded. Progress is stored only after the `running`
	// event, so the job's events keep their order.
	type updateResult struct {
		j   rampart.Job
		ev  *rampart.JobEvent
		err error
	}
	updated := make(chan updateResult, 1)
	go func() {
		j, ev, err := s.d.Store.UpdateJob(wctx, id, func(j *rampart.Job) (*rampart.JobEvent, bool) {
			if j.State.Final() {
				return nil, false
			}
			t, msg := rampart.EventRunning, ""
			if attempt > 1 {
				t, msg = rampart.EventRetrying, fmt.Sprintf("attempt %d of %d after the previous one was interrupted", attempt, maxAttempts)
			}
			j.State, j.Attempt, j.StartedAt = rampart.JobRunning, attempt, &started
			j.Progress = rampart.JobProgress{}
			return &rampart.JobEvent{Time: started, Type: t, Attempt: attempt, Message: msg}, true
		})
		updated <- updateResult{j, ev, err}
	}()
	// Progress is stored by a goroutine of its own: the frame loop (and so
	// the worker's output pipe, which carries the artifact) never waits on
	// a durable write. It starts storing once the `running` update is
	// known (runningDone) and is drained before the job's final update, so
	// the events keep their order.
	type stored struct {
		pr  executor.Progress
		now time.Time
	}
	runningDone := make(chan struct{})
	progCh := make(chan stored, 16)
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		<-runningDone
		for st := range progCh {
			pr, now := st.pr, st.now
			_, ev, err := s.d.Store.UpdateJob(wctx, id, func(j *rampart.Job) (*rampart.JobEvent, bool) {
				if j.State != rampart.JobRunning || j.Attempt != attempt {
					return nil, false
				}
				j.Progress = rampart.JobProgress{Stage: pr.Stage, Step: pr.Step, Total: pr.Total, Loss: pr.Loss}
				return &rampart.JobEvent{Time: now, Type: rampart.EventProgress, Attempt: attempt, Stage: pr.Stage,
					Step: pr.Step, Total: pr.Total, Loss: pr.Loss}, true
			})
			if err == nil && ev != nil {
				s.publish(*ev)
			}
		}
	}()
	var progOnce sync.Once
	waitProgress := func() { progOnce.Do(func() { close(progCh); <-progDone }) }
	var lastStored time.Time
	progress := func(pr executor.Progress) {
		now := s.now().UTC()
		if !lastStored.IsZero() && now.Sub(lastStored) < progressEvery && pr.Stage != "done" {
			return
		}
		select {
		case progCh <- stored{pr, now}:
			lastStored = now
		default:
			// The store is far behind (16 updates at most every 500 ms):
			// skip this report; the last one is still waited for.
			if pr.Stage == "done" {
				progCh <- stored{pr, now}
				lastStored = now
			}
		}
	}

	// The worker gets its spec (all from the job row) at once and
	// confines itself while the data is opened: the data reaches it only
	// once the open is authorized, its use recorded (DATA-7, AUDIT-3) and
	// it is the version admitted (DATA-3); otherwise its data ends in an
	// error, which kills it before it has read anything, and the checks
	// below, made again in order once the update is known, fail the
	// attempt.
	type runResult struct {
		res *executor.Result
		err error
	}
	data := &pendingData{ready: make(chan struct{})}
	var pre Presealed // written by the artifact hook, read after ran
	spec := executor.Spec{Algorithm: cur.Spec.Algorithm, Task: cur.Spec.Task, Target: cur.Spec.Target, Features: cur.Spec.Features,
		Params: cur.Spec.Params, Seed: cur.Spec.Seed}
	if cur.Spec.DP != nil {
		spec.DPEpsilon, spec.DPDelta = cur.Spec.DP.Epsilon, cur.Spec.DP.Delta
	}
	lim := executor.Limits{MemoryBytes: int64(cur.Spec.Limits.MemoryMB) << 20, CPUSeconds: cur.Spec.Limits.CPUSeconds,
		Wall: time.Duration(cur.Spec.Limits.WallSeconds) * time.Second}
	ran := make(chan runResult, 1)
	// The spare this run takes is replaced when the attempt has
	// ended (deferred here, so after its final update and the
	// registration): starting a worker process is CPU the
	// registration would otherwise compete with.
	hooks := executor.Hooks{Progress: progress, DeferRefill: true}
	defer s.d.Executor.Refill()
	// The artifact's seal starts when the worker sends it, while the
	// run ends (PreSealer); the attempt shreds it unless it hands it
	// to RegisterTrained (the deferred discard runs after abandon
	// below, so after the worker and its hooks have ended). Only for a
	// worker that was given its data, as the principal it ran as.
	if ps, ok := s.d.Registrar.(PreSealer); ok {
		hooks.Artifact = func(b []byte) {
			<-data.ready
			if data.err == nil {
				pctx := rampart.WithCaller(wctx, rampart.Caller{Principal: data.p, RequestID: "job:" + id})
				pre = ps.PreSeal(pctx, b)
			}
		}
	}
	defer func() {
		if pre != nil {
			pre.Discard(wctx)
		}
	}()
	go func() {
		res, err := s.d.Executor.RunWith(runCtx, spec, data, lim, hooks)
		ran <- runResult{res, err}
	}()
	o := <-opened
	if o.td != nil {
		// after abandon (deferred below): the worker has ended first
		defer o.td.Close()
	}
	if !o.inactive && o.err == nil && o.td != nil && o.td.Digest == cur.DatasetDigest {
		data.p, data.r = o.p, o.td
	} else {
		data.err = errDataRefused
	}
	close(data.ready)

	u := <-updated
	close(runningDone)
	j, ev, err := u.j, u.ev, u.err
	// Whatever happens next, the worker started above has ended before
	// this attempt returns (and before its data is closed).
	abandon := func() {
		if ran != nil {
			cancel()
			<-ran
			ran = nil
		}
	}
	defer waitProgress()
	defer abandon()
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	if ev == nil {
		return nil
	}
	s.publish(*ev)

	var iso []string // what the run got, once it ran (TEN-2)
	fail := func(reason string) error {
		abandon()
		waitProgress()
		_, err := s.finishRun(wctx, id, rampart.JobFailed, reason, nil, iso)
		return err
	}
	if o.inactive {
		return fail("the principal who submitted the job is no longer active")
	}
	p, td := o.p, o.td
	if err := o.err; err != nil {
		if runCtx.Err() != nil {
			return s.interrupted(wctx, id, attempt, maxAttempts, runCtx.Err())
		}
		if errors.Is(err, barrier.ErrIntegrity) {
			return s.integrityFailed(wctx, j, err, fail)
		}
		code := rampart.ErrorCode(err)
		if code == rampart.CodeUnavailable {
			return s.retryOrFail(wctx, id, attempt, maxAttempts, "dataset service unavailable", err)
		}
		return fail("cannot read the training data: " + errString(err))
	}
	// DATA-3: the version trained on is the one admitted, byte for byte.
	if td.Digest != j.DatasetDigest {
		return fail("the dataset version's digest changed since the job was admitted")
	}
	r := <-ran
	ran = nil
	res, err := r.res, r.err
	if err != nil {
		waitProgress()
		var f *executor.Failure
		switch {
		case errors.Is(err, barrier.ErrIntegrity) && runCtx.Err() == nil:
			// DATA-3: the stream failed its check (a segment's
			// authentication or the digest at the end); the worker was
			// killed before it received the end of its data, so it never
			// trained.
			return s.integrityFailed(wctx, j, err, fail)
		case errors.As(err, &f) && f.Kind == executor.FailCancelled:
			cur, gerr := s.d.Store.GetJob(wctx, id)
			if gerr == nil && cur.State.Final() {
				return nil // cancelled by the user
			}
			return s.interrupted(wctx, id, attempt, maxAttempts, err)
		case errors.As(err, &f) && f.Retryable():
			return s.retryOrFail(wctx, id, attempt, maxAttempts, f.Reason, err)
		case errors.As(err, &f):
			iso = f.Isolation
			return fail(f.Reason)
		default:
			return s.retryOrFail(wctx, id, attempt, maxAttempts, "internal error starting the training process", err)
		}
	}
	iso = res.Isolation
	// The parent never trusts the child's bytes: the artifact must parse as
	// a canonical model before it is kept. With a registry, RegisterTrained
	// parses it before it signs or stores anything (one parse, not three);
	// without one, it is parsed here.
	if s.d.Registrar == nil {
		if _, err := ml.Unmarshal(res.Artifact); err != nil {
			waitProgress()
			return fail(invalidArtifact)
		}
	}
	sum := sha256.Sum256(res.Artifact)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	result := &rampart.JobResult{ArtifactDigest: digest, ArtifactSize: int64(len(res.Artifact)), Metrics: res.Metrics,
		DPEpsilon: res.DPEpsilon, DPDelta: res.DPDelta}
	finished := s.now().UTC()
	// The stored progress events precede the final one.
	waitProgress()
	if s.d.Registrar != nil {
		j.Attempt = attempt
		// The job's final update is made in the transaction that stores
		// its model version (Trained.Then): one durable commit instead of
		// two, and a job reported succeeded always has its version.
		var finalEv *rampart.JobEvent
		committed := false
		then := func(tx *sql.Tx, modelID string, version int) error {
			r := *result
			r.ModelID, r.ModelVersion = modelID, version
			_, ev, err := s.d.Store.UpdateJobTx(wctx, tx, id, finishChange(rampart.JobSucceeded, "", &r, iso, s.now().UTC()))
			finalEv, committed = ev, err == nil
			return err
		}
		presealed := pre
		pre = nil // the registrar takes it over
		modelID, version, err := s.d.Registrar.RegisterTrained(rampart.WithCaller(wctx, rampart.Caller{Principal: p, RequestID: "job:" + id}), Trained{
			Job: j, Artifact: res.Artifact, ArtifactDigest: digest, Metrics: res.Metrics, DatasetDigest: td.Digest,
			DatasetName: td.DatasetName, DatasetVersion: td.Version,
			GrantID: td.GrantID, DPEpsilon: res.DPEpsilon, DPDelta: res.DPDelta, StartedAt: started, FinishedAt: finished, Then: then,
			Presealed: presealed})
		if err != nil {
			var re *rampart.Error
			if errors.As(err, &re) && re.Code == rampart.CodeInvalid && re.Field == "artifact" {
				return fail(invalidArtifact)
			}
			if rampart.ErrorCode(err) == rampart.CodeUnavailable || rampart.ErrorCode(err) == rampart.CodeInternal {
				return s.retryOrFail(wctx, id, attempt, maxAttempts, "the model registry is unavailable", err)
			}
			return fail("registering the model failed: " + errString(err))
		}
		result.ModelID, result.ModelVersion = modelID, version
		if committed {
			if finalEv != nil {
				s.publish(*finalEv)
			}
			s.audit(wctx, j, "job.succeeded", "ok", digest)
			return nil
		}
	} else {
		ref := barrier.Ref{Tenant: j.TenantID, Kind: "job-artifact", ID: id, Version: attempt}
		if _, err := s.d.Sealer.PutBytes(wctx, ref, res.Artifact); err != nil {
			return s.retryOrFail(wctx, id, attempt, maxAttempts, "storing the artifact failed", err)
		}
	}
	_, err = s.finishRun(wctx, id, rampart.JobSucceeded, "", result, iso)
	if err != nil {
		return fmt.Errorf("job %s: %w", id, err)
	}
	s.audit(wctx, j, "job.succeeded", "ok", digest)
	return nil
}

// integrityFailed fails a job whose training data failed its integrity
// check (DATA-3), with an audit record; it is not retried, the stored
// version is bad.
func (s *Service) integrityFailed(ctx context.Context, j rampart.Job, err error, fail func(string) error) error {
	s.log.Error("jobs: training data failed its integrity check", "job", j.ID, "err", err)
	s.audit(ctx, j, "job.train", "integrity_failed", "")
	return fail("the dataset version failed its integrity check (its stored bytes do not match its digest); nothing was trained")
}

// retryOrFail returns err (River retries) while attempts remain, else
// fails the job with reason.
func (s *Service) retryOrFail(ctx context.Context, id string, attempt, maxAttempts int, reason string, err error) error {
	s.log.Warn("jobs: attempt failed", "job", id, "attempt", attempt, "err", err)
	if attempt < maxAttempts {
		return fmt.Errorf("job %s attempt %d: %s: %w", id, attempt, reason, err)
	}
	_, ferr := s.finish(ctx, id, rampart.JobFailed, reason+" (after "+strconv.Itoa(attempt)+" attempts)", nil)
	return ferr
}

// interrupted handles an attempt stopped by shutdown: it is retried on the
// next start while attempts remain.
func (s *Service) interrupted(ctx context.Context, id string, attempt, maxAttempts int, err error) error {
	return s.retryOrFail(ctx, id, attempt, maxAttempts, "the server stopped during training", err)
}

// audit records a job outcome (lineage dataset → job → model, AUDIT-5).
func (s *Service) audit(ctx context.Context, j rampart.Job, action, outcome, digest string) {
	if err := s.d.Audit.Record(ctx, rampart.AuditEvent{Time: s.now().UTC(), TenantID: j.TenantID, Principal: j.CreatedBy,
		Action: action, Resource: "job/" + j.ID, Allow: true, Outcome: outcome, RequestID: "job:" + j.ID, Digest: digest,
		Details: map[string]string{"dataset": j.Spec.DatasetID, "dataset_digest": j.DatasetDigest}}); err != nil {
		s.log.Warn("jobs: audit job outcome", "job", j.ID, "err", err)
	}
}

// errDataRefused ends the data of a worker whose job may not use it (the
// open failed or was refused, or the version is not the one admitted).
var errDataRefused = errors.New("jobs: the training data was not opened for this run")

// pendingData is a worker's training data, handed over (ready closed)
// once it has been opened for the run, or refused (err).
type pendingData struct {
	ready chan struct{}
	r     io.Reader
	p     rampart.Principal
	err   error
}

func (d *pendingData) Read(b []byte) (int, error) {
	<-d.ready
	if d.err != nil {
		return 0, d.err
	}
	return d.r.Read(b)
}
