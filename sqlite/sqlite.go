// Package sqlite is Rampart's embedded metadata store: SQLite through the
// pure-Go modernc.org/sqlite driver (no cgo), WAL mode, migrations embedded
// and applied at open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/rampart-mlaas/rampart"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the SQLite store. It implements rampart.Store and keyring.KeysetStore.
type DB struct {
	db   *sql.DB
	path string // the database file; its write-ahead log is path+"-wal"

	auditOnce sync.Once
	audit     *AuditStore
}

var _ rampart.Store = (*DB)(nil)

// Open opens (creating if needed) the database at path and applies migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	d, err := OpenUnmigrated(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := d.Migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// OpenUnmigrated opens the database without applying migrations, so that
// the server can check the root key against an existing store before it
// changes anything.
//
// synchronous=FULL makes every acknowledged commit survive power loss, not
// only a process crash (RES-2); secure_delete overwrites deleted content so a
// shredded key does not linger in free pages (DATA-8).
func OpenUnmigrated(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	for _, p := range []string{
		"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)",
		"foreign_keys(ON)", "secure_delete(ON)",
	} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &DB{db: db, path: path}, nil
}

// Migrate applies the embedded migrations that are not applied yet.
func (d *DB) Migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	prov, err := goose.NewProvider(goose.DialectSQLite3, d.db, sub)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := prov.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// SQL exposes the handle to packages that own their own tables in the same
// database (the audit log), keeping one connection pool and one file.
func (d *DB) SQL() *sql.DB { return d.db }

// Close closes the database.
// The audit store, if used, is closed first (its journal stored).
func (d *DB) Close() error {
	var aerr error
	if d.audit != nil {
		aerr = d.audit.Close()
	}
	return errors.Join(aerr, d.db.Close())
}

// mapErr turns driver errors into rampart error codes.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &rampart.Error{Code: rampart.CodeNotFound, Message: what + " not found"}
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3lib.SQLITE_CONSTRAINT_UNIQUE, sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &rampart.Error{Code: rampart.CodeConflict, Message: what + " already exists", Err: err}
		case sqlite3lib.SQLITE_CONSTRAINT_FOREIGNKEY:
			return &rampart.Error{Code: rampart.CodeNotFound, Message: "referenced object not found", Err: err}
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func optNanos(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func fromOpt(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

// Cursors are the last ID of the previous page, base64url so callers treat
// them as opaque.
func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > 128 || strings.ContainsRune(string(b), 0) {
		return "", rampart.Invalid("cursor", "malformed cursor")
	}
	return string(b), nil
}

func encodeCursor(lastID string, got, limit int) string {
	if got < limit {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}
