// Command datasets measures dataset ingestion (issue 5): a generated CSV
// of -size bytes is uploaded to a real Rampart server over HTTP on
// 127.0.0.1, where it is parsed, validated, profiled, screened for PII and
// formula injection, encrypted and stored (fsync'd) in one streaming pass.
// It reports the median throughput of -runs uploads, the ratio to `cp` of
// the same file on the same disk (with and without a final sync), and the
// process's peak resident memory during the uploads (VmHWM, reset before
// each upload; the generator has finished by then and the client streams
// from disk, so the peak is the server's).
//
//	go run ./bench/datasets [-size 1GiB] [-runs 3] [-dir DIR] [-mode http|service] [-label]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/rampart-mlaas/rampart/dataset/loancsv"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/server"
)

var (
	sizeFlag = flag.String("size", "1GiB", "CSV size (e.g. 1GiB, 200MiB)")
	runs     = flag.Int("runs", 3, "uploads (the median is reported)")
	dir      = flag.String("dir", "", "directory for the CSV and the server's data (default a temp dir under /tmp)")
	mode     = flag.String("mode", "http", "http: upload to a real server; service: call the dataset service in-process")
	label    = flag.Bool("label", false, "declare a label column (adds label screening of a 20,000-row sample)")
	cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the uploads")
	traceOut = flag.String("trace", "", "write an execution trace (go tool trace) of the first upload")
)

// cleanup removes the temporary directory the program created (if any).
// Every fatal error runs it: a benchmark that fails (a full disk, say)
// must not leave a GiB behind in /tmp on a machine shared with others.
var cleanup = func() {}

func fatalf(format string, args ...any) {
	cleanup()
	log.Fatalf(format, args...)
}

func parseSize(s string) int64 {
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}} {
		if v, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		fatalf("size %q: %v", s, err)
	}
	return int64(n * float64(mult))
}

// generate writes a CSV of about size bytes: integer, decimal, categorical,
// boolean and free-text columns, a few formula-looking cells and missing
// values, like a real credit table.
func generate(path string, size int64) (rows int64) {
	f, err := os.Create(path)
	if err != nil {
		fatalf("%v", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(loancsv.Header)
	r := loancsv.NewRand()
	var n int64
	buf := make([]byte, 0, 256)
	for n = 0; ; n++ {
		buf = loancsv.AppendRow(buf[:0], r, n)
		if _, err := w.Write(buf); err != nil {
			fatalf("%v", err)
		}
		if size -= int64(len(buf)); size <= 0 {
			break
		}
	}
	if err := w.Flush(); err != nil {
		fatalf("%v", err)
	}
	if err := f.Close(); err != nil {
		fatalf("%v", err)
	}
	return n + 1
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// peakRSS reads VmHWM (peak resident set) in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// resetPeakRSS resets VmHWM (Linux: write 5 to clear_refs).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func timeCmd(name string, args ...string) float64 {
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		fatalf("%s %v: %v %s", name, args, err, out)
	}
	return time.Since(start).Seconds()
}

func main() {
	// The server starts spare training workers (its executor) by running
	// this binary with "internal train-worker". Without this check each
	// spare ran the whole benchmark instead: it generated its own 1 GiB
	// CSV during the measured uploads (the slow first runs, and CPU the
	// process's rusage does not count) and, killed when the server closed,
	// left it in /tmp (round 5).
	if _, ok := executor.IsWorker(os.Args); ok {
		os.Exit(executor.ServeChild(os.Stdin, os.Stdout, executor.Train))
	}
	flag.Parse()
	size := parseSize(*sizeFlag)
	if *dir == "" {
		d, err := os.MkdirTemp("/tmp", "rampart-ds-bench")
		if err != nil {
			fatalf("%v", err)
		}
		cleanup = func() { os.RemoveAll(d) }
		defer cleanup()
		*dir = d
	}
	src := filepath.Join(*dir, "data.csv")
	t0 := time.Now()
	rows := generate(src, size)
	// Write the generated file back to disk before anything is timed: its
	// dirty pages (1 GiB) were otherwise flushed by the kernel's writeback
	// threads during the cp baseline and the first uploads, competing with
	// them for CPU and disk (round 4: the first runs were the slow ones).
	// The uploads' own writes and fsyncs are still timed.
	timeCmd("sync", src)
	fi, _ := os.Stat(src)
	size = fi.Size()
	fmt.Printf("go %s, GOMAXPROCS=%d, %d CPUs; generated %s: %.1f MiB, %d rows, 12 columns in %.1fs; load average: %s\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), src, float64(size)/(1<<20), rows, time.Since(t0).Seconds(), loadavg())

	ctx := context.Background()
	cfg := server.Defaults()
	cfg.DataDir = filepath.Join(*dir, "data")
	cfg.Addr = "127.0.0.1:0"
	cfg.Quiet = true
	srv, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fatalf("%v", err)
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		fatalf("%v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = srv.Serve(sctx, ln) }()
	url := srv.URL(ln)
	op, err := httpapi.NewClient(url, srv.OperatorToken.Reveal(), "")
	if err != nil {
		fatalf("%v", err)
	}
	var tn rampart.Tenant
	if err := op.Do(ctx, "POST", "/v1/tenants", nil, httpapi.CreateTenantRequest{Name: "bench"}, &tn); err != nil {
		fatalf("%v", err)
	}
	var pr httpapi.CreatePrincipalResponse
	if err := op.Do(ctx, "POST", "/v1/principals", nil, httpapi.CreatePrincipalRequest{TenantID: tn.ID, Name: "provider", Role: rampart.RoleDataProvider}, &pr); err != nil {
		fatalf("%v", err)
	}
	c, _ := httpapi.NewClient(url, pr.Token, "")
	req := httpapi.CreateDatasetRequest{Name: "bench"}
	if *label {
		req.Label = "label"
	}
	var d dataset.Dataset
	if err := c.Do(ctx, "POST", "/v1/datasets", nil, req, &d); err != nil {
		fatalf("%v", err)
	}
	svc := dataset.New(srv.DB, srv.Barrier, srv.Audit, nil, nil)
	caller := rampart.WithCaller(ctx, rampart.Caller{Principal: pr.Principal, RequestID: "req_bench"})

	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fatalf("%v", err)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var secs, cpus []float64
	var peaks []int64
	for i := range *runs {
		runtime.GC()
		resetPeakRSS()
		f, err := os.Open(src)
		if err != nil {
			fatalf("%v", err)
		}
		if *traceOut != "" && i == 0 {
			tf, err := os.Create(*traceOut)
			if err != nil {
				fatalf("%v", err)
			}
			_ = trace.Start(tf)
			defer tf.Close()
		}
		start := time.Now()
		cpu0 := cpuTime()
		_, sys0 := cpuTimes()
		var v dataset.Version
		switch *mode {
		case "service":
			v, _, err = svc.Upload(caller, d.ID, f, dataset.UploadInput{Format: dataset.FormatCSV})
		default:
			v, err = upload(ctx, url, pr.Token, d.ID, f, size)
		}
		el := time.Since(start).Seconds()
		cpu := cpuTime() - cpu0
		_, sys1 := cpuTimes()
		if *traceOut != "" && i == 0 {
			trace.Stop()
		}
		cpus = append(cpus, cpu)
		f.Close()
		if err != nil {
			fatalf("upload %d: %v", i+1, err)
		}
		peaks = append(peaks, peakRSS())
		secs = append(secs, el)
		fmt.Printf("run %d: version %d, %d rows, %.2fs wall (%.0f MB/s), %.2fs CPU (%.2fs of it system; %.0f MB per CPU-second), peak RSS %.0f MiB; load average %s\n", i+1, v.Version, v.Rows, el,
			float64(size)/1e6/el, cpu, sys1-sys0, float64(size)/1e6/cpu, float64(peaks[len(peaks)-1])/(1<<20), loadavg())
		// Keep the disk from filling: crypto-shred the previous version.
		if v.Version > 1 {
			if _, err := svc.DeleteVersion(caller, d.ID, v.Version-1); err != nil {
				fatalf("%v", err)
			}
		}
	}
	// Baseline: cp of the same file on the same disk, after the uploads, so
	// that the 3 GiB it writes, syncs and frees are not in the kernel's way
	// during the first upload (round 4: run 1 had 0.6-1.3 s more system CPU
	// with the baseline before it; its wall time, about twice that of the
	// later runs, did not change either way).
	var cpS, cpSyncS []float64
	for range *runs {
		dst := filepath.Join(*dir, "copy.csv")
		cpS = append(cpS, timeCmd("cp", src, dst))
		os.Remove(dst)
		start := time.Now()
		timeCmd("cp", src, dst)
		timeCmd("sync", dst)
		cpSyncS = append(cpSyncS, time.Since(start).Seconds())
		os.Remove(dst)
	}

	m, mc, mcs := median(secs), median(cpS), median(cpSyncS)
	maxPeak := slices.Max(peaks)
	fmt.Printf("\ningest (%s, parse+validate+profile+PII+encrypt+store): median %.2fs = %.0f MB/s\n", *mode, m, float64(size)/1e6/m)
	fmt.Printf("CPU time per upload (server and client, all goroutines): median %.2fs = %.0f MB per CPU-second; load average at the end: %s\n",
		median(cpus), float64(size)/1e6/median(cpus), loadavg())
	fmt.Printf("cp: median %.2fs = %.0f MB/s; cp+sync: median %.2fs = %.0f MB/s\n", mc, float64(size)/1e6/mc, mcs, float64(size)/1e6/mcs)
	fmt.Printf("ratio ingest/cp throughput: %.2f (vs cp+sync: %.2f)\n", mc/m, mcs/m)
	fmt.Printf("peak RSS during uploads: max %.0f MiB (target ≤ 256 MiB)\n", float64(maxPeak)/(1<<20))
}

func upload(ctx context.Context, url, token, id string, body io.Reader, size int64) (dataset.Version, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/datasets/"+id+"/versions", body)
	if err != nil {
		return dataset.Version{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return dataset.Version{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		return dataset.Version{}, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var out httpapi.UploadResponse
	if err := jsonUnmarshal(b, &out); err != nil {
		return dataset.Version{}, err
	}
	return out.Version, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// cpuTime is the process's user+system CPU seconds.
func cpuTime() float64 {
	u, s := cpuTimes()
	return u + s
}

// cpuTimes is the process's user and system CPU seconds.
func cpuTimes() (user, sys float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return float64(ru.Utime.Nano()) / 1e9, float64(ru.Stime.Nano()) / 1e9
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
