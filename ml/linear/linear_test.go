package linear

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rampart-mlaas/rampart/ml/dp"
)

func synth(n, d, k int, seed uint64) ([]float64, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n*d)
	y := make([]int, n)
	for i := range n {
		best, bv := 0, math.Inf(-1)
		for c := range k {
			s := 0.0
			for j := range d {
				if c == 0 {
					x[i*d+j] = rng.NormFloat64()
				}
				s += x[i*d+j] * float64((c+j)%3-1)
			}
			s += rng.NormFloat64() * 0.5
			if s > bv {
				best, bv = c, s
			}
		}
		y[i] = best
	}
	return x, y
}

// TestExampleGradient checks analytic gradients against central differences.
func TestExampleGradient(t *testing.T) {
	for _, k := range []int{2, 4} {
		m := NewLogistic(3, k)
		rng := rand.New(rand.NewPCG(9, 9))
		for i := range m.W {
			m.W[i] = rng.NormFloat64()
		}
		for i := range m.B {
			m.B[i] = rng.NormFloat64()
		}
		x := []float64{0.3, -1.2, 2}
		y := k - 1
		g := make([]float64, m.NumParams())
		m.ExampleLoss(x, y, g)
		p := m.params()
		for t0 := range p {
			h := 1e-6
			pp := append([]float64{}, p...)
			pp[t0] += h
			m.setParams(pp)
			up := m.ExampleLoss(x, y, nil)
			pp[t0] -= 2 * h
			m.setParams(pp)
			down := m.ExampleLoss(x, y, nil)
			m.setParams(p)
			if num := (up - down) / (2 * h); math.Abs(num-g[t0]) > 1e-6 {
				t.Errorf("k=%d param %d: analytic %g numeric %g", k, t0, g[t0], num)
			}
		}
	}
}

// TestFitLogisticOptimality: at the optimum of C·Σloss + ½‖W‖², the gradient
// vanishes, i.e. Σ∇loss = -W/C for weights and Σ∇loss = 0 for intercepts.
func TestFitLogisticOptimality(t *testing.T) {
	for _, k := range []int{2, 3} {
		n, d := 600, 4
		x, y := synth(n, d, k, uint64(k))
		m, _, err := FitLogistic(context.Background(), x, n, d, y, k, Params{C: 0.5, MaxIter: 500}, nil)
		if err != nil {
			t.Fatal(err)
		}
		g := make([]float64, m.NumParams())
		sum := make([]float64, m.NumParams())
		for i := range n {
			m.ExampleLoss(x[i*d:(i+1)*d], y[i], g)
			for t0, v := range g {
				sum[t0] += v
			}
		}
		for t0 := range sum {
			reg := 0.0
			if t0 < len(m.W) {
				reg = m.W[t0] / 0.5
			}
			if r := math.Abs(sum[t0] + reg); r > 1e-3 {
				t.Errorf("k=%d param %d: gradient residual %g", k, t0, r)
			}
		}
	}
}

func TestRidge(t *testing.T) {
	// y = 2·x0 - 3·x1 + 5 exactly: with alpha = 0 ridge recovers it.
	n, d := 50, 2
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, n*d)
	y := make([]float64, n)
	for i := range n {
		x[i*d], x[i*d+1] = rng.NormFloat64(), rng.NormFloat64()
		y[i] = 2*x[i*d] - 3*x[i*d+1] + 5
	}
	m, err := FitRidge(x, n, d, y, 0)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.W[0]-2) > 1e-9 || math.Abs(m.W[1]+3) > 1e-9 || math.Abs(m.B[0]-5) > 1e-9 {
		t.Errorf("got w=%v b=%v", m.W, m.B)
	}
	// Shrinkage: a large alpha pulls weights towards zero, never the intercept.
	m2, _ := FitRidge(x, n, d, y, 1e6)
	if math.Abs(m2.W[0]) > 0.01 || math.Abs(m2.B[0]-5) > 0.5 {
		t.Errorf("alpha=1e6: w=%v b=%v", m2.W, m2.B)
	}
	if _, err := FitRidge(x, n, d, y, -1); err == nil {
		t.Error("negative alpha accepted")
	}
}

func TestFitLogisticDP(t *testing.T) {
	n, d := 2000, 4
	x, y := synth(n, d, 2, 5)
	cfg := dp.SGDConfig{Epochs: 5, BatchSize: 200, LearningRate: 0.5, MaxGradNorm: 1, NoiseMultiplier: 1, Noise: dp.SeededNoise(3)}
	m, err := FitLogisticDP(context.Background(), x, n, d, y, 2, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	p := make([]float64, 2)
	for i := range n {
		m.Proba(x[i*d:(i+1)*d], p)
		if (p[1] > 0.5) == (y[i] == 1) {
			ok++
		}
	}
	if acc := float64(ok) / float64(n); acc < 0.75 {
		t.Errorf("DP logistic accuracy %g", acc)
	}
}
