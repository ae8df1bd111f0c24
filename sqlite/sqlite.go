// Package sqlite is Rampart's embedded metadata store: SQLite through the
// pure-Go modernc.org/sqlite driver (no cgo), WAL mode, migrations embedded
// and applied at open.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
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
	base, err := sqlite3.NewConnector("file:" + path + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := sql.OpenDB(stmtCacheConnector{base})
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

// Statement cache. database/sql runs a query given as text (db.QueryContext,
// tx.ExecContext; River's driver does nothing else) through the driver's
// QueryerContext/ExecerContext, and modernc.org/sqlite prepares — parses
// and plans — the text anew every time and finalizes it afterwards. For
// River's queries (its fetch is a CTE) and the stores' own, parsing was
// ~17 % of the server's CPU while jobs ran. Each connection therefore keeps
// the statements it has prepared, keyed by their text, and runs them again
// with new arguments (modernc resets a single-statement driver.Stmt and
// keeps its compiled form). Semantics are the driver's own: same errors,
// same locking (a statement is reset when its rows close or its exec ends,
// so a cached statement holds no lock or read transaction), SQLite
// re-prepares a statement itself after a schema change.
//
// Only text that is one statement is cached (no ';' before the end); a
// statement whose rows are still open is not shared: a second use of the
// same text meanwhile takes the driver's uncached path. The cache is
// bounded per connection and its statements are finalized before the
// connection closes.

// stmtCacheSize bounds the statements cached per connection (River's and
// the stores' queries are a fixed set of a few dozen texts).
const stmtCacheSize = 128

// modernConn is the method set of modernc.org/sqlite's connection; the
// cached connection embeds it so every interface the driver's connection
// implements (database/sql's optional ones and modernc's own, reached
// through sql.Conn.Raw) is still implemented (TestStmtCachePassesThrough).
type modernConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Execer  //nolint:staticcheck // the driver implements it
	driver.Queryer //nolint:staticcheck // the driver implements it
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	RegisterAuthorizer(sqlite3.AuthorizerFn) error
	ColumnInfo(query string) ([]sqlite3.ColumnInfo, error)
	Serialize() ([]byte, error)
	Deserialize([]byte) error
	NewBackup(dstURI string) (*sqlite3.Backup, error)
	NewRestore(srcURI string) (*sqlite3.Backup, error)
	IsReadOnly(schema string) (bool, error)
	Status(op sqlite3.DBStatusOp, reset bool) (current, high int, err error)
	FileControlPersistWAL(dbName string, mode int) (int, error)
	FileControlDataVersion(dbName string) (uint32, error)
	RegisterPreUpdateHook(sqlite3.PreUpdateHookFn)
	RegisterCommitHook(sqlite3.CommitHookFn)
	RegisterRollbackHook(sqlite3.RollbackHookFn)
}

// modernRows is the method set of the driver's rows.
type modernRows interface {
	driver.Rows
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypeNullable
	driver.RowsColumnTypePrecisionScale
	driver.RowsColumnTypeScanType
}

// cachedStmt is the driver's statement for one text.
type cachedStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

type stmtCacheConnector struct{ driver.Connector }

func (c stmtCacheConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	mc, ok := dc.(modernConn)
	if !ok { // another driver version: no cache rather than fewer interfaces
		return dc, nil
	}
	return &stmtCacheConn{modernConn: mc, stmts: make(map[string]*stmtEntry)}, nil
}

type stmtEntry struct {
	st   cachedStmt
	busy bool // its rows are open
}

type stmtCacheConn struct {
	modernConn
	// database/sql uses a connection from one goroutine at a time (rows
	// are closed under the connection's lock too); mu keeps the cache safe
	// even so.
	mu    sync.Mutex
	stmts map[string]*stmtEntry
}

// cacheable reports whether query is a single statement: no ';' except at
// its end.
func cacheable(query string) bool {
	q := strings.TrimRight(query, " \t\r\n")
	q = strings.TrimSuffix(q, ";")
	return len(q) > 0 && !strings.Contains(q, ";")
}

// take returns the cached statement for query, prepared if needed, marked
// busy; nil if it is in use or cannot be cached.
func (c *stmtCacheConn) take(ctx context.Context, query string) *stmtEntry {
	if !cacheable(query) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.stmts[query]; e != nil {
		if e.busy {
			return nil
		}
		e.busy = true
		return e
	}
	ds, err := c.modernConn.PrepareContext(ctx, query)
	if err != nil {
		return nil // the uncached path reports the error
	}
	st, ok := ds.(cachedStmt)
	if !ok {
		ds.Close()
		return nil
	}
	if len(c.stmts) >= stmtCacheSize {
		for q, e := range c.stmts {
			if !e.busy {
				e.st.Close()
				delete(c.stmts, q)
				break
			}
		}
	}
	e := &stmtEntry{st: st, busy: true}
	c.stmts[query] = e
	return e
}

func (c *stmtCacheConn) release(e *stmtEntry) {
	c.mu.Lock()
	e.busy = false
	c.mu.Unlock()
}

func (c *stmtCacheConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e := c.take(ctx, query)
	if e == nil {
		return c.modernConn.ExecContext(ctx, query, args)
	}
	defer c.release(e)
	return e.st.ExecContext(ctx, args)
}

func (c *stmtCacheConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	e := c.take(ctx, query)
	if e == nil {
		return c.modernConn.QueryContext(ctx, query, args)
	}
	r, err := e.st.QueryContext(ctx, args)
	if err != nil {
		c.release(e)
		return nil, err
	}
	mr, ok := r.(modernRows)
	if !ok { // keep the rows' interfaces: run it uncached instead
		err := r.Close()
		c.release(e)
		if err != nil {
			return nil, err
		}
		return c.modernConn.QueryContext(ctx, query, args)
	}
	return &stmtCacheRows{modernRows: mr, conn: c, e: e}, nil
}

// Close finalizes the cached statements, then closes the connection.
func (c *stmtCacheConn) Close() error {
	c.mu.Lock()
	var errs []error
	for q, e := range c.stmts {
		errs = append(errs, e.st.Close())
		delete(c.stmts, q)
	}
	c.mu.Unlock()
	return errors.Join(append(errs, c.modernConn.Close())...)
}

// stmtCacheRows are a cached statement's rows; closing them (which resets
// the statement) makes the statement available again.
type stmtCacheRows struct {
	modernRows
	conn *stmtCacheConn
	e    *stmtEntry
}

func (r *stmtCacheRows) Close() error {
	err := r.modernRows.Close()
	if r.e != nil {
		r.conn.release(r.e)
		r.e = nil
	}
	return err
}
