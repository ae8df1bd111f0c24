package serving_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/ml"
)

// benchEndpoint serves logreg on breast_cancer with every guard on (rate
// and budgets high enough never to refuse, still evaluated per request),
// as bench/serving does, and returns a function that runs one request
// through the server's whole HTTP handler in-process.
func benchEndpoint(b *testing.B, algo string, params map[string]string, on bool) (func(body []byte) (int, []byte), *trained) {
	w := newWorld(b)
	tr := train(b, breast, algo, params)
	register(b, w.e, w.md, "m", tr.art)
	pol := rampart.GuardPolicy{RatePerSec: 1e6, Burst: 1_000_000, BudgetPerDay: 1 << 50, BudgetTotal: 1 << 50, MaxRows: 100_000,
		OOD: rampart.OODFlag, Extraction: rampart.ExtractionAlert}
	if !on {
		pol = rampart.GuardPolicy{RatePerSec: -1, BudgetPerDay: -1, BudgetTotal: -1, MaxRows: 100_000, RangeMargin: -1,
			OOD: rampart.OODOff, Extraction: rampart.ExtractionOff}
	}
	w.endpoint(b, "ep", "m", 0, &pol)
	h := w.e.Server.API
	tok := "Bearer " + w.su.Token
	return func(body []byte) (int, []byte) {
		req := httptest.NewRequest("POST", "/v2/models/ep/infer", bytes.NewReader(body))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}, tr
}

func benchPredict(b *testing.B, algo string, params map[string]string, on bool, rows int) {
	do, tr := benchEndpoint(b, algo, params, on)
	idx := make([]int, rows)
	for i := range idx {
		idx[i] = i % tr.train.NumRows()
	}
	body := tensorBody(tr.train, tr.features, idx)
	if c, out := do(body); c != http.StatusOK {
		b.Fatalf("status %d: %.300s", c, out)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(8) // 16 concurrent requests on 2 cores, like wrk -c 16
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c, _ := do(body); c != http.StatusOK {
				b.Errorf("status %d", c)
				return
			}
		}
	})
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	// CPU seconds of the whole process (server, audit writer, in-process
	// client, GC) per request: what the shared 2-core machine's load does
	// not distort as much as wall time.
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1e6/float64(b.N), "cpu-µs/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The whole handler (authentication, guards, model, audit) for one row
// and for a 10,000-row tensor, guards on and off.
func BenchmarkPredictOneRowOn(b *testing.B)    { benchPredict(b, ml.LogReg, nil, true, 1) }
func BenchmarkPredictOneRowOff(b *testing.B)   { benchPredict(b, ml.LogReg, nil, false, 1) }
func BenchmarkPredictBatch10kOn(b *testing.B)  { benchPredict(b, ml.LogReg, nil, true, 10_000) }
func BenchmarkPredictBatch10kOff(b *testing.B) { benchPredict(b, ml.LogReg, nil, false, 10_000) }

func BenchmarkPredictOneRowGBDTOn(b *testing.B) { benchPredict(b, ml.GBDT, nil, true, 1) }
