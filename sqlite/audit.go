package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
)

// AuditStore implements auditlog.Store on the audit_leaves, audit_batches
// and audit_checkpoints tables (migration 00002_audit.sql). Use one per
// database (it holds the audit log's write connection) and Close it after the
// auditlog.Log, before closing the DB.
type AuditStore struct {
	db      *sql.DB
	path    string // the database file
	walPath string

	// The journal of deferred batches (auditjournal.go), set up on first
	// use: jstate is 0 before, jstateOwn when this store owns the journal
	// (j set) and jstateShared when another store or process holds it
	// (deferred batches are then plain NORMAL commits).
	jstate atomic.Int32
	j      *journal

	// Writes go through one dedicated connection, one at a time: its page
	// cache stays warm and its prepared inserts stay prepared, instead of
	// alternating between pool connections with cold caches.
	mu    sync.Mutex
	conn  *sql.Conn
	stmts map[int]*sql.Stmt // multi-row inserts on conn, one per size in insertSizes
	// fullSync is the writer connection's synchronous setting: FULL (the
	// database default) or NORMAL for deferred batches.
	fullSync bool

	// The writer connection does not checkpoint the write-ahead log at
	// SQLite's usual 4 MiB (a checkpoint is two fsyncs and megabytes of
	// writes, which would stall every audited request queued behind it).
	// A background checkpoint (checkpoint) keeps the log short instead, and
	// makes it restart from its beginning, so that appends overwrite the
	// file in place rather than growing it. The writer's own automatic
	// checkpoint stays on at walWriterCheckpointPages as the backstop.
	unckpt      atomic.Int64 // estimated bytes appended to the log since the last checkpoint
	ckptRunning atomic.Bool
	ckptWG      sync.WaitGroup
}

// walCheckpointBytes is the estimated growth of the write-ahead log that
// starts a background checkpoint. Each checkpoint ends with a short stall
// of the writer (see checkpoint), so it is spaced well apart; the log is
// in the page cache anyway.
const walCheckpointBytes = 24 << 20

// walWriterCheckpointPages bounds the write-ahead log (pages of 4 KiB: 64
// MiB) when the background checkpoints cannot catch up.
const walWriterCheckpointPages = 16384

// walFrame is one page in the write-ahead log with its frame header; a
// commit writes every page it touched: the table's last leaf page, the time
// index's and audit_batches' (walPagesPerCommit), plus the rows' own bytes.
const (
	walFrame          = 4096 + 24
	walPagesPerCommit = 3
)

// appended counts a batch towards the next background checkpoint and starts
// one when due (never two at once).
func (s *AuditStore) appended(leaves []auditlog.Leaf) {
	n := int64(walPagesPerCommit * walFrame)
	for _, l := range leaves {
		n += int64(len(l.Data) + len(l.Hashes) + 64)
	}
	if s.unckpt.Add(n) < walCheckpointBytes || !s.ckptRunning.CompareAndSwap(false, true) {
		return
	}
	s.unckpt.Store(0)
	s.ckptWG.Add(1)
	go func() {
		defer s.ckptWG.Done()
		defer s.ckptRunning.Store(false)
		s.checkpoint()
	}()
}

// checkpoint copies the write-ahead log into the database in two steps.
// First a PASSIVE checkpoint on another connection, which never blocks the
// writer, copies the bulk. It cannot reach the end of a log that keeps
// growing, and SQLite restarts the log from its beginning only once every
// frame is copied, so a second PASSIVE checkpoint runs on the writer
// connection itself, holding the writer back for the few frames added
// meanwhile (and the checkpoint's two fsyncs): the next commit then starts
// the log afresh. An error leaves the frames in the log, where they are
// safe; the next checkpoint (or any connection's automatic one) retries.
func (s *AuditStore) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return
	}
	if _, err := s.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		s.dropWriter()
	}
}

// writer returns the dedicated write connection; s.mu must be held.
func (s *AuditStore) writer(ctx context.Context) (*sql.Conn, error) {
	if s.conn != nil {
		return s.conn, nil
	}
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, mapErr(err, "audit store")
	}
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", walWriterCheckpointPages)); err != nil {
		c.Close()
		return nil, mapErr(err, "audit store")
	}
	s.conn, s.stmts, s.fullSync = c, map[int]*sql.Stmt{}, true
	return c, nil
}

// dropWriter forgets the write connection after an error, so that a broken
// connection is not reused; s.mu must be held.
func (s *AuditStore) dropWriter() {
	if s.conn == nil {
		return
	}
	for _, st := range s.stmts {
		st.Close()
	}
	s.conn.Close()
	s.conn, s.stmts = nil, nil
}

// write runs f on the write connection, serialised; leaves, when f appends
// them, count towards the next background checkpoint.
func (s *AuditStore) write(ctx context.Context, f func(*sql.Conn) error, leaves ...auditlog.Leaf) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.writer(ctx)
	if err != nil {
		return err
	}
	err = f(c)
	if err == nil && len(leaves) > 0 {
		s.appended(leaves)
	}
	var re *rampart.Error
	if err != nil && !errors.As(err, &re) { // a driver error: start afresh
		s.dropWriter()
	}
	return err
}

// insertSizes are the multi-row INSERT shapes: a batch is written as chunks
// of these sizes, so only a handful of statements are ever prepared.
var insertSizes = []int{256, 32, 4, 1}

var _ auditlog.Store = (*AuditStore)(nil)

// Audit returns an audit log store sharing this database's file and pool.
// Every call returns the same store: it owns the database's audit journal.
func (d *DB) Audit() *AuditStore {
	d.auditOnce.Do(func() { d.audit = &AuditStore{db: d.db, path: d.path, walPath: d.path + "-wal"} })
	return d.audit
}

const (
	jstateOwn    = 1
	jstateShared = 2
	jstateClosed = 3 // after Close: reads go to SQLite alone; a write sets the journal up again
)

// ready sets up the journal on first use: it takes the journal's lock and
// copies whatever an earlier process journaled into audit_leaves.
func (s *AuditStore) ready(ctx context.Context) error { return s.readyFor(ctx, true) }

func (s *AuditStore) readyFor(ctx context.Context, write bool) error {
	if st := s.jstate.Load(); st == jstateOwn || st == jstateShared || (st == jstateClosed && !write) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.jstate.Load(); st == jstateOwn || st == jstateShared || (st == jstateClosed && !write) {
		return nil
	}
	c, err := s.writer(ctx)
	if err != nil {
		return err
	}
	if err := s.recoverJournal(ctx, c); err != nil {
		var re *rampart.Error
		if !errors.As(err, &re) {
			s.dropWriter()
		}
		return err
	}
	return nil
}

// recoverJournal takes the journal's lock and stores every journaled leaf
// not yet in audit_leaves, in order; s.mu held.
func (s *AuditStore) recoverJournal(ctx context.Context, c *sql.Conn) error {
	lf, err := os.OpenFile(s.path+"-audit.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	owned, err := tryLock(lf)
	if err != nil || !owned {
		lf.Close()
		if err != nil {
			return fmt.Errorf("audit journal: lock: %w", err)
		}
		s.jstate.Store(jstateShared)
		return nil
	}
	fail := func(err error) error { lf.Close(); return err }
	// Deferred commits of a process without the journal sit in the
	// write-ahead log: flush them before building on them.
	if err := s.syncWAL(); err != nil {
		return fail(err)
	}
	var count int64
	if err := c.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx)+1, 0) FROM audit_leaves`).Scan(&count); err != nil {
		return fail(mapErr(err, "audit journal"))
	}
	segs, err := journalSegments(s.path)
	if err != nil {
		return fail(fmt.Errorf("audit journal: %w", err))
	}
	next := uint64(count)
	var todo []auditlog.Leaf
	for i, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			return fail(fmt.Errorf("audit journal: %w", err))
		}
		leaves, _, perr := parseJournal(b)
		if perr != nil && i != len(segs)-1 {
			// Only the last segment can end in a torn append.
			return fail(fmt.Errorf("audit journal: %s: %w", filepath.Base(p), perr))
		}
		for _, l := range leaves {
			switch {
			case l.Index < next:
				continue // stored before the crash
			case l.Index > next:
				return fail(fmt.Errorf("audit journal: %s: event %d follows %d events: %w", filepath.Base(p), l.Index, next, rampart.ErrInternal))
			}
			todo = append(todo, l)
			next++
		}
	}
	if err := s.setSync(ctx, c, true); err != nil {
		return fail(err)
	}
	for len(todo) > 0 {
		n := min(len(todo), 8192)
		if err := s.appendLeaves(ctx, c, todo[:n]); err != nil {
			return fail(err)
		}
		todo = todo[n:]
	}
	for _, p := range segs {
		if err := os.Remove(p); err != nil {
			return fail(fmt.Errorf("audit journal: %w", err))
		}
	}
	j := &journal{base: s.path, lock: lf, next: next,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.j = j
	s.jstate.Store(jstateOwn)
	go s.indexLoop(j)
	return nil
}

// indexLoop copies journaled leaves into audit_leaves in the background.
func (s *AuditStore) indexLoop(j *journal) {
	defer close(j.done)
	t := time.NewTicker(journalIndexEvery)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-j.kick:
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// An error leaves the leaves pending (and journaled); the next
		// round or the next reader retries.
		s.flushPending(ctx)
		cancel()
	}
}

// flushPending stores every journaled leaf in audit_leaves, so that a
// reader sees it.
func (s *AuditStore) flushPending(ctx context.Context) error {
	if err := s.readyFor(ctx, false); err != nil {
		return err
	}
	j := s.j
	if s.jstate.Load() != jstateOwn || j == nil {
		return nil
	}
	j.mu.Lock()
	n := len(j.pending)
	j.mu.Unlock()
	if n == 0 {
		j.removeObsolete()
		return nil
	}
	err := s.write(ctx, func(c *sql.Conn) error { return s.drainLocked(ctx, c) })
	j.removeObsolete()
	return err
}

// drainLocked commits the pending leaves with fsync; s.mu held. Appends to
// the journal go on meanwhile (they only add to pending).
func (s *AuditStore) drainLocked(ctx context.Context, c *sql.Conn) error {
	j := s.j
	if j == nil {
		return nil
	}
	j.mu.Lock()
	snap := j.pending
	j.mu.Unlock()
	if len(snap) == 0 {
		return nil
	}
	if err := s.setSync(ctx, c, true); err != nil {
		return err
	}
	if err := s.appendLeaves(ctx, c, snap); err != nil {
		return err
	}
	s.appended(snap)
	j.mu.Lock()
	j.stored(snap[len(snap)-1].Index)
	j.mu.Unlock()
	return nil
}

// Close releases the store's write connection (the database stays open).
// Everything journaled is stored first; if that fails the journal stays
// for the next start, and Close returns the error. The store can be used
// again afterwards.
func (s *AuditStore) Close() error {
	var err error
	if j := s.j; j != nil && s.jstate.Load() == jstateOwn {
		close(j.stop)
		<-j.done
		s.mu.Lock()
		if c, werr := s.writer(context.Background()); werr != nil {
			err = werr
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err = s.drainLocked(ctx, c)
			cancel()
		}
		j.mu.Lock()
		paths := j.obsolete
		j.obsolete = nil
		for _, sg := range j.segs {
			paths = append(paths, sg.path)
		}
		if j.cur != nil {
			paths = append(paths, j.curPath)
		}
		j.closeFiles()
		if err == nil && j.broken == nil {
			for _, p := range paths {
				os.Remove(p)
			}
		}
		j.mu.Unlock()
		j.lock.Close()
		s.j = nil
		s.jstate.Store(jstateClosed)
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.dropWriter()
	s.mu.Unlock()
	s.ckptWG.Wait()
	return err
}

const leafCols = 8

// AppendLeaves implements auditlog.Store: one transaction per batch.
// Journaled leaves are stored first, in the same transaction.
func (s *AuditStore) AppendLeaves(ctx context.Context, leaves []auditlog.Leaf) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if s.jstate.Load() != jstateOwn {
		return s.appendBatch(ctx, leaves, true)
	}
	if err := consecutive(leaves); err != nil || len(leaves) == 0 {
		return err
	}
	return s.write(ctx, func(c *sql.Conn) error {
		j := s.j
		j.mu.Lock()
		defer j.mu.Unlock()
		if leaves[0].Index != j.next {
			return rampart.Errorf(rampart.CodeConflict, "audit log has %d leaves, append starts at %d", j.next, leaves[0].Index)
		}
		all := append(slices.Clip(j.pending), leaves...)
		if err := s.setSync(ctx, c, true); err != nil {
			return err
		}
		if err := s.appendLeaves(ctx, c, all); err != nil {
			return err
		}
		last := leaves[len(leaves)-1].Index
		j.stored(last)
		j.next = last + 1
		return nil
	}, leaves...)
}

func consecutive(leaves []auditlog.Leaf) error {
	for i := range leaves {
		if leaves[i].Index != leaves[0].Index+uint64(i) {
			return rampart.Errorf(rampart.CodeConflict, "audit leaves are not consecutive")
		}
	}
	return nil
}

var _ auditlog.DeferredSyncer = (*AuditStore)(nil)

// AppendLeavesDeferred implements auditlog.DeferredSyncer: the batch is
// committed with synchronous=NORMAL, i.e. written to the write-ahead log
// without waiting for fsync. WAL mode keeps the database consistent either
// way; such a commit survives a crash of the process at once (it is in the
// OS) and a power loss after the next Sync.
//
// With the journal (the usual case) the batch is appended to it, which is
// one write call, and stored in audit_leaves later (auditjournal.go).
func (s *AuditStore) AppendLeavesDeferred(ctx context.Context, leaves []auditlog.Leaf) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if s.jstate.Load() != jstateOwn {
		return s.appendBatch(ctx, leaves, false)
	}
	if err := consecutive(leaves); err != nil || len(leaves) == 0 {
		return err
	}
	j := s.j
	j.mu.Lock()
	defer j.mu.Unlock()
	if leaves[0].Index != j.next {
		return rampart.Errorf(rampart.CodeConflict, "audit log has %d leaves, append starts at %d", j.next, leaves[0].Index)
	}
	if err := j.append(leaves); err != nil {
		return fmt.Errorf("%w: %w", rampart.ErrUnavailable, err)
	}
	return nil
}

// appendBatch writes one batch with synchronous=FULL (full) or NORMAL.
func (s *AuditStore) appendBatch(ctx context.Context, leaves []auditlog.Leaf, full bool) error {
	if err := consecutive(leaves); err != nil || len(leaves) == 0 {
		return err
	}
	return s.write(ctx, func(c *sql.Conn) error {
		if err := s.setSync(ctx, c, full); err != nil {
			return err
		}
		return s.appendLeaves(ctx, c, leaves)
	}, leaves...)
}

// setSync switches the writer connection between synchronous=FULL and
// NORMAL (a per-connection setting); s.mu must be held.
func (s *AuditStore) setSync(ctx context.Context, c *sql.Conn, full bool) error {
	if s.fullSync == full {
		return nil
	}
	mode := "NORMAL"
	if full {
		mode = "FULL"
	}
	if _, err := c.ExecContext(ctx, "PRAGMA synchronous="+mode); err != nil {
		return mapErr(err, "audit store")
	}
	s.fullSync = full
	return nil
}

// Sync implements auditlog.DeferredSyncer: it fsyncs the write-ahead log
// (fdatasync where there is one, as SQLite itself does: the frames and the
// file's size, without a journal commit for its modification time),
// which holds every commit not yet checkpointed (fsync covers the file, not
// the descriptor, so SQLite's own descriptor's writes are included). Frames
// already checkpointed are in the database file, which SQLite fsyncs after
// every checkpoint; with no WAL file at all everything is checkpointed.
//
// With the journal it flushes the journal's files instead: every commit to
// SQLite is then made with fsync.
func (s *AuditStore) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	if j := s.j; s.jstate.Load() == jstateOwn && j != nil {
		j.mu.Lock()
		fs := j.syncFiles()
		dir := j.dirDirty
		j.dirDirty = false
		j.mu.Unlock()
		if dir {
			if err := syncDir(filepath.Dir(s.path)); err != nil {
				j.mu.Lock()
				j.dirDirty = true
				j.mu.Unlock()
				return fmt.Errorf("audit journal: %w", err)
			}
		}
		for _, f := range fs {
			// A file closed meanwhile was stored in SQLite and deleted.
			if err := datasync(f); err != nil && !errors.Is(err, os.ErrClosed) {
				return fmt.Errorf("audit journal: %w", err)
			}
		}
		j.mu.Lock()
		j.synced(fs)
		j.mu.Unlock()
		return nil
	}
	return s.syncWAL()
}

// syncWAL fsyncs the write-ahead log.
func (s *AuditStore) syncWAL() error {
	f, err := os.Open(s.walPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit store: open write-ahead log: %w", err)
	}
	defer f.Close()
	if err := datasync(f); err != nil {
		return fmt.Errorf("audit store: fsync write-ahead log: %w", err)
	}
	return nil
}

// appendLeaves writes one batch in one transaction on the writer connection.
// The transaction is opened with plain BEGIN IMMEDIATE/COMMIT statements
// rather than database/sql's Tx: Tx.StmtContext re-prepares a statement that
// was prepared on a Conn, so every batch re-parsed its multi-row INSERT (a
// fifth of the log's CPU time, measured); here the prepared statements run
// as prepared, on the connection they belong to.
//
// Once begun, the transaction runs to its end whatever happens to ctx: the
// driver would otherwise start a goroutine per statement to watch ctx
// (measured: a fifth of the scheduling delay at 5,000 events/s), and an
// interrupt cannot cut an fsync short anyway.
func (s *AuditStore) appendLeaves(ctx context.Context, c *sql.Conn, leaves []auditlog.Leaf) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return mapErr(err, "audit leaves")
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// Roll back even when ctx is done; if that fails too, return a
		// driver error so that write() drops the connection.
		if _, rerr := c.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
			err = fmt.Errorf("audit leaves: %w (rollback: %v)", errors.Join(err, rampart.ErrUnavailable), rerr)
		}
	}()
	var next int64
	nextStmt, err := s.stmt(ctx, c, stmtNext, `SELECT COALESCE(MAX(idx)+1, 0) FROM audit_leaves`)
	if err != nil {
		return err
	}
	if err := nextStmt.QueryRowContext(ctx).Scan(&next); err != nil {
		return mapErr(err, "audit leaves")
	}
	if uint64(next) != leaves[0].Index {
		return rampart.Errorf(rampart.CodeConflict, "audit log has %d leaves, append starts at %d", next, leaves[0].Index)
	}
	all := leaves
	args := make([]any, 0, min(len(leaves), insertSizes[0])*leafCols)
	for len(leaves) > 0 {
		n := insertSizes[len(insertSizes)-1]
		for _, size := range insertSizes {
			if len(leaves) >= size {
				n = size
				break
			}
		}
		stmt, err := s.insertStmt(ctx, c, n)
		if err != nil {
			return err
		}
		args = args[:0]
		for _, l := range leaves[:n] {
			args = append(args, int64(l.Index), l.Data, l.Hashes, l.Time.UnixNano(), l.Tenant, l.Principal, l.Action, l.Resource)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return mapErr(err, "audit leaves")
		}
		leaves = leaves[n:]
	}
	if err := s.insertBatch(ctx, c, all); err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return mapErr(err, "audit leaves")
	}
	committed = true
	return nil
}

// Keys of the writer's other prepared statements in stmts (row counts are
// positive).
const (
	stmtNext  = -1
	stmtBatch = -2
)

// stmt returns the statement prepared on c under key; s.mu must be held.
func (s *AuditStore) stmt(ctx context.Context, c *sql.Conn, key int, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts[key]; ok {
		return st, nil
	}
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, mapErr(err, "audit store")
	}
	s.stmts[key] = st
	return st, nil
}

// insertBatch records the batch's index range and tenants (audit_batches).
func (s *AuditStore) insertBatch(ctx context.Context, c *sql.Conn, leaves []auditlog.Leaf) error {
	seen := map[string]bool{}
	var tenants []string
	for _, l := range leaves {
		if !seen[l.Tenant] {
			seen[l.Tenant] = true
			tenants = append(tenants, l.Tenant)
		}
	}
	js, err := json.Marshal(tenants)
	if err != nil {
		return fmt.Errorf("audit batches: %w", err)
	}
	st, err := s.stmt(ctx, c, stmtBatch, `INSERT INTO audit_batches(first_idx, last_idx, tenants) VALUES (?,?,?)`)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, int64(leaves[0].Index), int64(leaves[len(leaves)-1].Index), string(js))
	return mapErr(err, "audit batches")
}

// insertStmt returns the prepared n-row insert on c; s.mu must be held.
func (s *AuditStore) insertStmt(ctx context.Context, c *sql.Conn, rows int) (*sql.Stmt, error) {
	if st, ok := s.stmts[rows]; ok {
		return st, nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_leaves(idx, data, hashes, time_ns, tenant, principal, action, resource) VALUES `)
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?)")
	}
	st, err := c.PrepareContext(ctx, b.String())
	if err != nil {
		return nil, mapErr(err, "audit leaves")
	}
	s.stmts[rows] = st
	return st, nil
}

// LeafCount implements auditlog.Store.
func (s *AuditStore) LeafCount(ctx context.Context) (uint64, error) {
	if err := s.flushPending(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx)+1, 0) FROM audit_leaves`).Scan(&n)
	return uint64(n), mapErr(err, "audit leaves")
}

// LeafHashes implements auditlog.Store.
func (s *AuditStore) LeafHashes(ctx context.Context, indexes []uint64) (map[uint64][]byte, error) {
	if err := s.flushPending(ctx); err != nil {
		return nil, err
	}
	out := make(map[uint64][]byte, len(indexes))
	for len(indexes) > 0 {
		n := min(len(indexes), 500)
		q := `SELECT idx, hashes FROM audit_leaves WHERE idx IN (?` + strings.Repeat(",?", n-1) + `)`
		args := make([]any, n)
		for i, x := range indexes[:n] {
			args[i] = int64(x)
		}
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, mapErr(err, "audit nodes")
		}
		for rows.Next() {
			var idx int64
			var h []byte
			if err := rows.Scan(&idx, &h); err != nil {
				rows.Close()
				return nil, mapErr(err, "audit nodes")
			}
			out[uint64(idx)] = h
		}
		if err := rows.Close(); err != nil {
			return nil, mapErr(err, "audit nodes")
		}
		if err := rows.Err(); err != nil {
			return nil, mapErr(err, "audit nodes")
		}
		indexes = indexes[n:]
	}
	return out, nil
}

const leafSelect = `SELECT idx, data, hashes, time_ns, tenant, principal, action, resource FROM audit_leaves `

func scanLeaves(rows *sql.Rows) ([]auditlog.Leaf, error) {
	defer rows.Close()
	var out []auditlog.Leaf
	for rows.Next() {
		var l auditlog.Leaf
		var idx, t int64
		if err := rows.Scan(&idx, &l.Data, &l.Hashes, &t, &l.Tenant, &l.Principal, &l.Action, &l.Resource); err != nil {
			return nil, mapErr(err, "audit leaves")
		}
		l.Index, l.Time = uint64(idx), fromNanos(t)
		out = append(out, l)
	}
	return out, mapErr(rows.Err(), "audit leaves")
}

// ReadLeaves implements auditlog.Store.
func (s *AuditStore) ReadLeaves(ctx context.Context, begin, end uint64) ([]auditlog.Leaf, error) {
	if err := s.flushPending(ctx); err != nil {
		return nil, err
	}
	if end <= begin {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, leafSelect+`WHERE idx >= ? AND idx < ? ORDER BY idx`, int64(begin), int64(end))
	if err != nil {
		return nil, mapErr(err, "audit leaves")
	}
	return scanLeaves(rows)
}

// QueryLeaves implements auditlog.Store. A tenant query walks the batches
// that hold the tenant (audit_batches) in index order and scans only them.
func (s *AuditStore) QueryLeaves(ctx context.Context, q auditlog.LeafQuery) ([]auditlog.Leaf, error) {
	if err := s.flushPending(ctx); err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = rampart.DefaultPageSize
	}
	if q.Tenant == "" {
		return s.queryRange(ctx, q, q.After, math.MaxInt64, limit)
	}
	needle, err := json.Marshal(q.Tenant)
	if err != nil {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	var out []auditlog.Leaf
	after := q.After
	// Start at the batch holding index after+1.
	var from int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(first_idx), 0) FROM audit_batches WHERE first_idx <= ?`,
		after+1).Scan(&from); err != nil {
		return nil, mapErr(err, "audit events")
	}
	for len(out) < limit {
		rows, err := s.db.QueryContext(ctx, `SELECT first_idx, last_idx FROM audit_batches
			WHERE first_idx >= ? AND instr(tenants, ?) > 0 ORDER BY first_idx LIMIT 64`, from, string(needle))
		if err != nil {
			return nil, mapErr(err, "audit events")
		}
		var batches [][2]int64
		for rows.Next() {
			var b [2]int64
			if err := rows.Scan(&b[0], &b[1]); err != nil {
				rows.Close()
				return nil, mapErr(err, "audit events")
			}
			batches = append(batches, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, mapErr(err, "audit events")
		}
		for _, b := range batches {
			if b[1] <= after {
				continue
			}
			got, err := s.queryRange(ctx, q, max(after, b[0]-1), b[1], limit-len(out))
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
			if len(out) == limit {
				return out, nil
			}
			after = b[1]
		}
		if len(batches) < 64 {
			break
		}
		from = batches[len(batches)-1][0] + 1
	}
	return out, nil
}

// queryRange returns up to limit leaves with after < idx <= last matching q.
func (s *AuditStore) queryRange(ctx context.Context, q auditlog.LeafQuery, after, last int64, limit int) ([]auditlog.Leaf, error) {
	where := []string{"idx > ?", "idx <= ?"}
	args := []any{after, last}
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if q.Tenant != "" {
		add("tenant = ?", q.Tenant)
	}
	if q.Principal != "" {
		add("principal = ?", q.Principal)
	}
	if q.Action != "" {
		add("action = ?", q.Action)
	}
	if q.Resource != "" {
		add("resource = ?", q.Resource)
	}
	if !q.Since.IsZero() {
		add("time_ns >= ?", q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		add("time_ns < ?", q.Until.UnixNano())
	}
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, leafSelect+`WHERE `+strings.Join(where, " AND ")+` ORDER BY idx LIMIT ?`, args...)
	if err != nil {
		return nil, mapErr(err, "audit events")
	}
	return scanLeaves(rows)
}

// PutCheckpoint implements auditlog.Store.
func (s *AuditStore) PutCheckpoint(ctx context.Context, c auditlog.StoredCheckpoint) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.write(ctx, func(conn *sql.Conn) error {
		// A checkpoint is never on disk before the leaves it covers.
		if err := s.drainLocked(ctx, conn); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, `INSERT INTO audit_checkpoints(size, root, note, tsa_token, created_ns) VALUES(?,?,?,?,?)`,
			int64(c.Size), c.Root, c.Note, nullBytes(c.Timestamp), c.CreatedAt.UnixNano())
		return mapErr(err, "audit checkpoint")
	})
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// SetCheckpointTimestamp implements auditlog.Store.
func (s *AuditStore) SetCheckpointTimestamp(ctx context.Context, size uint64, token []byte) error {
	return s.write(ctx, func(c *sql.Conn) error {
		res, err := c.ExecContext(ctx, `UPDATE audit_checkpoints SET tsa_token=? WHERE size=? AND tsa_token IS NULL`, token, int64(size))
		if err != nil {
			return mapErr(err, "audit checkpoint")
		}
		if n, err := res.RowsAffected(); err != nil {
			return mapErr(err, "audit checkpoint")
		} else if n == 0 {
			return rampart.Errorf(rampart.CodeNotFound, "audit checkpoint %d without a time-stamp not found", size)
		}
		return nil
	})
}

const cpSelect = `SELECT size, root, note, tsa_token, created_ns FROM audit_checkpoints `

func scanCheckpoints(rows *sql.Rows) ([]auditlog.StoredCheckpoint, error) {
	defer rows.Close()
	var out []auditlog.StoredCheckpoint
	for rows.Next() {
		var c auditlog.StoredCheckpoint
		var size, created int64
		if err := rows.Scan(&size, &c.Root, &c.Note, &c.Timestamp, &created); err != nil {
			return nil, mapErr(err, "audit checkpoints")
		}
		c.Size, c.CreatedAt = uint64(size), fromNanos(created)
		out = append(out, c)
	}
	return out, mapErr(rows.Err(), "audit checkpoints")
}

func (s *AuditStore) oneCheckpoint(ctx context.Context, q string, args ...any) (auditlog.StoredCheckpoint, error) {
	rows, err := s.db.QueryContext(ctx, cpSelect+q, args...)
	if err != nil {
		return auditlog.StoredCheckpoint{}, mapErr(err, "audit checkpoint")
	}
	cs, err := scanCheckpoints(rows)
	if err != nil {
		return auditlog.StoredCheckpoint{}, err
	}
	if len(cs) == 0 {
		return auditlog.StoredCheckpoint{}, &rampart.Error{Code: rampart.CodeNotFound, Message: "audit checkpoint not found"}
	}
	return cs[0], nil
}

// LatestCheckpoint implements auditlog.Store.
func (s *AuditStore) LatestCheckpoint(ctx context.Context) (auditlog.StoredCheckpoint, error) {
	return s.oneCheckpoint(ctx, `ORDER BY size DESC LIMIT 1`)
}

// CheckpointAt implements auditlog.Store.
func (s *AuditStore) CheckpointAt(ctx context.Context, size uint64) (auditlog.StoredCheckpoint, error) {
	return s.oneCheckpoint(ctx, `WHERE size = ?`, int64(size))
}

// Checkpoints implements auditlog.Store.
func (s *AuditStore) Checkpoints(ctx context.Context, from uint64, limit int) ([]auditlog.StoredCheckpoint, error) {
	rows, err := s.db.QueryContext(ctx, cpSelect+`WHERE size >= ? ORDER BY size LIMIT ?`, int64(from), limit)
	if err != nil {
		return nil, mapErr(err, "audit checkpoints")
	}
	return scanCheckpoints(rows)
}

// UntimestampedCheckpoints implements auditlog.Store.
func (s *AuditStore) UntimestampedCheckpoints(ctx context.Context, since time.Time, limit int) ([]auditlog.StoredCheckpoint, error) {
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = since.UnixNano()
	}
	rows, err := s.db.QueryContext(ctx, cpSelect+`WHERE tsa_token IS NULL AND created_ns >= ? ORDER BY size LIMIT ?`, from, limit)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	return scanCheckpoints(rows)
}
