package linear

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// accumulateGemm is the former accumulate: it adds the loss gradients of rows [lo, hi) into g (laid out as
// [W, B]) and returns their summed loss. The two products X·Wᵀ and Rᵀ·X go
// through gonum's BLAS (SIMD kernels); each output element is summed in a
// fixed order, so the result does not depend on scheduling (TRAIN-6).
func (m *Model) accumulateGemm(x []float64, y []int, lo, hi int, g []float64) float64 {
	d, k, nb := m.D, m.Rows, hi-lo
	xb := blas64.General{Rows: nb, Cols: d, Stride: d, Data: x[lo*d : hi*d]}
	w := blas64.General{Rows: k, Cols: d, Stride: d, Data: m.W}
	z := blas64.General{Rows: nb, Cols: k, Stride: k, Data: make([]float64, nb*k)}
	for i := range nb {
		copy(z.Data[i*k:(i+1)*k], m.B)
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, xb, w, 1, z)
	var loss float64
	r := z.Data // overwritten in place by the residual p - onehot(y)
	for i := range nb {
		row := r[i*k : (i+1)*k]
		yi := y[lo+i]
		if k == 1 {
			zz := row[0]
			if yi == 1 {
				loss += softplus(-zz)
				row[0] = Sigmoid(zz) - 1
			} else {
				loss += softplus(zz)
				row[0] = Sigmoid(zz)
			}
			continue
		}
		mx := row[0]
		for _, v := range row[1:] {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - mx)
		}
		lse := mx + math.Log(s)
		loss += lse - row[yi]
		for c, v := range row {
			row[c] = math.Exp(v - lse)
		}
		row[yi]--
	}
	gw := blas64.General{Rows: k, Cols: d, Stride: d, Data: g[:k*d]}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, z, xb, 1, gw)
	for i := range nb {
		for c := range k {
			g[k*d+c] += r[i*k+c]
		}
	}
	return loss
}

// TestAccumulateExact: the fused one-pass gradient reproduces the two-GEMM
// formulation bit for bit, for binary and multinomial models, narrow and
// wide rows, and blocks on both sides of Dgemm's parallel threshold.
func TestAccumulateExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, c := range []struct{ n, d, k int }{
		{50, 3, 2}, {100, 20, 2}, {700, 20, 2}, {129, 70, 2}, {300, 150, 2},
		{60, 5, 3}, {200, 64, 4}, {1000, 20, 10}, {150, 130, 3}, {20, 200, 70},
	} {
		x, y := synth(c.n, c.d, c.k, uint64(c.n))
		for i := range x {
			if rng.IntN(7) == 0 {
				x[i] = 0 // zero residual multipliers are skipped by Dgemm
			}
		}
		m := NewLogistic(c.d, c.k)
		for i := range m.W {
			m.W[i] = rng.NormFloat64() * 0.3
		}
		for i := range m.B {
			m.B[i] = rng.NormFloat64()
		}
		for _, r := range [][2]int{{0, c.n}, {c.n / 3, c.n}, {1, 2}} {
			g1 := make([]float64, m.NumParams())
			g2 := make([]float64, m.NumParams())
			for i := range g1 {
				g1[i] = float64(i) * 0.01
				g2[i] = g1[i]
			}
			l1 := m.accumulate(x, y, r[0], r[1], g1)
			l2 := m.accumulateGemm(x, y, r[0], r[1], g2)
			if math.Float64bits(l1) != math.Float64bits(l2) {
				t.Fatalf("%+v rows %v: loss %v vs %v", c, r, l1, l2)
			}
			for i := range g1 {
				if math.Float64bits(g1[i]) != math.Float64bits(g2[i]) {
					t.Fatalf("%+v rows %v: grad[%d] %v vs %v", c, r, i, g1[i], g2[i])
				}
			}
		}
	}
}

func TestLossSigmoidExact(t *testing.T) {
	zs := []float64{0, math.Copysign(0, -1), 1e-300, -1e-300, 0.5, -0.5, 3, -3, 36, -36, 40, -40, 700, -700, 800, -800, math.Inf(1), math.Inf(-1)}
	rng := rand.New(rand.NewPCG(6, 6))
	for range 10000 {
		zs = append(zs, rng.NormFloat64()*10)
	}
	for _, z := range zs {
		for _, pos := range []bool{false, true} {
			wl, wr := softplus(z), Sigmoid(z)
			if pos {
				wl, wr = softplus(-z), Sigmoid(z)-1
			}
			l, r := lossSigmoid(z, pos)
			if math.Float64bits(l) != math.Float64bits(wl) || math.Float64bits(r) != math.Float64bits(wr) {
				t.Fatalf("z=%v pos=%v: (%v, %v), want (%v, %v)", z, pos, l, r, wl, wr)
			}
		}
	}
}

// TestSigmoidExact: the branch-free Sigmoid is the two-branch formula.
func TestSigmoidExact(t *testing.T) {
	ref := func(z float64) float64 {
		if z >= 0 {
			return 1 / (1 + math.Exp(-z))
		}
		e := math.Exp(z)
		return e / (1 + e)
	}
	zs := []float64{0, math.Copysign(0, -1), 1e-300, -1e-300, 36, -36, 710, -710, 800, -800, math.Inf(1), math.Inf(-1)}
	rng := rand.New(rand.NewPCG(4, 4))
	for range 100000 {
		zs = append(zs, rng.NormFloat64()*8)
	}
	for _, z := range zs {
		if got, want := Sigmoid(z), ref(z); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("Sigmoid(%v) = %v, want %v", z, got, want)
		}
	}
	if !math.IsNaN(Sigmoid(math.NaN())) {
		t.Fatal("Sigmoid(NaN) is not NaN")
	}
}
