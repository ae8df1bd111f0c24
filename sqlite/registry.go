package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/rampart-mlaas/rampart"
)

var _ rampart.ModelStore = (*DB)(nil)

// CreateModel implements rampart.ModelStore.
func (d *DB) CreateModel(ctx context.Context, m rampart.Model) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO models(id,tenant_id,name,owner,created_at) VALUES(?,?,?,?,?)`,
		m.ID, m.TenantID, m.Name, m.Owner, nanos(m.CreatedAt))
	return mapErr(err, "model")
}

const modelCols = `id,tenant_id,name,owner,created_at,latest_version,production_version,gates`

func scanModel(s interface{ Scan(...any) error }) (rampart.Model, error) {
	var m rampart.Model
	var c int64
	var gates string
	if err := s.Scan(&m.ID, &m.TenantID, &m.Name, &m.Owner, &c, &m.LatestVersion, &m.ProductionVersion, &gates); err != nil {
		return m, err
	}
	m.CreatedAt = fromNanos(c)
	m.Gates = []rampart.GateSpec{}
	if err := json.Unmarshal([]byte(gates), &m.Gates); err != nil {
		return m, fmt.Errorf("model gates: %w", err)
	}
	return m, nil
}

// SetModelGates implements rampart.ModelStore.
func (d *DB) SetModelGates(ctx context.Context, tenantID, modelID string, gates []rampart.GateSpec) error {
	if gates == nil {
		gates = []rampart.GateSpec{}
	}
	b, err := json.Marshal(gates)
	if err != nil {
		return fmt.Errorf("model gates: %w", err)
	}
	res, err := d.db.ExecContext(ctx, `UPDATE models SET gates=? WHERE tenant_id=? AND id=?`, string(b), tenantID, modelID)
	if err != nil {
		return mapErr(err, "model")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return &rampart.Error{Code: rampart.CodeNotFound, Message: "model not found"}
	}
	return nil
}

// GetModel implements rampart.ModelStore.
func (d *DB) GetModel(ctx context.Context, tenantID, id string) (rampart.Model, error) {
	m, err := scanModel(d.db.QueryRowContext(ctx, `SELECT `+modelCols+` FROM models WHERE tenant_id=? AND id=?`, tenantID, id))
	return m, mapErr(err, "model")
}

// GetModelByName implements rampart.ModelStore.
func (d *DB) GetModelByName(ctx context.Context, tenantID, name string) (rampart.Model, error) {
	m, err := scanModel(d.db.QueryRowContext(ctx, `SELECT `+modelCols+` FROM models WHERE tenant_id=? AND name=?`, tenantID, name))
	return m, mapErr(err, "model")
}

// ListModels implements rampart.ModelStore (ordered by name).
func (d *DB) ListModels(ctx context.Context, tenantID string, p rampart.Page) ([]rampart.Model, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+modelCols+` FROM models WHERE tenant_id=? AND name > ? ORDER BY name LIMIT ?`,
		tenantID, after, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "models")
	}
	defer rows.Close()
	var out []rampart.Model
	for rows.Next() {
		m, err := scanModel(rows)
		if err != nil {
			return nil, "", mapErr(err, "models")
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "models")
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].Name
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// AddModelVersion implements rampart.ModelStore: the version number must be
// the model's latest + 1, checked and bumped in the same transaction.
func (d *DB) AddModelVersion(ctx context.Context, r rampart.ModelRecord) error {
	return d.AddModelVersionThen(ctx, r, nil)
}

// AddModelVersionThen is AddModelVersion that also runs then (when not
// nil) in the same transaction, after the version's row is written and
// before the commit: the version and the caller's own write (a training
// job's final state) are durable together or not at all. An error from
// then rolls both back.
func (d *DB) AddModelVersionThen(ctx context.Context, r rampart.ModelRecord, then func(*sql.Tx) error) error {
	metrics, err := json.Marshal(r.Metrics)
	if err != nil {
		return fmt.Errorf("model version metrics: %w", err)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "model version")
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE models SET latest_version=? WHERE tenant_id=? AND id=? AND latest_version=?`,
		r.Version, r.TenantID, r.ModelID, r.Version-1)
	if err != nil {
		return mapErr(err, "model version")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		var exists int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM models WHERE tenant_id=? AND id=?`, r.TenantID, r.ModelID).Scan(&exists); err != nil {
			return mapErr(err, "model version")
		}
		if exists == 0 {
			return &rampart.Error{Code: rampart.CodeNotFound, Message: "model not found"}
		}
		return &rampart.Error{Code: rampart.CodeConflict, Message: "model version already exists"}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO model_versions(model_id,version,tenant_id,model_name,stage,format,provenance,digest,size,
		algorithm,task,metrics,job_id,created_by,created_at,key_id,was_production,artifact_id,card,bom,attestation,binding)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ModelID, r.Version, r.TenantID, r.ModelName, string(r.Stage), r.Format, r.Provenance, r.Digest, r.Size,
		r.Algorithm, r.Task, string(metrics), r.JobID, r.CreatedBy, nanos(r.CreatedAt), r.KeyID, r.WasProduction,
		r.ArtifactID, r.Card, r.BOM, r.Attestation, r.Binding)
	if err != nil {
		return mapErr(err, "model version")
	}
	if then != nil {
		if err := then(tx); err != nil {
			return err
		}
	}
	return mapErr(tx.Commit(), "model version")
}

const versionCols = `model_id,version,tenant_id,model_name,stage,format,provenance,digest,size,algorithm,task,metrics,job_id,
	created_by,created_at,key_id,was_production`

func scanVersion(s interface{ Scan(...any) error }, extra ...any) (rampart.ModelVersion, error) {
	var v rampart.ModelVersion
	var stage, metrics string
	var c int64
	dst := append([]any{&v.ModelID, &v.Version, &v.TenantID, &v.ModelName, &stage, &v.Format, &v.Provenance, &v.Digest,
		&v.Size, &v.Algorithm, &v.Task, &metrics, &v.JobID, &v.CreatedBy, &c, &v.KeyID, &v.WasProduction}, extra...)
	if err := s.Scan(dst...); err != nil {
		return v, err
	}
	v.Stage = rampart.Stage(stage)
	v.CreatedAt = fromNanos(c)
	if metrics != "" && metrics != "null" {
		if err := json.Unmarshal([]byte(metrics), &v.Metrics); err != nil {
			return v, fmt.Errorf("model version metrics: %w", err)
		}
	}
	return v, nil
}

// GetModelVersion implements rampart.ModelStore.
func (d *DB) GetModelVersion(ctx context.Context, tenantID, modelID string, version int) (rampart.ModelRecord, error) {
	var r rampart.ModelRecord
	v, err := scanVersion(d.db.QueryRowContext(ctx, `SELECT `+versionCols+`,artifact_id,card,bom,attestation,binding FROM model_versions
		WHERE tenant_id=? AND model_id=? AND version=?`, tenantID, modelID, version), &r.ArtifactID, &r.Card, &r.BOM, &r.Attestation, &r.Binding)
	r.ModelVersion = v
	return r, mapErr(err, "model version")
}

// GetModelVersionByJob implements rampart.ModelStore.
func (d *DB) GetModelVersionByJob(ctx context.Context, tenantID, jobID string) (rampart.ModelVersion, error) {
	v, err := scanVersion(d.db.QueryRowContext(ctx, `SELECT `+versionCols+` FROM model_versions WHERE tenant_id=? AND job_id=? AND job_id != ''
		ORDER BY version LIMIT 1`, tenantID, jobID))
	return v, mapErr(err, "model version")
}

// ListModelVersions implements rampart.ModelStore (newest first).
func (d *DB) ListModelVersions(ctx context.Context, tenantID, modelID string, p rampart.Page) ([]rampart.ModelVersion, string, error) {
	p = p.Norm()
	c, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	before := int64(1) << 62
	if c != "" {
		if before, err = strconv.ParseInt(c, 10, 64); err != nil {
			return nil, "", rampart.Invalid("cursor", "malformed cursor")
		}
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+versionCols+` FROM model_versions WHERE tenant_id=? AND model_id=? AND version < ?
		ORDER BY version DESC LIMIT ?`, tenantID, modelID, before, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "model versions")
	}
	defer rows.Close()
	var out []rampart.ModelVersion
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, "", mapErr(err, "model versions")
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "model versions")
	}
	last := ""
	if len(out) > 0 {
		last = strconv.Itoa(out[len(out)-1].Version)
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// SetStage implements rampart.ModelStore.
func (d *DB) SetStage(ctx context.Context, tenantID, modelID string, version int, from, to rampart.Stage) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "model version")
	}
	defer tx.Rollback()
	var cur string
	if err := tx.QueryRowContext(ctx, `SELECT stage FROM model_versions WHERE tenant_id=? AND model_id=? AND version=?`,
		tenantID, modelID, version).Scan(&cur); err != nil {
		return mapErr(err, "model version")
	}
	if rampart.Stage(cur) != from {
		return &rampart.Error{Code: rampart.CodeConflict, Message: fmt.Sprintf("version %d is %s, not %s", version, cur, from)}
	}
	if to == rampart.StageProduction {
		if _, err := tx.ExecContext(ctx, `UPDATE model_versions SET stage=? WHERE tenant_id=? AND model_id=? AND stage=?`,
			string(rampart.StageArchived), tenantID, modelID, string(rampart.StageProduction)); err != nil {
			return mapErr(err, "model version")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE model_versions SET stage=?, was_production=1 WHERE tenant_id=? AND model_id=? AND version=?`,
			string(to), tenantID, modelID, version); err != nil {
			return mapErr(err, "model version")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE models SET production_version=? WHERE tenant_id=? AND id=?`, version, tenantID, modelID); err != nil {
			return mapErr(err, "model")
		}
	} else {
		if _, err := tx.ExecContext(ctx, `UPDATE model_versions SET stage=? WHERE tenant_id=? AND model_id=? AND version=?`,
			string(to), tenantID, modelID, version); err != nil {
			return mapErr(err, "model version")
		}
		if from == rampart.StageProduction {
			if _, err := tx.ExecContext(ctx, `UPDATE models SET production_version=0 WHERE tenant_id=? AND id=?`, tenantID, modelID); err != nil {
				return mapErr(err, "model")
			}
		}
	}
	return mapErr(tx.Commit(), "model version")
}

// AddApproval implements rampart.ModelStore; approving twice is a conflict.
func (d *DB) AddApproval(ctx context.Context, tenantID string, a rampart.ModelApproval) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO model_approvals(model_id,version,tenant_id,principal,created_at) VALUES(?,?,?,?,?)`,
		a.ModelID, a.Version, tenantID, a.Principal, nanos(a.CreatedAt))
	return mapErr(err, "approval")
}

// ListApprovals implements rampart.ModelStore.
func (d *DB) ListApprovals(ctx context.Context, tenantID, modelID string, version int) ([]rampart.ModelApproval, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT model_id,version,principal,created_at FROM model_approvals
		WHERE tenant_id=? AND model_id=? AND version=? ORDER BY created_at`, tenantID, modelID, version)
	if err != nil {
		return nil, mapErr(err, "approvals")
	}
	defer rows.Close()
	var out []rampart.ModelApproval
	for rows.Next() {
		var a rampart.ModelApproval
		var c int64
		if err := rows.Scan(&a.ModelID, &a.Version, &a.Principal, &c); err != nil {
			return nil, mapErr(err, "approvals")
		}
		a.CreatedAt = fromNanos(c)
		out = append(out, a)
	}
	return out, mapErr(rows.Err(), "approvals")
}

// CreateExportGrant implements rampart.ModelStore.
func (d *DB) CreateExportGrant(ctx context.Context, g rampart.ExportGrant) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO model_export_grants(id,tenant_id,model_id,principal_id,granted_by,created_at,expires_at)
		VALUES(?,?,?,?,?,?,?)`, g.ID, g.TenantID, g.ModelID, g.PrincipalID, g.GrantedBy, nanos(g.CreatedAt), optNanos(g.ExpiresAt))
	return mapErr(err, "export grant")
}

// ListExportGrants implements rampart.ModelStore.
func (d *DB) ListExportGrants(ctx context.Context, tenantID, modelID string) ([]rampart.ExportGrant, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id,tenant_id,model_id,principal_id,granted_by,created_at,expires_at,revoked_at
		FROM model_export_grants WHERE tenant_id=? AND model_id=? ORDER BY created_at, id`, tenantID, modelID)
	if err != nil {
		return nil, mapErr(err, "export grants")
	}
	defer rows.Close()
	var out []rampart.ExportGrant
	for rows.Next() {
		var g rampart.ExportGrant
		var c int64
		var exp, rev sql.NullInt64
		if err := rows.Scan(&g.ID, &g.TenantID, &g.ModelID, &g.PrincipalID, &g.GrantedBy, &c, &exp, &rev); err != nil {
			return nil, mapErr(err, "export grants")
		}
		g.CreatedAt, g.ExpiresAt, g.RevokedAt = fromNanos(c), fromOpt(exp), fromOpt(rev)
		out = append(out, g)
	}
	return out, mapErr(rows.Err(), "export grants")
}

// RevokeExportGrant implements rampart.ModelStore.
func (d *DB) RevokeExportGrant(ctx context.Context, tenantID, id string, at time.Time) error {
	res, err := d.db.ExecContext(ctx, `UPDATE model_export_grants SET revoked_at=coalesce(revoked_at, ?) WHERE tenant_id=? AND id=?`,
		nanos(at), tenantID, id)
	if err != nil {
		return mapErr(err, "export grant")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return &rampart.Error{Code: rampart.CodeNotFound, Message: "export grant not found"}
	}
	return nil
}
