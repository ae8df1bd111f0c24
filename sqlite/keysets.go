package sqlite

import (
	"bytes"
	"context"
	"database/sql"

	"github.com/rampart-mlaas/rampart"
)

// CreateKeyset implements keyring.KeysetStore.
func (d *DB) CreateKeyset(ctx context.Context, name string, blob []byte) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO keysets(name, blob) VALUES(?,?)`, name, blob)
	return mapErr(err, "keyset")
}

// GetKeyset implements keyring.KeysetStore.
func (d *DB) GetKeyset(ctx context.Context, name string) ([]byte, error) {
	var b []byte
	err := d.db.QueryRowContext(ctx, `SELECT blob FROM keysets WHERE name=?`, name).Scan(&b)
	return b, mapErr(err, "keyset")
}

// UpdateKeyset implements keyring.KeysetStore as a compare-and-swap.
func (d *DB) UpdateKeyset(ctx context.Context, name string, old, blob []byte) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "keyset")
	}
	defer tx.Rollback()
	var cur []byte
	if err := tx.QueryRowContext(ctx, `SELECT blob FROM keysets WHERE name=?`, name).Scan(&cur); err != nil {
		return mapErr(err, "keyset")
	}
	if !bytes.Equal(cur, old) {
		return &rampart.Error{Code: rampart.CodeConflict, Message: "keyset changed concurrently"}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE keysets SET blob=? WHERE name=?`, blob, name); err != nil {
		return mapErr(err, "keyset")
	}
	return mapErr(tx.Commit(), "keyset")
}

// DeleteKeyset implements keyring.KeysetStore. secure_delete (see Open)
// zeroes the freed page content: the shredded key is gone from the file (DATA-8).
func (d *DB) DeleteKeyset(ctx context.Context, name string) error {
	_, err := d.db.ExecContext(ctx, `DELETE FROM keysets WHERE name=?`, name)
	if err != nil && err != sql.ErrNoRows {
		return mapErr(err, "keyset")
	}
	return nil
}

// ListKeysets implements keyring.KeysetLister.
func (d *DB) ListKeysets(ctx context.Context, prefix string) ([]string, error) {
	// Range scan instead of LIKE: prefix may contain % or _.
	rows, err := d.db.QueryContext(ctx, `SELECT name FROM keysets WHERE name >= ? AND substr(name, 1, ?) = ? ORDER BY name`,
		prefix, len(prefix), prefix)
	if err != nil {
		return nil, mapErr(err, "keysets")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, mapErr(err, "keysets")
		}
		out = append(out, n)
	}
	return out, mapErr(rows.Err(), "keysets")
}
