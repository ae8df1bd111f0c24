package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// CreateTenant implements rampart.Store.
func (d *DB) CreateTenant(ctx context.Context, t rampart.Tenant) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO tenants(id,name,created_at,created_by) VALUES(?,?,?,?)`,
		t.ID, t.Name, nanos(t.CreatedAt), t.CreatedBy)
	return mapErr(err, "tenant")
}

const tenantCols = `id,name,created_at,created_by`

func scanTenant(s interface{ Scan(...any) error }) (rampart.Tenant, error) {
	var t rampart.Tenant
	var c int64
	err := s.Scan(&t.ID, &t.Name, &c, &t.CreatedBy)
	t.CreatedAt = fromNanos(c)
	return t, err
}

// GetTenant implements rampart.Store.
func (d *DB) GetTenant(ctx context.Context, id string) (rampart.Tenant, error) {
	t, err := scanTenant(d.db.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id=?`, id))
	return t, mapErr(err, "tenant")
}

// GetTenantByName implements rampart.Store.
func (d *DB) GetTenantByName(ctx context.Context, name string) (rampart.Tenant, error) {
	t, err := scanTenant(d.db.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE name=?`, name))
	return t, mapErr(err, "tenant")
}

// ListTenants implements rampart.Store.
func (d *DB) ListTenants(ctx context.Context, p rampart.Page) ([]rampart.Tenant, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id > ? ORDER BY id LIMIT ?`, after, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "tenants")
	}
	defer rows.Close()
	var out []rampart.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, "", mapErr(err, "tenants")
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "tenants")
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].ID
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

const principalCols = `id,tenant_id,name,kind,role,created_at,disabled`

func scanPrincipal(s interface{ Scan(...any) error }) (rampart.Principal, error) {
	var p rampart.Principal
	var c int64
	var dis int
	err := s.Scan(&p.ID, &p.TenantID, &p.Name, &p.Kind, &p.Role, &c, &dis)
	p.CreatedAt = fromNanos(c)
	p.Disabled = dis != 0
	return p, err
}

func insertPrincipal(ctx context.Context, x interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, p rampart.Principal) error {
	_, err := x.ExecContext(ctx, `INSERT INTO principals(`+principalCols+`) VALUES(?,?,?,?,?,?,?)`,
		p.ID, p.TenantID, p.Name, string(p.Kind), string(p.Role), nanos(p.CreatedAt), boolInt(p.Disabled))
	return mapErr(err, "principal")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreatePrincipal implements rampart.Store.
func (d *DB) CreatePrincipal(ctx context.Context, p rampart.Principal) error {
	return insertPrincipal(ctx, d.db, p)
}

// CreatePrincipalWithKey implements rampart.Store.
func (d *DB) CreatePrincipalWithKey(ctx context.Context, p rampart.Principal, k rampart.APIKey) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "principal")
	}
	defer tx.Rollback()
	if err := insertPrincipal(ctx, tx, p); err != nil {
		return err
	}
	if err := insertKey(ctx, tx, k); err != nil {
		return err
	}
	return mapErr(tx.Commit(), "principal")
}

// GetPrincipal implements rampart.Store.
func (d *DB) GetPrincipal(ctx context.Context, id string) (rampart.Principal, error) {
	p, err := scanPrincipal(d.db.QueryRowContext(ctx, `SELECT `+principalCols+` FROM principals WHERE id=?`, id))
	return p, mapErr(err, "principal")
}

// ListPrincipals implements rampart.Store; tenantID "" lists all tenants.
func (d *DB) ListPrincipals(ctx context.Context, tenantID string, p rampart.Page) ([]rampart.Principal, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+principalCols+` FROM principals
		WHERE (?='' OR tenant_id=?) AND id > ? ORDER BY id LIMIT ?`, tenantID, tenantID, after, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "principals")
	}
	defer rows.Close()
	var out []rampart.Principal
	for rows.Next() {
		x, err := scanPrincipal(rows)
		if err != nil {
			return nil, "", mapErr(err, "principals")
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "principals")
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].ID
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// SetPrincipalDisabled implements rampart.Store.
func (d *DB) SetPrincipalDisabled(ctx context.Context, id string, disabled bool) error {
	res, err := d.db.ExecContext(ctx, `UPDATE principals SET disabled=? WHERE id=?`, boolInt(disabled), id)
	return affected(res, err, "principal")
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return mapErr(err, what)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(err, what)
	}
	if n == 0 {
		return mapErr(sql.ErrNoRows, what)
	}
	return nil
}

const keyCols = `id,principal_id,tenant_id,name,hash,created_at,expires_at,revoked_at,last_used_at`

func scanKey(s interface{ Scan(...any) error }) (rampart.APIKey, error) {
	var k rampart.APIKey
	var c int64
	var exp, rev, used sql.NullInt64
	err := s.Scan(&k.ID, &k.PrincipalID, &k.TenantID, &k.Name, &k.Hash, &c, &exp, &rev, &used)
	k.CreatedAt = fromNanos(c)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromOpt(exp), fromOpt(rev), fromOpt(used)
	return k, err
}

func insertKey(ctx context.Context, x interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, k rampart.APIKey) error {
	if len(k.Hash) == 0 {
		return fmt.Errorf("api key %s: empty hash", k.ID)
	}
	_, err := x.ExecContext(ctx, `INSERT INTO api_keys(`+keyCols+`) VALUES(?,?,?,?,?,?,?,?,?)`,
		k.ID, k.PrincipalID, k.TenantID, k.Name, k.Hash, nanos(k.CreatedAt),
		optNanos(k.ExpiresAt), optNanos(k.RevokedAt), optNanos(k.LastUsedAt))
	return mapErr(err, "api key")
}

// CreateAPIKey implements rampart.Store.
func (d *DB) CreateAPIKey(ctx context.Context, k rampart.APIKey) error {
	return insertKey(ctx, d.db, k)
}

// GetAPIKey implements rampart.Store.
func (d *DB) GetAPIKey(ctx context.Context, id string) (rampart.APIKey, error) {
	k, err := scanKey(d.db.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE id=?`, id))
	return k, mapErr(err, "api key")
}

// ListAPIKeys implements rampart.Store.
func (d *DB) ListAPIKeys(ctx context.Context, principalID string, p rampart.Page) ([]rampart.APIKey, string, error) {
	p = p.Norm()
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE principal_id=? AND id > ? ORDER BY id LIMIT ?`,
		principalID, after, p.Limit)
	if err != nil {
		return nil, "", mapErr(err, "api keys")
	}
	defer rows.Close()
	var out []rampart.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, "", mapErr(err, "api keys")
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err, "api keys")
	}
	last := ""
	if len(out) > 0 {
		last = out[len(out)-1].ID
	}
	return out, encodeCursor(last, len(out), p.Limit), nil
}

// RevokeAPIKey implements rampart.Store. Revoking twice keeps the first time.
func (d *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := d.db.ExecContext(ctx, `UPDATE api_keys SET revoked_at=COALESCE(revoked_at, ?) WHERE id=?`, nanos(at), id)
	return affected(res, err, "api key")
}

// TouchAPIKeys implements rampart.Store.
func (d *DB) TouchAPIKeys(ctx context.Context, used map[string]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "api keys")
	}
	defer tx.Rollback()
	for id, at := range used {
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET last_used_at=MAX(COALESCE(last_used_at,0), ?) WHERE id=?`, nanos(at), id); err != nil {
			return mapErr(err, "api keys")
		}
	}
	return mapErr(tx.Commit(), "api keys")
}
