package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/dataset"
)

var _ dataset.Store = (*DB)(nil)

type dsScanner interface{ Scan(...any) error }

const dsCols = `id,tenant_id,name,label,schema_json,created_at,created_by,deleted_at,
 COALESCE((SELECT MAX(version) FROM dataset_versions v WHERE v.dataset_id=datasets.id AND v.status='ready'),0)`

func scanDataset(s dsScanner) (dataset.Dataset, error) {
	var d dataset.Dataset
	var schema []byte
	var created int64
	var deleted sql.NullInt64
	if err := s.Scan(&d.ID, &d.TenantID, &d.Name, &d.Label, &schema, &created, &d.CreatedBy, &deleted, &d.Latest); err != nil {
		return d, err
	}
	d.CreatedAt, d.DeletedAt = fromNanos(created), fromOpt(deleted)
	if len(schema) > 0 {
		d.Schema = &dataset.Schema{}
		if err := json.Unmarshal(schema, d.Schema); err != nil {
			return d, fmt.Errorf("dataset %s: stored schema: %w", d.ID, err)
		}
	}
	return d, nil
}

// CreateDataset implements dataset.Store.
func (d *DB) CreateDataset(ctx context.Context, ds dataset.Dataset) error {
	var schema []byte
	if ds.Schema != nil {
		b, err := json.Marshal(ds.Schema)
		if err != nil {
			return err
		}
		schema = b
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO datasets(id,tenant_id,name,label,schema_json,created_at,created_by) VALUES(?,?,?,?,?,?,?)`,
		ds.ID, ds.TenantID, ds.Name, ds.Label, schema, nanos(ds.CreatedAt), ds.CreatedBy)
	return mapErr(err, "dataset")
}

// GetDataset implements dataset.Store.
func (d *DB) GetDataset(ctx context.Context, id string) (dataset.Dataset, error) {
	ds, err := scanDataset(d.db.QueryRowContext(ctx, `SELECT `+dsCols+` FROM datasets WHERE id=?`, id))
	return ds, mapErr(err, "dataset")
}

// ListDatasets implements dataset.Store (live datasets only).
func (d *DB) ListDatasets(ctx context.Context, tenantID string, p rampart.Page) ([]dataset.Dataset, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+dsCols+` FROM datasets WHERE tenant_id=? AND deleted_at IS NULL AND id > ? ORDER BY id LIMIT ?`,
		tenantID, after, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "datasets")
	}
	defer rows.Close()
	var out []dataset.Dataset
	for rows.Next() {
		ds, err := scanDataset(rows)
		if err != nil {
			return nil, "", mapErr(err, "datasets")
		}
		out = append(out, ds)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "datasets")
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].ID
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// MarkDatasetDeleted implements dataset.Store.
func (d *DB) MarkDatasetDeleted(ctx context.Context, id string, at time.Time) error {
	r, err := d.db.ExecContext(ctx, `UPDATE datasets SET deleted_at=?, schema_json=NULL WHERE id=? AND deleted_at IS NULL`, nanos(at), id)
	return dsAffected(r, err, "dataset")
}

func dsAffected(r sql.Result, err error, what string) error {
	if err != nil {
		return mapErr(err, what)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return mapErr(err, what)
	}
	if n == 0 {
		return &rampart.Error{Code: rampart.CodeNotFound, Message: what + " not found"}
	}
	return nil
}

const dsVersionCols = `dataset_id,version,tenant_id,status,format,digest,size,rows,columns,report_digest,pii_kinds,flagged,quarantined,created_at,created_by,deleted_at`

func scanDSVersion(s dsScanner) (dataset.Version, error) {
	var v dataset.Version
	var pii string
	var q int
	var created int64
	var deleted sql.NullInt64
	err := s.Scan(&v.DatasetID, &v.Version, &v.TenantID, &v.Status, &v.Format, &v.Digest, &v.Size, &v.Rows, &v.Columns,
		&v.ReportDigest, &pii, &v.Flagged, &q, &created, &v.CreatedBy, &deleted)
	if pii != "" {
		v.PIIKinds = strings.Split(pii, ",")
	}
	v.Quarantined, v.CreatedAt, v.DeletedAt = q != 0, fromNanos(created), fromOpt(deleted)
	return v, err
}

// ReserveVersion implements dataset.Store: the number comes from a
// per-dataset counter, so a deleted version's number is never reused.
func (d *DB) ReserveVersion(ctx context.Context, v dataset.Version) (dataset.Version, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return v, mapErr(err, "dataset version")
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `UPDATE datasets SET next_version=next_version+1 WHERE id=? AND deleted_at IS NULL RETURNING next_version-1`,
		v.DatasetID).Scan(&v.Version); err != nil {
		return v, mapErr(err, "dataset")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dataset_versions(dataset_id,version,tenant_id,status,format,created_at,created_by) VALUES(?,?,?,?,?,?,?)`,
		v.DatasetID, v.Version, v.TenantID, v.Status, v.Format, nanos(v.CreatedAt), v.CreatedBy); err != nil {
		return v, mapErr(err, "dataset version")
	}
	return v, mapErr(tx.Commit(), "dataset version")
}

// FinishVersion implements dataset.Store.
func (d *DB) FinishVersion(ctx context.Context, v dataset.Version) error {
	q := 0
	if v.Quarantined {
		q = 1
	}
	r, err := d.db.ExecContext(ctx, `UPDATE dataset_versions SET status=?,digest=?,size=?,rows=?,columns=?,report_digest=?,pii_kinds=?,flagged=?,quarantined=?
		WHERE dataset_id=? AND version=? AND status='ingesting'`,
		v.Status, v.Digest, v.Size, v.Rows, v.Columns, v.ReportDigest, strings.Join(v.PIIKinds, ","), v.Flagged, q, v.DatasetID, v.Version)
	return dsAffected(r, err, "dataset version")
}

// DropVersion implements dataset.Store.
func (d *DB) DropVersion(ctx context.Context, datasetID string, version int) error {
	_, err := d.db.ExecContext(ctx, `DELETE FROM dataset_versions WHERE dataset_id=? AND version=? AND status='ingesting'`, datasetID, version)
	return mapErr(err, "dataset version")
}

// GetVersion implements dataset.Store.
func (d *DB) GetVersion(ctx context.Context, datasetID string, version int) (dataset.Version, error) {
	v, err := scanDSVersion(d.db.QueryRowContext(ctx, `SELECT `+dsVersionCols+` FROM dataset_versions WHERE dataset_id=? AND version=?`, datasetID, version))
	return v, mapErr(err, "dataset version")
}

// ListVersions implements dataset.Store (ready and deleted versions).
func (d *DB) ListVersions(ctx context.Context, datasetID string, p rampart.Page) ([]dataset.Version, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	n := 0
	if after != "" {
		if n, err = strconv.Atoi(after); err != nil {
			return nil, "", rampart.Invalid("cursor", "malformed cursor")
		}
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+dsVersionCols+` FROM dataset_versions WHERE dataset_id=? AND status!='ingesting' AND version > ? ORDER BY version LIMIT ?`,
		datasetID, n, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "dataset versions")
	}
	defer rows.Close()
	var out []dataset.Version
	for rows.Next() {
		v, err := scanDSVersion(rows)
		if err != nil {
			return nil, "", mapErr(err, "dataset versions")
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "dataset versions")
	}
	last := ""
	if len(out) > 0 {
		last = strconv.Itoa(out[len(out)-1].Version)
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// MarkVersionDeleted implements dataset.Store. The digest stays: it is a
// hash of the shredded data, not data.
func (d *DB) MarkVersionDeleted(ctx context.Context, datasetID string, version int, at time.Time) error {
	r, err := d.db.ExecContext(ctx, `UPDATE dataset_versions SET status='deleted', deleted_at=?, report_digest='' WHERE dataset_id=? AND version=? AND status='ready'`,
		nanos(at), datasetID, version)
	return dsAffected(r, err, "dataset version")
}

// SetQuarantined implements dataset.Store.
func (d *DB) SetQuarantined(ctx context.Context, datasetID string, version int, quarantined bool) error {
	q := 0
	if quarantined {
		q = 1
	}
	r, err := d.db.ExecContext(ctx, `UPDATE dataset_versions SET quarantined=? WHERE dataset_id=? AND version=? AND status='ready'`,
		q, datasetID, version)
	return dsAffected(r, err, "dataset version")
}

// PendingVersions implements dataset.Store.
func (d *DB) PendingVersions(ctx context.Context) ([]dataset.Version, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+dsVersionCols+` FROM dataset_versions WHERE status='ingesting'`)
	if err != nil {
		return nil, mapErr(err, "dataset versions")
	}
	defer rows.Close()
	var out []dataset.Version
	for rows.Next() {
		v, err := scanDSVersion(rows)
		if err != nil {
			return nil, mapErr(err, "dataset versions")
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err(), "dataset versions")
}

const dsGrantCols = `id,tenant_id,dataset_id,grantee_tenant_id,grantee_principal_id,purpose,require_dp,max_epsilon,expires_at,revoked_at,created_at,created_by`

func scanDSGrant(s dsScanner) (dataset.Grant, error) {
	var g dataset.Grant
	var dp int
	var eps sql.NullFloat64
	var exp, rev sql.NullInt64
	var created int64
	var purpose string
	err := s.Scan(&g.ID, &g.TenantID, &g.DatasetID, &g.GranteeTenantID, &g.GranteePrincipalID, &purpose, &dp, &eps, &exp, &rev, &created, &g.CreatedBy)
	g.Purpose = authz.Purpose(purpose)
	g.Terms.RequireDP = dp != 0
	if eps.Valid {
		e := eps.Float64
		g.Terms.MaxEpsilon = &e
	}
	g.ExpiresAt, g.RevokedAt, g.CreatedAt = fromOpt(exp), fromOpt(rev), fromNanos(created)
	return g, err
}

// CreateGrant implements dataset.Store.
func (d *DB) CreateGrant(ctx context.Context, g dataset.Grant) error {
	dp := 0
	if g.Terms.RequireDP {
		dp = 1
	}
	var eps any
	if g.Terms.MaxEpsilon != nil {
		eps = *g.Terms.MaxEpsilon
	}
	_, err := d.db.ExecContext(ctx, `INSERT INTO dataset_grants(`+dsGrantCols+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`,
		g.ID, g.TenantID, g.DatasetID, g.GranteeTenantID, g.GranteePrincipalID, string(g.Purpose), dp, eps,
		optNanos(g.ExpiresAt), optNanos(g.RevokedAt), nanos(g.CreatedAt), g.CreatedBy)
	return mapErr(err, "grant")
}

// GetGrant implements dataset.Store.
func (d *DB) GetGrant(ctx context.Context, id string) (dataset.Grant, error) {
	g, err := scanDSGrant(d.db.QueryRowContext(ctx, `SELECT `+dsGrantCols+` FROM dataset_grants WHERE id=?`, id))
	return g, mapErr(err, "grant")
}

func (d *DB) listGrants(ctx context.Context, where string, p rampart.Page, args ...any) ([]dataset.Grant, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	args = append(args, after, p.Limit)
	rows, err := d.db.QueryContext(ctx, `SELECT `+dsGrantCols+` FROM dataset_grants WHERE `+where+` AND id > ? ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, "", mapErr(err, "grants")
	}
	defer rows.Close()
	var out []dataset.Grant
	for rows.Next() {
		g, err := scanDSGrant(rows)
		if err != nil {
			return nil, "", mapErr(err, "grants")
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "grants")
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].ID
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// ListGrants implements dataset.Store.
func (d *DB) ListGrants(ctx context.Context, datasetID string, p rampart.Page) ([]dataset.Grant, string, error) {
	return d.listGrants(ctx, `dataset_id=?`, p, datasetID)
}

// ListGrantsTo implements dataset.Store.
func (d *DB) ListGrantsTo(ctx context.Context, principalID, tenantID string, p rampart.Page) ([]dataset.Grant, string, error) {
	return d.listGrants(ctx, `grantee_tenant_id=? AND (grantee_principal_id='' OR grantee_principal_id=?)`, p, tenantID, principalID)
}

// RevokeGrant implements dataset.Store.
func (d *DB) RevokeGrant(ctx context.Context, id string, at time.Time) error {
	r, err := d.db.ExecContext(ctx, `UPDATE dataset_grants SET revoked_at=? WHERE id=? AND revoked_at IS NULL`, nanos(at), id)
	return dsAffected(r, err, "grant")
}

// RevokeDatasetGrants implements dataset.Store.
func (d *DB) RevokeDatasetGrants(ctx context.Context, datasetID string, at time.Time) error {
	_, err := d.db.ExecContext(ctx, `UPDATE dataset_grants SET revoked_at=? WHERE dataset_id=? AND revoked_at IS NULL`, nanos(at), datasetID)
	return mapErr(err, "grants")
}

// GetDatasetPolicy implements dataset.Store; a tenant without a policy
// gets the default: warn on identifiers and on suspect labels.
func (d *DB) GetDatasetPolicy(ctx context.Context, tenantID string) (dataset.Policy, error) {
	p := dataset.Policy{TenantID: tenantID}
	var at int64
	err := d.db.QueryRowContext(ctx, `SELECT pii,label,updated_at,updated_by FROM dataset_policies WHERE tenant_id=?`, tenantID).
		Scan(&p.PII, &p.Label, &at, &p.UpdatedBy)
	if err == sql.ErrNoRows {
		p.PII, p.Label = dataset.PIIWarn, dataset.LabelWarn
		return p, nil
	}
	p.UpdatedAt = fromNanos(at)
	return p, mapErr(err, "dataset policy")
}

// PutDatasetPolicy implements dataset.Store.
func (d *DB) PutDatasetPolicy(ctx context.Context, p dataset.Policy) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO dataset_policies(tenant_id,pii,label,updated_at,updated_by) VALUES(?,?,?,?,?)
		ON CONFLICT(tenant_id) DO UPDATE SET pii=excluded.pii, label=excluded.label, updated_at=excluded.updated_at, updated_by=excluded.updated_by`,
		p.TenantID, p.PII, p.Label, nanos(p.UpdatedAt), p.UpdatedBy)
	return mapErr(err, "dataset policy")
}

// AddLineage implements dataset.Store; recording the same link twice is
// not an error.
func (d *DB) AddLineage(ctx context.Context, l dataset.Lineage) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO dataset_lineage(dataset_id,version,tenant_id,kind,object_id,object_tenant_id,grant_id,created_at)
		VALUES(?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
		l.DatasetID, l.Version, l.TenantID, l.Kind, l.ObjectID, l.ObjectTenantID, l.GrantID, nanos(l.CreatedAt))
	return mapErr(err, "lineage")
}

// ListLineage implements dataset.Store.
func (d *DB) ListLineage(ctx context.Context, datasetID string) ([]dataset.Lineage, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT dataset_id,version,tenant_id,kind,object_id,object_tenant_id,grant_id,created_at,dataset_deleted_at
		FROM dataset_lineage WHERE dataset_id=? ORDER BY version, kind, object_id`, datasetID)
	if err != nil {
		return nil, mapErr(err, "lineage")
	}
	defer rows.Close()
	var out []dataset.Lineage
	for rows.Next() {
		var l dataset.Lineage
		var created int64
		var del sql.NullInt64
		if err := rows.Scan(&l.DatasetID, &l.Version, &l.TenantID, &l.Kind, &l.ObjectID, &l.ObjectTenantID, &l.GrantID, &created, &del); err != nil {
			return nil, mapErr(err, "lineage")
		}
		l.CreatedAt, l.DatasetDeletedAt = fromNanos(created), fromOpt(del)
		out = append(out, l)
	}
	return out, mapErr(rows.Err(), "lineage")
}

// MarkLineageDeleted implements dataset.Store.
func (d *DB) MarkLineageDeleted(ctx context.Context, datasetID string, version int, at time.Time) error {
	_, err := d.db.ExecContext(ctx, `UPDATE dataset_lineage SET dataset_deleted_at=? WHERE dataset_id=? AND version=? AND dataset_deleted_at IS NULL`,
		nanos(at), datasetID, version)
	return mapErr(err, "lineage")
}
