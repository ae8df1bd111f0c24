package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func testExec(t *testing.T) *Executor {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Command: []string{exe, "-test.run=^$", "internal", "train-worker"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func spareIDs(e *Executor) []int {
	e.spareMu.Lock()
	defer e.spareMu.Unlock()
	var ids []int
	for _, p := range e.spares {
		ids = append(ids, p.cmd.Process.Pid)
	}
	return ids
}

func waitSpares(t *testing.T, e *Executor, n int) []int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ids := spareIDs(e); len(ids) == n {
			return ids
		}
	}
	t.Fatalf("never had %d spares: %v", n, spareIDs(e))
	return nil
}

func smallCSV() string {
	var sb strings.Builder
	sb.WriteString("a,b,y\n")
	for i := range 200 {
		a, b := i%13, (i*7)%11
		y := 0
		if a+b > 11 {
			y = 1
		}
		fmt.Fprintf(&sb, "%d,%d,%d\n", a, b, y)
	}
	return sb.String()
}

// TestSpares: a job takes a started worker, which is replaced; every job
// still gets its own process (and uid as root); a spare that died is
// skipped; Close ends the spares.
func TestSpares(t *testing.T) {
	e := testExec(t)
	e.SetSpares(2)
	first := waitSpares(t, e, 2)
	spec := Spec{Algorithm: "logreg", Target: "y", Seed: 1}
	r, err := e.Run(context.Background(), spec, strings.NewReader(smallCSV()), Limits{Wall: 30 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := waitSpares(t, e, 2)
	if after[0] != first[1] || after[1] == first[0] || after[1] == first[1] {
		t.Fatalf("spares %v before the job, %v after: the oldest should have run it and been replaced", first, after)
	}
	if err := syscall.Kill(first[0], 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the worker that ran the job still exists (%v)", err)
	}
	if os.Geteuid() == 0 && !strings.Contains(strings.Join(r.Isolation, " "), "uid:") {
		t.Fatalf("isolation %v lacks the job uid", r.Isolation)
	}
	bare, err := Train(context.Background(), spec, strings.NewReader(smallCSV()), func(Progress) {})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bare.Artifact, r.Artifact) {
		t.Fatal("a spare's artifact differs from the in-process one")
	}

	// Two at once: distinct processes and uids.
	type out struct {
		r   *Result
		err error
	}
	ch := make(chan out, 2)
	for range 2 {
		go func() {
			r, err := e.Run(context.Background(), spec, strings.NewReader(smallCSV()), Limits{Wall: 30 * time.Second}, nil)
			ch <- out{r, err}
		}()
	}
	a, b := <-ch, <-ch
	if a.err != nil || b.err != nil {
		t.Fatal(a.err, b.err)
	}
	if os.Geteuid() == 0 && a.r.Isolation[0] == b.r.Isolation[0] {
		t.Fatalf("two concurrent jobs shared %s", a.r.Isolation[0])
	}

	// A spare killed while waiting is not given a job.
	ids := waitSpares(t, e, 2)
	if err := syscall.Kill(ids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		e.spareMu.Lock()
		dead := e.spares[0].exited()
		e.spareMu.Unlock()
		if dead {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := e.Run(context.Background(), spec, strings.NewReader(smallCSV()), Limits{Wall: 30 * time.Second}, nil); err != nil {
		t.Fatalf("run after a spare died: %v", err)
	}

	ids = waitSpares(t, e, 2)
	e.Close()
	for _, id := range ids {
		if err := syscall.Kill(id, 0); !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("spare %d still exists after Close (%v)", id, err)
		}
	}
	e.SetSpares(2)
	if len(spareIDs(e)) != 0 {
		t.Fatal("a closed executor started spares")
	}
}

// TestFeedError: a read error in the training data stops the child instead
// of ending the data early.
func TestFeedError(t *testing.T) {
	e := testExec(t)
	data := io.MultiReader(strings.NewReader(smallCSV()[:500]), iotestErr{})
	_, err := e.Run(context.Background(), Spec{Algorithm: "logreg", Target: "y"}, data, Limits{Wall: 30 * time.Second}, nil)
	if err == nil || !strings.Contains(err.Error(), "read training data") {
		t.Fatalf("got %v, want the read error", err)
	}
	var f *Failure
	if errors.As(err, &f) {
		t.Fatalf("a platform read error was reported as the job's failure: %v", f)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) {
	return 0, errors.New("sealed stream: authentication failed")
}

// TestDeferRefill: with DeferRefill the spare a run took is replaced only
// when the caller calls Refill; a run that finds no spare left still
// starts refilling at once.
func TestDeferRefill(t *testing.T) {
	e := testExec(t)
	e.SetSpares(2)
	first := waitSpares(t, e, 2)
	spec := Spec{Algorithm: "logreg", Target: "y", Seed: 1}
	run := func() {
		t.Helper()
		if _, err := e.RunWith(context.Background(), spec, strings.NewReader(smallCSV()), Limits{Wall: 30 * time.Second},
			Hooks{DeferRefill: true}); err != nil {
			t.Fatal(err)
		}
	}
	run()
	e.spareMu.Lock()
	filling := e.filling
	e.spareMu.Unlock()
	if ids := spareIDs(e); filling || len(ids) != 1 || ids[0] != first[1] {
		t.Fatalf("spares %v (filling %v) after a run with DeferRefill: want only %d, no refill yet", ids, filling, first[1])
	}
	e.Refill()
	after := waitSpares(t, e, 2)
	if after[0] != first[1] {
		t.Fatalf("spares %v after Refill, want %d first", after, first[1])
	}
	// Two runs take both spares: the second finds none left and the
	// executor refills without waiting for Refill.
	run()
	run()
	waitSpares(t, e, 2)
}
