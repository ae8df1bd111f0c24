package gbdt

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// synthTable is the bench/ml generator: n × 20 standard-normal features
// (5 % of feature 3 missing) and a noisy non-linear binary label.
func synthTable(n int) ([]float64, []float64) {
	rng := rand.New(rand.NewPCG(20, 26))
	const d = 20
	x := make([]float64, n*d)
	y := make([]float64, n)
	for i := range n {
		row := x[i*d : (i+1)*d]
		for j := range row {
			row[j] = rng.NormFloat64()
		}
		s := row[0] + 0.8*row[1]*row[2] - 0.6*math.Abs(row[3]) + 0.5*math.Sin(2*row[4]) + 0.3*row[5]*row[5] - 0.4*row[6]
		if row[7] > 0.5 {
			s += 0.7
		}
		s += rng.NormFloat64() * 0.8
		if s > 0 {
			y[i] = 1
		}
		if rng.Float64() < 0.05 {
			row[3] = math.NaN()
		}
	}
	return x, y
}

// BenchmarkFitSynth trains the acceptance GBDT (100 trees, depth 6, lr 0.1)
// on a 250,000 × 20 table; for CPU profiles:
//
//	go test ./ml/gbdt -run '^$' -bench FitSynth -benchtime 1x -cpuprofile /tmp/gbdt.prof
func BenchmarkFitSynth(b *testing.B) {
	const n = 250_000
	x, y := synthTable(n)
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
	x, y := synthTable(n)
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
