// Package mlp trains multilayer perceptrons: 1–3 hidden ReLU layers, a
// sigmoid (binary), softmax (multi-class) or identity (regression) output,
// cross-entropy or squared loss with L2 penalty, mini-batch Adam — the model
// of scikit-learn's MLPClassifier/MLPRegressor with its parameter names.
//
// Matrix products use gonum's BLAS, whose parallel kernels give each output
// block to one goroutine, so results do not depend on scheduling (TRAIN-6).
package mlp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/rampart-mlaas/rampart/ml/dp"
	"github.com/rampart-mlaas/rampart/ml/internal/wire"
)

// ErrDiverged is returned when the loss is NaN or infinite (TRAIN-4).
var ErrDiverged = errors.New("training diverged: loss is not finite")

// ErrParams is wrapped by hyper-parameter errors.
var ErrParams = errors.New("invalid MLP parameters")

// Output is the output layer's activation.
type Output uint8

// Output kinds.
const (
	Sigmoid  Output = 1 // binary classification, one unit
	Softmax  Output = 2 // multi-class, K units
	Identity Output = 3 // regression, one unit
)

// Params mirror scikit-learn's MLP parameters.
type Params struct {
	HiddenLayerSizes []int   // hidden_layer_sizes (100)
	LearningRate     float64 // learning_rate_init (0.001)
	BatchSize        int     // batch_size (min(200, n))
	Epochs           int     // epochs, scikit-learn's max_iter (200)
	Alpha            float64 // alpha: L2 penalty (0.0001)
	Tol              float64 // tol (1e-4)
	NIterNoChange    int     // n_iter_no_change (10)
}

// DefaultParams are scikit-learn's defaults.
func DefaultParams() Params {
	return Params{HiddenLayerSizes: []int{100}, LearningRate: 1e-3, BatchSize: 200, Epochs: 200, Alpha: 1e-4, Tol: 1e-4, NIterNoChange: 10}
}

// Model is a trained network. Layer l maps Sizes[l] inputs to Sizes[l+1]
// outputs with W[l] (Sizes[l]×Sizes[l+1], row-major) and B[l].
type Model struct {
	Output Output
	Sizes  []int
	W, B   [][]float64
}

// Progress reports an epoch and its mean training loss.
type Progress func(epoch int, loss float64)

func newModel(sizes []int, out Output, rng *rand.Rand) *Model {
	m := &Model{Output: out, Sizes: sizes}
	for l := 0; l+1 < len(sizes); l++ {
		in, o := sizes[l], sizes[l+1]
		// Glorot uniform, as scikit-learn initialises (factor 2 for a sigmoid output).
		factor := 6.0
		if l+2 == len(sizes) && out == Sigmoid {
			factor = 2
		}
		bound := math.Sqrt(factor / float64(in+o))
		w := make([]float64, in*o)
		for i := range w {
			w[i] = (2*rng.Float64() - 1) * bound
		}
		b := make([]float64, o)
		for i := range b {
			b[i] = (2*rng.Float64() - 1) * bound
		}
		m.W = append(m.W, w)
		m.B = append(m.B, b)
	}
	return m
}

func (p *Params) validate(n int) error {
	if len(p.HiddenLayerSizes) < 1 || len(p.HiddenLayerSizes) > 3 {
		return fmt.Errorf("%w: hidden_layer_sizes needs 1 to 3 layers, got %d", ErrParams, len(p.HiddenLayerSizes))
	}
	for _, h := range p.HiddenLayerSizes {
		if h < 1 || h > 4096 {
			return fmt.Errorf("%w: hidden layer size %d (1..4096)", ErrParams, h)
		}
	}
	if p.LearningRate <= 0 || p.Epochs < 1 || p.Alpha < 0 || p.BatchSize < 1 {
		return fmt.Errorf("%w: learning_rate_init, epochs and batch_size must be positive, alpha ≥ 0", ErrParams)
	}
	if p.BatchSize > n {
		p.BatchSize = n // scikit-learn clips batch_size to n as well
	}
	return nil
}

func outputFor(k int) (Output, int) {
	switch {
	case k == 2:
		return Sigmoid, 1
	case k > 2:
		return Softmax, k
	}
	return Identity, 1
}

func (m *Model) sizesFor(d int, p Params, outUnits int) []int {
	return append(append([]int{d}, p.HiddenLayerSizes...), outUnits)
}

// Fit trains on x (n×d row-major). y holds class indices (k ≥ 2) or targets (k = 0).
func Fit(ctx context.Context, x []float64, n, d int, y []float64, k int, p Params, seed uint64, progress Progress) (*Model, error) {
	if err := p.validate(n); err != nil {
		return nil, err
	}
	out, units := outputFor(k)
	rng := rand.New(rand.NewPCG(seed, 0x31f))
	m := newModel((&Model{}).sizesFor(d, p, units), out, rng)
	L := len(m.W)
	// Adam state.
	mW, vW, mB, vB := zerosLike(m.W), zerosLike(m.W), zerosLike(m.B), zerosLike(m.B)
	gW, gB := zerosLike(m.W), zerosLike(m.B)
	const b1, b2, eps = 0.9, 0.999, 1e-8
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	bs := p.BatchSize
	acts := make([][]float64, L+1)
	deltas := make([][]float64, L+1)
	xb := make([]float64, bs*d)
	yb := make([]float64, bs)
	best, noChange, t := math.Inf(1), 0, 0
	for epoch := 1; epoch <= p.Epochs; epoch++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("mlp: %w", err)
		}
		rng.Shuffle(n, func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
		var epochLoss float64
		for start := 0; start < n; start += bs {
			mb := min(bs, n-start)
			for i := range mb {
				r := perm[start+i]
				copy(xb[i*d:(i+1)*d], x[r*d:(r+1)*d])
				yb[i] = y[r]
			}
			loss := m.batchGrad(xb[:mb*d], yb[:mb], mb, p.Alpha, acts, deltas, gW, gB)
			epochLoss += loss * float64(mb)
			t++
			lrT := p.LearningRate * math.Sqrt(1-math.Pow(b2, float64(t))) / (1 - math.Pow(b1, float64(t)))
			for l := range L {
				adam(m.W[l], gW[l], mW[l], vW[l], lrT, b1, b2, eps)
				adam(m.B[l], gB[l], mB[l], vB[l], lrT, b1, b2, eps)
			}
		}
		epochLoss /= float64(n)
		// TRAIN-4: a diverging run fails with a reason instead of a NaN model.
		if math.IsNaN(epochLoss) || math.IsInf(epochLoss, 0) {
			return nil, fmt.Errorf("mlp at epoch %d: %w", epoch, ErrDiverged)
		}
		if progress != nil {
			progress(epoch, epochLoss)
		}
		// scikit-learn's stopping rule: n_iter_no_change epochs without the
		// training loss improving by tol.
		if p.NIterNoChange > 0 {
			if epochLoss > best-p.Tol {
				noChange++
			} else {
				noChange = 0
			}
			best = math.Min(best, epochLoss)
			if noChange >= p.NIterNoChange {
				break
			}
		}
	}
	return m, nil
}

func zerosLike(v [][]float64) [][]float64 {
	out := make([][]float64, len(v))
	for i := range v {
		out[i] = make([]float64, len(v[i]))
	}
	return out
}

func adam(w, g, m, v []float64, lr, b1, b2, eps float64) {
	for i := range w {
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		w[i] -= lr * m[i] / (math.Sqrt(v[i]) + eps)
	}
}

// gemm computes c = a·b (+ c when accumulate) for row-major matrices with
// optional transposes; a is r×k after transposition.
func gemm(ta, tb bool, r, c, k int, a []float64, lda int, b []float64, ldb int, dst []float64, beta float64) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	ar, ac := r, k
	if ta {
		ar, ac = k, r
	}
	br, bc := k, c
	if tb {
		br, bc = c, k
	}
	blas64.Gemm(tA, tB, 1,
		blas64.General{Rows: ar, Cols: ac, Stride: lda, Data: a},
		blas64.General{Rows: br, Cols: bc, Stride: ldb, Data: b},
		beta, blas64.General{Rows: r, Cols: c, Stride: c, Data: dst})
}

// forward computes activations for mb rows; acts[0] is the input.
func (m *Model) forward(x []float64, mb int, acts [][]float64) {
	acts[0] = x
	L := len(m.W)
	for l := range L {
		in, o := m.Sizes[l], m.Sizes[l+1]
		if cap(acts[l+1]) < mb*o {
			acts[l+1] = make([]float64, mb*o)
		}
		a := acts[l+1][:mb*o]
		for i := range mb {
			copy(a[i*o:(i+1)*o], m.B[l])
		}
		gemm(false, false, mb, o, in, acts[l], in, m.W[l], o, a, 1)
		if l+1 < L {
			for i, v := range a {
				if v < 0 {
					a[i] = 0
				}
			}
		} else {
			m.activateOut(a, mb, o)
		}
		acts[l+1] = a
	}
}

func (m *Model) activateOut(a []float64, mb, o int) {
	switch m.Output {
	case Sigmoid:
		for i, v := range a {
			a[i] = sigmoid(v)
		}
	case Softmax:
		for i := range mb {
			softmax(a[i*o : (i+1)*o])
		}
	}
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

func softmax(z []float64) {
	mx := z[0]
	for _, v := range z[1:] {
		mx = math.Max(mx, v)
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

// exampleLoss is the loss of one output row (probabilities or value).
func (m *Model) exampleLoss(out []float64, y float64) float64 {
	const clip = 1e-15
	switch m.Output {
	case Sigmoid:
		p := math.Min(math.Max(out[0], clip), 1-clip)
		if y == 1 {
			return -math.Log(p)
		}
		return -math.Log(1 - p)
	case Softmax:
		return -math.Log(math.Max(out[int(y)], clip))
	}
	d := out[0] - y
	return d * d / 2 // scikit-learn's squared loss carries the ½
}

// batchGrad computes the mean loss (with L2 term) over a mini-batch and its
// gradient into gW, gB.
func (m *Model) batchGrad(x, y []float64, mb int, alpha float64, acts, deltas [][]float64, gW, gB [][]float64) float64 {
	m.forward(x, mb, acts)
	L := len(m.W)
	o := m.Sizes[L]
	out := acts[L]
	var loss float64
	if cap(deltas[L]) < mb*o {
		deltas[L] = make([]float64, mb*o)
	}
	dl := deltas[L][:mb*o]
	for i := range mb {
		row := out[i*o : (i+1)*o]
		loss += m.exampleLoss(row, y[i])
		// For each output/loss pair the output delta is prediction - target.
		copy(dl[i*o:(i+1)*o], row)
		switch m.Output {
		case Softmax:
			dl[i*o+int(y[i])] -= 1
		default:
			dl[i*o] -= y[i]
		}
	}
	loss /= float64(mb)
	var reg float64
	for l := range L {
		for _, w := range m.W[l] {
			reg += w * w
		}
	}
	loss += 0.5 * alpha * reg / float64(mb)
	deltas[L] = dl
	for l := L - 1; l >= 0; l-- {
		in, oo := m.Sizes[l], m.Sizes[l+1]
		d := deltas[l+1]
		// gW = actsᵀ·d / mb + alpha·W / mb
		gemm(true, false, in, oo, mb, acts[l], in, d, oo, gW[l], 0)
		inv := 1 / float64(mb)
		for i := range gW[l] {
			gW[l][i] = gW[l][i]*inv + alpha*m.W[l][i]*inv
		}
		clear(gB[l])
		for i := range mb {
			for j := range oo {
				gB[l][j] += d[i*oo+j]
			}
		}
		for j := range gB[l] {
			gB[l][j] *= inv
		}
		if l == 0 {
			break
		}
		if cap(deltas[l]) < mb*in {
			deltas[l] = make([]float64, mb*in)
		}
		dp := deltas[l][:mb*in]
		gemm(false, true, mb, in, oo, d, oo, m.W[l], oo, dp, 0)
		a := acts[l]
		for i := range dp {
			if a[i] <= 0 {
				dp[i] = 0
			}
		}
		deltas[l] = dp
	}
	return loss
}

// Width is the number of values Predict writes per row.
func (m *Model) Width() int {
	switch m.Output {
	case Sigmoid:
		return 2
	case Softmax:
		return m.Sizes[len(m.Sizes)-1]
	}
	return 1
}

// PredictBatch writes Width values per row for n rows of x into out.
func (m *Model) PredictBatch(x []float64, n int, out []float64) {
	const chunk = 1024
	d := m.Sizes[0]
	w := m.Width()
	acts := make([][]float64, len(m.W)+1)
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		m.forward(x[lo*d:hi*d], hi-lo, acts)
		res := acts[len(m.W)]
		for i := range hi - lo {
			if m.Output == Sigmoid {
				out[(lo+i)*2] = 1 - res[i]
				out[(lo+i)*2+1] = res[i]
			} else {
				copy(out[(lo+i)*w:(lo+i+1)*w], res[i*w:(i+1)*w])
			}
		}
	}
}

// --- DP-SGD (TRAIN-2) ---

// flat views the parameters as one vector in layer order (W then B).
func (m *Model) numParams() int {
	n := 0
	for l := range m.W {
		n += len(m.W[l]) + len(m.B[l])
	}
	return n
}

func (m *Model) flatten() []float64 {
	var p []float64
	for l := range m.W {
		p = append(append(p, m.W[l]...), m.B[l]...)
	}
	return p
}

func (m *Model) view(p []float64) *Model {
	v := &Model{Output: m.Output, Sizes: m.Sizes}
	off := 0
	for l := range m.W {
		v.W = append(v.W, p[off:off+len(m.W[l])])
		off += len(m.W[l])
		v.B = append(v.B, p[off:off+len(m.B[l])])
		off += len(m.B[l])
	}
	return v
}

type dpProblem struct {
	shape *Model
	x, y  []float64
	n, d  int
}

func (p *dpProblem) NumParams() int   { return p.shape.numParams() }
func (p *dpProblem) NumExamples() int { return p.n }

func (p *dpProblem) ExampleGrad(params []float64, i int, g []float64) float64 {
	m := p.shape.view(params)
	gm := p.shape.view(g)
	L := len(m.W)
	acts := make([][]float64, L+1)
	deltas := make([][]float64, L+1)
	// alpha = 0: the L2 penalty is applied outside the clipped sum.
	return m.batchGrad(p.x[i*p.d:(i+1)*p.d], p.y[i:i+1], 1, 0, acts, deltas, gm.W, gm.B)
}

// FitDP trains with DP-SGD (Adam on the privatised gradient; post-processing
// keeps the guarantee). cfg.NoiseMultiplier comes from the accountant.
func FitDP(ctx context.Context, x []float64, n, d int, y []float64, k int, p Params, seed uint64, cfg dp.SGDConfig, progress Progress) (*Model, error) {
	if err := p.validate(n); err != nil {
		return nil, err
	}
	out, units := outputFor(k)
	rng := rand.New(rand.NewPCG(seed, 0x31f))
	m := newModel((&Model{}).sizesFor(d, p, units), out, rng)
	params := m.flatten()
	prob := &dpProblem{shape: m, x: x, y: y, n: n, d: d}
	if err := dp.SGD(ctx, prob, params, cfg, dp.Progress(progress)); err != nil {
		return nil, fmt.Errorf("mlp: %w", err)
	}
	return m.view(params), nil
}

// Encode writes the model canonically.
func (m *Model) Encode(w *wire.Writer) {
	w.U8(uint8(m.Output))
	w.Ints(m.Sizes)
	for l := range m.W {
		w.F64s(m.W[l])
		w.F64s(m.B[l])
	}
}

// Decode reads an Encode'd model over d inputs with `units` outputs.
func Decode(r *wire.Reader, d, units int) *Model {
	m := &Model{Output: Output(r.U8()), Sizes: r.Ints(1, 1<<16)}
	if r.Err() != nil {
		return nil
	}
	if len(m.Sizes) < 3 || len(m.Sizes) > 5 || m.Sizes[0] != d || m.Sizes[len(m.Sizes)-1] != units ||
		m.Output < Sigmoid || m.Output > Identity {
		r.Fail("mlp shape %v for %d inputs, %d outputs", m.Sizes, d, units)
		return nil
	}
	for l := 0; l+1 < len(m.Sizes); l++ {
		w, b := r.FiniteF64s(), r.FiniteF64s()
		if r.Err() != nil {
			return nil
		}
		if len(w) != m.Sizes[l]*m.Sizes[l+1] || len(b) != m.Sizes[l+1] {
			r.Fail("mlp layer %d size", l)
			return nil
		}
		m.W = append(m.W, w)
		m.B = append(m.B, b)
	}
	return m
}
