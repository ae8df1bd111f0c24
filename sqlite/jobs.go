package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rampart-mlaas/rampart"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

const jobCols = `id, tenant_id, created_by, dataset_id, dataset_digest, spec, state, reason, attempt, max_attempts,
	progress, result, isolation, grantee, epsilon, created_at, started_at, finished_at`

type rowScanner interface{ Scan(...any) error }

func scanJob(r rowScanner) (rampart.Job, error) {
	var j rampart.Job
	var datasetID, spec, progress, isolation string
	var result sql.NullString
	var created int64
	var started, finished sql.NullInt64
	if err := r.Scan(&j.ID, &j.TenantID, &j.CreatedBy, &datasetID, &j.DatasetDigest, &spec, &j.State, &j.Reason,
		&j.Attempt, &j.MaxAttempts, &progress, &result, &isolation, &j.Grantee, &j.EpsilonCharged, &created,
		&started, &finished); err != nil {
		return j, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return j, fmt.Errorf("job %s spec: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(progress), &j.Progress); err != nil {
		return j, fmt.Errorf("job %s progress: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(isolation), &j.Isolation); err != nil {
		return j, fmt.Errorf("job %s isolation: %w", j.ID, err)
	}
	if result.Valid {
		j.Result = &rampart.JobResult{}
		if err := json.Unmarshal([]byte(result.String), j.Result); err != nil {
			return j, fmt.Errorf("job %s result: %w", j.ID, err)
		}
	}
	j.CreatedAt = fromNanos(created)
	j.StartedAt = fromOpt(started)
	j.FinishedAt = fromOpt(finished)
	return j, nil
}

func jobValues(j rampart.Job) (spec, progress, isolation string, result any, err error) {
	b, err := json.Marshal(j.Spec)
	if err != nil {
		return
	}
	spec = string(b)
	if b, err = json.Marshal(j.Progress); err != nil {
		return
	}
	progress = string(b)
	iso := j.Isolation
	if iso == nil {
		iso = []string{}
	}
	if b, err = json.Marshal(iso); err != nil {
		return
	}
	isolation = string(b)
	if j.Result != nil {
		if b, err = json.Marshal(j.Result); err != nil {
			return
		}
		result = string(b)
	}
	return
}

// CreateJob stores a new queued job with its first event, charges the
// privacy-budget ledger when b.Epsilon > 0 — refusing if the grant's budget
// would be exceeded (TRAIN-3) — and calls enqueue in the same transaction, so
// a job is either admitted, charged and queued, or none of these.
func (d *DB) CreateJob(ctx context.Context, j rampart.Job, ev rampart.JobEvent, b rampart.PrivacyCharge, enqueue func(*sql.Tx) error) error {
	return retryBusy(ctx, func() error { return d.createJob(ctx, j, ev, b, enqueue) })
}

// busyTries bounds retries of a job transaction that found the database
// locked past its busy timeout (many jobs reporting progress at once).
const busyTries = 5

// retryBusy runs f again while it fails with SQLITE_BUSY, with a short
// jittered pause; after the last try the error is unavailable (503), not
// internal.
func retryBusy(ctx context.Context, f func() error) error {
	var err error
	for i := range busyTries {
		if err = f(); err == nil || !isBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(20+rand.IntN(80)*(i+1)) * time.Millisecond):
		}
	}
	return &rampart.Error{Code: rampart.CodeUnavailable, Message: "the metadata store is busy; retry shortly", Err: err}
}

func isBusy(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3lib.SQLITE_BUSY
}

func (d *DB) createJob(ctx context.Context, j rampart.Job, ev rampart.JobEvent, b rampart.PrivacyCharge, enqueue func(*sql.Tx) error) error {
	spec, progress, isolation, result, err := jobValues(j)
	if err != nil {
		return err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "job")
	}
	defer tx.Rollback()
	if b.Epsilon > 0 && b.MaxEpsilon > 0 {
		var spent float64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(epsilon), 0) FROM privacy_ledger WHERE dataset_id=? AND grantee=?`,
			b.DatasetID, b.Grantee).Scan(&spent); err != nil {
			return mapErr(err, "privacy ledger")
		}
		// A small tolerance keeps 1 + 1.5 + 0.5 = 3 within a budget of 3
		// despite binary floating point.
		if spent+b.Epsilon > b.MaxEpsilon+1e-9 {
			return &rampart.Error{Code: rampart.CodeForbidden, Field: "dp.epsilon",
				Message: fmt.Sprintf("privacy budget exceeded: the grant allows ε %g on this dataset, %g is spent, this job asks %g", b.MaxEpsilon, spent, b.Epsilon)}
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (`+jobCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		j.ID, j.TenantID, j.CreatedBy, j.Spec.DatasetID, j.DatasetDigest, spec, j.State, j.Reason, j.Attempt, j.MaxAttempts,
		progress, result, isolation, j.Grantee, j.EpsilonCharged, nanos(j.CreatedAt), optNanos(j.StartedAt), optNanos(j.FinishedAt)); err != nil {
		return mapErr(err, "job")
	}
	if b.Epsilon > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO privacy_ledger (job_id, dataset_id, grantee, epsilon, delta, created_at) VALUES (?,?,?,?,?,?)`,
			j.ID, b.DatasetID, b.Grantee, b.Epsilon, b.Delta, nanos(j.CreatedAt)); err != nil {
			return mapErr(err, "privacy ledger")
		}
	}
	if err := insertEvent(ctx, tx, &ev); err != nil {
		return err
	}
	if enqueue != nil {
		if err := enqueue(tx); err != nil {
			return fmt.Errorf("enqueue job: %w", err)
		}
	}
	return mapErr(tx.Commit(), "job")
}

func insertEvent(ctx context.Context, tx *sql.Tx, ev *rampart.JobEvent) error {
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id=?`, ev.JobID).Scan(&ev.Seq); err != nil {
		return mapErr(err, "job event")
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO job_events (job_id, seq, body) VALUES (?,?,?)`, ev.JobID, ev.Seq, string(body))
	return mapErr(err, "job event")
}

// GetJob returns one job.
func (d *DB) GetJob(ctx context.Context, id string) (rampart.Job, error) {
	j, err := scanJob(d.db.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id=?`, id))
	return j, mapErr(err, "job")
}

// ListJobs lists a tenant's jobs, newest IDs last (cursor order).
func (d *DB) ListJobs(ctx context.Context, tenantID string, p rampart.Page) ([]rampart.Job, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	return d.queryJobs(ctx, p.Limit, `SELECT `+jobCols+` FROM jobs WHERE tenant_id=? AND id > ? ORDER BY id LIMIT ?`,
		tenantID, after, p.Limit)
}

// ListJobsInState lists every job in one of states (recovery after a crash).
func (d *DB) ListJobsInState(ctx context.Context, states ...rampart.JobState) ([]rampart.Job, error) {
	var out []rampart.Job
	for _, s := range states {
		js, _, err := d.queryJobs(ctx, 0, `SELECT `+jobCols+` FROM jobs WHERE state=? ORDER BY id`, s)
		if err != nil {
			return nil, err
		}
		out = append(out, js...)
	}
	return out, nil
}

func (d *DB) queryJobs(ctx context.Context, limit int, q string, args ...any) ([]rampart.Job, string, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", mapErr(err, "jobs")
	}
	defer rows.Close()
	var out []rampart.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, "", mapErr(err, "jobs")
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "jobs")
	}
	if limit == 0 {
		return out, "", nil
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].ID
	}
	return out, encodeCursor(last, len(out), limit), nil
}

// UpdateJob applies change to the stored job and, when change returns an
// event, appends it, all in one transaction (read-modify-write without
// lost updates: the transaction takes SQLite's write lock first). If change
// returns false nothing is written. It returns the job as stored and the
// event with its sequence number.
func (d *DB) UpdateJob(ctx context.Context, id string, change func(*rampart.Job) (*rampart.JobEvent, bool)) (rampart.Job, *rampart.JobEvent, error) {
	var j rampart.Job
	var ev *rampart.JobEvent
	err := retryBusy(ctx, func() error {
		var err error
		j, ev, err = d.updateJob(ctx, id, change)
		return err
	})
	return j, ev, err
}

func (d *DB) updateJob(ctx context.Context, id string, change func(*rampart.Job) (*rampart.JobEvent, bool)) (rampart.Job, *rampart.JobEvent, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return rampart.Job{}, nil, mapErr(err, "job")
	}
	defer tx.Rollback()
	j, ev, ok, err := updateJobTx(ctx, tx, id, change)
	if err != nil || !ok {
		return j, nil, err
	}
	if err := tx.Commit(); err != nil {
		return j, nil, mapErr(err, "job")
	}
	return j, ev, nil
}

// UpdateJobTx is UpdateJob inside the caller's transaction (another
// store's, on this database: AddModelVersionThen), which the caller
// commits; the event's sequence number is final only once it has.
func (d *DB) UpdateJobTx(ctx context.Context, tx *sql.Tx, id string, change func(*rampart.Job) (*rampart.JobEvent, bool)) (rampart.Job, *rampart.JobEvent, error) {
	j, ev, _, err := updateJobTx(ctx, tx, id, change)
	return j, ev, err
}

func updateJobTx(ctx context.Context, tx *sql.Tx, id string, change func(*rampart.Job) (*rampart.JobEvent, bool)) (rampart.Job, *rampart.JobEvent, bool, error) {
	j, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id=?`, id))
	if err != nil {
		return j, nil, false, mapErr(err, "job")
	}
	ev, ok := change(&j)
	if !ok {
		return j, nil, false, nil
	}
	spec, progress, isolation, result, err := jobValues(j)
	if err != nil {
		return j, nil, false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET dataset_digest=?, spec=?, state=?, reason=?, attempt=?, progress=?, result=?,
		isolation=?, started_at=?, finished_at=? WHERE id=?`, j.DatasetDigest, spec, j.State, j.Reason, j.Attempt, progress, result,
		isolation, optNanos(j.StartedAt), optNanos(j.FinishedAt), id); err != nil {
		return j, nil, false, mapErr(err, "job")
	}
	if ev != nil {
		ev.JobID = id
		if err := insertEvent(ctx, tx, ev); err != nil {
			return j, nil, false, err
		}
	}
	return j, ev, true, nil
}

// ListJobEvents returns up to limit events of a job with seq > after.
func (d *DB) ListJobEvents(ctx context.Context, jobID string, after int64, limit int) ([]rampart.JobEvent, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT body FROM job_events WHERE job_id=? AND seq > ? ORDER BY seq LIMIT ?`, jobID, after, limit)
	if err != nil {
		return nil, mapErr(err, "job events")
	}
	defer rows.Close()
	var out []rampart.JobEvent
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, mapErr(err, "job events")
		}
		var ev rampart.JobEvent
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			return nil, fmt.Errorf("job event: %w", err)
		}
		out = append(out, ev)
	}
	return out, mapErr(rows.Err(), "job events")
}

// CountLiveJobs counts a tenant's queued and running jobs (TRAIN-4 quota).
func (d *DB) CountLiveJobs(ctx context.Context, tenantID string) (int, error) {
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs WHERE tenant_id=? AND state IN ('queued','running')`, tenantID).Scan(&n)
	return n, mapErr(err, "jobs")
}

// LedgerSpent is the ε spent on a dataset by a grantee (TRAIN-3).
func (d *DB) LedgerSpent(ctx context.Context, datasetID, grantee string) (float64, error) {
	var spent float64
	err := d.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(epsilon), 0) FROM privacy_ledger WHERE dataset_id=? AND grantee=?`,
		datasetID, grantee).Scan(&spent)
	return spent, mapErr(err, "privacy ledger")
}
