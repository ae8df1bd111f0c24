package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess/record"
)

var _ record.Store = (*DB)(nil)

const assessCols = `id,tenant_id,model_id,model_version,endpoint,attacks,status,reason,metrics,created_by,created_at,finished_at`

func scanAssessment(s interface{ Scan(...any) error }, extra ...any) (record.Assessment, error) {
	var a record.Assessment
	var attacks, metrics string
	var created int64
	var finished sql.NullInt64
	dst := append([]any{&a.ID, &a.TenantID, &a.ModelID, &a.ModelVersion, &a.Endpoint, &attacks, &a.Status, &a.Reason, &metrics,
		&a.CreatedBy, &created, &finished}, extra...)
	if err := s.Scan(dst...); err != nil {
		return a, err
	}
	a.CreatedAt, a.FinishedAt = fromNanos(created), fromOpt(finished)
	if attacks != "" {
		a.Attacks = strings.Split(attacks, ",")
	}
	if err := json.Unmarshal([]byte(metrics), &a.Metrics); err != nil {
		return a, fmt.Errorf("assessment %s: metrics: %w", a.ID, err)
	}
	return a, nil
}

// CreateAssessment implements record.Store.
func (d *DB) CreateAssessment(ctx context.Context, a record.Assessment) error {
	if a.Status != record.Running {
		return rampart.Invalid("status", "a new assessment is running")
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO assessments(`+assessCols+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,NULL)`,
		a.ID, a.TenantID, a.ModelID, a.ModelVersion, a.Endpoint, strings.Join(a.Attacks, ","), a.Status, a.Reason, "{}",
		a.CreatedBy, nanos(a.CreatedAt))
	return mapErr(err, "assessment")
}

// FinishAssessment implements record.Store: status, reason, metrics and
// report land in one statement.
func (d *DB) FinishAssessment(ctx context.Context, a record.Assessment) error {
	if a.Status != record.Succeeded && a.Status != record.Failed {
		return rampart.Invalid("status", "an assessment finishes succeeded or failed")
	}
	if a.FinishedAt == nil {
		return rampart.Invalid("finished_at", "a finished assessment has a finish time")
	}
	m, err := json.Marshal(a.Metrics)
	if err != nil {
		return err
	}
	if a.Metrics == nil {
		m = []byte("{}")
	}
	res, err := d.db.ExecContext(ctx, `UPDATE assessments SET status=?, reason=?, metrics=?, report=?, finished_at=?
		WHERE tenant_id=? AND id=? AND status='running'`, a.Status, a.Reason, string(m), a.Report, nanos(*a.FinishedAt), a.TenantID, a.ID)
	if err != nil {
		return mapErr(err, "assessment")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return rampart.Errorf(rampart.CodeConflict, "assessment %s is not running", a.ID)
	}
	return nil
}

// GetAssessment implements record.Store (with the report).
func (d *DB) GetAssessment(ctx context.Context, tenantID, id string) (record.Assessment, error) {
	var report []byte
	a, err := scanAssessment(d.db.QueryRowContext(ctx, `SELECT `+assessCols+`,report FROM assessments WHERE tenant_id=? AND id=?`, tenantID, id), &report)
	a.Report = report
	return a, mapErr(err, "assessment")
}

// ListAssessments implements record.Store.
func (d *DB) ListAssessments(ctx context.Context, tenantID, modelID string, version int) ([]record.Assessment, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+assessCols+` FROM assessments WHERE tenant_id=? AND model_id=? AND (?=0 OR model_version=?)
		ORDER BY created_at DESC, id LIMIT 1000`, tenantID, modelID, version, version)
	if err != nil {
		return nil, mapErr(err, "assessments")
	}
	defer rows.Close()
	var out []record.Assessment
	for rows.Next() {
		a, err := scanAssessment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, mapErr(rows.Err(), "assessments")
}

// LatestAssessment implements record.Store.
func (d *DB) LatestAssessment(ctx context.Context, tenantID, modelID string, version int) (record.Assessment, bool, error) {
	a, err := scanAssessment(d.db.QueryRowContext(ctx, `SELECT `+assessCols+` FROM assessments
		WHERE tenant_id=? AND model_id=? AND model_version=? AND status='succeeded' ORDER BY finished_at DESC, id LIMIT 1`, tenantID, modelID, version))
	if err == sql.ErrNoRows {
		return record.Assessment{}, false, nil
	}
	if err != nil {
		return record.Assessment{}, false, mapErr(err, "assessment")
	}
	return a, true, nil
}

// FailRunningAssessments implements record.Store.
func (d *DB) FailRunningAssessments(ctx context.Context, reason string, now time.Time) (int, error) {
	res, err := d.db.ExecContext(ctx, `UPDATE assessments SET status='failed', reason=?, finished_at=? WHERE status='running'`, reason, nanos(now))
	if err != nil {
		return 0, mapErr(err, "assessments")
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// SetAssessmentThresholds implements record.Store: replaces the tenant's
// thresholds in one transaction.
func (d *DB) SetAssessmentThresholds(ctx context.Context, tenantID string, th []rampart.GateSpec) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM assessment_thresholds WHERE tenant_id=?`, tenantID); err != nil {
		return mapErr(err, "assessment thresholds")
	}
	for _, t := range th {
		if _, err := tx.ExecContext(ctx, `INSERT INTO assessment_thresholds(tenant_id,metric,min_value,max_value) VALUES(?,?,?,?)`,
			tenantID, t.Metric, optFloat(t.Min), optFloat(t.Max)); err != nil {
			return mapErr(err, "assessment threshold")
		}
	}
	return mapErr(tx.Commit(), "assessment thresholds")
}

// AssessmentThresholds implements record.Store.
func (d *DB) AssessmentThresholds(ctx context.Context, tenantID string) ([]rampart.GateSpec, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT metric,min_value,max_value FROM assessment_thresholds WHERE tenant_id=? ORDER BY metric`, tenantID)
	if err != nil {
		return nil, mapErr(err, "assessment thresholds")
	}
	defer rows.Close()
	var out []rampart.GateSpec
	for rows.Next() {
		var g rampart.GateSpec
		var lo, hi sql.NullFloat64
		if err := rows.Scan(&g.Metric, &lo, &hi); err != nil {
			return nil, err
		}
		if lo.Valid {
			g.Min = &lo.Float64
		}
		if hi.Valid {
			g.Max = &hi.Float64
		}
		out = append(out, g)
	}
	return out, mapErr(rows.Err(), "assessment thresholds")
}

func optFloat(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
