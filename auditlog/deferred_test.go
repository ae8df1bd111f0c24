package auditlog_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/auditlog/auditlogtest"
)

// gatedStore is a MemStore whose "disk flush" (Sync) can be held, failed and
// counted, so that the log's acknowledgement rules can be observed.
type gatedStore struct {
	*auditlogtest.MemStore
	mu        sync.Mutex
	gate      chan struct{} // Sync waits on it while non-nil
	syncErr   error
	syncs     int
	waiting   int // AppendLeaves calls (the caller waits for the disk)
	deferred  int // AppendLeavesDeferred calls
	appendErr error
}

func (g *gatedStore) AppendLeaves(ctx context.Context, ls []auditlog.Leaf) error {
	g.mu.Lock()
	g.waiting++
	g.mu.Unlock()
	return g.MemStore.AppendLeaves(ctx, ls)
}

func (g *gatedStore) AppendLeavesDeferred(ctx context.Context, ls []auditlog.Leaf) error {
	g.mu.Lock()
	g.deferred++
	err := g.appendErr
	g.mu.Unlock()
	if err != nil {
		return err
	}
	return g.MemStore.AppendLeaves(ctx, ls)
}

func (g *gatedStore) Sync(ctx context.Context) error {
	g.mu.Lock()
	gate, err := g.gate, g.syncErr
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		return err
	}
	g.syncs++
	return nil
}

func (g *gatedStore) counts() (waiting, deferred, syncs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting, g.deferred, g.syncs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAckOnWrite: AckOnWrite events are acknowledged on commit while the
// flush to disk is still pending, the flush follows by itself, every other
// event waits for the disk, and a failing flush makes every batch wait for
// the disk (fail closed) until one succeeds.
func TestAckOnWrite(t *testing.T) {
	ctx := context.Background()
	st := &gatedStore{MemStore: auditlogtest.NewMemStore()}
	predict := func(ev *auditlog.Event) bool { return ev.Action == "model.predict" }
	l := openLog(t, st, newKey(t), func(c *auditlog.Config) { c.AckOnWrite = predict })

	// Hold the disk: a prediction is still acknowledged, and is committed
	// (its index is readable) but not yet durable.
	gate := make(chan struct{})
	st.mu.Lock()
	st.gate = gate
	st.mu.Unlock()
	ev := testEvent(1) // model.predict
	idx, err := l.Append(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Status(); s.Size != idx+1 || s.DurableSize > idx {
		t.Fatalf("after a deferred append: size %d durable %d, want size %d and durable ≤ %d", s.Size, s.DurableSize, idx+1, idx)
	}
	if w, d, _ := st.counts(); w != 0 || d != 1 {
		t.Fatalf("waiting %d deferred %d appends, want 0 and 1", w, d)
	}
	// The event flag selects too, with the predicate not matching.
	ev2 := testEvent(0) // dataset.create
	ev2.AckOnWrite = true
	if _, err := l.Append(ctx, ev2); err != nil {
		t.Fatal(err)
	}
	close(gate) // the disk answers: the background flush catches up alone
	waitFor(t, "the background flush", func() bool { s := l.Status(); return s.DurableSize == s.Size })

	// A state change on its own is a waiting commit: on disk, with
	// everything before it, when it is answered.
	w0, _, _ := st.counts()
	if _, err := l.Append(ctx, testEvent(0)); err != nil { // dataset.create
		t.Fatal(err)
	}
	if w, _, _ := st.counts(); w != w0+1 {
		t.Fatalf("a lone state change was not a waiting commit")
	}
	if s := l.Status(); s.DurableSize != s.Size {
		t.Fatalf("a state change was answered before it was on disk (durable %d of %d)", s.DurableSize, s.Size)
	}

	// A failing flush: then every batch is a waiting commit until one
	// succeeds.
	st.mu.Lock()
	st.syncErr = errors.New("EIO")
	st.mu.Unlock()
	if _, err := l.Append(ctx, testEvent(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed flush", func() bool { return l.Status().SyncErrors > 0 })
	w0, d0, _ := st.counts()
	if _, err := l.Append(ctx, testEvent(5)); err != nil { // model.predict
		t.Fatal(err)
	}
	if w, d, _ := st.counts(); w != w0+1 || d != d0 {
		t.Fatalf("with the flush failing a prediction was deferred (waiting %d→%d, deferred %d→%d)", w0, w, d0, d)
	}
	st.mu.Lock()
	st.syncErr = nil
	st.mu.Unlock()
	if _, err := l.Append(ctx, testEvent(5)); err != nil { // back to deferred
		t.Fatal(err)
	}
	if _, d, _ := st.counts(); d != d0+1 {
		t.Fatalf("after a successful waiting commit predictions are not deferred again (%d→%d)", d0, d)
	}

	// Close flushes whatever is outstanding.
	if _, err := l.Append(ctx, testEvent(9)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s := l.Status(); s.DurableSize != s.Size {
		t.Fatalf("after Close: durable %d of %d", s.DurableSize, s.Size)
	}
}

// TestAckOnWriteFailsClosed: when the store fails, a deferred append is
// refused like any other (503), never acknowledged.
func TestAckOnWriteFailsClosed(t *testing.T) {
	ctx := context.Background()
	st := &gatedStore{MemStore: auditlogtest.NewMemStore()}
	l := openLog(t, st, newKey(t))
	ev := testEvent(1)
	ev.AckOnWrite = true
	if _, err := l.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.appendErr = errors.New("disk full")
	st.mu.Unlock()
	if _, err := l.Append(ctx, ev); !errors.Is(err, rampart.ErrUnavailable) {
		t.Fatalf("append to a closed store: %v, want ErrUnavailable", err)
	}
}

// TestAckOnWriteMixedBatch: with both kinds arriving at once (so batches
// hold both), every AckOnWrite event is answered while the flush to disk
// hangs; the others are answered once it is done, all on disk.
func TestAckOnWriteMixedBatch(t *testing.T) {
	ctx := context.Background()
	st := &gatedStore{MemStore: auditlogtest.NewMemStore()}
	l := openLog(t, st, newKey(t), func(c *auditlog.Config) {
		c.AckOnWrite = func(ev *auditlog.Event) bool { return ev.Action == "model.predict" }
	})
	gate := make(chan struct{})
	st.mu.Lock()
	st.gate = gate // the disk hangs
	st.mu.Unlock()
	// Enough of both kinds at once that some batch holds both.
	const n = 200
	waitingDone := make(chan error, n)
	predictDone := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := l.Append(ctx, testEvent(0)) // dataset.create: waits for the disk
			waitingDone <- err
		}()
		go func() {
			_, err := l.Append(ctx, testEvent(1)) // model.predict
			predictDone <- err
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-predictDone:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d predictions still wait while the disk hangs", n-i, n)
		}
	}
	close(gate)
	for i := 0; i < n; i++ {
		if err := <-waitingDone; err != nil {
			t.Fatal(err)
		}
	}
	if s := l.Status(); s.Size != 2*n {
		t.Fatalf("size %d, want %d", s.Size, 2*n)
	}
	waitFor(t, "the last flush", func() bool { s := l.Status(); return s.DurableSize == s.Size })
}

// TestFlushPacing: under a steady stream of AckOnWrite events the
// background flush runs at most once per FlushInterval (plus the first),
// and still covers every event at the end.
func TestFlushPacing(t *testing.T) {
	ctx := context.Background()
	st := &gatedStore{MemStore: auditlogtest.NewMemStore()}
	const interval = 100 * time.Millisecond
	l := openLog(t, st, newKey(t), func(c *auditlog.Config) {
		c.AckOnWrite = func(*auditlog.Event) bool { return true }
		c.FlushInterval = interval
	})
	_, _, s0 := st.counts()
	start := time.Now()
	for i := 0; time.Since(start) < 500*time.Millisecond; i++ {
		if _, err := l.Append(ctx, testEvent(1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	waitFor(t, "the last flush", func() bool { s := l.Status(); return s.DurableSize == s.Size })
	_, _, s1 := st.counts()
	// Flushes during the stream, plus the one that catches up after it.
	if max := int(elapsed/interval) + 2; s1-s0 > max {
		t.Fatalf("%d flushes in %v with a %v interval, want at most %d", s1-s0, elapsed, interval, max)
	}
	if s1-s0 < 2 {
		t.Fatalf("%d flushes in %v: the flusher did not keep up with the stream", s1-s0, elapsed)
	}
}
