package jobs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/server"
	"github.com/rampart-mlaas/rampart/servertest"
)

// crashEnv names the data dir a crash-test child serves.
const crashEnv = "RAMPART_JOBS_CRASH_SERVER"

func crashConfig(dir string, slots int) server.Config {
	cfg := server.Defaults()
	cfg.DataDir, cfg.Addr, cfg.Quiet, cfg.JobSlots = dir, "127.0.0.1:0", true, slots
	return cfg
}

// crashServer is the child: a real server that prints its URL and
// operator token, then serves until it is killed.
func crashServer(dir string) {
	ctx := context.Background()
	srv, err := server.Open(ctx, crashConfig(dir, 20), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	ln, err := srv.Listen()
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	fmt.Println("URL", srv.URL(ln))
	fmt.Println("TOKEN", srv.OperatorToken.Reveal())
	_ = srv.Serve(ctx, ln)
}

// crashSpec is a job of a few hundred milliseconds of CPU.
func crashSpec(dsID string) httpapi.CreateJobRequest {
	return httpapi.CreateJobRequest{DatasetID: dsID, Target: "y", Algorithm: "mlp", Seed: 11,
		Params: map[string]string{"hidden_layer_sizes": "32", "epochs": "800", "n_iter_no_change": "1000", "tol": "0"}}
}

// TestCrashDuringTraining is TRAIN-5: kill -9 of the server while 20 jobs
// run; after a restart none is left running, each ends retried (bounded)
// or failed with a reason, and every retried job yields the digest of an
// undisturbed run with the same spec (TRAIN-6). The killed server's worker
// processes die with it (Pdeathsig).
func TestCrashDuringTraining(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dir := filepath.Join(t.TempDir(), "data")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var url, token string
	sc := bufio.NewScanner(out)
	for (url == "" || token == "") && sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "URL":
			url = f[1]
		case len(f) == 2 && f[0] == "TOKEN":
			token = f[1]
		case len(f) > 0 && f[0] == "ERR":
			t.Fatalf("child: %s", sc.Text())
		}
	}
	go io.Copy(io.Discard, out)
	e := &servertest.Env{URL: url, OpToken: token}
	e.Operator = e.Client(t, token)
	tn := e.Tenant(t, "crash")
	dp := e.Actor(t, tn, "provider", rampart.RoleDataProvider)
	md := e.Actor(t, tn, "developer", rampart.RoleModelDeveloper)
	ds := e.Dataset(t, dp, "crash", "y")
	e.Upload(t, dp, ds.ID, classification(1500))
	// Submitted at once, so that all 20 run together before any finishes.
	ids := make([]string, 20)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var j rampart.Job
			if err := md.C.Do(context.Background(), "POST", "/v1/jobs", nil, crashSpec(ds.ID), &j); err != nil {
				t.Error(err)
			}
			ids[i] = j.ID
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Wait until all 20 run, then kill the server.
	deadline := time.Now().Add(60 * time.Second)
	maxRunning := 0
	for {
		running, states := 0, map[string]int{}
		for _, j := range listJobs(t, md) {
			states[string(j.State)+" "+j.Reason]++
			if j.State == rampart.JobRunning {
				running++
			}
		}
		if running >= maxRunning {
			maxRunning = running
			t.Logf("%s: %d running %v", time.Now().Format("15:04:05.000"), running, states)
		}
		if running == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 20 jobs running: %v", running, states)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid := cmd.Process.Pid
	// Its workers: the 20 running jobs' and the spares started ahead.
	workers := trainWorkers(pid)
	if len(workers) < 20 {
		t.Fatalf("the server has %d worker processes, want at least 20", len(workers))
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The killed server's workers died with it.
	time.Sleep(500 * time.Millisecond)
	var orphans []int
	for _, w := range workers {
		if trainWorker(w) {
			orphans = append(orphans, w)
		}
	}
	if len(orphans) > 0 {
		t.Fatalf("worker processes outlived the killed server: %v", orphans)
	}

	// Restart on the same data dir, in this process.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.Open(ctx, crashConfig(dir, 20), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done; srv.Close() }()
	e = &servertest.Env{URL: srv.URL(ln), OpToken: token}
	md.C = e.Client(t, md.Token)

	final := map[string]rampart.Job{}
	for _, id := range ids {
		followSSE(t, e, md, id)
		final[id] = getJob(t, md, id)
	}
	// An undisturbed run of the same spec on the restarted server.
	ref := e.Job(t, md, crashSpec(ds.ID))
	followSSE(t, e, md, ref.ID)
	ref = getJob(t, md, ref.ID)
	if ref.State != rampart.JobSucceeded || ref.Attempt != 1 {
		t.Fatalf("undisturbed job: %s attempt %d %s", ref.State, ref.Attempt, ref.Reason)
	}
	retried, failed := 0, 0
	for id, j := range final {
		switch {
		case j.State == rampart.JobSucceeded:
			if j.Attempt < 2 || j.Attempt > j.MaxAttempts {
				t.Errorf("job %s succeeded on attempt %d: it was running at the crash", id, j.Attempt)
			}
			if j.Result.ArtifactDigest != ref.Result.ArtifactDigest {
				t.Errorf("retried job %s digest %s, undisturbed %s", id, j.Result.ArtifactDigest, ref.Result.ArtifactDigest)
			}
			retried++
		case j.State == rampart.JobFailed && j.Reason != "":
			failed++
		default:
			t.Errorf("job %s ended %s (%q)", id, j.State, j.Reason)
		}
	}
	for _, j := range listJobs(t, md) {
		if !j.State.Final() {
			t.Errorf("job %s left %s", j.ID, j.State)
		}
	}
	t.Logf("after kill -9 during 20 running jobs: %d retried and succeeded with the undisturbed digest, %d failed with a reason", retried, failed)
}

// trainWorkers lists the live processes running the train-worker command
// whose parent is ppid (other servers on the machine, other tests' or other
// users', have workers too).
func trainWorkers(ppid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 3 && f[3] == strconv.Itoa(ppid) && trainWorker(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// trainWorker reports whether pid is a live (not zombie) train worker.
func trainWorker(pid int) bool {
	cl, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || !strings.Contains(string(cl), "train-worker") {
		return false
	}
	f := procStat(pid)
	return len(f) > 2 && f[2] != "Z"
}

// procStat returns the fields of /proc/pid/stat after the command name.
func procStat(pid int) []string {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(st), ')')
	if i < 0 {
		return nil
	}
	// Keep indexes as in the whole line: pid, comm, state, ppid, ...
	return append([]string{"", ""}, strings.Fields(string(st[i+1:]))...)
}
