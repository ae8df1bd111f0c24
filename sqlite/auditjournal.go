package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart/auditlog"
)

// The audit journal holds deferred batches (auditlog.DeferredSyncer) until
// they are copied into audit_leaves. Committing a small batch to SQLite
// rewrites whole pages — the table's last leaf page, the time index's and
// audit_batches' — two write calls per page, about 0.1–0.2 ms of CPU per
// commit measured at 5,000 predictions/s, where one append to a file is a
// single write of the records themselves. So a deferred batch is appended
// to the journal (in the operating system on return: it survives kill -9),
// made durable by Sync (fdatasync), and moved into SQLite in large batches
// in the background and before any read, checkpoint or waiting commit, so
// that every reader sees it and nothing durable in SQLite is ever ahead of
// the journal. At the next start, whatever the journal holds beyond
// audit_leaves is copied in before anything else happens (AUDIT-1, RES-2).
//
// A journal is a series of segment files DB-audit-<first index>.jnl, each a
// sequence of records:
//
//	u32 body length | u32 CRC-32C of body | body
//	body: u64 index | i64 time (ns) | uvarint-prefixed data, hashes, tenant,
//	      principal, action, resource
//
// A torn record at the end of the last segment (a power loss mid-append) is
// dropped: its append never returned. A bad record anywhere else, or a gap
// in the indexes, stops the store from opening (fail closed). Segments are
// deleted once every record in them is committed to SQLite with fsync.

const (
	journalSegmentBytes = 8 << 20
	// journalRecordMax bounds a record (an event is at most
	// auditlog.MaxEventSize; hashes 32 bytes per tree level).
	journalRecordMax = 4 << 20
	// journalPendingMax bounds the events waiting in memory to be copied
	// into SQLite; beyond it deferred appends are refused (fail closed).
	journalPendingMax = 1 << 20
	// journalIndexBatch wakes the background copy early.
	journalIndexBatch = 4096
	journalIndexEvery = 100 * time.Millisecond
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

var errJournalTorn = errors.New("audit journal: truncated record")

// appendJournalRecord appends l's record to b.
func appendJournalRecord(b []byte, l *auditlog.Leaf) []byte {
	start := len(b)
	b = append(b, make([]byte, 8)...)
	b = binary.LittleEndian.AppendUint64(b, l.Index)
	b = binary.LittleEndian.AppendUint64(b, uint64(l.Time.UnixNano()))
	for _, f := range [][]byte{l.Data, l.Hashes} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	for _, f := range []string{l.Tenant, l.Principal, l.Action, l.Resource} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	body := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, crc32c))
	return b
}

// parseJournalRecord reads the record at the start of b and returns it and
// its length. A record cut short returns errJournalTorn; any other flaw a
// different error.
func parseJournalRecord(b []byte) (auditlog.Leaf, int, error) {
	var l auditlog.Leaf
	if len(b) < 8 {
		return l, 0, errJournalTorn
	}
	n := binary.LittleEndian.Uint32(b)
	if n < 16 || n > journalRecordMax {
		return l, 0, fmt.Errorf("audit journal: record length %d out of range", n)
	}
	if uint64(len(b)-8) < uint64(n) {
		return l, 0, errJournalTorn
	}
	body := b[8 : 8+n]
	if crc32.Checksum(body, crc32c) != binary.LittleEndian.Uint32(b[4:]) {
		return l, 0, errors.New("audit journal: record checksum mismatch")
	}
	l.Index = binary.LittleEndian.Uint64(body)
	l.Time = fromNanos(int64(binary.LittleEndian.Uint64(body[8:])))
	if l.Index > 1<<62 {
		return l, 0, fmt.Errorf("audit journal: record index %d out of range", l.Index)
	}
	rest := body[16:]
	field := func() ([]byte, error) {
		m, k := binary.Uvarint(rest)
		if k <= 0 || m > uint64(len(rest)-k) {
			return nil, errors.New("audit journal: bad field length")
		}
		f := rest[k : k+int(m) : k+int(m)]
		rest = rest[k+int(m):]
		return f, nil
	}
	var fs [6][]byte
	for i := range fs {
		f, err := field()
		if err != nil {
			return l, 0, err
		}
		fs[i] = f
	}
	if len(rest) != 0 {
		return l, 0, errors.New("audit journal: trailing bytes in record")
	}
	l.Data, l.Hashes = slices.Clone(fs[0]), slices.Clone(fs[1])
	l.Tenant, l.Principal, l.Action, l.Resource = string(fs[2]), string(fs[3]), string(fs[4]), string(fs[5])
	return l, int(8 + n), nil
}

// parseJournal returns the records of one segment and the length of its
// valid prefix; err describes why parsing stopped before the end.
func parseJournal(b []byte) (leaves []auditlog.Leaf, valid int, err error) {
	for valid < len(b) {
		l, n, err := parseJournalRecord(b[valid:])
		if err != nil {
			return leaves, valid, err
		}
		leaves = append(leaves, l)
		valid += n
	}
	return leaves, valid, nil
}

// journalSegment is a closed segment not yet deleted.
type journalSegment struct {
	path string
	last uint64 // index of its last record
}

// journal is the in-process state of the audit journal; guarded by mu,
// except where noted.
type journal struct {
	base string   // database path
	lock *os.File // the flock'd lock file: this store owns the journal

	mu       sync.Mutex
	cur      *os.File // the segment being appended to, or nil
	curPath  string
	curSize  int64
	curLast  uint64
	segs     []journalSegment // closed segments, oldest first
	unsynced []*os.File       // closed segments whose data may not be on disk yet
	pending  []auditlog.Leaf  // journaled, not yet in audit_leaves
	next     uint64           // index of the next leaf to be stored
	broken   error            // a failed write that could not be undone
	dirDirty bool             // a segment was created since the directory was last flushed
	obsolete []string         // stored segments to delete, outside mu (removeObsolete)
	buf      []byte

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func journalPath(base string, first uint64) string {
	return fmt.Sprintf("%s-audit-%016x.jnl", base, first)
}

// journalSegments lists the segment files of base, oldest first.
func journalSegments(base string) ([]string, error) {
	paths, err := filepath.Glob(globEscape(base) + "-audit-*.jnl")
	if err != nil {
		return nil, err
	}
	type seg struct {
		first uint64
		path  string
	}
	var segs []seg
	for _, p := range paths {
		hex := strings.TrimSuffix(strings.TrimPrefix(p, base+"-audit-"), ".jnl")
		first, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || len(hex) != 16 {
			continue // not ours
		}
		segs = append(segs, seg{first, p})
	}
	slices.SortFunc(segs, func(a, b seg) int { return cmpU64(a.first, b.first) })
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.path
	}
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// globEscape escapes glob metacharacters in a path.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// append journals leaves (consecutive, starting at j.next); j.mu held. On
// return the records are in the operating system.
func (j *journal) append(leaves []auditlog.Leaf) error {
	if j.broken != nil {
		return j.broken
	}
	if len(j.pending)+len(leaves) > journalPendingMax {
		return errors.New("audit journal: too many events waiting to be stored")
	}
	if j.cur == nil || j.curSize >= journalSegmentBytes {
		if err := j.rotate(leaves[0].Index); err != nil {
			return err
		}
	}
	j.buf = j.buf[:0]
	for i := range leaves {
		j.buf = appendJournalRecord(j.buf, &leaves[i])
	}
	n, err := j.cur.Write(j.buf)
	if err != nil {
		// Take the partial record back, so that later records follow
		// the last whole one; if that fails the journal is unusable.
		if terr := j.cur.Truncate(j.curSize); terr != nil {
			j.broken = fmt.Errorf("audit journal: write failed (%v) and could not be undone: %w", err, terr)
		} else if _, serr := j.cur.Seek(j.curSize, 0); serr != nil {
			j.broken = fmt.Errorf("audit journal: write failed (%v) and could not be undone: %w", err, serr)
		}
		return fmt.Errorf("audit journal: %w", err)
	}
	j.curSize += int64(n)
	j.curLast = leaves[len(leaves)-1].Index
	j.pending = append(j.pending, leaves...)
	j.next = j.curLast + 1
	if len(j.pending) >= journalIndexBatch {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// rotate closes the current segment (it stays until its records are
// stored) and starts a new one named after first; j.mu held.
func (j *journal) rotate(first uint64) error {
	p := journalPath(j.base, first)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	// The new file's name must survive a power loss like its contents:
	// the next Sync flushes the directory too (not here, where every
	// append would wait for it).
	j.dirDirty = true
	if j.cur != nil {
		if j.curSize > 0 {
			j.segs = append(j.segs, journalSegment{path: j.curPath, last: j.curLast})
			j.unsynced = append(j.unsynced, j.cur)
		} else {
			j.cur.Close()
			os.Remove(j.curPath)
		}
	}
	j.cur, j.curPath, j.curSize = f, p, 0
	return nil
}

// stored records that every leaf up to and including last is committed to
// SQLite with fsync: it leaves pending, and segments holding nothing else
// are deleted; j.mu held.
func (j *journal) stored(last uint64) {
	i := 0
	for i < len(j.pending) && j.pending[i].Index <= last {
		i++
	}
	j.pending = j.pending[i:]
	if len(j.pending) == 0 {
		j.pending = nil
	}
	k := 0
	for _, s := range j.segs {
		if s.last <= last {
			// Deleted later, outside mu: an unlink took up to 8 ms here,
			// and every prediction's audit append waited for it. A
			// leftover is skipped at the next start.
			j.obsolete = append(j.obsolete, s.path)
			continue
		}
		j.segs[k] = s
		k++
	}
	j.segs = j.segs[:k]
	if len(j.segs) == 0 {
		for _, f := range j.unsynced {
			f.Close()
		}
		j.unsynced = nil
	}
}

// removeObsolete deletes the segments whose leaves are all stored; j.mu
// must not be held.
func (j *journal) removeObsolete() {
	j.mu.Lock()
	paths := j.obsolete
	j.obsolete = nil
	j.mu.Unlock()
	for _, p := range paths {
		os.Remove(p)
	}
}

// syncFiles returns the files a Sync must flush; j.mu held.
func (j *journal) syncFiles() []*os.File {
	fs := slices.Clone(j.unsynced)
	if j.cur != nil {
		fs = append(fs, j.cur)
	}
	return fs
}

// synced closes the closed segments among fs, now on disk; j.mu held.
func (j *journal) synced(fs []*os.File) {
	j.unsynced = slices.DeleteFunc(j.unsynced, func(f *os.File) bool {
		if slices.Contains(fs, f) {
			f.Close()
			return true
		}
		return false
	})
}

// closeFiles closes every open file of the journal; j.mu held.
func (j *journal) closeFiles() {
	for _, f := range j.unsynced {
		f.Close()
	}
	j.unsynced = nil
	if j.cur != nil {
		j.cur.Close()
		j.cur = nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
