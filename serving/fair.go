package serving

import (
	"context"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/guard"
)

// fairShare schedules predictions so one tenant's flood cannot starve
// another tenant (TEN-3): at most capacity predictions run at once; when
// all slots are busy, waiting requests queue per tenant (bounded: beyond
// the bound a request is refused with 429 at once) and freed slots go to
// the tenants' queues in round-robin order, so a tenant with one waiting
// request is served next whatever another tenant has queued.
type fairShare struct {
	mu       sync.Mutex
	capacity int
	inUse    int
	maxQueue int
	queues   map[string][]chan struct{}
	ring     []string // tenants with waiters, in round-robin order
	rel      func()   // f.release, bound once (a method value allocates)
}

func newFairShare(capacity, maxQueue int) *fairShare {
	f := &fairShare{capacity: capacity, maxQueue: maxQueue, queues: map[string][]chan struct{}{}}
	f.rel = f.release
	return f
}

// acquire takes a slot for tenant; the returned release must be called.
func (f *fairShare) acquire(ctx context.Context, tenant string) (func(), error) {
	f.mu.Lock()
	if f.inUse < f.capacity && len(f.ring) == 0 {
		f.inUse++
		f.mu.Unlock()
		return f.rel, nil
	}
	q := f.queues[tenant]
	if len(q) >= f.maxQueue {
		f.mu.Unlock()
		return nil, &guard.Rejection{Kind: guard.KindOverloaded, Retry: time.Second,
			Err: &rampart.Error{Code: rampart.CodeRateLimited, Message: "too many requests of this tenant are waiting; retry later"}}
	}
	ch := make(chan struct{})
	if len(q) == 0 {
		f.ring = append(f.ring, tenant)
	}
	f.queues[tenant] = append(q, ch)
	f.mu.Unlock()
	select {
	case <-ch:
		return f.rel, nil
	case <-ctx.Done():
		f.mu.Lock()
		q := f.queues[tenant]
		for i, c := range q {
			if c == ch {
				f.queues[tenant] = append(q[:i:i], q[i+1:]...)
				if len(f.queues[tenant]) == 0 {
					f.dropTenant(tenant)
				}
				f.mu.Unlock()
				return nil, &rampart.Error{Code: rampart.CodeUnavailable, Message: "request cancelled while queued", Err: ctx.Err()}
			}
		}
		f.mu.Unlock()
		// Granted concurrently: the slot is ours; give it back.
		f.release()
		return nil, &rampart.Error{Code: rampart.CodeUnavailable, Message: "request cancelled while queued", Err: ctx.Err()}
	}
}

func (f *fairShare) dropTenant(t string) {
	delete(f.queues, t)
	for i, x := range f.ring {
		if x == t {
			f.ring = append(f.ring[:i:i], f.ring[i+1:]...)
			return
		}
	}
}

// release frees a slot, handing it to the next tenant in the ring.
func (f *fairShare) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.ring) == 0 {
		f.inUse--
		return
	}
	t := f.ring[0]
	q := f.queues[t]
	ch := q[0]
	f.queues[t] = q[1:]
	f.ring = f.ring[1:]
	if len(f.queues[t]) > 0 {
		f.ring = append(f.ring, t) // to the back: round robin
	} else {
		delete(f.queues, t)
	}
	close(ch) // the slot passes to the waiter; inUse is unchanged
}
