package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rampart-mlaas/rampart"
	sqlite3 "modernc.org/sqlite"
)

// The cached connection and its rows must implement every method the
// driver's own do (database/sql's optional interfaces and modernc's, reached
// through sql.Conn.Raw), with the same signatures: a driver upgrade that adds
// one fails here instead of silently hiding it.
func TestStmtCachePassesThrough(t *testing.T) {
	ctx := context.Background()
	dsn := "file:" + filepath.Join(t.TempDir(), "p.db")
	base, err := sqlite3.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	wc, err := stmtCacheConnector{base}.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if _, ok := wc.(*stmtCacheConn); !ok {
		t.Fatalf("connection is %T, not cached: the driver's method set changed", wc)
	}
	sameMethods(t, raw, wc)

	rawRows, err := raw.(driver.QueryerContext).QueryContext(ctx, "SELECT 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rawRows.Close()
	rows, err := wc.(driver.QueryerContext).QueryContext(ctx, "SELECT 1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if _, ok := rows.(*stmtCacheRows); !ok {
		t.Fatalf("rows are %T, not the cache's", rows)
	}
	sameMethods(t, rawRows, rows)
}

func sameMethods(t *testing.T, raw, wrapped any) {
	t.Helper()
	rt, rv, wv := reflect.TypeOf(raw), reflect.ValueOf(raw), reflect.ValueOf(wrapped)
	if rt.NumMethod() == 0 {
		t.Fatalf("%T has no methods", raw)
	}
	for i := 0; i < rt.NumMethod(); i++ {
		name := rt.Method(i).Name
		switch name {
		case "Lock", "TryLock", "Unlock":
			// promoted from the driver's internal sync.Mutex, not an
			// interface for its users (locking it from outside would
			// deadlock the driver)
			continue
		}
		m := wv.MethodByName(name)
		if !m.IsValid() {
			t.Errorf("%T lacks %s of %T", wrapped, name, raw)
			continue
		}
		if got, want := m.Type(), rv.MethodByName(name).Type(); got != want {
			t.Errorf("%T.%s is %v, %T's is %v", wrapped, name, got, raw, want)
		}
	}
}

// Statements are cached per connection by text and reused; a text in use
// (its rows open) is run uncached; scripts are not cached; errors leave the
// statement usable; closing the connection empties the cache.
func TestStmtCache(t *testing.T) {
	ctx := context.Background()
	conn := cachedConn(t)
	cache := func() (n int, st map[string]cachedStmt) {
		st = map[string]cachedStmt{}
		if err := conn.Raw(func(dc any) error {
			c := dc.(*stmtCacheConn)
			c.mu.Lock()
			defer c.mu.Unlock()
			for q, e := range c.stmts {
				st[q] = e.st
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return len(st), st
	}

	// A script: run by the driver, not cached.
	if _, err := conn.ExecContext(ctx, `CREATE TABLE t(k TEXT PRIMARY KEY, v INTEGER); CREATE INDEX t_v ON t(v)`); err != nil {
		t.Fatal(err)
	}
	if n, _ := cache(); n != 0 {
		t.Fatalf("script cached: %d statements", n)
	}

	const ins = `INSERT INTO t(k, v) VALUES (?, ?)`
	for i, k := range []string{"a", "b", "c"} {
		if _, err := conn.ExecContext(ctx, ins, k, i); err != nil {
			t.Fatal(err)
		}
	}
	_, st := cache()
	first := st[ins]
	if first == nil {
		t.Fatal("insert not cached")
	}
	// A constraint error comes through as before and the statement stays usable.
	_, err := conn.ExecContext(ctx, ins, "a", 9)
	var re *rampart.Error
	if !errors.As(mapErr(err, "row"), &re) || re.Code != rampart.CodeConflict {
		t.Fatalf("duplicate insert: %v", err)
	}
	if _, err := conn.ExecContext(ctx, ins, "d", 3); err != nil {
		t.Fatal(err)
	}
	if _, st := cache(); st[ins] != first {
		t.Fatal("statement prepared again")
	}

	// The same text while its rows are open: run uncached, both correct.
	const sel = `SELECT k FROM t WHERE v >= ? ORDER BY k`
	outer, err := conn.QueryContext(ctx, sel, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var k string
		if err := outer.Scan(&k); err != nil {
			t.Fatal(err)
		}
		var inner []string
		rows, err := conn.QueryContext(ctx, sel, 3)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k2 string
			if err := rows.Scan(&k2); err != nil {
				t.Fatal(err)
			}
			inner = append(inner, k2)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(inner, []string{"d"}) {
			t.Fatalf("inner query: %v", inner)
		}
		got = append(got, k)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"b", "c", "d"}) {
		t.Fatalf("outer query: %v", got)
	}
	_, st = cache()
	selStmt := st[sel]
	if selStmt == nil {
		t.Fatal("select not cached")
	}
	// Rows closed before the end reset the statement: the next run starts over
	// with its new argument.
	rows, err := conn.QueryContext(ctx, sel, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no row")
	}
	rows.Close()
	var k string
	if err := conn.QueryRowContext(ctx, sel, 2).Scan(&k); err != nil || k != "c" {
		t.Fatalf("after early close: %q, %v", k, err)
	}
	if _, st := cache(); st[sel] != selStmt {
		t.Fatal("select prepared again")
	}
	// A syntax error is the driver's own.
	if _, err := conn.ExecContext(ctx, `INSERT INTO nosuch VALUES (1)`); err == nil {
		t.Fatal("insert into a missing table succeeded")
	}

	if err := conn.Raw(func(dc any) error {
		c := dc.(*stmtCacheConn)
		if err := c.Close(); err != nil {
			return err
		}
		if len(c.stmts) != 0 {
			t.Errorf("%d statements left after Close", len(c.stmts))
		}
		return driver.ErrBadConn // database/sql discards the closed connection
	}); !errors.Is(err, driver.ErrBadConn) {
		t.Fatal(err)
	}
	conn.Close()
}

// The cache is bounded, and full once more distinct texts than the bound
// have run (an empty cache would pass a bound alone).
func TestStmtCacheBound(t *testing.T) {
	ctx := context.Background()
	conn := cachedConn(t)
	defer conn.Close()
	for i := 0; i < stmtCacheSize+20; i++ {
		var n int
		if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT %d + ?", i), i).Scan(&n); err != nil || n != 2*i {
			t.Fatalf("SELECT %d + %d = %d, %v", i, i, n, err)
		}
	}
	if err := conn.Raw(func(dc any) error {
		if n := len(dc.(*stmtCacheConn).stmts); n != stmtCacheSize {
			t.Errorf("%d statements cached after %d texts, want the bound %d", n, stmtCacheSize+20, stmtCacheSize)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// cachedConn is one connection of a fresh database opened as the stores
// open theirs (OpenUnmigrated: the statement cache's connector).
func cachedConn(t *testing.T) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	d, err := OpenUnmigrated(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	conn, err := d.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}
