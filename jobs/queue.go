package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// queueName is River's queue for training jobs; its MaxWorkers is the
// number of worker slots.
const queueName = "training"

// trainArgs is the River job: only the job ID, everything else is in the
// jobs table.
type trainArgs struct {
	JobID string `json:"job_id"`
}

func (trainArgs) Kind() string { return "rampart.train" }

type trainWorker struct {
	river.WorkerDefaults[trainArgs]
	s *Service
}

// Timeout: the job's own wall-clock limit is enforced by the executor;
// River's default one-minute timeout must not cut training short.
func (w *trainWorker) Timeout(*river.Job[trainArgs]) time.Duration { return -1 }

func (w *trainWorker) Work(ctx context.Context, j *river.Job[trainArgs]) (err error) {
	// A panic must not leave the job "running" after River discards it
	// (TRAIN-5): it counts as a crashed attempt.
	defer func() {
		if p := recover(); p != nil {
			err = w.s.retryOrFail(context.WithoutCancel(ctx), j.Args.JobID, j.Attempt, j.MaxAttempts,
				"internal error in the job runner", fmt.Errorf("panic: %v", p))
		}
	}()
	return w.s.run(ctx, j.Args.JobID, j.Attempt, j.MaxAttempts)
}

// fixedRetry retries crashed jobs after a constant, short delay.
type fixedRetry struct{ d time.Duration }

func (r fixedRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(r.d) }

// queue is River over the metadata database (TRAIN-5): leases are River's
// running rows, retries its attempts, worker slots its MaxWorkers.
type queue struct {
	s      *Service
	driver *riversqlite.Driver
	waker  *waker
	client *river.Client[*sql.Tx]
}

func newQueue(s *Service) (*queue, error) {
	drv := riversqlite.New(s.d.DB)
	w := &waker{ch: make(chan struct{})}
	workers := river.NewWorkers()
	river.AddWorker(workers, &trainWorker{s: s})
	c, err := river.NewClient[*sql.Tx](wakeDriver{Driver: drv, w: w, every: s.cfg.PollInterval}, &river.Config{
		Queues:  map[string]river.QueueConfig{queueName: {MaxWorkers: s.cfg.Slots}},
		Workers: workers,
		// The cooldown also limits insert notifications to one per queue
		// per period: at 1 ms, every submission wakes an idle slot.
		FetchCooldown:     time.Millisecond,
		FetchPollInterval: s.cfg.PollInterval,
		RetryPolicy:       fixedRetry{s.cfg.RetryDelay},
		// A job River sees running longer than this is rescued (another
		// process died holding it): beyond the largest wall-clock limit.
		RescueStuckJobsAfter: (MaxSeconds + 600) * time.Second,
		Logger:               s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	return &queue{s: s, driver: drv, waker: w, client: c}, nil
}

func (q *queue) enqueuer(jobID string) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := q.client.InsertTx(context.Background(), tx, trainArgs{JobID: jobID},
			&river.InsertOpts{Queue: queueName, MaxAttempts: q.s.cfg.MaxAttempts})
		return err
	}
}

// wake is called after a transaction that queued a job has committed: the
// insert notification River wrote in that transaction is read at once
// instead of at the listener's next poll, so a free worker slot starts the
// job within milliseconds (River cannot be triggered from inside the
// transaction, where the job is not yet visible).
func (q *queue) wake() { q.waker.wake() }

// wakeDriver is River's SQLite driver with a listener that reads the
// notification outbox when woken. SQLite has no LISTEN/NOTIFY: River
// writes notifications to an outbox table in the inserting transaction,
// and its listener polls that table every 50 ms (20 queries a second,
// idle). Here the outbox is read at once when this process has queued a
// job (wake), and otherwise every poll interval, for notifications written
// by River's own services (retries, leadership) or another process.
type wakeDriver struct {
	*riversqlite.Driver
	w     *waker
	every time.Duration
}

func (d wakeDriver) GetListener(p *riverdriver.GetListenenerParams) riverdriver.Listener {
	return &wakeListener{Listener: d.Driver.GetListener(p), w: d.w, every: d.every}
}

// waker broadcasts a wake-up: ch is closed and replaced.
type waker struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *waker) wake() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}

// readWindow bounds one read of the outbox by River's listener, which
// sleeps 50 ms after an empty read: within the window it reads once.
const readWindow = 40 * time.Millisecond

type wakeListener struct {
	riverdriver.Listener
	w     *waker
	every time.Duration
}

// WaitForNotification returns the next notification: River's listener
// reads the outbox once (or returns one it already holds); when there is
// none it waits for a wake-up or the poll interval and reads again. The
// listener advances its cursor only after a successful read, so a read cut
// short by the window loses nothing.
func (l *wakeListener) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	for {
		woken := l.w.wait()
		rctx, cancel := context.WithTimeout(ctx, readWindow)
		n, err := l.Listener.WaitForNotification(rctx)
		cancel()
		switch {
		case err == nil:
			return n, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return nil, err
		}
		t := time.NewTimer(l.every)
		select {
		case <-woken:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

func (q *queue) start(ctx context.Context) error {
	m, err := rivermigrate.New(q.driver, nil)
	if err != nil {
		return fmt.Errorf("jobs: river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: river migrations: %w", err)
	}
	if err := q.recover(ctx); err != nil {
		return err
	}
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: start workers: %w", err)
	}
	return nil
}

// recover handles jobs a crashed server left running (TRAIN-5). The
// embedded server owns its data directory, so at start no other process can
// be working on them: each is made available again at once while it has
// attempts left, else discarded and its job failed with the reason.
func (q *queue) recover(ctx context.Context) error {
	exec := q.driver.GetExecutor()
	now := time.Now().UTC()
	stuck, err := exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{Max: 100_000, StuckHorizon: now.Add(time.Second)})
	if err != nil {
		return fmt.Errorf("jobs: find orphaned jobs: %w", err)
	}
	if len(stuck) == 0 {
		return nil
	}
	p := &riverdriver.JobRescueManyParams{StuckHorizon: now.Add(time.Second)}
	var failed []string
	for _, j := range stuck {
		ae, _ := json.Marshal(rivertype.AttemptError{At: now, Attempt: j.Attempt,
			Error: "the server stopped while the job was running"})
		p.ID = append(p.ID, j.ID)
		p.Error = append(p.Error, ae)
		p.ScheduledAt = append(p.ScheduledAt, now)
		if j.Attempt >= j.MaxAttempts {
			p.State = append(p.State, string(rivertype.JobStateDiscarded))
			p.FinalizedAt = append(p.FinalizedAt, &now)
			var a trainArgs
			if json.Unmarshal(j.EncodedArgs, &a) == nil && a.JobID != "" {
				failed = append(failed, a.JobID)
			}
		} else {
			p.State = append(p.State, string(rivertype.JobStateAvailable))
			p.FinalizedAt = append(p.FinalizedAt, nil)
		}
	}
	if _, err := exec.JobRescueMany(ctx, p); err != nil {
		return fmt.Errorf("jobs: rescue orphaned jobs: %w", err)
	}
	for _, id := range failed {
		if _, err := q.s.finish(ctx, id, rampart.JobFailed, fmt.Sprintf("the server stopped during training %d times; giving up", q.s.cfg.MaxAttempts), nil); err != nil {
			return err
		}
	}
	q.s.log.Info("jobs: recovered jobs orphaned by a crash", "retried", len(stuck)-len(failed), "failed", len(failed))
	return nil
}

func (q *queue) stop(ctx context.Context) error {
	return q.client.StopAndCancel(ctx)
}
