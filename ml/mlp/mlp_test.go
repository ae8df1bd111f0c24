package mlp

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rampart-mlaas/rampart/ml/dp"
)

// TestGradient checks backpropagation against central differences for every
// output kind and depth.
func TestGradient(t *testing.T) {
	for _, c := range []struct {
		k      int
		hidden []int
		y      float64
	}{{2, []int{3}, 1}, {3, []int{4, 3}, 2}, {0, []int{3, 2, 2}, 0.7}} {
		p := DefaultParams()
		p.HiddenLayerSizes = c.hidden
		out, units := outputFor(c.k)
		m := newModel((&Model{}).sizesFor(2, p, units), out, rand.New(rand.NewPCG(1, 2)))
		x := []float64{0.4, -0.9}
		y := []float64{c.y}
		L := len(m.W)
		gW, gB := zerosLike(m.W), zerosLike(m.B)
		acts, deltas := make([][]float64, L+1), make([][]float64, L+1)
		m.batchGrad(x, y, 1, 0.1, acts, deltas, gW, gB)
		loss := func() float64 {
			a, d := make([][]float64, L+1), make([][]float64, L+1)
			return m.batchGrad(x, y, 1, 0.1, a, d, zerosLike(m.W), zerosLike(m.B))
		}
		for l := range L {
			for i := range m.W[l] {
				h := 1e-6
				m.W[l][i] += h
				up := loss()
				m.W[l][i] -= 2 * h
				down := loss()
				m.W[l][i] += h
				if num := (up - down) / (2 * h); math.Abs(num-gW[l][i]) > 1e-5 {
					t.Errorf("k=%d W[%d][%d]: analytic %g numeric %g", c.k, l, i, gW[l][i], num)
				}
			}
			for i := range m.B[l] {
				h := 1e-6
				m.B[l][i] += h
				up := loss()
				m.B[l][i] -= 2 * h
				down := loss()
				m.B[l][i] += h
				if num := (up - down) / (2 * h); math.Abs(num-gB[l][i]) > 1e-5 {
					t.Errorf("k=%d B[%d][%d]: analytic %g numeric %g", c.k, l, i, gB[l][i], num)
				}
			}
		}
	}
}

func circles(n int) ([]float64, []float64) {
	rng := rand.New(rand.NewPCG(3, 3))
	x := make([]float64, 2*n)
	y := make([]float64, n)
	for i := range n {
		a, b := rng.NormFloat64(), rng.NormFloat64()
		x[2*i], x[2*i+1] = a, b
		if a*a+b*b > 1.4 {
			y[i] = 1
		}
	}
	return x, y
}

func acc(m *Model, x, y []float64) float64 {
	n := len(y)
	out := make([]float64, 2*n)
	m.PredictBatch(x, n, out)
	ok := 0
	for i := range n {
		if (out[2*i+1] > 0.5) == (y[i] == 1) {
			ok++
		}
	}
	return float64(ok) / float64(n)
}

func TestFitCircles(t *testing.T) {
	x, y := circles(1000)
	p := DefaultParams()
	p.HiddenLayerSizes, p.Epochs, p.LearningRate = []int{16}, 60, 0.01
	m, err := Fit(context.Background(), x, 1000, 2, y, 2, p, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := acc(m, x, y); a < 0.95 {
		t.Errorf("accuracy %g on a problem a linear model cannot solve", a)
	}
}

func TestFitDP(t *testing.T) {
	x, y := circles(2000)
	p := DefaultParams()
	p.HiddenLayerSizes = []int{16}
	cfg := dp.SGDConfig{Epochs: 20, BatchSize: 100, LearningRate: 0.02, Adam: true, MaxGradNorm: 1, NoiseMultiplier: 0.8, Noise: dp.SeededNoise(1)}
	m, err := FitDP(context.Background(), x, 2000, 2, y, 2, p, 1, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := acc(m, x, y); a < 0.8 {
		t.Errorf("DP accuracy %g", a)
	}
}
