// Command core measures the cost of authentication and authorization on a
// real Rampart server over loopback (issue 2 benchmark): median latency of
// GET /v1/whoami (authenticated) vs GET /healthz (public) measured
// interleaved on the same server, and sustained requests/s for each with a
// concurrent load generator.
//
//	go run ./bench/core [-n 20000] [-c 8] [-d 5s]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/server"
)

func main() {
	n := flag.Int("n", 20000, "sequential requests per endpoint for latency")
	conc := flag.Int("c", 8, "concurrent connections for throughput")
	dur := flag.Duration("d", 5*time.Second, "duration of each throughput run")
	flag.Parse()
	dir, err := os.MkdirTemp("", "rampart-bench-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg := server.Defaults()
	cfg.DataDir, cfg.Addr, cfg.Quiet = dir+"/data", "127.0.0.1:0", true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		panic(err)
	}
	go srv.Serve(ctx, ln)
	base := srv.URL(ln)
	op, _ := httpapi.NewClient(base, srv.OperatorToken.Reveal(), "")
	var tn rampart.Tenant
	must(op.Do(ctx, "POST", "/v1/tenants", nil, httpapi.CreateTenantRequest{Name: "bench"}, &tn))
	var pr httpapi.CreatePrincipalResponse
	must(op.Do(ctx, "POST", "/v1/principals", nil, httpapi.CreatePrincipalRequest{TenantID: tn.ID, Name: "svc", Role: rampart.RoleServiceUser}, &pr))

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(path, tok string) time.Duration {
		req, _ := http.NewRequest("GET", base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != 200 {
			panic(fmt.Sprintf("%s: %d", path, resp.StatusCode))
		}
		return d
	}
	// Warm up, then interleave so both see the same machine state.
	for i := 0; i < 2000; i++ {
		get("/healthz", "")
		get("/v1/whoami", pr.Token)
	}
	var lh, lw []time.Duration
	for i := 0; i < *n; i++ {
		lh = append(lh, get("/healthz", ""))
		lw = append(lw, get("/v1/whoami", pr.Token))
	}
	mh, mw := median(lh), median(lw)
	fmt.Printf("latency, %d sequential requests each, interleaved, one keep-alive connection:\n", *n)
	fmt.Printf("  GET /healthz    median %8.1f µs  p99 %8.1f µs\n", us(mh), us(pct(lh, 0.99)))
	fmt.Printf("  GET /v1/whoami  median %8.1f µs  p99 %8.1f µs\n", us(mw), us(pct(lw, 0.99)))
	fmt.Printf("  added by authentication + authorization (+ whoami's tenant lookup): %.1f µs median (ratio %.2f)\n", us(mw-mh), float64(mw)/float64(mh))

	rps := func(path, tok string) float64 {
		var count atomic.Int64
		deadline := time.Now().Add(*dur)
		var wg sync.WaitGroup
		for c := 0; c < *conc; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					get(path, tok)
					count.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(count.Load()) / dur.Seconds()
	}
	fmt.Printf("throughput, %d concurrent keep-alive connections, %s each (load generator in the same process, 2 cores shared):\n", *conc, *dur)
	h1 := rps("/healthz", "")
	w1 := rps("/v1/whoami", pr.Token)
	fmt.Printf("  GET /healthz    %9.0f req/s\n  GET /v1/whoami  %9.0f req/s  (ratio %.2f)\n", h1, w1, w1/h1)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func median(d []time.Duration) time.Duration { return pct(d, 0.5) }

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
