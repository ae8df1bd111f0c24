package jobs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
)

// outbox stands in for River's SQLite listener: a read returns a pending
// notification, or finds none and sleeps 50 ms like River's.
type outbox struct {
	riverdriver.Listener
	mu      sync.Mutex
	pending []string
	reads   atomic.Int32
}

func (o *outbox) put(p string) {
	o.mu.Lock()
	o.pending = append(o.pending, p)
	o.mu.Unlock()
}

func (o *outbox) WaitForNotification(ctx context.Context) (*riverdriver.Notification, error) {
	for {
		o.reads.Add(1)
		o.mu.Lock()
		if len(o.pending) > 0 {
			p := o.pending[0]
			o.pending = o.pending[1:]
			o.mu.Unlock()
			return &riverdriver.Notification{Topic: "river_insert", Payload: p}, nil
		}
		o.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestWakeListener: a wake-up reads the outbox at once; without one it is
// read every poll interval, not every 50 ms; the caller's cancellation ends
// the wait.
func TestWakeListener(t *testing.T) {
	o := &outbox{}
	w := &waker{ch: make(chan struct{})}
	l := &wakeListener{Listener: o, w: w, every: time.Hour}
	got := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		n, err := l.WaitForNotification(ctx)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- n.Payload
	}()
	time.Sleep(300 * time.Millisecond)
	if r := o.reads.Load(); r > 2 {
		t.Fatalf("%d reads of the outbox in 300 ms with an hour's poll interval", r)
	}
	o.put(`{"queue":"training"}`)
	w.wake()
	select {
	case p := <-got:
		if p != `{"queue":"training"}` {
			t.Fatal(p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a wake-up did not read the outbox")
	}

	// Without a wake-up, the poll interval finds it.
	l.every = 20 * time.Millisecond
	o.put("later")
	n, err := l.WaitForNotification(ctx)
	if err != nil || n.Payload != "later" {
		t.Fatal(n, err)
	}

	// Cancellation.
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); ccancel() }()
	if _, err := l.WaitForNotification(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the cancellation", err)
	}
}
