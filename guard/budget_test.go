package guard_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/sqlite"
)

// gatedStore is the real store whose reservation writes can be held back
// or failed, and which records the highest reservation written.
type gatedStore struct {
	*sqlite.DB
	mu      sync.Mutex
	gate    chan struct{} // when non-nil, writes wait for it to close
	fail    error
	written map[string]int64 // period → highest reservation written
	writes  int
}

func (g *gatedStore) ReserveQueries(ctx context.Context, endpointID, principalID, period string, upTo int64) error {
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return fail
	}
	if err := g.DB.ReserveQueries(ctx, endpointID, principalID, period, upTo); err != nil {
		return err
	}
	g.mu.Lock()
	g.written[period] = max(g.written[period], upTo)
	g.writes++
	g.mu.Unlock()
	return nil
}

func (g *gatedStore) hold() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
	return g.gate
}

func (g *gatedStore) reservation(period string) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.written[period]
}

// TestBudgetReservesAhead: requests within the written reservation do not
// wait for the next reservation's write (it is written in the background
// once half is used), a request beyond it waits for that write, and no row
// is ever granted beyond a reservation already written (INF-1).
func TestBudgetReservesAhead(t *testing.T) {
	g := &gatedStore{DB: openDB(t), written: map[string]int64{}}
	b := guard.NewBudget(g)
	b.Chunk = 10
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	take := func(n int64) error { return b.Take(ctx, "ep", "pr", n, -1, 1_000_000, t0) }

	// The first request waits for the first reservation: 1 + 10 rows.
	if err := take(1); err != nil {
		t.Fatal(err)
	}
	if r := g.reservation(guard.PeriodTotal); r != 11 {
		t.Fatalf("first reservation %d, want 11", r)
	}
	// Hold every further write. Rows 2-11 are within the reservation and
	// must be granted at once; the take that crosses half of it starts
	// the next write in the background.
	release := g.hold()
	done := make(chan error, 1)
	go func() {
		for range 10 {
			if err := take(1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("takes within the written reservation waited for the next write")
	}
	if used := b.Used("ep", "pr", guard.PeriodTotal); used != 11 {
		t.Fatalf("used %d, want 11", used)
	}
	// The write started in the background lands with no further request.
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for g.reservation(guard.PeriodTotal) <= 11 {
		if time.Now().After(deadline) {
			t.Fatal("no reservation was written ahead of use")
		}
		time.Sleep(time.Millisecond)
	}
	// Use the rest of it with writes held: each take is granted at once
	// until the rows are beyond what is written; that one waits.
	release = g.hold()
	r := g.reservation(guard.PeriodTotal)
	for used := b.Used("ep", "pr", guard.PeriodTotal); used < r; used++ {
		if err := take(1); err != nil {
			t.Fatal(err)
		}
	}
	go func() { done <- take(1) }()
	select {
	case err := <-done:
		t.Fatalf("a row beyond the written reservation was granted before the write (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	base := b.Used("ep", "pr", guard.PeriodTotal)
	if r := g.reservation(guard.PeriodTotal); base > r {
		t.Fatalf("granted %d rows with %d reserved", base, r)
	}

	// Concurrent load: at every moment the rows granted stay within the
	// reservation written, and the count is exact.
	g.mu.Lock()
	g.gate = nil
	g.mu.Unlock()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if err := take(3); err != nil {
					t.Error(err)
					return
				}
				if used, r := b.Used("ep", "pr", guard.PeriodTotal), g.reservation(guard.PeriodTotal); used > r {
					t.Errorf("granted %d rows with %d reserved", used, r)
					return
				}
			}
		})
	}
	wg.Wait()
	if used := b.Used("ep", "pr", guard.PeriodTotal); used != base+8*200*3 {
		t.Fatalf("used %d, want %d", used, base+8*200*3)
	}
	// A restart resumes at or above every row granted.
	b2 := guard.NewBudget(g.DB)
	if err := b2.Take(ctx, "ep", "pr", 1, -1, 1_000_000, t0); err != nil {
		t.Fatal(err)
	}
	if used := b2.Used("ep", "pr", guard.PeriodTotal); used < base+8*200*3+1 {
		t.Fatalf("restart resumed below the rows granted: %d", used)
	}
}

// TestBudgetStoreFailure: a reservation that cannot be written refuses the
// rows that need it as unavailable (fail closed), and a later request tries
// again.
func TestBudgetStoreFailure(t *testing.T) {
	g := &gatedStore{DB: openDB(t), written: map[string]int64{}, fail: errors.New("disk full")}
	b := guard.NewBudget(g)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	err := b.Take(ctx, "ep", "pr", 1, 100, -1, t0)
	var re *rampart.Error
	if !errors.As(err, &re) || re.Code != rampart.CodeUnavailable {
		t.Fatalf("take with a failing store: %v", err)
	}
	if used := b.Used("ep", "pr", guard.Day(t0)); used != 0 {
		t.Fatalf("a refused take charged %d rows", used)
	}
	g.mu.Lock()
	g.fail = nil
	g.mu.Unlock()
	if err := b.Take(ctx, "ep", "pr", 1, 100, -1, t0); err != nil {
		t.Fatalf("take after the store recovered: %v", err)
	}
	// A cancelled request waiting for a reservation gives up.
	release := g.hold()
	defer close(release)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Take(cctx, "ep", "pr", 99, 100, -1, t0); !errors.As(err, &re) || re.Code != rampart.CodeUnavailable {
		t.Fatalf("cancelled take: %v", err)
	}
}
