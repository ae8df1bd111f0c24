// Package linear fits L2-regularised logistic regression (binary and
// multinomial, L-BFGS) and ridge regression (Cholesky), on dense row-major
// matrices produced by the ml package's preprocessing.
//
// The logistic objective is scikit-learn's: C·Σ loss_i + ½‖W‖² with an
// unpenalised intercept, so the same C gives the same model. Gradients are
// summed over fixed row blocks in block order, so results do not depend on
// the number of cores (TRAIN-6).
package linear

import (
	"context"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	"github.com/rampart-mlaas/rampart/ml/internal/parallel"
	"github.com/rampart-mlaas/rampart/ml/internal/wire"
)

// ErrDiverged is returned when the loss becomes NaN or infinite (TRAIN-4).
var ErrDiverged = errors.New("training diverged: loss is not finite")

// Model is a fitted linear model. Rows is 1 for binary logistic and ridge
// regression and K for multinomial logistic; W is Rows×D row-major.
type Model struct {
	Logistic bool
	Rows, D  int
	W, B     []float64
}

// Params are logistic regression's hyper-parameters (scikit-learn names).
type Params struct {
	C       float64 // inverse L2 strength; default 1
	MaxIter int     // max_iter; default 100
	Tol     float64 // tol on the gradient's max-norm; default 1e-4
}

// Progress reports one optimiser iteration and the current objective.
type Progress func(iter int, loss float64)

// Scores writes the decision values of row x (length D) into out (length Rows).
func (m *Model) Scores(x, out []float64) {
	for k := range m.Rows {
		w := m.W[k*m.D : (k+1)*m.D]
		s := m.B[k]
		for j, v := range x {
			s += w[j] * v
		}
		out[k] = s
	}
}

// Proba writes class probabilities for row x into out (length 2 for binary,
// K for multinomial).
func (m *Model) Proba(x, out []float64) {
	if m.Rows == 1 {
		var s [1]float64
		m.Scores(x, s[:])
		p := Sigmoid(s[0])
		out[0], out[1] = 1-p, p
		return
	}
	m.Scores(x, out)
	Softmax(out)
}

// Sigmoid is the logistic function, computed without overflow.
func Sigmoid(z float64) float64 {
	// 1/(1+exp(-z)) for z ≥ 0, exp(z)/(1+exp(z)) below: both are
	// num/(1+e) with e = exp(-|z|), the numerator picked with a mask from
	// the sign bit rather than a branch on the sign of z.
	e := math.Exp(-math.Abs(z))
	neg := -(math.Float64bits(z) >> 63) // all ones when the sign bit is set (also -0, where e = 1)
	num := math.Float64bits(1)&^neg | math.Float64bits(e)&neg
	return math.Float64frombits(num) / (1 + e)
}

// Softmax replaces z by softmax(z) in place.
func Softmax(z []float64) {
	mx := z[0]
	for _, v := range z[1:] {
		mx = max(mx, v)
	}
	var s float64
	for i, v := range z {
		z[i] = math.Exp(v - mx)
		s += z[i]
	}
	for i := range z {
		z[i] /= s
	}
}

// softplus is log(1+exp(z)), computed without overflow for any z.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// ExampleLoss is example i's cross-entropy and its gradient with respect to
// the parameters [W, B] (flattened as W then B), written into g when g != nil.
func (m *Model) ExampleLoss(x []float64, y int, g []float64) float64 {
	if m.Rows == 1 {
		var s [1]float64
		m.Scores(x, s[:])
		z := s[0]
		var loss, r float64
		if y == 1 {
			loss = softplus(-z)
			r = Sigmoid(z) - 1
		} else {
			loss = softplus(z)
			r = Sigmoid(z)
		}
		if g != nil {
			for j, v := range x {
				g[j] = r * v
			}
			g[m.D] = r
		}
		return loss
	}
	p := make([]float64, m.Rows)
	m.Scores(x, p)
	mx := p[0]
	for _, v := range p[1:] {
		mx = max(mx, v)
	}
	var s float64
	for _, v := range p {
		s += math.Exp(v - mx)
	}
	lse := mx + math.Log(s)
	loss := lse - p[y]
	if g != nil {
		for k := range m.Rows {
			r := math.Exp(p[k] - lse)
			if k == y {
				r--
			}
			gw := g[k*m.D : (k+1)*m.D]
			for j, v := range x {
				gw[j] = r * v
			}
			g[m.Rows*m.D+k] = r
		}
	}
	return loss
}

// accumulate adds the loss gradients of rows [lo, hi) into g (laid out as
// [W, B]) and returns their summed loss, in one pass over the rows: each
// row's scores, loss, residual and gradient contribution are computed while
// the row is in cache, with no allocation and no goroutines of its own (the
// caller already runs blocks on all cores).
//
// The arithmetic is exactly that of the two BLAS products X·Wᵀ and Rᵀ·X
// this replaces (gonum's Dgemm, kept as accumulateGemm in the tests, which
// check bit equality): a score is the bias plus gonum's Ddot of the row and
// the weights, taken in 64-wide chunks where Dgemm's parallel path cuts the
// inner dimension, and the gradient gets gonum's Daxpy of each row scaled by
// its non-zero residual, rows in order. Every sum thus runs in a fixed order
// and the result does not depend on scheduling (TRAIN-6).
func (m *Model) accumulate(x []float64, y []int, lo, hi int, g []float64) float64 {
	d, k, nb := m.D, m.Rows, hi-lo
	// gonum's Dgemm (blockSize 64, minParBlock 4) splits the dot products
	// into 64-wide chunks exactly when it runs its parallel path.
	chunk := d
	if gemmBlocks(nb)*gemmBlocks(k) >= 4 {
		chunk = 64
	}
	var zbuf [16]float64
	z := zbuf[:0]
	if k > len(zbuf) {
		z = make([]float64, 0, k)
	}
	z = z[:k]
	gb := g[k*d : k*d+k]
	var loss float64
	for i := range nb {
		row := x[(lo+i)*d : (lo+i+1)*d]
		for c := range k {
			w := m.W[c*d : (c+1)*d]
			s := m.B[c]
			for j := 0; j < d; j += chunk {
				e := min(j+chunk, d)
				s += blas64.Dot(blas64.Vector{N: e - j, Data: row[j:e], Inc: 1}, blas64.Vector{N: e - j, Data: w[j:e], Inc: 1})
			}
			z[c] = s
		}
		yi := y[lo+i]
		if k == 1 {
			l, p := lossSigmoid(z[0], yi == 1)
			loss += l
			z[0] = p
		} else {
			mx := z[0]
			for _, v := range z[1:] {
				mx = max(mx, v)
			}
			var s float64
			for _, v := range z {
				s += math.Exp(v - mx)
			}
			lse := mx + math.Log(s)
			loss += lse - z[yi]
			for c, v := range z {
				z[c] = math.Exp(v - lse)
			}
			z[yi]--
		}
		xv := blas64.Vector{N: d, Data: row, Inc: 1}
		for c, r := range z {
			if r != 0 { // Dgemm skips zero multipliers
				blas64.Axpy(r, xv, blas64.Vector{N: d, Data: g[c*d : (c+1)*d], Inc: 1})
			}
		}
		for c, r := range z {
			gb[c] += r
		}
	}
	return loss
}

// lossSigmoid returns softplus(-z) and Sigmoid(z)-1 when pos, else
// softplus(z) and Sigmoid(z): the binary loss and residual, from the one
// exponential exp(-|z|) that softplus and Sigmoid would each compute, so
// the values are bit for bit those of the two functions.
func lossSigmoid(z float64, pos bool) (loss, resid float64) {
	e := math.Exp(-math.Abs(z))
	neg := -(math.Float64bits(z) >> 63) // all ones when the sign bit is set (also -0, where e = 1)
	num := math.Float64bits(1)&^neg | math.Float64bits(e)&neg
	p := math.Float64frombits(num) / (1 + e) // Sigmoid(z)
	// softplus(u) = max(u, 0) + log1p(exp(-|u|)) with u = -z for the
	// positive class, z otherwise; the label enters arithmetically (×±1
	// and −1/−0 are exact), since it is as unpredictable as the sign of z.
	var y float64
	if pos {
		y = 1
	}
	u := z * (1 - 2*y)
	return max(u, 0) + math.Log1p(e), p - y
}

// gemmBlocks is the number of 64-wide blocks gonum's Dgemm cuts n into.
func gemmBlocks(n int) int { return (n + 63) / 64 }

// params flattens [W, B] into one vector (and back) for the optimisers.
func (m *Model) params() []float64 { return append(append([]float64{}, m.W...), m.B...) }

func (m *Model) setParams(p []float64) {
	copy(m.W, p[:len(m.W)])
	copy(m.B, p[len(m.W):])
}

// NumParams is len(W)+len(B).
func (m *Model) NumParams() int { return len(m.W) + len(m.B) }

// NewLogistic returns a zero logistic model for k classes over d features.
func NewLogistic(d, k int) *Model {
	rows := k
	if k == 2 {
		rows = 1
	}
	return &Model{Logistic: true, Rows: rows, D: d, W: make([]float64, rows*d), B: make([]float64, rows)}
}

// FitLogistic minimises scikit-learn's L2 logistic objective with L-BFGS.
// x is n×d row-major, y holds classes 0..k-1.
func FitLogistic(ctx context.Context, x []float64, n, d int, y []int, k int, p Params, progress Progress) (*Model, float64, error) {
	if p.C <= 0 {
		p.C = 1
	}
	if p.MaxIter <= 0 {
		p.MaxIter = 100
	}
	if p.Tol <= 0 {
		p.Tol = 1e-4
	}
	m := NewLogistic(d, k)
	blocks := parallel.Blocks(n, 512, 64)
	np := m.NumParams()
	partG := make([][]float64, len(blocks))
	partL := make([]float64, len(blocks))
	for b := range partG {
		partG[b] = make([]float64, np)
	}
	// scikit-learn minimises Σloss + ½‖W‖²/C; we minimise that divided by n
	// so gradient sizes do not grow with the data. Same minimiser.
	scale := 1 / float64(n)
	regScale := 1 / (float64(n) * p.C)
	lossGrad := func(w, grad []float64) float64 {
		work := &Model{Logistic: true, Rows: m.Rows, D: d, W: w[:len(m.W)], B: w[len(m.W):]}
		parallel.Run(len(blocks), func(b int) {
			g := partG[b]
			clear(g)
			partL[b] = work.accumulate(x, y, blocks[b][0], blocks[b][1], g)
		})
		var loss float64
		if grad != nil {
			clear(grad)
		}
		for b := range blocks {
			loss += partL[b]
			if grad != nil {
				for t, v := range partG[b] {
					grad[t] += v
				}
			}
		}
		loss *= scale
		var reg float64
		for t, v := range w[:len(m.W)] {
			reg += v * v
			if grad != nil {
				grad[t] = grad[t]*scale + v*regScale
			}
		}
		if grad != nil {
			for t := len(m.W); t < np; t++ {
				grad[t] *= scale
			}
		}
		return loss + 0.5*reg*regScale
	}
	res, err := lbfgs(lossGrad, m.params(), p.MaxIter, p.Tol*scale*0.1, func(iter int, f float64) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("logistic regression: %w", err)
		}
		// TRAIN-4: a NaN or infinite objective ends the job with a clear reason.
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("logistic regression at iteration %d: %w", iter, ErrDiverged)
		}
		if progress != nil {
			progress(iter, f)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	// Hitting max_iter still leaves the best point found; scikit-learn
	// likewise warns rather than fails.
	if math.IsNaN(res.F) || math.IsInf(res.F, 0) {
		return nil, 0, fmt.Errorf("logistic regression: %w", ErrDiverged)
	}
	m.setParams(res.X)
	return m, res.F, nil
}

// FitRidge solves ridge regression min ‖y - Xw - b‖² + alpha‖w‖² in closed
// form (scikit-learn's Ridge with an unpenalised intercept).
func FitRidge(x []float64, n, d int, y []float64, alpha float64) (*Model, error) {
	if alpha < 0 {
		return nil, fmt.Errorf("ridge: alpha %g must be ≥ 0", alpha)
	}
	xm := make([]float64, d)
	var ym float64
	for i := range n {
		for j := range d {
			xm[j] += x[i*d+j]
		}
		ym += y[i]
	}
	for j := range xm {
		xm[j] /= float64(n)
	}
	ym /= float64(n)
	// Gram matrix of centred data, accumulated over row blocks in order.
	blocks := parallel.Blocks(n, 2048, 64)
	parts := make([][]float64, len(blocks))
	parallel.Run(len(blocks), func(b int) {
		acc := make([]float64, d*d+d)
		row := make([]float64, d)
		for i := blocks[b][0]; i < blocks[b][1]; i++ {
			for j := range d {
				row[j] = x[i*d+j] - xm[j]
			}
			yc := y[i] - ym
			for a := range d {
				ra := row[a]
				if ra == 0 {
					continue
				}
				for c := a; c < d; c++ {
					acc[a*d+c] += ra * row[c]
				}
				acc[d*d+a] += ra * yc
			}
		}
		parts[b] = acc
	})
	g := mat.NewSymDense(d, nil)
	rhs := mat.NewVecDense(d, nil)
	for a := range d {
		for c := a; c < d; c++ {
			var s float64
			for _, p := range parts {
				s += p[a*d+c]
			}
			if a == c {
				s += alpha
			}
			g.SetSym(a, c, s)
		}
		var s float64
		for _, p := range parts {
			s += p[d*d+a]
		}
		rhs.SetVec(a, s)
	}
	var w mat.VecDense
	var ch mat.Cholesky
	if ch.Factorize(g) {
		if err := ch.SolveVecTo(&w, rhs); err != nil {
			return nil, fmt.Errorf("ridge: %w", err)
		}
	} else {
		// Singular without regularisation (alpha = 0 and collinear or
		// constant columns): fall back to a least-squares solve.
		if err := w.SolveVec(g, rhs); err != nil {
			return nil, fmt.Errorf("ridge: singular system (set alpha > 0): %w", err)
		}
	}
	m := &Model{Rows: 1, D: d, W: make([]float64, d), B: make([]float64, 1)}
	b := ym
	for j := range d {
		m.W[j] = w.AtVec(j)
		b -= m.W[j] * xm[j]
	}
	m.B[0] = b
	for _, v := range m.W {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("ridge: %w", ErrDiverged)
		}
	}
	return m, nil
}

// Encode writes the model canonically.
func (m *Model) Encode(w *wire.Writer) {
	w.Bool(m.Logistic)
	w.Int(m.Rows)
	w.Int(m.D)
	w.F64s(m.W)
	w.F64s(m.B)
}

// Decode reads a model written by Encode, checking shapes against the
// expected feature width d and output rows.
func Decode(r *wire.Reader, d, rows int) *Model {
	m := &Model{Logistic: r.Bool(), Rows: r.Int(1 << 16), D: r.Int(1 << 24)}
	m.W = r.FiniteF64s()
	m.B = r.FiniteF64s()
	if r.Err() != nil {
		return nil
	}
	if m.D != d || m.Rows != rows || len(m.W) != m.Rows*m.D || len(m.B) != m.Rows {
		r.Fail("linear model shape %d×%d does not match %d×%d", m.Rows, m.D, rows, d)
		return nil
	}
	return m
}
