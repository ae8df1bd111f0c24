// Command jobs benchmarks Rampart's training jobs on a real server (issue 6):
//
//  1. overhead from submit to the first progress event (median, p90),
//  2. throughput of 100 small jobs with 2 worker slots,
//  3. training time through the platform (submit → succeeded, and the
//     child's own start → finish) against the bare ml library in-process,
//     same data, spec and seed.
//
// Run: go run ./bench/jobs [-data /work/shared/datasets/credit_data.csv]
// (as root for the full isolation; it works unprivileged with less).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/server"
)

func main() {
	if _, ok := executor.IsWorker(os.Args); ok {
		os.Exit(executor.ServeChild(os.Stdin, os.Stdout, executor.Train))
	}
	if len(os.Args) == 4 && os.Args[1] == "bare-library" {
		if err := bareLibrary(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	data := flag.String("data", "/work/shared/datasets/credit_data.csv", "CSV for the overhead comparison")
	target := flag.String("target", "Status", "target column of -data")
	samples := flag.Int("samples", 20, "latency samples")
	small := flag.Int("small", 100, "jobs in the throughput run")
	runs := flag.Int("runs", 5, "runs per workload in the platform-vs-library comparison")
	workloads := flag.String("workloads", "gbdt,mlp60,mlp300", "comma-separated workloads to compare (gbdt, mlp60, mlp300)")
	execOnly := flag.Bool("executor", false, "compare the bare library with executor.Run alone (no server), wall and CPU time")
	cpuprofile := flag.String("cpuprofile", "", "write the benchmark process's CPU profile (server side) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *execOnly {
		if err := runExecutor(*data, *target, *runs, strings.Split(*workloads, ",")); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		return
	}
	if err := run(*data, *target, *samples, *small, *runs, strings.Split(*workloads, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type bench struct {
	url   string
	token string
	c     *httpapi.Client
}

func run(dataPath, target string, samples, small, runs int, workloads []string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rampart-bench-jobs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := server.Defaults()
	cfg.DataDir, cfg.Addr, cfg.Quiet, cfg.JobSlots = filepath.Join(dir, "data"), "127.0.0.1:0", true, 2
	srv, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	go srv.Serve(sctx, ln)
	defer func() { cancel(); srv.Close() }()
	op, _ := httpapi.NewClient(srv.URL(ln), srv.OperatorToken.Reveal(), "")

	var tn rampart.Tenant
	if err := op.Do(ctx, "POST", "/v1/tenants", nil, httpapi.CreateTenantRequest{Name: "bench"}, &tn); err != nil {
		return err
	}
	actor := func(name string, role rampart.Role) (*bench, error) {
		var out httpapi.CreatePrincipalResponse
		if err := op.Do(ctx, "POST", "/v1/principals", nil, httpapi.CreatePrincipalRequest{TenantID: tn.ID, Name: name, Role: role}, &out); err != nil {
			return nil, err
		}
		c, _ := httpapi.NewClient(srv.URL(ln), out.Token, "")
		return &bench{url: srv.URL(ln), token: out.Token, c: c}, nil
	}
	dp, err := actor("provider", rampart.RoleDataProvider)
	if err != nil {
		return err
	}
	md, err := actor("developer", rampart.RoleModelDeveloper)
	if err != nil {
		return err
	}
	upload := func(name string, body []byte) (string, error) {
		var d struct {
			ID string `json:"id"`
		}
		if err := dp.c.Do(ctx, "POST", "/v1/datasets", nil, httpapi.CreateDatasetRequest{Name: name}, &d); err != nil {
			return "", err
		}
		req, _ := http.NewRequest("POST", dp.url+"/v1/datasets/"+d.ID+"/versions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+dp.token)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return "", fmt.Errorf("upload %s: %d %s", name, resp.StatusCode, b)
		}
		return d.ID, nil
	}
	var sb strings.Builder
	sb.WriteString("a,b,c,y\n")
	for i := range 200 {
		a, b := i%13, (i*7)%11
		fmt.Fprintf(&sb, "%d,%d,%d,%d\n", a, b, i%3, btoi(a+b > 11))
	}
	smallID, err := upload("small", []byte(sb.String()))
	if err != nil {
		return err
	}
	smallSpec := httpapi.CreateJobRequest{DatasetID: smallID, Target: "y", Algorithm: "logreg", Seed: 1}

	// 0. the idle server's own CPU use (polling loops), which any job
	// competes with.
	quiet()
	idle0, idleT := cpuTime(syscall.RUSAGE_SELF), time.Now()
	time.Sleep(3 * time.Second)
	fmt.Printf("idle server CPU: %.1f ms per second\n", float64((cpuTime(syscall.RUSAGE_SELF)-idle0).Microseconds())/1000/time.Since(idleT).Seconds())

	// 1. submit → first progress event, and → succeeded: a 200-row
	// logistic regression trains in about a millisecond, so its submit →
	// succeeded time is the platform's fixed cost per job.
	var lat, ack, end []time.Duration
	srv0 := cpuTime(syscall.RUSAGE_SELF)
	for range samples {
		t0 := time.Now()
		var j rampart.Job
		if err := md.c.Do(ctx, "POST", "/v1/jobs", nil, smallSpec, &j); err != nil {
			return err
		}
		ack = append(ack, time.Since(t0))
		first := time.Duration(0)
		if _, err := md.follow(ctx, j.ID, func(ev rampart.JobEvent) {
			if ev.Type == rampart.EventProgress && first == 0 {
				first = time.Since(t0)
			}
			if ev.Final() {
				end = append(end, time.Since(t0))
			}
		}); err != nil {
			return err
		}
		lat = append(lat, first)
	}
	srvPerJob := (cpuTime(syscall.RUSAGE_SELF) - srv0) / time.Duration(max(samples, 1))
	if samples > 0 {
		slices.Sort(lat)
		fmt.Printf("submit → first progress event (%d jobs, sequential): median %s, p90 %s, min %s, max %s (POST answered: median %s)\n", len(lat),
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*9/10].Round(time.Millisecond), lat[0].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond),
			median(ack).Round(time.Millisecond))
		slices.Sort(end)
		fmt.Printf("submit → succeeded event, small job (fixed cost per job): median %s, p90 %s, min %s; server process CPU %.1f ms per job\n",
			end[len(end)/2].Round(100*time.Microsecond), end[len(end)*9/10].Round(100*time.Microsecond), end[0].Round(100*time.Microsecond),
			float64(srvPerJob.Microseconds())/1000)
	}

	// 2. throughput: 100 small jobs, 2 slots.
	if small > 0 {
		if err := md.throughput(ctx, smallSpec, small); err != nil {
			return err
		}
	}

	// 3. platform vs bare library, same data, spec and seed.
	raw, err := os.ReadFile(dataPath)
	if err != nil {
		return err
	}
	bigID, err := upload("big", raw)
	if err != nil {
		return err
	}
	all := map[string]httpapi.CreateJobRequest{
		"gbdt":   {DatasetID: bigID, Target: target, Algorithm: "gbdt", Seed: 3, Params: map[string]string{"n_estimators": "200"}},
		"mlp60":  {DatasetID: bigID, Target: target, Algorithm: "mlp", Seed: 3, Params: map[string]string{"epochs": "60", "hidden_layer_sizes": "64"}},
		"mlp300": {DatasetID: bigID, Target: target, Algorithm: "mlp", Seed: 3, Params: map[string]string{"epochs": "300", "hidden_layer_sizes": "64", "tol": "0", "n_iter_no_change": "1000"}},
	}
	fmt.Printf("GOMAXPROCS %d, NumCPU %d (the worker inherits the same CPUs, cgroup and an empty environment, so the same GOMAXPROCS)\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU())
	for _, w := range workloads {
		if w == "" || runs <= 0 {
			continue
		}
		spec, ok := all[w]
		if !ok {
			return fmt.Errorf("unknown workload %q", w)
		}
		var bare, plat, child []time.Duration
		var bareDigest, platDigest string
		// Bare and platform runs alternate, each after a quiet pause, so
		// that load from elsewhere and background work left by the previous
		// run (a spare worker being started, River's completer, the audit
		// log) fall on both alike.
		var bareCPU, platCPU, srvCPU []time.Duration
		for range runs {
			quiet()
			br, err := runBare(dataPath, spec)
			if err != nil {
				return err
			}
			bare, bareCPU, bareDigest = append(bare, br.Wall), append(bareCPU, br.CPU), br.Digest

			quiet()
			s0 := cpuTime(syscall.RUSAGE_SELF)
			c0 := s0 + cpuTime(syscall.RUSAGE_CHILDREN)
			t := time.Now()
			var j rampart.Job
			if err := md.c.Do(ctx, "POST", "/v1/jobs", nil, spec, &j); err != nil {
				return err
			}
			var final time.Time
			j, err = md.follow(ctx, j.ID, func(ev rampart.JobEvent) {
				if ev.Final() {
					final = time.Now()
				}
			})
			if err != nil {
				return err
			}
			if j.State != rampart.JobSucceeded {
				return fmt.Errorf("platform job %s: %s", j.State, j.Reason)
			}
			plat = append(plat, final.Sub(t))
			platCPU = append(platCPU, cpuTime(syscall.RUSAGE_SELF)+cpuTime(syscall.RUSAGE_CHILDREN)-c0)
			srvCPU = append(srvCPU, cpuTime(syscall.RUSAGE_SELF)-s0)
			child = append(child, j.FinishedAt.Sub(*j.StartedAt))
			platDigest = j.Result.ArtifactDigest
		}
		mb, mp, mc := median(bare), median(plat), median(child)
		fmt.Printf("%s (%s) on %s (%d interleaved runs, medians): bare library in its own process %s (read CSV + train + evaluate + marshal); platform submit→succeeded event %s (%+.1f%%), worker start→finish %s (%+.1f%%); same artifact: %v\n",
			w, spec.Algorithm, filepath.Base(dataPath), runs, mb.Round(time.Millisecond), mp.Round(time.Millisecond),
			100*(mp.Seconds()/mb.Seconds()-1), mc.Round(time.Millisecond), 100*(mc.Seconds()/mb.Seconds()-1), "sha256:"+bareDigest == platDigest)
		// CPU time is less sensitive to other load than wall time. The
		// platform's includes the server process's (HTTP, audit, dataset
		// decryption, registration, and its idle polling over the window)
		// and the worker process that ran the job, whose start-up (as a
		// spare) happened before the job.
		fmt.Printf("    CPU time, medians: bare %s; platform %s (%+.1f%%), of which the server process %s\n", median(bareCPU).Round(time.Millisecond),
			median(platCPU).Round(time.Millisecond), 100*(median(platCPU).Seconds()/median(bareCPU).Seconds()-1), median(srvCPU).Round(time.Millisecond))
		// Each platform run follows its bare run: the median of the pairs'
		// differences is the fixed cost, less exposed to load that shifts
		// both runs of a pair alike.
		var dE, dW []time.Duration
		for i := range plat {
			dE, dW = append(dE, plat[i]-bare[i]), append(dW, child[i]-bare[i])
		}
		fmt.Printf("    paired differences platform − bare, median: end to end %s, worker %s\n", median(dE).Round(100*time.Microsecond), median(dW).Round(100*time.Microsecond))
		// The platform's own time outside the worker window (submit →
		// started_at, finished_at → succeeded event: admission, queue
		// pick-up, registration, final update) within each run: the
		// training's own variation, which dominates the pairs above,
		// cancels out of it.
		var dO []time.Duration
		for i := range plat {
			dO = append(dO, plat[i]-child[i])
		}
		fmt.Printf("    outside the worker window (end to end − worker, per run), median: %s\n", median(dO).Round(100*time.Microsecond))
	}
	return nil
}

// throughput submits n small jobs at once and waits for all of them.
func (md *bench) throughput(ctx context.Context, smallSpec httpapi.CreateJobRequest, small int) error {
	t0 := time.Now()
	ids := make([]string, small)
	for i := range ids {
		var j rampart.Job
		if err := md.c.Do(ctx, "POST", "/v1/jobs", nil, smallSpec, &j); err != nil {
			return err
		}
		ids[i] = j.ID
	}
	submitted := time.Since(t0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	states := map[rampart.JobState]int{}
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := md.follow(ctx, id, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				states["error"]++
				return
			}
			states[j.State]++
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	fmt.Printf("throughput: %d small jobs (logreg, 200 rows) with 2 slots in %s (submitted in %s): %.1f jobs/s, %s per job; outcomes %v\n",
		small, el.Round(time.Millisecond), submitted.Round(time.Millisecond), float64(small)/el.Seconds(), (el / time.Duration(small)).Round(time.Millisecond), states)
	return nil
}

// bareResult is what a bare-library process reports.
type bareResult struct {
	Wall, CPU time.Duration
	Digest    string
}

// runBare runs the bare library in a process of its own (this binary with
// "bare-library"), so that neither the server sharing this process (its
// polling, its heap and GC) nor process start-up is on its time: the
// process times only read CSV + train + evaluate + marshal, from memory.
func runBare(dataPath string, spec httpapi.CreateJobRequest) (bareResult, error) {
	var r bareResult
	js, _ := json.Marshal(ml.TrainSpec{Algorithm: spec.Algorithm, Target: spec.Target, Params: spec.Params, Seed: spec.Seed})
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	out, err := exec.Command(exe, "bare-library", dataPath, string(js)).Output()
	if err != nil {
		return r, fmt.Errorf("bare library: %w", err)
	}
	return r, json.Unmarshal(out, &r)
}

func bareLibrary(dataPath, specJSON string) error {
	var ts ml.TrainSpec
	if err := json.Unmarshal([]byte(specJSON), &ts); err != nil {
		return err
	}
	raw, err := os.ReadFile(dataPath)
	if err != nil {
		return err
	}
	runtime.GC()
	c0, t := cpuTime(syscall.RUSAGE_SELF), time.Now()
	f, err := ml.ReadCSV(bytes.NewReader(raw), ml.CSVOptions{})
	if err != nil {
		return err
	}
	m, err := ml.Train(context.Background(), f, ts, nil)
	if err != nil {
		return err
	}
	if _, err := m.Evaluate(f); err != nil {
		return err
	}
	art, err := m.Marshal()
	if err != nil {
		return err
	}
	r := bareResult{Wall: time.Since(t), CPU: cpuTime(syscall.RUSAGE_SELF) - c0, Digest: digest(art)}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// quiet precedes each timed run of the comparisons: a full GC, so garbage
// left by the previous run (the in-process bare library's especially) is
// not collected on the next run's time, then a pause for background work
// (a spare worker being started, River's completer, the audit log).
func quiet() {
	runtime.GC()
	time.Sleep(300 * time.Millisecond)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// follow reads the job's SSE stream until a final event, then returns the job.
func (b *bench) follow(ctx context.Context, id string, on func(rampart.JobEvent)) (rampart.Job, error) {
	var j rampart.Job
	req, _ := http.NewRequestWithContext(ctx, "GET", b.url+"/v1/jobs/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return j, err
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev rampart.JobEvent
		if err := json.Unmarshal([]byte(v), &ev); err != nil {
			resp.Body.Close()
			return j, err
		}
		if on != nil {
			on(ev)
		}
		if ev.Final() {
			break
		}
	}
	resp.Body.Close()
	err = b.c.Do(ctx, "GET", "/v1/jobs/"+id, nil, nil, &j)
	return j, err
}

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// usage is user and system CPU time and minor page faults.
type usage struct {
	user, sys time.Duration
	minflt    int64
}

func getUsage(who int) usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(who, &ru)
	return usage{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), ru.Minflt}
}

func (u usage) minus(v usage) usage {
	return usage{u.user - v.user, u.sys - v.sys, u.minflt - v.minflt}
}

// runExecutor compares, run by run and interleaved, the bare library with
// the confined child alone (executor.Run, no server, no store): wall clock
// and CPU time (the child's from RUSAGE_CHILDREN).
func runExecutor(dataPath, target string, runs int, workloads []string) error {
	ctx := context.Background()
	raw, err := os.ReadFile(dataPath)
	if err != nil {
		return err
	}
	ex, err := executor.New(executor.Config{Spares: 1})
	if err != nil {
		return err
	}
	defer ex.Close()
	specs := map[string]executor.Spec{
		"gbdt":   {Algorithm: "gbdt", Target: target, Seed: 3, Params: map[string]string{"n_estimators": "200"}},
		"mlp60":  {Algorithm: "mlp", Target: target, Seed: 3, Params: map[string]string{"epochs": "60", "hidden_layer_sizes": "64"}},
		"mlp300": {Algorithm: "mlp", Target: target, Seed: 3, Params: map[string]string{"epochs": "300", "hidden_layer_sizes": "64", "tol": "0", "n_iter_no_change": "1000"}},
	}
	for _, w := range workloads {
		if w == "" {
			continue
		}
		spec, ok := specs[w]
		if !ok {
			return fmt.Errorf("unknown workload %q", w)
		}
		var bw, bc, ew, ec []time.Duration
		var bu, eu []usage
		for range runs {
			quiet()
			u0 := getUsage(syscall.RUSAGE_SELF)
			c0, t0 := cpuTime(syscall.RUSAGE_SELF), time.Now()
			var bFirst, eFirst, eDone time.Duration
			out, err := executor.Train(ctx, spec, bytes.NewReader(raw), func(executor.Progress) {
				if bFirst == 0 {
					bFirst = time.Since(t0)
				}
			})
			if err != nil {
				return err
			}
			bw, bc = append(bw, time.Since(t0)), append(bc, cpuTime(syscall.RUSAGE_SELF)-c0)
			bu = append(bu, getUsage(syscall.RUSAGE_SELF).minus(u0))
			quiet()
			u0 = getUsage(syscall.RUSAGE_CHILDREN)
			c0, t0 = cpuTime(syscall.RUSAGE_CHILDREN), time.Now()
			res, err := ex.Run(ctx, spec, bytes.NewReader(raw), executor.Limits{}, func(p executor.Progress) {
				if eFirst == 0 {
					eFirst = time.Since(t0)
				}
				if p.Stage == "done" {
					eDone = time.Since(t0)
				}
			})
			if err != nil {
				return err
			}
			ew, ec = append(ew, time.Since(t0)), append(ec, cpuTime(syscall.RUSAGE_CHILDREN)-c0)
			eu = append(eu, getUsage(syscall.RUSAGE_CHILDREN).minus(u0))
			// Where the child's time goes: its first progress report
			// (spec, data through the pipe, CSV parsed, training begun)
			// and its last (training done; then evaluate, marshal and
			// the artifact's transfer) against the bare run's first one.
			fmt.Printf("    first progress: bare %s, child %s; child training done %s, result %s\n", bFirst.Round(100*time.Microsecond),
				eFirst.Round(100*time.Microsecond), eDone.Round(100*time.Microsecond), ew[len(ew)-1].Round(100*time.Microsecond))
			if digest(res.Artifact) != digest(out.Artifact) {
				return fmt.Errorf("%s: the child's artifact differs from the bare one", w)
			}
		}
		fmt.Printf("%s executor only (%d interleaved runs, medians): bare wall %s cpu %s; child wall %s (%+.1f%%) cpu %s (%+.1f%%)\n", w, runs,
			median(bw).Round(time.Millisecond), median(bc).Round(time.Millisecond), median(ew).Round(time.Millisecond),
			100*(median(ew).Seconds()/median(bw).Seconds()-1), median(ec).Round(time.Millisecond), 100*(median(ec).Seconds()/median(bc).Seconds()-1))
		for i := range bu {
			fmt.Printf("    run %d: bare user %s sys %s minflt %d; child user %s sys %s minflt %d\n", i, bu[i].user.Round(time.Millisecond), bu[i].sys.Round(time.Millisecond), bu[i].minflt,
				eu[i].user.Round(time.Millisecond), eu[i].sys.Round(time.Millisecond), eu[i].minflt)
		}
	}
	return nil
}
