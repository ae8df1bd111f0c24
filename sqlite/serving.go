package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rampart-mlaas/rampart"
)

var _ rampart.EndpointStore = (*DB)(nil)

const endpointCols = `id,tenant_id,name,model_id,model_name,model_version,model_digest,policy,created_by,created_at,updated_at,generation`

func scanEndpoint(s interface{ Scan(...any) error }) (rampart.Endpoint, error) {
	var e rampart.Endpoint
	var pol string
	var c, u int64
	err := s.Scan(&e.ID, &e.TenantID, &e.Name, &e.ModelID, &e.ModelName, &e.ModelVersion, &e.ModelDigest, &pol, &e.CreatedBy, &c, &u, &e.Generation)
	if err != nil {
		return e, err
	}
	e.CreatedAt, e.UpdatedAt = fromNanos(c), fromNanos(u)
	if err := json.Unmarshal([]byte(pol), &e.Policy); err != nil {
		return e, fmt.Errorf("endpoint %s: policy: %w", e.ID, err)
	}
	return e, nil
}

// CreateEndpoint implements rampart.EndpointStore.
func (d *DB) CreateEndpoint(ctx context.Context, e rampart.Endpoint) error {
	pol, err := json.Marshal(e.Policy)
	if err != nil {
		return err
	}
	_, err = d.db.ExecContext(ctx, `INSERT INTO endpoints(`+endpointCols+`) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.ID, e.TenantID, e.Name, e.ModelID, e.ModelName, e.ModelVersion, e.ModelDigest, string(pol), e.CreatedBy,
		nanos(e.CreatedAt), nanos(e.UpdatedAt), e.Generation)
	return mapErr(err, "endpoint")
}

// GetEndpoint implements rampart.EndpointStore.
func (d *DB) GetEndpoint(ctx context.Context, tenantID, id string) (rampart.Endpoint, error) {
	e, err := scanEndpoint(d.db.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE tenant_id=? AND id=?`, tenantID, id))
	return e, mapErr(err, "endpoint")
}

// GetEndpointByName implements rampart.EndpointStore.
func (d *DB) GetEndpointByName(ctx context.Context, tenantID, name string) (rampart.Endpoint, error) {
	e, err := scanEndpoint(d.db.QueryRowContext(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE tenant_id=? AND name=?`, tenantID, name))
	return e, mapErr(err, "endpoint")
}

// ListEndpoints implements rampart.EndpointStore (ordered by name).
func (d *DB) ListEndpoints(ctx context.Context, tenantID string, p rampart.Page) ([]rampart.Endpoint, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE tenant_id=? AND name > ? ORDER BY name LIMIT ?`,
		tenantID, after, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "endpoints")
	}
	defer rows.Close()
	var out []rampart.Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].Name
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// UpdateEndpoint implements rampart.EndpointStore.
func (d *DB) UpdateEndpoint(ctx context.Context, e rampart.Endpoint) error {
	pol, err := json.Marshal(e.Policy)
	if err != nil {
		return err
	}
	res, err := d.db.ExecContext(ctx, `UPDATE endpoints SET model_version=?, model_digest=?, policy=?, updated_at=?, generation=?
		WHERE tenant_id=? AND id=? AND generation=?`, e.ModelVersion, e.ModelDigest, string(pol), nanos(e.UpdatedAt), e.Generation,
		e.TenantID, e.ID, e.Generation-1)
	if err != nil {
		return mapErr(err, "endpoint")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		if _, gerr := d.GetEndpoint(ctx, e.TenantID, e.ID); gerr != nil {
			return gerr
		}
		return &rampart.Error{Code: rampart.CodeConflict, Message: "endpoint changed concurrently; retry"}
	}
	return nil
}

// DeleteEndpoint implements rampart.EndpointStore (its grants go with it;
// budgets stay, so a re-created endpoint of the same ID cannot reset them).
func (d *DB) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	res, err := d.db.ExecContext(ctx, `DELETE FROM endpoints WHERE tenant_id=? AND id=?`, tenantID, id)
	if err != nil {
		return mapErr(err, "endpoint")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return mapErr(sql.ErrNoRows, "endpoint")
	}
	return nil
}

const grantCols = `id,tenant_id,endpoint_id,to_tenant,to_principal,granted_by,created_at,revoked_at`

func scanGrants(rows *sql.Rows) ([]rampart.EndpointGrant, error) {
	defer rows.Close()
	var out []rampart.EndpointGrant
	for rows.Next() {
		var g rampart.EndpointGrant
		var c int64
		var r sql.NullInt64
		if err := rows.Scan(&g.ID, &g.TenantID, &g.EndpointID, &g.ToTenant, &g.ToPrincipal, &g.GrantedBy, &c, &r); err != nil {
			return nil, err
		}
		g.CreatedAt, g.RevokedAt = fromNanos(c), fromOpt(r)
		out = append(out, g)
	}
	return out, rows.Err()
}

// CreateEndpointGrant implements rampart.EndpointStore.
func (d *DB) CreateEndpointGrant(ctx context.Context, g rampart.EndpointGrant) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO endpoint_grants(`+grantCols+`) VALUES(?,?,?,?,?,?,?,?)`,
		g.ID, g.TenantID, g.EndpointID, g.ToTenant, g.ToPrincipal, g.GrantedBy, nanos(g.CreatedAt), optNanos(g.RevokedAt))
	return mapErr(err, "endpoint grant")
}

// ListEndpointGrants implements rampart.EndpointStore.
func (d *DB) ListEndpointGrants(ctx context.Context, tenantID, endpointID string) ([]rampart.EndpointGrant, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+grantCols+` FROM endpoint_grants WHERE tenant_id=? AND endpoint_id=? ORDER BY created_at, id`,
		tenantID, endpointID)
	if err != nil {
		return nil, mapErr(err, "endpoint grants")
	}
	return scanGrants(rows)
}

// RevokeEndpointGrant implements rampart.EndpointStore.
func (d *DB) RevokeEndpointGrant(ctx context.Context, tenantID, id string, at time.Time) error {
	res, err := d.db.ExecContext(ctx, `UPDATE endpoint_grants SET revoked_at=? WHERE tenant_id=? AND id=? AND revoked_at IS NULL`,
		nanos(at), tenantID, id)
	if err != nil {
		return mapErr(err, "endpoint grant")
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return mapErr(sql.ErrNoRows, "endpoint grant")
	}
	return nil
}

// GrantsTo implements rampart.EndpointStore.
func (d *DB) GrantsTo(ctx context.Context, endpointID string, p rampart.Principal) ([]rampart.EndpointGrant, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+grantCols+` FROM endpoint_grants WHERE endpoint_id=? AND revoked_at IS NULL
		AND (to_principal=? OR (to_principal='' AND to_tenant=?))`, endpointID, p.ID, p.TenantID)
	if err != nil {
		return nil, mapErr(err, "endpoint grants")
	}
	return scanGrants(rows)
}

// ReservedQueries implements rampart.EndpointStore.
func (d *DB) ReservedQueries(ctx context.Context, endpointID, principalID, period string) (int64, error) {
	var n int64
	err := d.db.QueryRowContext(ctx, `SELECT reserved FROM query_budgets WHERE endpoint_id=? AND principal_id=? AND period=?`,
		endpointID, principalID, period).Scan(&n)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return n, mapErr(err, "query budget")
}

// ReserveQueries implements rampart.EndpointStore.
func (d *DB) ReserveQueries(ctx context.Context, endpointID, principalID, period string, upTo int64) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO query_budgets(endpoint_id,principal_id,period,reserved) VALUES(?,?,?,?)
		ON CONFLICT(endpoint_id,principal_id,period) DO UPDATE SET reserved=max(reserved, excluded.reserved)`,
		endpointID, principalID, period, upTo)
	return mapErr(err, "query budget")
}
