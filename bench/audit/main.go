// Command audit measures the audit log (issue 3, AUDIT-1): sustained durable
// appends per second with group commit against plain batched inserts of the
// same rows into the same kind of database, the added latency of one audited
// action at a fixed request rate, and the time to verify a log of 1,000,000
// events by recomputing its root. Each figure is the median of -runs runs.
//
//	go run ./bench/audit [-events 200000] [-appenders 1024] [-runs 3] [-verify 1000000] [-rate 5000]
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/server"
	"github.com/rampart-mlaas/rampart/sqlite"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

var (
	events    = flag.Int("events", 200000, "events per throughput run")
	appenders = flag.Int("appenders", 1024, "concurrent appending goroutines")
	runs      = flag.Int("runs", 3, "runs per figure (the median is reported)")
	verifyN   = flag.Int("verify", 1000000, "events in the verification run (0 skips)")
	storeN    = flag.Int("verify-store", 0, "events in the VerifyStore run from SQLite (0 skips)")
	parse     = flag.Bool("verify-parse", false, "also fully parse every event in the verification run")
	rate      = flag.Int("rate", 5000, "events/s for the latency run (0 skips)")
	dir       = flag.String("dir", "", "directory for the databases (default a temp dir)")
	cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of the throughput runs")
	tracef    = flag.String("trace", "", "write an execution trace of the latency runs")
	gcPercent = flag.Int("gc-percent", server.Defaults().GCPercent, "GOGC of this process unless GOGC is set (default: what rampart serve sets)")
)

func main() {
	flag.Parse()
	// The log runs inside the server, whose GC setting it gets.
	if _, set := os.LookupEnv("GOGC"); !set && *gcPercent > 0 {
		debug.SetGCPercent(*gcPercent)
	}
	ctx := context.Background()
	if *dir == "" {
		d, err := os.MkdirTemp("", "rampart-audit-bench")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	_, key, _ := ed25519.GenerateKey(nil)
	gogc := debug.SetGCPercent(-1) // read it back: the call sets it, so set it again
	debug.SetGCPercent(gogc)
	fmt.Printf("go %s, GOMAXPROCS=%d, GOGC=%d, %d events x %d runs, %d appenders\n",
		runtime.Version(), runtime.GOMAXPROCS(0), gogc, *events, *runs, *appenders)

	if *cpuprof != "" {
		defer record(*cpuprof, pprof.StartCPUProfile, pprof.StopCPUProfile)()
	}
	var logRates, plainRates, ratios []float64
	for r := 0; r < *runs; r++ {
		lr, batch := appendRun(ctx, key, r)
		pr := plainRun(ctx, r, batch)
		logRates, plainRates, ratios = append(logRates, lr), append(plainRates, pr), append(ratios, pr/lr)
		fmt.Printf("run %d: audit log %.0f events/s (mean batch %d), plain inserts %.0f rows/s, time ratio %.2f\n", r, lr, batch, pr, pr/lr)
	}
	fmt.Printf("MEDIAN append: %.0f events/s; plain batched inserts: %.0f rows/s; log/plain time ratio: %.2fx\n",
		median(logRates), median(plainRates), median(ratios))

	if *rate > 0 {
		if *tracef != "" {
			defer record(*tracef, trace.Start, trace.Stop)()
		}
		for r := 0; r < *runs; r++ {
			latencyRun(ctx, key, false, r)
			latencyRun(ctx, key, true, r)
		}
	}
	if *verifyN > 0 {
		verifyRun(key)
	}
	if *storeN > 0 {
		verifyStoreRun(ctx, key)
	}
}

// record starts a profile or trace into path and returns what stops it.
func record(path string, start func(io.Writer) error, stop func()) func() {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := start(f); err != nil {
		log.Fatal(err)
	}
	return func() { stop(); f.Close() }
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func event(i int) auditlog.Event {
	return auditlog.Event{
		Tenant: fmt.Sprintf("tn_%d", i%50), Principal: fmt.Sprintf("pr_%d", i%500), Role: rampart.RoleServiceUser,
		Action: "model.predict", Resource: fmt.Sprintf("endpoint/ep_%d", i%20), Decision: auditlog.Allow,
		Reason: "role service-user may predict", Outcome: "ok", RequestID: fmt.Sprintf("req_%016x", i),
		Digest:  auditlog.ContentDigest(sha256.Sum256([]byte(fmt.Sprint(i)))),
		Details: map[string]string{"model_version": "3", "rows": "1"},
	}
}

func openDB(ctx context.Context, name string) *sqlite.DB {
	path := filepath.Join(*dir, name)
	os.Remove(path)
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	return db
}

// appendRun: many goroutines call Append; each returns once durable.
func appendRun(ctx context.Context, key ed25519.PrivateKey, r int) (float64, int) {
	db := openDB(ctx, fmt.Sprintf("log%d.db", r))
	defer db.Close()
	l, err := auditlog.Open(ctx, auditlog.Config{Store: db.Audit(), Origin: "bench/audit", SigningKey: key})
	if err != nil {
		log.Fatal(err)
	}
	evs := make([]auditlog.Event, *events) // made before the clock starts
	for i := range evs {
		evs[i] = event(i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < *appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *events {
					return
				}
				if _, err := l.Append(ctx, evs[i]); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	st := l.Status()
	fmt.Printf("  log run: %v wall, %v in Store.AppendLeaves, %d batches\n", el.Round(time.Millisecond), st.StoreTime.Round(time.Millisecond), st.Batches)
	if err := l.Close(ctx); err != nil {
		log.Fatal(err)
	}
	return float64(*events) / el.Seconds(), int(st.Appended / max(st.Batches, 1))
}

// plainRun inserts the same rows (already encoded and hashed) into the same
// table of a fresh database, in transactions of the log's mean batch size:
// the cost of the writes alone, without the log's encoding, hashing and
// group-commit coordination.
func plainRun(ctx context.Context, r, batch int) float64 {
	rows := make([]auditlog.Leaf, *events)
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	now := time.Now().UTC()
	for i := range rows {
		ev := event(i)
		ev.Index, ev.Time = uint64(i), now
		data, err := ev.MarshalCanonical()
		if err != nil {
			log.Fatal(err)
		}
		var hs []byte
		rng.Append(rfc6962.DefaultHasher.HashLeaf(data), func(_ compact.NodeID, h []byte) { hs = append(hs, h...) })
		rows[i] = auditlog.Leaf{Index: uint64(i), Data: data, Hashes: hs, Time: now, Tenant: ev.Tenant,
			Principal: ev.Principal, Action: ev.Action, Resource: ev.Resource}
	}
	db := openDB(ctx, fmt.Sprintf("plain%d.db", r))
	defer db.Close()
	st := db.Audit()
	start := time.Now()
	defer func() { fmt.Printf("  plain run: %v wall\n", time.Since(start).Round(time.Millisecond)) }()
	for i := 0; i < len(rows); i += batch {
		if err := st.AppendLeaves(ctx, rows[i:min(i+batch, len(rows))]); err != nil {
			log.Fatal(err)
		}
	}
	return float64(len(rows)) / time.Since(start).Seconds()
}

// latencyRun appends at a fixed rate (open loop) and reports how long an
// audited action waits for its record: until it is on disk (fsync'd group
// commit), or with ackOnWrite (what the server does for predictions) until it
// is committed, the flush to disk following in the background.
func latencyRun(ctx context.Context, key ed25519.PrivateKey, ackOnWrite bool, run int) {
	db := openDB(ctx, fmt.Sprintf("latency-%v-%d.db", ackOnWrite, run))
	defer db.Close()
	cfg := auditlog.Config{Store: db.Audit(), Origin: "bench/audit", SigningKey: key}
	if ackOnWrite {
		cfg.AckOnWrite = func(*auditlog.Event) bool { return true }
	}
	l, err := auditlog.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close(ctx)
	const seconds = 5
	n := *rate * seconds
	lat := make([]time.Duration, n)
	interval := time.Second / time.Duration(*rate)
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if _, err := l.Append(ctx, event(i)); err != nil {
				log.Fatal(err)
			}
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	slices.Sort(lat)
	mode := "ack after fsync        "
	if ackOnWrite {
		mode = "ack on commit (predict)"
	}
	st := l.Status()
	fmt.Printf("LATENCY %s run %d at %d events/s for %ds (achieved %.0f/s): p50 %v, p99 %v, max %v; %d batches, %d background flushes, %.1f CPU-µs per event, load %s\n",
		mode, run, *rate, seconds, float64(n)/el.Seconds(),
		lat[n/2].Round(time.Microsecond), lat[n*99/100].Round(time.Microsecond), lat[n-1].Round(time.Microsecond),
		st.Batches, st.Syncs, cpu.Seconds()*1e6/float64(n), loadavg())
}

// verifyRun: what `rampart audit verify` does once it has fetched the whole
// log: check the checkpoint, check every event's index and recompute the
// root from all leaves (with -verify-parse, also parse every event).
func verifyRun(key ed25519.PrivateKey) {
	n := *verifyN
	leaves := make([][]byte, n)
	t0 := time.Now().UTC()
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	for i := range leaves {
		ev := event(i)
		ev.Index, ev.Time = uint64(i), t0.Add(time.Duration(i))
		b, err := ev.MarshalCanonical()
		if err != nil {
			log.Fatal(err)
		}
		leaves[i] = b
		rng.Append(rfc6962.DefaultHasher.HashLeaf(b), nil)
	}
	root, _ := rng.GetRootHash(nil)
	signer, vkey, err := auditlog.NewNoteSigner("bench/audit", key)
	if err != nil {
		log.Fatal(err)
	}
	cp, err := auditlog.SignCheckpoint(signer, uint64(n), root)
	if err != nil {
		log.Fatal(err)
	}
	var times []float64
	for r := 0; r < *runs; r++ {
		start := time.Now()
		res, err := auditlog.Verify(auditlog.VerifyRequest{Key: vkey, Checkpoint: cp, Leaves: leaves, ParseEvents: *parse})
		if err != nil || res.LeavesChecked != n {
			log.Fatalf("verify: %v", err)
		}
		times = append(times, time.Since(start).Seconds())
		fmt.Printf("verify run %d: %d events in %.2fs\n", r, n, times[r])
	}
	fmt.Printf("MEDIAN Verify of %d events (signature, index of every event, root recomputed from all leaves; full parse %v): %.2fs\n",
		n, *parse, median(times))
}

// verifyStoreRun: VerifyStore over a SQLite log of -verify-store events.
func verifyStoreRun(ctx context.Context, key ed25519.PrivateKey) {
	db := openDB(ctx, "verifystore.db")
	defer db.Close()
	l, err := auditlog.Open(ctx, auditlog.Config{Store: db.Audit(), Origin: "bench/audit", SigningKey: key, MaxBatch: 8192})
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for g := 0; g < *appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < *storeN; i = int(next.Add(1)) - 1 {
				if _, err := l.Append(ctx, event(i)); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(ctx); err != nil {
		log.Fatal(err)
	}
	var times []float64
	for r := 0; r < *runs; r++ {
		start := time.Now()
		rep, err := auditlog.VerifyStore(ctx, db.Audit(), l.VerifierKey(), auditlog.StoreVerifyOptions{RequireCovered: true})
		if err != nil {
			log.Fatal(err)
		}
		times = append(times, time.Since(start).Seconds())
		fmt.Printf("verify-store run %d: %d events, %d checkpoints in %.2fs\n", r, rep.Leaves, rep.Checkpoints, times[r])
	}
	fmt.Printf("MEDIAN VerifyStore of %d events from SQLite: %.2fs\n", *storeN, median(times))
}

// loadavg is the 1-minute load average, printed next to each latency figure.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// cpuTime is the process's user+system CPU time (generator included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
