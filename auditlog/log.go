// Package auditlog is Rampart's tamper-evident audit log (AUDIT-1..4).
//
// Events (who did what to what, the decision and the outcome; AUDIT-3) are
// encoded canonically and appended as leaves of an RFC 6962 Merkle tree whose
// nodes are stored alongside the leaves (Store), so appends cost O(log n) and
// inclusion and consistency proofs are served without rebuilding the tree.
// Appends are group-committed: concurrent callers share one transaction and
// each returns only once its event is durable — on disk, or for the events
// Config.AckOnWrite selects (predictions) committed to the store and so safe
// from a crash of the process, with the flush to disk following at once in
// the background (DeferredSyncer) instead of one fsync wait per request. Fails closed: a full queue or
// a failing store makes Append return an error matching rampart.ErrUnavailable.
//
// A publisher signs a checkpoint (C2SP tlog-checkpoint, Ed25519 signed note)
// at least every second while the log grows, and on demand; with a TSA
// configured each checkpoint is time-stamped (RFC 3161) in the background
// (AUDIT-2). Verify, VerifyStore and VerifyExport check a log, a store and a
// tenant export (AUDIT-4) using only the public key. docs/audit-log.md
// describes the formats and the threat model.
package auditlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog/tsa"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Config configures a Log. Store, Origin and SigningKey are required.
type Config struct {
	Store Store
	// Origin is the checkpoint origin line and the signing key's name, e.g.
	// "rampart.example.com/audit". It identifies the log; never change it.
	Origin string
	// SigningKey signs checkpoints (the keyring supplies it).
	SigningKey ed25519.PrivateKey
	// HMAC seals Event.Sensitive values; nil rejects events that have any.
	HMAC HMACFunc
	// TSA, when set, time-stamps every published checkpoint (AUDIT-2).
	TSA *tsa.Client
	// QueueSize bounds the events waiting to be committed (default 65536);
	// beyond it Append fails with rampart.ErrUnavailable instead of queueing.
	QueueSize int
	// MaxBatch bounds the events per transaction (default 8192).
	MaxBatch int
	// PublishInterval is how often a growing log is checkpointed (default 1 s).
	PublishInterval time.Duration
	// CommitTimeout bounds one batch transaction (default 30 s).
	CommitTimeout time.Duration
	// AckOnWrite selects the events whose callers are answered once the
	// event is committed to the store rather than flushed to disk, when the
	// store implements DeferredSyncer: such an event survives a crash or
	// kill -9 of the server at once, and a power loss once the background
	// flush (repeated while any is outstanding, see FlushInterval;
	// Status.DurableSize) has
	// passed it. Nil selects only events with Event.AckOnWrite set. Batches
	// holding any other event wait for the disk, covering everything before
	// them; so do all batches while flushing fails (fail closed).
	AckOnWrite func(*Event) bool
	// FlushInterval is the least time between two background flushes
	// (default 5 ms; negative: none). A flush covers everything committed
	// before it, so pacing bounds the flushes to 200 a second
	// under any load — each is a disk cache flush that every other writer
	// of the file system waits behind — while adding at most this much to
	// the window a power loss could cut and to the wait of a non-AckOnWrite
	// caller sharing a batch with AckOnWrite events.
	FlushInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives errors of the background goroutines (default slog.Default()).
	Logger *slog.Logger
}

// Log is an open audit log. Its methods are safe for concurrent use.
type Log struct {
	cfg    Config
	st     Store
	signer note.Signer
	vkey   string
	now    func() time.Time
	log    *slog.Logger

	// queue is guarded by qmu: Append sends under RLock, Close closes under Lock.
	qmu    sync.RWMutex
	closed bool
	queue  chan *request

	// Sequencer-owned state: the tree including prepared, maybe not yet
	// durable, batches.
	rng         *compact.Range
	lastTime    time.Time
	failedEpoch atomic.Uint64 // epoch+1 of a batch whose write failed

	head atomic.Pointer[treeHead] // latest committed tree

	// Deferred flushing (see Config.AckOnWrite); ds is nil when the store
	// cannot defer.
	ds          DeferredSyncer
	durable     atomic.Uint64 // tree size known flushed to disk
	syncKick    chan struct{}
	syncFailing atomic.Bool // the last flush failed: every batch waits for the disk
	flushMu     sync.Mutex  // one flush at a time (the flusher and Close)
	lateMu      sync.Mutex
	late        []lateBatch // deferred batches' callers waiting for the disk, in order
	syncs       atomic.Int64
	syncErrors  atomic.Int64

	// writeMu serialises this log's own writes (batches, checkpoints,
	// tokens): SQLite has one writer, and a second one would wait in the
	// busy handler, whose back-off sleeps far longer than the lock is held.
	writeMu sync.Mutex

	pubMu     sync.Mutex
	published atomic.Pointer[Checkpoint] // latest published

	tsaKick   chan struct{}
	tsaStatus atomic.Pointer[TSAStatus]

	stop      context.CancelFunc
	committed chan struct{} // closed when the committer exits
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	failures atomic.Int64
	batches  atomic.Int64
	appended atomic.Int64
	storeNs  atomic.Int64
}

type treeHead struct {
	size uint64
	root []byte
}

type request struct {
	ev         Event
	ackOnWrite bool
	// enc is the canonical encoding made by the caller's goroutine with
	// index 0 and, when the log assigns the time, a placeholder time; the
	// sequencer only splices in the index and time (see spliceEvent).
	enc     []byte
	setTime bool
	idx     uint64
	err     error
	done    chan struct{}
}

// Status is the log's health, for /readyz and metrics.
type Status struct {
	Size          uint64    // committed events
	DurableSize   uint64    // committed events known flushed to disk (≤ Size)
	Syncs         int64     // background flushes since start
	SyncErrors    int64     // failed background flushes since start
	PublishedSize uint64    // size of the latest checkpoint
	PublishedAt   time.Time // when the latest checkpoint was published
	QueueLen      int       // events waiting to be committed
	QueueCap      int
	Closed        bool
	CommitErrors  int64         // failed batch commits since start
	Batches       int64         // committed batches (transactions) since start
	Appended      int64         // events committed since start; Appended/Batches is the mean batch
	StoreTime     time.Duration // total time spent in Store.AppendLeaves
	TSA           TSAStatus
}

// TSAStatus reports the time-stamping of checkpoints (AUDIT-2). An unreachable
// TSA never blocks appends; it shows here as Healthy=false with a backlog.
type TSAStatus struct {
	Configured  bool
	Healthy     bool
	Pending     int // checkpoints still without a token, as last seen
	LastSuccess time.Time
	LastError   string
	LastErrorAt time.Time
}

// Open loads the tree state from cfg.Store and starts the committer, the
// checkpoint publisher and (with a TSA) the time-stamper. Close stops them.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, rampart.Invalid("store", "audit log needs a store")
	}
	signer, vkey, err := NewNoteSigner(cfg.Origin, cfg.SigningKey)
	if err != nil {
		return nil, err
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1 << 16
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 8192
	}
	if cfg.PublishInterval <= 0 {
		cfg.PublishInterval = time.Second
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 30 * time.Second
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 5 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	l := &Log{
		cfg: cfg, st: cfg.Store, signer: signer, vkey: vkey, now: cfg.Now, log: cfg.Logger,
		queue: make(chan *request, cfg.QueueSize), tsaKick: make(chan struct{}, 1),
		committed: make(chan struct{}), syncKick: make(chan struct{}, 1),
	}
	l.ds, _ = cfg.Store.(DeferredSyncer)
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	if latest, err := l.st.LatestCheckpoint(ctx); err == nil {
		c, err := ParseCheckpoint(latest.Note, mustVerifier(vkey))
		if err != nil {
			return nil, fmt.Errorf("audit: latest stored checkpoint does not verify with the configured key: %w", err)
		}
		// Never append to a store that has lost or changed what was signed:
		// that would fork the history (AUDIT-1). Restoring an older backup
		// lands here too.
		head := l.head.Load()
		if c.Size > head.size {
			return nil, fmt.Errorf("audit: %w: the store holds %d events but checkpoint %d was signed (truncated, or restored from an older backup)",
				rampart.ErrInternal, head.size, c.Size)
		}
		root, err := rootAt(ctx, l.st, c.Size)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(root, c.Root) {
			return nil, fmt.Errorf("audit: %w: the stored tree does not match signed checkpoint %d", rampart.ErrInternal, c.Size)
		}
		c.Timestamp = latest.Timestamp
		l.published.Store(&c)
	} else if !errors.Is(err, rampart.ErrNotFound) {
		return nil, fmt.Errorf("audit: read latest checkpoint: %w", err)
	}
	l.tsaStatus.Store(&TSAStatus{Configured: cfg.TSA != nil, Healthy: cfg.TSA != nil})

	bgctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	if l.ds != nil {
		// A previous process may have died between a deferred commit and
		// its flush; flush before building on it.
		if err := l.ds.Sync(ctx); err != nil {
			cancel()
			return nil, fmt.Errorf("audit: flush the store: %w", err)
		}
		l.bg.Add(1)
		go l.syncLoop(bgctx)
	}
	l.durable.Store(l.head.Load().size)
	go l.commitLoop()
	l.bg.Add(1)
	go l.publishLoop(bgctx)
	if cfg.TSA != nil {
		l.bg.Add(1)
		go l.timestampLoop(bgctx)
		l.kickTSA()
	}
	return l, nil
}

func mustVerifier(vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		panic(err) // vkey was produced by note.NewEd25519VerifierKey
	}
	return v
}

// load reads the size and compact range of the stored tree.
func (l *Log) load(ctx context.Context) error {
	n, err := l.st.LeafCount(ctx)
	if err != nil {
		return fmt.Errorf("audit: count leaves: %w", err)
	}
	rng, err := loadRange(ctx, l.st, n)
	if err != nil {
		return fmt.Errorf("audit: load tree: %w", err)
	}
	if n > 0 {
		last, err := l.st.ReadLeaves(ctx, n-1, n)
		if err != nil || len(last) != 1 {
			return fmt.Errorf("audit: read last leaf: %w", errors.Join(err, rampart.ErrInternal))
		}
		ev, err := ParseEvent(last[0].Data)
		if err != nil {
			return fmt.Errorf("audit: last leaf: %w", err)
		}
		l.lastTime = ev.Time
	}
	l.rng = rng
	l.head.Store(&treeHead{size: n, root: rangeRoot(rng)})
	return nil
}

// VerifierKey returns the public key in note verifier format
// ("<origin>+<key hash>+<base64 Ed25519 key>"), for `rampart audit key`.
func (l *Log) VerifierKey() string { return l.vkey }

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.cfg.Origin }

// Size returns the number of committed events.
func (l *Log) Size() uint64 { return l.head.Load().size }

var errClosed = rampart.Errorf(rampart.CodeUnavailable, "audit log is closed")

// Append records ev and returns its index once the batch holding it is
// durably committed (for AckOnWrite events: committed, and flushed to disk in
// the background; see Config.AckOnWrite). It fails closed: when the queue is full, the log closed
// or the store failing it returns an error matching rampart.ErrUnavailable,
// and the caller must refuse the audited action (HTTP 503). Invalid events
// return rampart.ErrInvalid. Index is assigned by the log; Time too when zero.
//
// If ctx ends while waiting, Append returns ctx's error; the event may still
// be committed (the log then holds an attempt that was refused).
func (l *Log) Append(ctx context.Context, ev Event) (uint64, error) {
	if err := ev.validate(); err != nil {
		return 0, err
	}
	details, err := ev.sealDetails(ctx, l.cfg.HMAC)
	if err != nil {
		return 0, err
	}
	ev.Details, ev.Sensitive = details, nil
	// Encode here, in the caller's goroutine, so that the single sequencer
	// only splices; this also checks the size (with room for any index).
	req := &request{ev: ev, setTime: ev.Time.IsZero(), done: make(chan struct{})}
	req.ackOnWrite = ev.AckOnWrite || (l.cfg.AckOnWrite != nil && l.cfg.AckOnWrite(&ev))
	ev.Index = 0
	if req.setTime {
		ev.Time = time.Unix(0, 0)
	}
	enc, err := ev.MarshalCanonical()
	if err != nil {
		return 0, err
	}
	if len(enc)+19 > MaxEventSize {
		return 0, rampart.Errorf(rampart.CodeTooLarge, "audit event is larger than %d bytes", MaxEventSize)
	}
	req.enc = enc
	l.qmu.RLock()
	if l.closed {
		l.qmu.RUnlock()
		return 0, errClosed
	}
	select {
	case l.queue <- req:
		l.qmu.RUnlock()
	default:
		l.qmu.RUnlock()
		return 0, rampart.Errorf(rampart.CodeUnavailable, "audit log queue is full")
	}
	select {
	case <-req.done:
		return req.idx, req.err
	case <-ctx.Done():
		return 0, fmt.Errorf("audit: waiting for commit: %w", ctx.Err())
	}
}

// The append path is a two-stage pipeline. The sequencer (commitLoop) takes
// waiting events, assigns indexes, encodes and hashes them into a prepared
// batch; the writer (writeLoop) stores one prepared batch per transaction and
// only then publishes the new tree head and wakes the callers — group commit.
// While the writer waits for the disk, the sequencer keeps adding whatever
// arrives to the next batch (up to MaxBatch) and hands it over as soon as the
// writer is free, so batches grow with the load and the preparation overlaps
// the write.
//
// A failed write fails its batch and every batch already prepared after it
// (their indexes assumed it landed); the sequencer then waits for the writer
// to go idle and reloads the tree from the store before going on (a failed
// commit may or may not have landed).
func (l *Log) commitLoop() {
	out := make(chan *prepared)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		l.writeLoop(out)
	}()
	defer func() {
		close(out)
		<-writerDone
		close(l.committed)
	}()
	var epoch uint64
	var p *prepared
	send := func() {
		out <- p
		l.rng, l.lastTime = p.rng, p.lastTime
		p = nil
	}
	for {
		if p == nil {
			req, ok := <-l.queue
			if !ok {
				return
			}
			if l.failedEpoch.Load() == epoch+1 {
				idle := make(chan struct{})
				out <- &prepared{barrier: idle}
				<-idle
				ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CommitTimeout)
				err := l.load(ctx)
				cancel()
				if err != nil {
					l.finish([]*request{req}, fmt.Errorf("audit: reload after a failed commit: %w", err))
					continue
				}
				epoch++
			}
			var err error
			if p, err = l.newPrepared(epoch); err != nil {
				l.finish([]*request{req}, err)
				continue
			}
			l.extend(p, req)
		}
		// Take everything already queued.
	drain:
		for len(p.batch) < l.cfg.MaxBatch {
			select {
			case r, ok := <-l.queue:
				if !ok {
					send()
					return
				}
				l.extend(p, r)
			default:
				break drain
			}
		}
		if len(p.batch) >= l.cfg.MaxBatch {
			send()
			continue
		}
		// Hand over when the writer is free; meanwhile keep growing the batch.
		select {
		case out <- p:
			l.rng, l.lastTime = p.rng, p.lastTime
			p = nil
		case r, ok := <-l.queue:
			if !ok {
				send()
				return
			}
			l.extend(p, r)
		}
	}
}

// prepared is a sequenced batch on its way to the store, or a barrier.
type prepared struct {
	batch    []*request
	leaves   []Leaf
	epoch    uint64
	rng      *compact.Range // the tree after this batch
	lastTime time.Time
	buf      []byte // node hashes of the batch, one allocation per chunk
	barrier  chan struct{}
}

func (l *Log) newPrepared(epoch uint64) (*prepared, error) {
	hashes := make([][]byte, len(l.rng.Hashes()))
	copy(hashes, l.rng.Hashes())
	rng, err := rangeFactory.NewRange(0, l.rng.End(), hashes)
	if err != nil {
		return nil, err
	}
	return &prepared{epoch: epoch, rng: rng, lastTime: l.lastTime}, nil
}

// extend sequences one more event into p: index, time, splice, hashes.
func (l *Log) extend(p *prepared, r *request) {
	ev := &r.ev
	ev.Index = p.rng.End()
	if ev.Time.IsZero() {
		// Monotonic times keep time order and index order close.
		t := l.now().UTC()
		if t.Before(p.lastTime) {
			t = p.lastTime
		}
		ev.Time = t
	}
	data, err := spliceEvent(r.enc, ev.Index, ev.Time, r.setTime)
	if err != nil {
		l.finish([]*request{r}, err)
		return
	}
	// The leaf hash and one hash per perfect subtree the leaf completes.
	need := (1 + bits.TrailingZeros64(^ev.Index)) * HashSize
	if cap(p.buf)-len(p.buf) < need {
		// A batch's first chunk is small: most batches at moderate rates
		// hold one or two events, and an 8 KiB chunk each was the largest
		// allocation of the append path (GC every 50 ms at 5,000 events/s).
		n := 256 * HashSize
		if p.buf == nil {
			n = 16 * HashSize
		}
		p.buf = make([]byte, 0, max(n, need))
	}
	start := len(p.buf)
	if err := p.rng.Append(LeafHash(data), func(_ compact.NodeID, h []byte) { p.buf = append(p.buf, h...) }); err != nil {
		l.finish([]*request{r}, err) // cannot happen for a range built from 0
		return
	}
	if ev.Time.After(p.lastTime) {
		p.lastTime = ev.Time
	}
	p.leaves = append(p.leaves, Leaf{Index: ev.Index, Data: data, Hashes: p.buf[start:len(p.buf):len(p.buf)],
		Time: ev.Time, Tenant: ev.Tenant, Principal: ev.Principal, Action: ev.Action, Resource: ev.Resource})
	p.batch = append(p.batch, r)
	r.idx = ev.Index
}

// writeLoop stores prepared batches in order (see commitLoop).
//
// A batch without AckOnWrite events is a waiting commit (fsync included):
// while it waits for the disk the next batch grows, which is what makes
// group commit efficient. A batch with any AckOnWrite event (with a store
// that can defer its flush, DeferredSyncer) is committed without fsync: its
// AckOnWrite callers are answered at once and the others are handed to the
// flusher (syncLoop), which answers them once an fsync has covered their
// batch — so a state change sharing a batch with predictions never makes
// them wait for the disk. While flushing fails, every batch is a waiting
// commit (and fails closed if the disk is gone).
func (l *Log) writeLoop(in <-chan *prepared) {
	for p := range in {
		if p.barrier != nil {
			close(p.barrier)
			continue
		}
		if l.failedEpoch.Load() == p.epoch+1 {
			l.finish(p.batch, fmt.Errorf("audit: an earlier batch failed: %w", rampart.ErrUnavailable))
			continue
		}
		deferred := false
		if l.ds != nil && !l.syncFailing.Load() {
			for _, r := range p.batch {
				if r.ackOnWrite {
					deferred = true
					break
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.CommitTimeout)
		t0 := time.Now()
		var err error
		if deferred {
			// Not under writeMu: a deferred append must not queue
			// behind a checkpoint's durable write (DeferredSyncer).
			err = l.ds.AppendLeavesDeferred(ctx, p.leaves)
		} else {
			l.writeMu.Lock()
			err = l.st.AppendLeaves(ctx, p.leaves)
			l.writeMu.Unlock()
		}
		l.storeNs.Add(int64(time.Since(t0)))
		cancel()
		if err != nil {
			l.failedEpoch.Store(p.epoch + 1)
			l.finish(p.batch, fmt.Errorf("audit: append %d leaves at %d: %w", len(p.leaves), p.leaves[0].Index, err))
			continue
		}
		l.batches.Add(1)
		l.appended.Add(int64(len(p.batch)))
		end := p.rng.End()
		l.head.Store(&treeHead{size: end, root: rangeRoot(p.rng)})
		if !deferred {
			// A waiting commit is on disk with everything before it,
			// including deferred batches whose callers still wait.
			l.setDurable(end)
			l.syncFailing.Store(false)
			l.finish(p.batch, nil)
			l.releaseLate(end, nil)
			continue
		}
		var late []*request
		for _, r := range p.batch {
			if r.ackOnWrite {
				close(r.done) // committed: r.err stays nil
			} else {
				late = append(late, r)
			}
		}
		if len(late) > 0 {
			l.lateMu.Lock()
			l.late = append(l.late, lateBatch{end: end, reqs: late})
			l.lateMu.Unlock()
		}
		select {
		case l.syncKick <- struct{}{}:
		default:
		}
	}
}

// lateBatch is the callers of one deferred batch still waiting for the disk.
type lateBatch struct {
	end  uint64 // tree size after the batch
	reqs []*request
}

func (l *Log) setDurable(n uint64) {
	for {
		d := l.durable.Load()
		if n <= d || l.durable.CompareAndSwap(d, n) {
			return
		}
	}
}

// syncLoop flushes deferred commits to disk: as soon as one is outstanding
// and again until none is, at most once per FlushInterval, so the window a
// power loss could cut is about one flush and one interval long, and each flush answers every waiting caller it covers. A
// failing flush refuses the callers waiting for it (503) and makes every
// following batch a waiting commit until a flush or a waiting commit
// succeeds.
func (l *Log) syncLoop(ctx context.Context) {
	defer l.bg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.syncKick:
		}
		for ctx.Err() == nil && l.outstanding() {
			t0 := time.Now()
			err := l.flush(ctx)
			if wait := l.cfg.FlushInterval - time.Since(t0); err == nil && wait > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
			if err != nil {
				l.log.Error("audit: flushing committed events to disk failed; appends now wait for the disk", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
	}
}

// outstanding reports whether anything committed is not known on disk.
func (l *Log) outstanding() bool {
	if l.durable.Load() < l.head.Load().size {
		return true
	}
	l.lateMu.Lock()
	defer l.lateMu.Unlock()
	return len(l.late) > 0
}

// flush makes everything committed so far durable on disk and answers the
// callers waiting for that.
func (l *Log) flush(ctx context.Context) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	target := l.head.Load().size // every late batch up to target is queued already
	fctx, cancel := context.WithTimeout(ctx, l.cfg.CommitTimeout)
	err := l.ds.Sync(fctx)
	cancel()
	if err != nil {
		l.syncErrors.Add(1)
		l.syncFailing.Store(true)
		err = fmt.Errorf("audit: flush to disk: %w", err)
	} else {
		l.syncs.Add(1)
		l.syncFailing.Store(false)
		l.setDurable(target)
	}
	// On failure these events are committed but their callers are
	// refused: the log then holds attempts that were refused, as when a
	// caller gives up waiting.
	l.releaseLate(target, err)
	return err
}

// releaseLate answers the callers of deferred batches ending at or before
// size: their events are on disk (err nil), or the flush failed.
func (l *Log) releaseLate(size uint64, err error) {
	l.lateMu.Lock()
	var done []lateBatch
	i := 0
	for ; i < len(l.late) && l.late[i].end <= size; i++ {
		done = append(done, l.late[i])
	}
	l.late = l.late[i:]
	l.lateMu.Unlock()
	for _, b := range done {
		l.finish(b.reqs, err)
	}
}

// finish wakes the callers of a batch; a failure fails closed (503).
func (l *Log) finish(batch []*request, err error) {
	if err != nil {
		l.failures.Add(1)
		l.log.Error("audit: commit failed; the audited actions are refused", "events", len(batch), "err", err)
		err = &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable", Err: err}
	}
	for _, r := range batch {
		r.err = err
		close(r.done)
	}
}

// publishLoop checkpoints the log every PublishInterval while it grows.
func (l *Log) publishLoop(ctx context.Context) {
	defer l.bg.Done()
	t := time.NewTicker(l.cfg.PublishInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := l.Publish(ctx); err != nil && ctx.Err() == nil {
				l.log.Error("audit: publish checkpoint", "err", err)
			}
		}
	}
}

// Publish signs and stores a checkpoint of everything committed so far, if
// the log grew since the last one, and returns the latest checkpoint. Every
// event whose Append returned before Publish was called is covered.
func (l *Log) Publish(ctx context.Context) (Checkpoint, error) {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	head := l.head.Load()
	if p := l.published.Load(); p != nil && p.Size >= head.size {
		return *p, nil
	}
	signed, err := signCheckpoint(l.signer, head.size, head.root)
	if err != nil {
		return Checkpoint{}, err
	}
	c := Checkpoint{Origin: l.cfg.Origin, Size: head.size, Root: head.root, Note: signed}
	l.writeMu.Lock()
	err = l.st.PutCheckpoint(ctx, StoredCheckpoint{Size: c.Size, Root: c.Root, Note: signed, CreatedAt: l.now().UTC()})
	l.writeMu.Unlock()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: store checkpoint %d: %w", c.Size, err)
	}
	l.published.Store(&c)
	l.kickTSA()
	return c, nil
}

// Checkpoint returns the latest published checkpoint with its time-stamp
// token when it has one; rampart.ErrNotFound before the first Publish.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	sc, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: latest checkpoint: %w", err)
	}
	return l.fromStored(sc)
}

// CheckpointAt returns the checkpoint published at exactly that size.
func (l *Log) CheckpointAt(ctx context.Context, size uint64) (Checkpoint, error) {
	sc, err := l.st.CheckpointAt(ctx, size)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: checkpoint %d: %w", size, err)
	}
	return l.fromStored(sc)
}

func (l *Log) fromStored(sc StoredCheckpoint) (Checkpoint, error) {
	c, err := ParseCheckpoint(sc.Note, mustVerifier(l.vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit: stored checkpoint %d: %w", sc.Size, errors.Join(err, rampart.ErrInternal))
	}
	c.Timestamp = sc.Timestamp
	return c, nil
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size. Out-of-range arguments return rampart.ErrInvalid
// naming the valid range.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	n := l.Size()
	if size == 0 || size > n {
		return nil, rampart.Invalid("size", "size must be in [1, %d]", n)
	}
	if index >= size {
		return nil, rampart.Invalid("index", "index must be in [0, %d]", size-1)
	}
	return inclusionProof(ctx, l.st, index, size)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of sizes from and to. Out-of-range arguments return rampart.ErrInvalid
// naming the valid range.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	n := l.Size()
	if to > n {
		return nil, rampart.Invalid("to", "to must be in [0, %d]", n)
	}
	if from > to {
		return nil, rampart.Invalid("from", "from must be in [0, %d]", to)
	}
	return consistencyProof(ctx, l.st, from, to)
}

// Status reports the log's health (for /readyz and metrics).
func (l *Log) Status() Status {
	s := Status{Size: l.Size(), DurableSize: l.durable.Load(), Syncs: l.syncs.Load(), SyncErrors: l.syncErrors.Load(), QueueLen: len(l.queue), QueueCap: cap(l.queue), CommitErrors: l.failures.Load(),
		Batches: l.batches.Load(), Appended: l.appended.Load(), StoreTime: time.Duration(l.storeNs.Load())}
	if p := l.published.Load(); p != nil {
		s.PublishedSize = p.Size
	}
	l.qmu.RLock()
	s.Closed = l.closed
	l.qmu.RUnlock()
	s.TSA = *l.tsaStatus.Load()
	return s
}

// Close stops accepting events, commits those already queued, publishes a
// final checkpoint and stops the background work. Checkpoints still without
// a time-stamp are stamped after the next Open. It does not close the Store.
func (l *Log) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.qmu.Lock()
		l.closed = true
		close(l.queue)
		l.qmu.Unlock()
		select {
		case <-l.committed:
		case <-ctx.Done():
			l.closeErr = fmt.Errorf("audit: close: %w", ctx.Err())
		}
		if l.closeErr == nil && l.ds != nil && l.outstanding() {
			l.closeErr = l.flush(ctx)
		}
		if l.closeErr == nil {
			if _, err := l.Publish(ctx); err != nil {
				l.closeErr = err
			}
		}
		l.stop()
		l.bg.Wait()
		// Callers still waiting for a flush that will not come (Close gave
		// up waiting) are refused.
		l.lateMu.Lock()
		late := l.late
		l.late = nil
		l.lateMu.Unlock()
		for _, b := range late {
			l.finish(b.reqs, errClosed)
		}
	})
	return l.closeErr
}

func (l *Log) kickTSA() {
	if l.cfg.TSA == nil {
		return
	}
	select {
	case l.tsaKick <- struct{}{}:
	default:
	}
}

// timestampLoop gets a token for every checkpoint that has none (AUDIT-2),
// oldest first, retrying with backoff while the TSA is unreachable. It never
// touches the append path.
func (l *Log) timestampLoop(ctx context.Context) {
	defer l.bg.Done()
	const minBackoff, maxBackoff = 250 * time.Millisecond, time.Minute
	backoff := minBackoff
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.tsaKick:
		case <-retry:
		}
		retry = nil
		err := l.timestampPending(ctx)
		if ctx.Err() != nil {
			return
		}
		st := *l.tsaStatus.Load()
		if err != nil {
			st.Healthy, st.LastError, st.LastErrorAt = false, err.Error(), l.now().UTC()
			l.tsaStatus.Store(&st)
			l.log.Warn("audit: time-stamping checkpoints failed; retrying", "err", err, "retry_in", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
	}
}

func (l *Log) timestampPending(ctx context.Context) error {
	for {
		pending, err := l.st.UntimestampedCheckpoints(ctx, time.Time{}, 64)
		if err != nil {
			return fmt.Errorf("read pending checkpoints: %w", err)
		}
		st := *l.tsaStatus.Load()
		st.Pending = len(pending)
		l.tsaStatus.Store(&st)
		if len(pending) == 0 {
			return nil
		}
		for _, sc := range pending {
			c, err := l.fromStored(sc)
			if err != nil {
				return err
			}
			d := c.Digest()
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			token, err := l.cfg.TSA.Timestamp(rctx, d[:])
			cancel()
			if err != nil {
				return err
			}
			l.writeMu.Lock()
			err = l.st.SetCheckpointTimestamp(ctx, sc.Size, token)
			l.writeMu.Unlock()
			if err != nil {
				return fmt.Errorf("store token for checkpoint %d: %w", sc.Size, err)
			}
			if p := l.published.Load(); p != nil && p.Size == sc.Size {
				cp := *p
				cp.Timestamp = token
				l.published.CompareAndSwap(p, &cp)
			}
			st := *l.tsaStatus.Load()
			st.Healthy, st.LastSuccess = true, l.now().UTC()
			l.tsaStatus.Store(&st)
		}
	}
}

// digest is SHA-256, named for readability at call sites.
func digest(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
