package guard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// PeriodTotal is the budget period that never ends.
const PeriodTotal = "total"

// Budget meters rows per principal × endpoint per UTC day and in total
// (INF-1). Counting is exact on one node (one lock per counter). It is
// persisted ahead of use: the store holds a reservation that runs up to a
// chunk of rows ahead of the count, and rows are granted only within a
// reservation that is already written, so a restart resumes from the
// reservation and can only over-count (a caller may lose up to a chunk of
// budget after a crash, never gain).
//
// The next reservation is written in the background once half of the
// current one is used, so a request waits for the store only when a caller
// outruns a write in flight (or on its first request): a synchronous,
// fsync'd write under the counter's lock once a second stalled every
// request of that caller behind it (p99 at half load 10-30 ms). A counter
// whose reservations come within a second of each other doubles its chunk,
// up to 64 × Chunk and at most 1/256 of its limit (and halves it when they
// come further apart), so a busy caller costs a store write every second or
// so rather than one per Chunk rows.
type Budget struct {
	store rampart.EndpointStore
	// Chunk is how far reservations run ahead of use (default 64).
	Chunk int64

	mu       sync.Mutex
	counters map[budgetKey]*counter

	day atomic.Pointer[cachedDay] // the last Day computed
}

type cachedDay struct {
	n int64 // days since the Unix epoch (UTC)
	s string
}

// day is Day(t), formatted once per UTC day.
func (b *Budget) dayOf(t time.Time) string {
	n := t.Unix()
	if n < 0 {
		n -= 86399 // floor, for times before 1970
	}
	n /= 86400
	if c := b.day.Load(); c != nil && c.n == n {
		return c.s
	}
	s := Day(t)
	b.day.Store(&cachedDay{n: n, s: s})
	return s
}

type budgetKey struct{ endpoint, principal, period string }

type counter struct {
	mu             sync.Mutex
	loaded         bool
	used, reserved int64      // reserved: durably written
	chunk          int64      // current reservation step (0: Chunk)
	reservedAt     time.Time  // when the last reservation was started
	inflight       *reserving // the reservation being written, if any
}

// reserving is one reservation write; done is closed when it ends.
type reserving struct {
	done chan struct{}
	err  error
}

// NewBudget returns a budget over store.
func NewBudget(store rampart.EndpointStore) *Budget {
	return &Budget{store: store, Chunk: 64, counters: map[budgetKey]*counter{}}
}

func (b *Budget) counter(k budgetKey) *counter {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.counters[k]
	if !ok {
		c = &counter{}
		b.counters[k] = c
	}
	return c
}

// Day is the UTC day period of t.
func Day(t time.Time) string { return t.UTC().Format("2006-01-02") }

type budgetLimit struct {
	c      *counter
	k      budgetKey
	limit  int64
	period string
}

// Take charges n rows to principal on endpoint against perDay and total
// (negative: unlimited). It either charges both or neither.
func (b *Budget) Take(ctx context.Context, endpointID, principalID string, n, perDay, total int64, now time.Time) error {
	var arr [2]budgetLimit
	ls := arr[:0]
	if perDay >= 0 {
		k := budgetKey{endpointID, principalID, b.dayOf(now)}
		ls = append(ls, budgetLimit{b.counter(k), k, perDay, "day"})
	}
	if total >= 0 {
		k := budgetKey{endpointID, principalID, PeriodTotal}
		ls = append(ls, budgetLimit{b.counter(k), k, total, PeriodTotal})
	}
	for {
		wait, err := b.take(ctx, ls, n, now)
		if wait == nil {
			return err
		}
		// A reservation this request needs is being written: wait for it
		// without holding any lock, then check again.
		select {
		case <-wait.done:
		case <-ctx.Done():
			return budgetUnavailable(ctx.Err())
		}
		if wait.err != nil {
			return budgetUnavailable(fmt.Errorf("reserve: %w", wait.err))
		}
	}
}

// budgetUnavailable fails a take closed when the store cannot be read or
// written (INF-1).
func budgetUnavailable(err error) error {
	return &rampart.Error{Code: rampart.CodeUnavailable, Message: "query budget unavailable", Err: err}
}

// take charges n rows if every counter's written reservation covers them,
// and returns the reservation to wait for if one does not.
func (b *Budget) take(ctx context.Context, ls []budgetLimit, n int64, now time.Time) (*reserving, error) {
	// Fixed lock order (day, then total) keeps concurrent takes deadlock-free.
	for _, l := range ls {
		l.c.mu.Lock()
	}
	defer func() {
		for _, l := range ls {
			l.c.mu.Unlock()
		}
	}()
	for _, l := range ls {
		if !l.c.loaded {
			r, err := b.store.ReservedQueries(ctx, l.k.endpoint, l.k.principal, l.k.period)
			if err != nil {
				return nil, budgetUnavailable(err)
			}
			l.c.used, l.c.reserved, l.c.loaded = r, r, true
		}
		if l.c.used+n > l.limit {
			retry := time.Duration(0)
			if l.period == "day" {
				y, m, d := now.UTC().Date()
				retry = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC).Sub(now)
			}
			left := max(0, l.limit-l.c.used)
			return nil, reject(KindBudgetExhausted, rampart.CodeRateLimited, "", retry,
				"query budget exhausted (%s): %d of %d rows left, the request has %d", l.period, left, l.limit, n)
		}
	}
	// INF-1: rows are granted only within a reservation already written.
	for _, l := range ls {
		if l.c.used+n > l.c.reserved {
			if l.c.inflight == nil {
				b.reserve(l, l.c.used+n, now)
			}
			return l.c.inflight, nil
		}
	}
	for _, l := range ls {
		l.c.used += n
		// Write the next reservation ahead, once half of this one is used.
		if l.c.inflight == nil && l.c.reserved < l.limit && 2*(l.c.reserved-l.c.used) < max(l.c.chunk, b.Chunk) {
			b.reserve(l, l.c.used, now)
		}
	}
	return nil, nil
}

// reserve starts writing a reservation of a chunk beyond need; l.c.mu is
// held.
func (b *Budget) reserve(l budgetLimit, need int64, now time.Time) {
	c := l.c
	// Double the step while reservations come within a second of each
	// other, halve it (not reset it) when they do not: a caller at a steady
	// rate then keeps a step that lasts about a second, and half of it is
	// always ahead of use while the next one is written.
	step := max(c.chunk, b.Chunk)
	if !c.reservedAt.IsZero() && now.Sub(c.reservedAt) < time.Second {
		step = min(2*step, max(b.Chunk, min(64*b.Chunk, l.limit/256)))
	} else {
		step = max(b.Chunk, step/2)
	}
	c.chunk = step
	upTo := min(l.limit, need+step)
	r := &reserving{done: make(chan struct{})}
	c.inflight, c.reservedAt = r, now
	go func() {
		// The write outlives the request that started it: other requests
		// of the caller wait for it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := b.store.ReserveQueries(ctx, l.k.endpoint, l.k.principal, l.k.period, upTo)
		cancel()
		c.mu.Lock()
		if err == nil {
			c.reserved = max(c.reserved, upTo)
		}
		r.err = err
		c.inflight = nil
		c.mu.Unlock()
		close(r.done)
	}()
}

// Used returns the rows counted so far (for tests and stats).
func (b *Budget) Used(endpointID, principalID, period string) int64 {
	c := b.counter(budgetKey{endpointID, principalID, period})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}
