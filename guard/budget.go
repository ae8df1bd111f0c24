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
// persisted ahead of use: the store holds a reservation that runs up to
// Chunk rows ahead of the count, written before the rows are granted, so
// a restart resumes from the reservation and can only over-count (a
// caller may lose up to a chunk of budget after a crash, never gain). A
// counter whose reservations run out within a second of each other doubles
// its chunk, up to 64 × Chunk and at most 1/256 of its limit, so a busy
// caller costs a store write every second or so rather than one per Chunk
// rows.
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
	used, reserved int64
	chunk          int64     // current reservation step (0: Chunk)
	reservedAt     time.Time // when the last reservation was written
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

// Take charges n rows to principal on endpoint against perDay and total
// (negative: unlimited). It either charges both or neither.
func (b *Budget) Take(ctx context.Context, endpointID, principalID string, n, perDay, total int64, now time.Time) error {
	type lim struct {
		c      *counter
		k      budgetKey
		limit  int64
		period string
	}
	var arr [2]lim
	ls := arr[:0]
	if perDay >= 0 {
		k := budgetKey{endpointID, principalID, b.dayOf(now)}
		ls = append(ls, lim{b.counter(k), k, perDay, "day"})
	}
	if total >= 0 {
		k := budgetKey{endpointID, principalID, PeriodTotal}
		ls = append(ls, lim{b.counter(k), k, total, PeriodTotal})
	}
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
				return &rampart.Error{Code: rampart.CodeUnavailable, Message: "query budget unavailable", Err: err}
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
			return reject(KindBudgetExhausted, rampart.CodeRateLimited, "", retry,
				"query budget exhausted (%s): %d of %d rows left, the request has %d", l.period, left, l.limit, n)
		}
	}
	for _, l := range ls {
		if l.c.used+n > l.c.reserved {
			step := b.Chunk
			if !l.c.reservedAt.IsZero() && now.Sub(l.c.reservedAt) < time.Second {
				step = min(2*max(l.c.chunk, b.Chunk), max(b.Chunk, min(64*b.Chunk, l.limit/256)))
			}
			l.c.chunk = step
			upTo := min(l.limit, l.c.used+n+step)
			if err := b.store.ReserveQueries(ctx, l.k.endpoint, l.k.principal, l.k.period, upTo); err != nil {
				return &rampart.Error{Code: rampart.CodeUnavailable, Message: "query budget unavailable", Err: fmt.Errorf("reserve: %w", err)}
			}
			l.c.reserved, l.c.reservedAt = upTo, now
		}
	}
	for _, l := range ls {
		l.c.used += n
	}
	return nil
}

// Used returns the rows counted so far (for tests and stats).
func (b *Budget) Used(endpointID, principalID, period string) int64 {
	c := b.counter(budgetKey{endpointID, principalID, period})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}
