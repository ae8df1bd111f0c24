// Package synth generates the benchmark table of issue 4: one generator for
// bench/ml (side by side with the peers) and the Go benchmarks, so that
// "the same table" holds by construction.
package synth

import (
	"math"
	"math/rand/v2"
)

// Features is the table's width.
const Features = 20

// Table returns n rows (row-major x, n × Features) of standard-normal
// features, 5 % of feature 3 missing (NaN), and a binary label y from a
// non-linear score plus noise. The seed is fixed: the same n gives the same
// table.
func Table(n int) (x, y []float64) {
	rng := rand.New(rand.NewPCG(20, 26))
	const d = Features
	x = make([]float64, n*d)
	y = make([]float64, n)
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
