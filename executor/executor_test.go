package executor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/executor"
)

// TestMain doubles as the worker: the executor re-executes this test binary
// with "internal train-worker". A fourth argument selects a hostile
// behaviour; it exists only in this test binary, never in rampart.
func TestMain(m *testing.M) {
	if rest, ok := executor.IsWorker(os.Args); ok {
		train := executor.Train
		if len(rest) == 1 {
			train = hostile(rest[0])
		}
		os.Exit(executor.ServeChild(os.Stdin, os.Stdout, train))
	}
	os.Exit(m.Run())
}

// hostile returns a training function that misbehaves as named.
func hostile(kind string) executor.TrainFunc {
	return func(ctx context.Context, spec executor.Spec, data io.Reader, progress func(executor.Progress)) (*executor.Output, error) {
		progress(executor.Progress{Stage: "hostile"})
		switch kind {
		case "socket":
			c, err := net.Dial("tcp", spec.Params["addr"])
			if err == nil {
				c.Close()
			}
			return nil, fmt.Errorf("dial: %w", err)
		case "environ":
			b, err := os.ReadFile("/proc/1/environ")
			if err != nil {
				return nil, err
			}
			return &executor.Output{Artifact: b}, nil
		case "read":
			b, err := os.ReadFile(spec.Params["path"])
			if err != nil {
				return nil, err
			}
			return &executor.Output{Artifact: b}, nil
		case "plant":
			if err := os.WriteFile("secret.txt", []byte("canary"), 0o600); err != nil {
				return nil, err
			}
			// Training reads the data, which the test holds back until the
			// hostile cases are done, so the planted file outlives them.
			return executor.Train(ctx, spec, data, progress)
		case "forkbomb":
			for {
				if _, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{}); err != nil {
					_, _, _ = syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
				}
			}
		case "alloc":
			var keep [][]byte
			for {
				b := make([]byte, 64<<20)
				for i := range b {
					b[i] = 1
				}
				keep = append(keep, b)
			}
		case "spin":
			x := 0
			for {
				x++
			}
		case "sleep":
			time.Sleep(time.Hour)
		case "crash":
			os.Exit(7)
		case "artifact-then-crash", "two-artifacts":
			// Frames written straight to the parent: a result and an
			// artifact, then a crash or a second artifact.
			frame := func(typ byte, p []byte) {
				os.Stdout.Write(append([]byte{typ, byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}, p...))
			}
			frame('R', []byte(`{"metrics":{}}`))
			frame('A', []byte("first artifact"))
			if kind == "two-artifacts" {
				frame('A', []byte("second artifact"))
				os.Exit(0)
			}
			os.Exit(7)
		}
		return nil, errors.New("unknown hostile kind")
	}
}

const csv = "a,b,c,y\n"

func trainingData(n int) string {
	var sb strings.Builder
	sb.WriteString(csv)
	for i := range n {
		a, b := float64(i%13), float64((i*7)%11)
		y := 0
		if a+b > 11 {
			y = 1
		}
		fmt.Fprintf(&sb, "%g,%g,%d,%d\n", a, b, i%3, y)
	}
	return sb.String()
}

func newExec(t *testing.T, extra ...string) *executor.Executor {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e, err := executor.New(executor.Config{Command: append([]string{exe, "-test.run=^$", "internal", "train-worker"}, extra...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

var spec = executor.Spec{Algorithm: "logreg", Target: "y", Seed: 1}

func TestTrainInChild(t *testing.T) {
	e := newExec(t)
	var steps int
	r, err := e.Run(context.Background(), spec, strings.NewReader(trainingData(300)), executor.Limits{Wall: 30 * time.Second},
		func(executor.Progress) { steps++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Artifact) == 0 || steps == 0 || r.Metrics["train_accuracy"] < 0.7 {
		t.Fatalf("artifact %d bytes, %d progress reports, metrics %v", len(r.Artifact), steps, r.Metrics)
	}
	t.Logf("isolation: %v", r.Isolation)
	if os.Geteuid() == 0 {
		for _, want := range []string{"netns", "seccomp", "rlimit_as", "rlimit_cpu", "rlimit_nproc", "empty_env"} {
			if !strings.Contains(strings.Join(r.Isolation, " "), want) {
				t.Errorf("isolation %v lacks %s", r.Isolation, want)
			}
		}
	}
}

// TestHostileJobs is TEN-2's acceptance: each violation fails the job with
// the reason within 5 s while a well-behaved job running beside them
// succeeds.
func TestHostileJobs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("uid separation needs root; CI runs as root")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted int
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted++
			c.Close()
		}
	}()

	// A planted file in another running job's private directory. The job
	// stays alive until its data arrives, which is after the hostile cases:
	// with a fixed sleep it once finished (and removed its directory) before
	// the read case ran while CI ran every package's tests at once.
	plant := newExec(t, "plant")
	var wg sync.WaitGroup
	var plantErr error
	plantData, feed := io.Pipe()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, plantErr = plant.Run(context.Background(), spec, plantData, executor.Limits{Wall: 5 * time.Minute}, nil)
	}()
	released := false
	release := func() {
		if !released {
			released = true
			go func() {
				_, _ = io.WriteString(feed, trainingData(200))
				feed.Close()
			}()
		}
	}
	defer release()
	started := time.Now().Add(-time.Second)
	var secret string
	// Setup, not the property under test: starting the planting worker
	// (clone, exec, runtime start-up) took over 5 s once under CI's load.
	// Only a file planted by this run counts, not one left by an earlier one.
	for deadline := time.Now().Add(time.Minute); secret == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m, _ := filepath.Glob(filepath.Join(os.TempDir(), "rampart-job-*", "secret.txt"))
		for _, f := range m {
			if fi, err := os.Stat(f); err == nil && fi.ModTime().After(started) {
				secret = f
			}
		}
	}
	if secret == "" {
		t.Fatal("planting job never wrote its file")
	}

	cases := []struct {
		kind   string
		params map[string]string
		lim    executor.Limits
		want   executor.FailureKind
		reason string
	}{
		{"socket", map[string]string{"addr": ln.Addr().String()}, executor.Limits{}, executor.FailViolation, "forbidden system call"},
		{"environ", nil, executor.Limits{}, executor.FailViolation, "permission denied"},
		{"read", map[string]string{"path": secret}, executor.Limits{}, executor.FailViolation, "permission denied"},
		{"read", map[string]string{"path": "/proc/1/root/etc/shadow"}, executor.Limits{}, executor.FailViolation, "denied"},
		{"forkbomb", nil, executor.Limits{}, executor.FailViolation, "forbidden system call"},
		{"alloc", nil, executor.Limits{MemoryBytes: 512 << 20}, executor.FailLimit, "memory limit of 512 MiB"},
		{"spin", nil, executor.Limits{CPUSeconds: 1}, executor.FailLimit, "CPU-time limit of 1s"},
		{"sleep", nil, executor.Limits{Wall: time.Second}, executor.FailLimit, "wall-clock limit of 1s"},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			e := newExec(t, c.kind)
			if c.lim.Wall == 0 {
				c.lim.Wall = 20 * time.Second
			}
			s := spec
			s.Params = c.params
			start := time.Now()
			_, err := e.Run(context.Background(), s, strings.NewReader(trainingData(50)), c.lim, nil)
			took := time.Since(start)
			var f *executor.Failure
			if !errors.As(err, &f) {
				t.Fatalf("got %v, want a failure", err)
			}
			if f.Kind != c.want || !strings.Contains(f.Reason, c.reason) {
				t.Fatalf("failure %s %q, want %s containing %q", f.Kind, f.Reason, c.want, c.reason)
			}
			// Violations happen at start and must be stopped within 5 s;
			// the wall-clock limit within 5 s of its second. The CPU limit
			// is reached after 1 s of CPU, however long that takes on a
			// loaded machine: the job must be stopped by 1 s of CPU after.
			limit := 5*time.Second + c.lim.Wall*time.Duration(btoi(c.kind == "sleep"))
			if c.kind == "spin" {
				if f.CPU > 2*time.Second {
					t.Fatalf("used %s of CPU with a 1 s limit", f.CPU)
				}
				limit = time.Minute
			}
			if took > limit {
				t.Fatalf("stopped after %s, want ≤ %s", took, limit)
			}
			t.Logf("%s: %s in %s (CPU %s)", c.kind, f.Reason, took.Round(time.Millisecond), f.CPU.Round(time.Millisecond))
		})
	}
	if _, err := os.Stat(secret); err != nil {
		t.Fatalf("the planted file is gone before the job ended: %v", err)
	}
	release()
	wg.Wait()
	if plantErr != nil {
		t.Fatalf("the well-behaved job beside the hostile ones failed: %v", plantErr)
	}
	if accepted != 0 {
		t.Fatalf("a job reached the host network: %d connections", accepted)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestDivergedAndCrash(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("x,t\n")
	for i := range 200 {
		fmt.Fprintf(&sb, "%d,%g\n", i%17, 1e300*float64(i%3))
	}
	e := newExec(t)
	_, err := e.Run(context.Background(), executor.Spec{Algorithm: "mlp", Task: "regression", Target: "t"}, strings.NewReader(sb.String()),
		executor.Limits{Wall: 30 * time.Second}, nil)
	var f *executor.Failure
	if !errors.As(err, &f) || f.Kind != executor.FailDiverged || !strings.Contains(f.Reason, "NaN") || f.Retryable() {
		t.Fatalf("diverging job: %v", err)
	}
	c := newExec(t, "crash")
	_, err = c.Run(context.Background(), spec, strings.NewReader(trainingData(20)), executor.Limits{Wall: 10 * time.Second}, nil)
	if !errors.As(err, &f) || f.Kind != executor.FailCrash || !f.Retryable() {
		t.Fatalf("crashing worker: %v", err)
	}
}

// TestArtifactHook: Hooks.Artifact gets the artifact's bytes once, before
// Run returns; a run that fails after sending its artifact still fails
// (the caller undoes what it started), and a second artifact frame is a
// protocol violation.
func TestArtifactHook(t *testing.T) {
	e := newExec(t)
	var got [][]byte
	r, err := e.RunWith(context.Background(), spec, strings.NewReader(trainingData(100)), executor.Limits{Wall: 30 * time.Second},
		executor.Hooks{Artifact: func(b []byte) { got = append(got, b) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0]) != string(r.Artifact) {
		t.Fatalf("hook got %d artifacts; want the result's one", len(got))
	}
	for kind, want := range map[string]executor.FailureKind{"artifact-then-crash": executor.FailCrash, "two-artifacts": executor.FailViolation} {
		got = nil
		h := newExec(t, kind)
		_, err := h.RunWith(context.Background(), spec, strings.NewReader(trainingData(20)), executor.Limits{Wall: 10 * time.Second},
			executor.Hooks{Artifact: func(b []byte) { got = append(got, b) }})
		var f *executor.Failure
		if !errors.As(err, &f) || f.Kind != want {
			t.Fatalf("%s: %v; want a %v failure", kind, err, want)
		}
		if len(got) != 1 || string(got[0]) != "first artifact" {
			t.Fatalf("%s: hook got %q", kind, got)
		}
	}
}
