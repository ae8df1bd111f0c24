package ml

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
)

// benchFrame is n rows of 20 standard-normal features and a noisy
// non-linear binary label.
func benchFrame(n int) *Frame {
	rng := rand.New(rand.NewPCG(1, 1))
	cols := make([]*Column, 0, 21)
	x := make([][]float64, 20)
	for j := range x {
		x[j] = make([]float64, n)
		for i := range n {
			x[j][i] = rng.NormFloat64()
		}
		cols = append(cols, NumericColumn("f"+strconv.Itoa(j), x[j]))
	}
	y := make([]string, n)
	for i := range n {
		y[i] = "0"
		if x[0][i]+x[1][i]*x[2][i]+rng.NormFloat64() > 0 {
			y[i] = "1"
		}
	}
	f, _ := NewFrame(append(cols, CategoricalColumn("y", y))...)
	return f
}

// BenchmarkPredictProba measures batch scoring throughput (rows/s) of
// 100-tree GBDT and logistic regression on 100,000 × 20 rows:
//
//	go test ./ml -run '^$' -bench PredictProba
func BenchmarkPredictProba(b *testing.B) {
	f := benchFrame(100_000)
	train := f.Take(seq(0, 20_000))
	for _, spec := range []TrainSpec{
		{Algorithm: GBDT, Target: "y", Params: map[string]string{"n_estimators": "100", "max_depth": "6", "learning_rate": "0.1"}},
		{Algorithm: LogReg, Target: "y"},
	} {
		m, err := Train(context.Background(), train, spec, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(spec.Algorithm, func(b *testing.B) {
			for b.Loop() {
				if _, err := m.PredictProba(f); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(f.NumRows())/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkTrainGBDT measures training on 100,000 × 20 rows.
func BenchmarkTrainGBDT(b *testing.B) {
	f := benchFrame(100_000)
	spec := TrainSpec{Algorithm: GBDT, Target: "y", Params: map[string]string{"n_estimators": "100", "max_depth": "6", "learning_rate": "0.1"}}
	for b.Loop() {
		if _, err := Train(context.Background(), f, spec, nil); err != nil {
			b.Fatal(err)
		}
	}
}
