package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/jobs"
)

// presealer is a registrar that records what PreSeal started and what
// became of it.
type presealer struct {
	mu       sync.Mutex
	started  []*presealed
	got      []jobs.Presealed // what RegisterTrained received
	fail     error            // RegisterTrained's error
	caller   string
	artifact []byte
}

type presealed struct {
	art       []byte
	discarded int
}

func (p *presealed) Discard(context.Context) { p.discarded++ }

func (r *presealer) PreSeal(ctx context.Context, art []byte) jobs.Presealed {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, _ := rampart.CallerFrom(ctx)
	r.caller = c.Principal.ID
	ps := &presealed{art: bytes.Clone(art)}
	r.started = append(r.started, ps)
	return ps
}

func (r *presealer) RegisterTrained(ctx context.Context, t jobs.Trained) (string, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, t.Presealed)
	r.artifact = t.Artifact
	if r.fail != nil {
		// The registrar takes the presealed artifact over: it shreds it.
		if t.Presealed != nil {
			t.Presealed.Discard(ctx)
		}
		return "", 0, r.fail
	}
	return rampart.NewID(rampart.PrefixModel), 1, nil
}

// TestPreSealHandedOver: the artifact's seal starts when the worker sends
// it, as the job's creator, and that seal (of exactly the artifact) is
// handed to RegisterTrained, which owns it from then on: the job never
// discards it itself, whether registration succeeds or fails.
func TestPreSealHandedOver(t *testing.T) {
	for _, fail := range []error{nil, rampart.Errorf(rampart.CodeForbidden, "no")} {
		reg := &presealer{fail: fail}
		e := newEnvCfg(t, jobs.Config{Slots: 1}, func(d *jobs.Deps) { d.Registrar = reg })
		ds := e.add(dataset{csv: classification(200)})
		j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "logreg", Seed: 1,
			Limits: rampart.JobLimits{MemoryMB: 8192}}) // room for a -race worker
		if err != nil {
			t.Fatal(err)
		}
		j, _ = e.wait(t, j.ID)
		want := rampart.JobSucceeded
		if fail != nil {
			want = rampart.JobFailed
		}
		if j.State != want {
			t.Fatalf("registration error %v: job %s (%s)", fail, j.State, j.Reason)
		}
		reg.mu.Lock()
		if len(reg.started) != 1 || len(reg.got) != 1 || reg.got[0] != jobs.Presealed(reg.started[0]) {
			t.Fatalf("presealed %d, handed over %v", len(reg.started), reg.got)
		}
		ps := reg.started[0]
		if !bytes.Equal(ps.art, reg.artifact) || reg.caller != j.CreatedBy {
			t.Fatalf("presealed other bytes or as %q", reg.caller)
		}
		if want := btoi(fail != nil); ps.discarded != want {
			t.Fatalf("registration error %v: discarded %d times; want %d (by the registrar only)", fail, ps.discarded, want)
		}
		reg.mu.Unlock()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// artifactThenCrash is a worker (TestMain) that sends a result and an
// artifact, then dies: the run fails after the artifact's seal started.
func artifactThenCrash(ctx context.Context, spec executor.Spec, data io.Reader, progress func(executor.Progress)) (*executor.Output, error) {
	frame := func(typ byte, p []byte) {
		os.Stdout.Write(append([]byte{typ, byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}, p...))
	}
	frame('R', []byte(`{"metrics":{}}`))
	frame('A', []byte("an artifact"))
	os.Exit(7)
	return nil, errors.New("not reached")
}

// TestPreSealDiscardedWhenRunFails: a worker that dies after sending its
// artifact fails the attempt (retried, then failed, TRAIN-5); each
// attempt's presealed artifact is discarded by the job, once, and nothing
// is registered.
func TestPreSealDiscardedWhenRunFails(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := executor.New(executor.Config{Command: []string{exe, "-test.run=^$", "internal", "train-worker", "artifact-then-crash"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	reg := &presealer{}
	e := newEnvCfg(t, jobs.Config{Slots: 1, MaxAttempts: 2}, func(d *jobs.Deps) { d.Registrar, d.Executor = reg, ex })
	ds := e.add(dataset{csv: classification(50)})
	j, err := e.svc.Submit(e.ctx, rampart.JobSpec{DatasetID: ds, Target: "y", Algorithm: "logreg", Seed: 1,
		Limits: rampart.JobLimits{MemoryMB: 8192}}) // room for a -race worker
	if err != nil {
		t.Fatal(err)
	}
	j, _ = e.wait(t, j.ID)
	if j.State != rampart.JobFailed {
		t.Fatalf("job %s (%s)", j.State, j.Reason)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.started) != 2 || len(reg.got) != 0 {
		t.Fatalf("%d presealed, %d registered; want 2 (one per attempt) and 0", len(reg.started), len(reg.got))
	}
	for i, ps := range reg.started {
		if ps.discarded != 1 || string(ps.art) != "an artifact" {
			t.Fatalf("attempt %d: presealed %q discarded %d times", i+1, ps.art, ps.discarded)
		}
	}
}
