package serving

import (
	"context"
	"testing"
	"time"
)

// TestFairShare is TEN-3's scheduling: with one slot busy and tenant A's
// queue full of waiters, tenant B's single request is served right after
// A's first waiter, not after all of them; a full queue is refused at once.
func TestFairShare(t *testing.T) {
	f := newFairShare(1, 8)
	rel, err := f.acquire(context.Background(), "A")
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 16)
	queued := func(tenant string, n int) {
		for {
			f.mu.Lock()
			q := len(f.queues[tenant])
			f.mu.Unlock()
			if q >= n {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	for i := range 8 {
		go func() {
			r, err := f.acquire(context.Background(), "A")
			if err != nil {
				t.Error(err)
				return
			}
			order <- "A"
			r()
		}()
		queued("A", i+1)
	}
	if _, err := f.acquire(context.Background(), "A"); err == nil {
		t.Fatal("a full queue accepted another request")
	}
	go func() {
		r, err := f.acquire(context.Background(), "B")
		if err != nil {
			t.Error(err)
			return
		}
		order <- "B"
		r()
	}()
	queued("B", 1)
	rel()
	var got []string
	for range 9 {
		got = append(got, <-order)
	}
	if got[0] != "A" || got[1] != "B" {
		t.Fatalf("order %v: B waited behind A's queue", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inUse != 0 || len(f.ring) != 0 {
		t.Fatalf("slots leaked: inUse %d ring %v", f.inUse, f.ring)
	}
}

// TestFairShareCancel: a waiter that gives up leaves no trace.
func TestFairShareCancel(t *testing.T) {
	f := newFairShare(1, 8)
	rel, _ := f.acquire(context.Background(), "A")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := f.acquire(ctx, "B"); done <- err }()
	for {
		f.mu.Lock()
		n := len(f.queues["B"])
		f.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled waiter got a slot")
	}
	rel()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inUse != 0 || len(f.ring) != 0 || len(f.queues) != 0 {
		t.Fatalf("state after cancel: inUse %d ring %v queues %v", f.inUse, f.ring, f.queues)
	}
}
