// Command serving benchmarks Rampart's inference endpoints (issue 7) with
// load from a second process (Debian's wrk) on loopback: throughput and
// latency of a logistic-regression and a 100-tree GBDT endpoint (a) with
// every guard on, (b) with the guards off, (c) against a Flask +
// scikit-learn peer serving the same model type on the same inputs, the p99
// at about half of (a)'s throughput, and batch scoring throughput.
//
//	go run ./bench/serving -duration 10s
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/registry"
	"github.com/rampart-mlaas/rampart/server"
)

var (
	duration = flag.Duration("duration", 10*time.Second, "each wrk run")
	conns    = flag.Int("c", 16, "wrk connections at full load")
	dataPath = flag.String("data", "dataset/testdata/breast_cancer.csv", "numeric CSV")
	target   = flag.String("target", "diagnosis", "label column")
	peer     = flag.Bool("peer", true, "run the Flask + scikit-learn peer")
	fairRate = flag.Float64("fair-rate", 100, "tenant A's rate limit (requests/s) in the fair-share run; A offers 10x it")
	fairB    = flag.Int("fair-b-rate", 300, "tenant B's steady offered load (requests/s) in the fair-share run")
	only     = flag.String("only", "", "run only this part: single, batch or fair")
	cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the whole process (the server) during the runs")
	traceOut = flag.String("trace", "", "write an execution trace of the server during the half-load runs")
	modelsF  = flag.String("models", "logreg,gbdt", "models in the single-row runs")
	halfProf = flag.String("half-cpuprofile", "", "write a CPU profile of the server during the half-load runs (not with -trace or -cpuprofile)")
	gogc     = flag.Int("gogc", 0, "the server's GC target (server config gc_percent); 0 keeps the default")
	arrivals = flag.String("arrivals", "exp", "think time of the paced runs (half load, fair share): exp (exponential, mean as needed for the rate) or fixed")
	halfRate = flag.Float64("half-rate", 0, "offered rate of the half-load run (default: half of (a)'s measured throughput)")
)

type result struct {
	Name     string  `json:"name"`
	Conns    int     `json:"connections"`
	RPS      float64 `json:"requests_per_s"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Non2xx   int     `json:"non_2xx"`
	RowsPerS float64 `json:"rows_per_s,omitempty"`
	// CPU time of this process (the server; the peer is another process)
	// per answered request during the run, and for batches rows per
	// server CPU-second: figures the other load on a shared machine
	// distorts less than throughput.
	ServerCPUms float64 `json:"server_cpu_ms_per_request"`
	RowsPerCPUs float64 `json:"rows_per_server_cpu_s,omitempty"`
}

// procCPU is the user+system CPU time of process pid (Linux /proc).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) "(...) ".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	flag.Parse()
	if _, err := exec.LookPath("wrk"); err != nil {
		log.Fatal("wrk is required: apt-get install -y wrk")
	}
	dir, err := os.MkdirTemp("", "rampart-bench-serving")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := server.Defaults()
	cfg.DataDir, cfg.Addr, cfg.Quiet = filepath.Join(dir, "data"), "127.0.0.1:0", true
	if *gogc > 0 {
		cfg.GCPercent = *gogc
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ctx, ln)
	base := srv.URL(ln)
	op, _ := httpapi.NewClient(base, srv.OperatorToken.Reveal(), "")
	tenant := func(name string) rampart.Tenant {
		var tn rampart.Tenant
		must(op.Do(ctx, "POST", "/v1/tenants", nil, httpapi.CreateTenantRequest{Name: name}, &tn))
		return tn
	}
	actor := func(tn rampart.Tenant, name string, role rampart.Role) (rampart.Principal, *httpapi.Client, string) {
		var out httpapi.CreatePrincipalResponse
		must(op.Do(ctx, "POST", "/v1/principals", nil, httpapi.CreatePrincipalRequest{TenantID: tn.ID, Name: name, Role: role}, &out))
		c, _ := httpapi.NewClient(base, out.Token, "")
		return out.Principal, c, out.Token
	}
	tn := tenant("bench")
	devP, dev, _ := actor(tn, "dev", rampart.RoleModelDeveloper)
	_, _, userTok := actor(tn, "app", rampart.RoleServiceUser)

	f, err := os.Open(*dataPath)
	must(err)
	fr, err := ml.ReadCSV(f, ml.CSVOptions{})
	must(err)
	f.Close()
	reg, err := registry.New(registry.Options{Store: srv.DB, Principals: srv.DB, Keys: srv.Keyring, Barrier: srv.Barrier, Audit: srv.Audit, Version: "bench"})
	must(err)
	models := []struct {
		name, algo string
		params     map[string]string
	}{{"logreg", ml.LogReg, nil}, {"gbdt", ml.GBDT, map[string]string{"n_estimators": "100"}}}
	var features []string
	var logregArt []byte
	for _, m := range models {
		model, err := ml.Train(ctx, fr, ml.TrainSpec{Algorithm: m.algo, Target: *target, Params: m.params, Seed: 1}, nil)
		must(err)
		art, err := model.Marshal()
		must(err)
		registerModel(ctx, reg, devP, m.name, art)
		if m.name == "logreg" {
			logregArt = art
		}
		features = features[:0]
		for _, fi := range model.Schema() {
			features = append(features, fi.Name)
		}
		// (a) every guard on, with rate and budget set high enough not to
		// throttle the benchmark (they are still evaluated per request).
		on := rampart.GuardPolicy{RatePerSec: 1e6, Burst: 1_000_000, BudgetPerDay: 1 << 50, BudgetTotal: 1 << 50, MaxRows: 100_000,
			OOD: rampart.OODFlag, Extraction: rampart.ExtractionAlert}
		off := rampart.GuardPolicy{RatePerSec: -1, BudgetPerDay: -1, BudgetTotal: -1, MaxRows: 100_000, RangeMargin: -1,
			OOD: rampart.OODOff, Extraction: rampart.ExtractionOff}
		for suffix, pol := range map[string]rampart.GuardPolicy{"on": on, "off": off} {
			must(dev.Do(ctx, "POST", "/v1/endpoints", nil, httpapi.CreateEndpointRequest{Name: m.name + "-" + suffix, Model: m.name, Policy: &pol}, nil))
		}
	}
	// Fair share (TEN-3): two more tenants, each with its own logreg
	// endpoint (every guard on). A's endpoint is limited to fairRate
	// requests/s per principal; B's is not limited.
	fairURL, fairTok := map[string]string{}, map[string]string{}
	for _, name := range []string{"fair-a", "fair-b"} {
		t := tenant(name)
		p, c, _ := actor(t, "dev", rampart.RoleModelDeveloper)
		_, _, tok := actor(t, "app", rampart.RoleServiceUser)
		registerModel(ctx, reg, p, "logreg", logregArt)
		pol := rampart.GuardPolicy{RatePerSec: 1e6, Burst: 1_000_000, BudgetPerDay: 1 << 50, BudgetTotal: 1 << 50, MaxRows: 100_000,
			OOD: rampart.OODFlag, Extraction: rampart.ExtractionAlert}
		if name == "fair-a" {
			pol.RatePerSec, pol.Burst = *fairRate, int(*fairRate)
		}
		must(c.Do(ctx, "POST", "/v1/endpoints", nil, httpapi.CreateEndpointRequest{Name: "scoring", Model: "logreg", Policy: &pol}, nil))
		fairURL[name], fairTok[name] = base+"/v2/models/scoring/infer", tok
	}

	// Request bodies: one row (rows cycle through the table in the Lua
	// script would change nothing for scoring cost) and a 10,000-row batch.
	row := func(i int) []float64 {
		var x []float64
		for _, name := range features {
			c, _ := fr.Column(name)
			x = append(x, c.Num[i%fr.NumRows()])
		}
		return x
	}
	oip := func(n int) []byte {
		data := make([][]float64, n)
		for i := range n {
			data[i] = row(i)
		}
		b, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "input-0", "shape": []int{n, len(features)}, "datatype": "FP64", "data": data}}})
		return b
	}
	one := filepath.Join(dir, "one.json")
	batch := filepath.Join(dir, "batch.json")
	must(os.WriteFile(one, oip(1), 0o600))
	must(os.WriteFile(batch, oip(10_000), 0o600))

	var results []result
	var record func(r result, rows int) result
	run := func(name, url, token, body string, c int, rows int) result {
		return record(wrk(name, url, token, body, c), rows)
	}
	record = func(r result, rows int) result {
		if rows > 0 {
			r.RowsPerS = r.RPS * float64(rows)
			if r.ServerCPUms > 0 {
				r.RowsPerCPUs = float64(rows) / (r.ServerCPUms / 1000)
			}
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%-28s c=%-3d %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  non-2xx %d  server %.3f CPU-ms/req%s\n", r.Name, r.Conns, r.RPS, r.P50ms, r.P99ms, r.Non2xx,
			r.ServerCPUms, map[bool]string{true: fmt.Sprintf("  %.0f rows/s  %.0f rows/server-CPU-s", r.RowsPerS, r.RowsPerCPUs), false: ""}[rows > 0])
		return r
	}
	if *cpuProf != "" {
		pf, err := os.Create(*cpuProf)
		must(err)
		must(pprof.StartCPUProfile(pf))
		defer pprof.StopCPUProfile()
	}
	part := func(p string) bool { return *only == "" || *only == p }
	for _, m := range models {
		if !part("single") {
			break
		}
		if !slices.Contains(strings.Split(*modelsF, ","), m.name) {
			continue
		}
		a := run(m.name+" (a) guards on", base+"/v2/models/"+m.name+"-on/infer", userTok, one, *conns, 0)
		run(m.name+" (b) guards off", base+"/v2/models/"+m.name+"-off/infer", userTok, one, *conns, 0)
		// p99 at half of (a)'s throughput, offered at that rate: each
		// connection waits between its requests (wrk's delay() hook).
		// Until session 3 this was a closed loop on fewer connections,
		// which ran at 70-100 % of (a)'s throughput, not at half of it.
		half := a.RPS / 2
		if *halfRate > 0 {
			half = *halfRate
		}
		// About 50 requests/s per connection; a 2 s calibration run
		// measures the time a request adds to each connection's cycle
		// (latency and wrk's own), so the think time can leave it out and
		// the run offers half of (a), not less.
		hc, hd := paced(half, 50, 0)
		if cal := wrkPaced(m.name+" calibration", base+"/v2/models/"+m.name+"-on/infer", userTok, one, hc, hd, 2*time.Second); cal.RPS > 0 {
			lat := float64(hc)*1000/cal.RPS - hd
			hc, hd = paced(half, 50, max(0, lat))
		}
		stopTrace := func() {}
		if *traceOut != "" {
			tf, err := os.Create(strings.TrimSuffix(*traceOut, ".trace") + "-" + m.name + ".trace")
			must(err)
			must(trace.Start(tf))
			stopTrace = func() { trace.Stop(); tf.Close() }
		} else if *halfProf != "" {
			pf, err := os.Create(strings.TrimSuffix(*halfProf, ".prof") + "-" + m.name + ".prof")
			must(err)
			must(pprof.StartCPUProfile(pf))
			stopTrace = func() { pprof.StopCPUProfile(); pf.Close() }
		}
		record(wrkPaced(m.name+" (a) half load", base+"/v2/models/"+m.name+"-on/infer", userTok, one, hc, hd, *duration), 0)
		stopTrace()
		if *peer {
			port := freePort()
			cmd := exec.Command("/usr/bin/python3", "bench/serving/peer.py", *dataPath, *target, m.name, port)
			cmd.Stderr = io.Discard
			must(cmd.Start())
			waitHTTP("http://127.0.0.1:" + port + "/v2/models/x/infer")
			// The peer's own CPU per request (it is another process).
			t0 := procCPU(cmd.Process.Pid)
			r := run(m.name+" (c) flask+sklearn", "http://127.0.0.1:"+port+"/v2/models/"+m.name+"/infer", "", one, *conns, 0)
			if n := r.RPS * duration.Seconds(); n > 0 {
				results[len(results)-1].ServerCPUms = (procCPU(cmd.Process.Pid) - t0).Seconds() * 1000 / n
				fmt.Fprintf(os.Stderr, "%-28s peer process %.3f CPU-ms/req\n", "", results[len(results)-1].ServerCPUms)
			}
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	if part("batch") {
		run("logreg batch 10k rows (a)", base+"/v2/models/logreg-on/infer", userTok, batch, 4, 10_000)
		run("logreg batch 10k rows (b)", base+"/v2/models/logreg-off/infer", userTok, batch, 4, 10_000)
	}
	if part("fair") {
		// TEN-3: B at a steady moderate load alone, then the same while A
		// offers 10x its rate limit on its own endpoint (A starts a second
		// earlier and ends a second later than B's run).
		bc, bd := paced(float64(*fairB), 100, 0)
		ac, ad := paced(10**fairRate, 100, 0)
		note := func(r result) {
			results = append(results, r)
			fmt.Fprintf(os.Stderr, "%-28s c=%-3d %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  non-2xx %d\n", r.Name, r.Conns, r.RPS, r.P50ms, r.P99ms, r.Non2xx)
		}
		note(wrkPaced("fair B alone", fairURL["fair-b"], fairTok["fair-b"], one, bc, bd, *duration))
		var wg sync.WaitGroup
		var ra result
		wg.Go(func() {
			ra = wrkPaced("fair A at 10x its limit", fairURL["fair-a"], fairTok["fair-a"], one, ac, ad, *duration+2*time.Second)
		})
		time.Sleep(time.Second)
		rb := wrkPaced("fair B with A flooding", fairURL["fair-b"], fairTok["fair-b"], one, bc, bd, *duration)
		wg.Wait()
		note(rb)
		note(ra)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	must(enc.Encode(results))
}

func registerModel(ctx context.Context, reg *registry.Service, owner rampart.Principal, name string, art []byte) {
	sum := sha256.Sum256(append([]byte(owner.TenantID), art...))
	now := time.Now().UTC()
	_, err := reg.RegisterTrained(ctx, registry.TrainedInput{Owner: owner, ModelName: name, Artifact: art, JobID: "job_" + hex.EncodeToString(sum[:8]),
		Datasets: []registry.DatasetInput{{ID: "ds_bench", Version: 1, Digest: hex.EncodeToString(sum[:])}}, StartedAt: now, FinishedAt: now})
	must(err)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func waitHTTP(url string) {
	for range 600 {
		if resp, err := http.Post(url, "application/json", strings.NewReader("{}")); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatalf("peer at %s did not start", url)
}

var (
	reqRE  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctRE  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)`)
	non2RE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	totRE  = regexp.MustCompile(`(\d+) requests in`)
)

// wrk runs Debian's wrk (a separate process) against url with the body in
// file, and parses its report.
func wrk(name, url, token, file string, c int) result {
	return wrkPaced(name, url, token, file, c, 0, *duration)
}

var luaSeq atomic.Int64

// paced returns connections (about perConn requests/s each) and the mean
// think time that offer about rate requests/s when a request takes
// latencyMs.
func paced(rate, perConn, latencyMs float64) (conns int, delayMs float64) {
	conns = max(1, int(rate/perConn))
	return conns, max(0.5, float64(conns)*1000/rate-latencyMs)
}

// wrkPaced is wrk with each connection waiting delayMs on average between
// requests (wrk's delay() hook), which paces the offered load at about
// c × 1000/(delayMs + latency) requests/s; d is the run's length.
func wrkPaced(name, url, token, file string, c int, delayMs float64, d time.Duration) result {
	lua := filepath.Join(filepath.Dir(file), fmt.Sprintf("post%d.lua", luaSeq.Add(1)))
	auth := ""
	if token != "" {
		auth = fmt.Sprintf("wrk.headers[\"Authorization\"] = \"Bearer %s\"\n", token)
	}
	pace := ""
	if delayMs > 0 && *arrivals == "fixed" {
		pace = fmt.Sprintf("function delay()\n  return %d\nend\n", max(1, int(delayMs+0.5)))
	} else if delayMs > 0 {
		// Exponential think times (mean delayMs) per connection, each wrk
		// thread seeded differently: independent clients, whose requests
		// together arrive about as a Poisson stream. With one fixed delay,
		// every connection that waited out the same stall fired again in
		// the same millisecond from then on (measured: up to 30 arrivals
		// in one ms at 2,600/s), which no set of independent clients does.
		pace = fmt.Sprintf("local nextid = 1\nfunction setup(thread)\n  thread:set(\"seed\", nextid)\n  nextid = nextid + 1\nend\n"+
			"function init(args)\n  math.randomseed(7919 * (seed or 0) + os.time())\nend\n"+
			"function delay()\n  return math.floor(-%g * math.log(1 - math.random()) + 0.5)\nend\n", delayMs)
	}
	must(os.WriteFile(lua, []byte(fmt.Sprintf("local f = io.open(%q, \"rb\")\nwrk.method = \"POST\"\nwrk.body = f:read(\"*a\")\nf:close()\n"+
		"wrk.headers[\"Content-Type\"] = \"application/json\"\n%s%s", file, auth, pace)), 0o600))
	cpu0 := cpuNow()
	out, err := exec.Command("wrk", "-t", strconv.Itoa(min(2, c)), "-c", strconv.Itoa(c), "-d", d.String(), "--latency", "-s", lua, url).CombinedOutput()
	if err != nil {
		log.Fatalf("wrk: %v: %s", err, out)
	}
	cpu := cpuNow() - cpu0
	r := result{Name: name, Conns: c}
	if m := reqRE.FindSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	for _, m := range pctRE.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		switch string(m[3]) {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if string(m[1]) == "50" {
			r.P50ms = v
		} else {
			r.P99ms = v
		}
	}
	if m := non2RE.FindSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.Atoi(string(m[1]))
	}
	if m := totRE.FindSubmatch(out); m != nil {
		if n, _ := strconv.Atoi(string(m[1])); n > 0 {
			r.ServerCPUms = cpu.Seconds() * 1000 / float64(n)
		}
	}
	return r
}
