package gbdt

import (
	"context"
	"testing"

	"github.com/rampart-mlaas/rampart/ml/synth"
)

// BenchmarkFitSynth trains the acceptance GBDT (100 trees, depth 6, lr 0.1)
// on a 250,000 × 20 table; for CPU profiles:
//
//	go test ./ml/gbdt -run '^$' -bench FitSynth -benchtime 1x -cpuprofile /tmp/gbdt.prof
func BenchmarkFitSynth(b *testing.B) {
	const n = 250_000
	x, y := synth.Table(n)
	p := DefaultParams()
	p.LearningRate = 0.1
	for b.Loop() {
		if _, err := Fit(context.Background(), x, n, 20, y, 2, p, 1, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredictSynth scores 250,000 rows with a 100-tree depth-6 model
// on the calling goroutine.
func BenchmarkPredictSynth(b *testing.B) {
	const n = 250_000
	x, y := synth.Table(n)
	p := DefaultParams()
	p.LearningRate = 0.1
	m, err := Fit(context.Background(), x[:50_000*20], 50_000, 20, y[:50_000], 2, p, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]float64, 2*n)
	for b.Loop() {
		m.PredictRows(x, n, out)
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "rows/s")
}
