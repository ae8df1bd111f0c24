package executor

import (
	"encoding/json"
	"os"
	"testing"
	"time"
)

// TestProgressThrottle: within a stage the child sends at most one report
// per childProgressEvery; the first report, each change of stage and
// "done" always go through, in order.
func TestProgressThrottle(t *testing.T) {
	var got []Progress
	th := &progressThrottle{send: func(p Progress) { got = append(got, p) }}
	start := time.Now()
	th.report(Progress{Stage: "preprocess"})
	for i := 1; i <= 2000; i++ {
		th.report(Progress{Stage: "trees", Step: i, Total: 2000})
	}
	elapsed := time.Since(start)
	th.report(Progress{Stage: "done", Step: 2000, Total: 2000})
	th.report(Progress{Stage: "done", Step: 2000, Total: 2000})
	if len(got) < 4 || got[0].Stage != "preprocess" || got[1].Stage != "trees" || got[1].Step != 1 ||
		got[len(got)-1].Stage != "done" || got[len(got)-2].Stage != "done" {
		t.Fatalf("reports sent: %+v", got)
	}
	trees := len(got) - 3
	if max := 1 + int(elapsed/childProgressEvery); trees > max {
		t.Fatalf("%d tree reports sent in %s; at most %d", trees, elapsed, max)
	}
	for i := 2; i < len(got)-2; i++ {
		if got[i].Step <= got[i-1].Step {
			t.Fatalf("reports out of order: %+v", got)
		}
	}
	// After the interval, the next report in the same stage goes through.
	th.report(Progress{Stage: "epoch", Step: 1})
	th.last = th.last.Add(-childProgressEvery)
	n := len(got)
	th.report(Progress{Stage: "epoch", Step: 2})
	if len(got) != n+1 || got[n].Step != 2 {
		t.Fatalf("a report after the interval was held back: %+v", got[n-1:])
	}
}

// BenchmarkProgressFrame: what one progress report costs when it is sent
// (the child's JSON encoding and write, the parent's read and decoding,
// over a pipe): the cost childProgressEvery saves on each report it holds
// back (a GBDT sends one per tree, an MLP one per epoch).
func BenchmarkProgressFrame(b *testing.B) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	done := make(chan int)
	go func() {
		n := 0
		for {
			typ, p, err := readFrame(r)
			if err != nil {
				done <- n
				return
			}
			var pr Progress
			if typ == frameProgress && json.Unmarshal(p, &pr) == nil {
				n++
			}
		}
	}()
	loss := 0.25
	b.ResetTimer()
	for i := range b.N {
		_ = writeJSONFrame(w, frameProgress, Progress{Stage: "trees", Step: i, Total: b.N, Loss: &loss})
	}
	w.Close()
	if n := <-done; n != b.N {
		b.Fatalf("%d of %d frames read", n, b.N)
	}
}
