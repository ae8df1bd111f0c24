// Package gbdt trains histogram-based gradient-boosted decision trees in the
// style of XGBoost's "hist" method: features are bucketed into at most 255
// quantile bins plus one bin for missing values, trees grow depth-wise with
// second-order (Newton) leaf values, L2 leaf regularisation, shrinkage, row
// and column subsampling, a learned default direction for missing values and
// optional early stopping on a validation split.
//
// Parallel work is split by (node, feature) for histograms and by fixed row
// blocks for prediction; no floating-point sum depends on how work is
// scheduled, so a seed fixes the model bit for bit (TRAIN-6).
package gbdt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/rampart-mlaas/rampart/ml/internal/parallel"
)

// ErrDiverged is returned when a leaf value or the loss is not finite (TRAIN-4).
var ErrDiverged = errors.New("training diverged: loss is not finite")

// ErrParams is wrapped by hyper-parameter errors.
var ErrParams = errors.New("invalid GBDT parameters")

// Objective is the loss being boosted.
type Objective uint8

// Objectives, named after XGBoost's.
const (
	BinaryLogistic    Objective = 1 // binary:logistic
	MultiSoftprob     Objective = 2 // multi:softprob
	RegSquaredError   Objective = 3 // reg:squarederror
	maxRealBins                 = 255
	minHess                     = 1e-16
	quantileSampleCap           = 200_000
)

// Params are the hyper-parameters, with XGBoost's names and defaults.
type Params struct {
	NEstimators         int     // n_estimators (100)
	MaxDepth            int     // max_depth (6); 0 = unlimited, needs MaxLeaves
	MaxLeaves           int     // max_leaves (0 = unlimited)
	LearningRate        float64 // learning_rate (0.3)
	Subsample           float64 // subsample (1)
	ColsampleByTree     float64 // colsample_bytree (1)
	RegLambda           float64 // reg_lambda (1)
	Gamma               float64 // gamma: minimum split gain (0)
	MinChildWeight      float64 // min_child_weight (1)
	MaxBin              int     // max_bin (255 here; XGBoost's 256 includes its missing bin)
	EarlyStoppingRounds int     // early_stopping_rounds (0 = off)
	ValidationFraction  float64 // validation_fraction held out for early stopping (0.1)
}

// DefaultParams are XGBoost 1.7's defaults.
func DefaultParams() Params {
	return Params{NEstimators: 100, MaxDepth: 6, LearningRate: 0.3, Subsample: 1, ColsampleByTree: 1,
		RegLambda: 1, MinChildWeight: 1, MaxBin: 255, ValidationFraction: 0.1}
}

// Node is a tree node. A leaf has Feature < 0. Rows with x[Feature] ≤
// Threshold go Left; missing values go Left when DefaultLeft.
type Node struct {
	Feature     int32
	Left, Right int32
	DefaultLeft bool
	Threshold   float64
	Value       float64
}

// Model is a boosted ensemble. Tree t adds to output t mod Outputs.
type Model struct {
	Objective Objective
	Outputs   int // 1 for binary and regression, K for multi-class
	D         int
	Base      []float64 // initial margin per output
	Trees     [][]Node

	once   sync.Once
	flat   []flatTree
	flatOK bool // every threshold finite: the NaN-free walk is exact
}

// Progress reports trees built and losses (validation loss is NaN without
// early stopping).
type Progress func(trees int, trainLoss, validLoss float64)

// binner maps a feature's values to bins: value x goes to the first bin b
// with x ≤ Upper[b]; the last bin is open-ended.
type binner struct {
	upper []float64
}

func (b *binner) bin(x float64) uint8 {
	if x != x { // NaN
		return uint8(len(b.upper) + 1)
	}
	// sort.SearchFloat64s(b.upper, x) without the closure call per probe:
	// the smallest i with upper[i] ≥ x.
	u := b.upper
	lo, n := 0, len(u)
	for n > 0 {
		half := n / 2
		if u[lo+half] < x {
			lo += half + 1
			n -= half + 1
		} else {
			n = half
		}
	}
	return uint8(lo)
}

func (b *binner) nbins() int { return len(b.upper) + 1 }

// fitBinner chooses at most maxBin bins from the feature's sorted values:
// midpoints between distinct values when few, quantile cuts otherwise.
func fitBinner(vals []float64, maxBin int) binner {
	sort.Float64s(vals)
	uniq := vals[:0:0]
	for i, v := range vals {
		if i == 0 || v != vals[i-1] {
			uniq = append(uniq, v)
		}
	}
	if len(uniq) <= 1 {
		return binner{}
	}
	var upper []float64
	if len(uniq) <= maxBin {
		for i := 0; i+1 < len(uniq); i++ {
			upper = append(upper, uniq[i]+(uniq[i+1]-uniq[i])/2)
		}
		return binner{upper: upper}
	}
	for k := 1; k < maxBin; k++ {
		pos := k * (len(vals) - 1) / maxBin
		v := vals[pos]
		// Cut just above v, at the midpoint to the next distinct value, so
		// the bin edge lies between observed values as in XGBoost.
		j := sort.SearchFloat64s(uniq, v)
		if j+1 >= len(uniq) {
			break
		}
		c := uniq[j] + (uniq[j+1]-uniq[j])/2
		if len(upper) == 0 || c > upper[len(upper)-1] {
			upper = append(upper, c)
		}
	}
	return binner{upper: upper}
}

type dataset struct {
	n, d    int
	rows    []uint8   // row-major bins: histogram building reads one row's bins together
	cols    [][]uint8 // column-major copy: partitioning reads one feature of many rows
	binners []binner
	miss    []uint8 // per feature, the bin holding missing values (= its number of real bins)
	offs    []int   // histogram offset (in bins) per feature
	total   int     // total histogram bins
}

func (ds *dataset) bin(i, f int) uint8 { return ds.cols[f][i] }

func buildDataset(x []float64, n, d, maxBin int, rng *rand.Rand) *dataset {
	ds := &dataset{n: n, d: d, rows: make([]uint8, n*d), binners: make([]binner, d), miss: make([]uint8, d), offs: make([]int, d)}
	// Quantiles come from a fixed random sample of rows when n is large,
	// as XGBoost's sketch does; the sample depends only on the seed.
	sample := make([]int, 0, min(n, quantileSampleCap))
	if n <= quantileSampleCap {
		for i := range n {
			sample = append(sample, i)
		}
	} else {
		perm := rng.Perm(n)[:quantileSampleCap]
		sort.Ints(perm)
		sample = perm
	}
	parallel.Run(d, func(f int) {
		vals := make([]float64, 0, len(sample))
		for _, i := range sample {
			if v := x[i*d+f]; !math.IsNaN(v) {
				vals = append(vals, v)
			}
		}
		ds.binners[f] = fitBinner(vals, maxBin)
	})
	blocks := parallel.Blocks(n, 16384, 256)
	parallel.Run(len(blocks), func(b int) {
		for i := blocks[b][0]; i < blocks[b][1]; i++ {
			for f := range d {
				ds.rows[i*d+f] = ds.binners[f].bin(x[i*d+f])
			}
		}
	})
	ds.cols = make([][]uint8, d)
	parallel.Run(d, func(f int) {
		col := make([]uint8, n)
		for i := range n {
			col[i] = ds.rows[i*d+f]
		}
		ds.cols[f] = col
	})
	for f := range d {
		ds.miss[f] = uint8(ds.binners[f].nbins())
		ds.offs[f] = ds.total
		ds.total += ds.binners[f].nbins() + 1 // +1: the missing bin
	}
	return ds
}

// Fit trains on x (n×d row-major, NaN = missing). For classification y holds
// class indices as float64 and k ≥ 2 is the number of classes; for
// regression k is 0.
func Fit(ctx context.Context, x []float64, n, d int, y []float64, k int, p Params, seed uint64, progress Progress) (*Model, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	obj, outputs := RegSquaredError, 1
	switch {
	case k == 2:
		obj = BinaryLogistic
	case k > 2:
		obj, outputs = MultiSoftprob, k
	}
	rng := rand.New(rand.NewPCG(seed, 0x9bd7))
	ds := buildDataset(x, n, d, p.MaxBin, rng)

	// Early stopping holds out a fixed random validation subset.
	isValid := make([]bool, n)
	var trainRows, validRows []int
	if p.EarlyStoppingRounds > 0 {
		for i := range n {
			isValid[i] = rng.Float64() < p.ValidationFraction
		}
	}
	for i := range n {
		if isValid[i] {
			validRows = append(validRows, i)
		} else {
			trainRows = append(trainRows, i)
		}
	}
	if len(trainRows) == 0 {
		return nil, fmt.Errorf("%w: no training rows left after the validation split", ErrParams)
	}
	m := &Model{Objective: obj, Outputs: outputs, D: d, Base: baseScore(obj, outputs, y, trainRows)}
	margin := make([]float64, n*outputs)
	for i := range n {
		copy(margin[i*outputs:], m.Base)
	}
	gh := make([][]float32, outputs)
	for o := range gh {
		gh[o] = make([]float32, 2*n)
	}
	g := &grower{ds: ds, p: p}
	bestValid, bestRound := math.Inf(1), 0
	for round := 0; round < p.NEstimators; round++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("gbdt: %w", err)
		}
		gradients(obj, outputs, y, margin, gh)
		rows := trainRows
		if p.Subsample < 1 {
			rows = make([]int, 0, len(trainRows))
			for _, i := range trainRows {
				if rng.Float64() < p.Subsample {
					rows = append(rows, i)
				}
			}
		}
		feats := make([]int, d)
		for f := range feats {
			feats[f] = f
		}
		if p.ColsampleByTree < 1 {
			rng.Shuffle(d, func(a, b int) { feats[a], feats[b] = feats[b], feats[a] })
			feats = feats[:max(1, int(p.ColsampleByTree*float64(d)))]
			sort.Ints(feats)
		}
		var others []int // rows outside this round's sample: not in any leaf range
		if len(rows) < n {
			in := make([]bool, n)
			for _, i := range rows {
				in[i] = true
			}
			for i := range n {
				if !in[i] {
					others = append(others, i)
				}
			}
		}
		for o := range outputs {
			tree, err := g.grow(rows, feats, gh[o])
			if err != nil {
				return nil, err
			}
			m.Trees = append(m.Trees, tree)
			g.applyLeaves(tree, margin, outputs, o)
			applyTree(ds, tree, margin, outputs, o, others)
		}
		report := progress != nil && ((round+1)%10 == 0 || round+1 == p.NEstimators)
		var trainLoss, validLoss = math.NaN(), math.NaN()
		if report {
			trainLoss = meanLoss(obj, outputs, y, margin, trainRows)
			// TRAIN-4: a non-finite loss fails the job with a reason.
			if math.IsNaN(trainLoss) || math.IsInf(trainLoss, 0) {
				return nil, fmt.Errorf("gbdt after %d trees: %w", round+1, ErrDiverged)
			}
		}
		if p.EarlyStoppingRounds > 0 && len(validRows) > 0 {
			validLoss = meanLoss(obj, outputs, y, margin, validRows)
			if validLoss < bestValid {
				bestValid, bestRound = validLoss, round+1
			} else if round+1-bestRound >= p.EarlyStoppingRounds {
				m.Trees = m.Trees[:bestRound*outputs]
				if progress != nil {
					if math.IsNaN(trainLoss) {
						trainLoss = meanLoss(obj, outputs, y, margin, trainRows)
					}
					progress(bestRound, trainLoss, bestValid)
				}
				break
			}
		}
		if report {
			progress(round+1, trainLoss, validLoss)
		}
	}
	return m, nil
}

func (p *Params) validate() error {
	switch {
	case p.NEstimators < 1 || p.NEstimators > 100_000:
		return fmt.Errorf("%w: n_estimators=%d", ErrParams, p.NEstimators)
	case p.MaxDepth < 0 || p.MaxDepth > 32:
		return fmt.Errorf("%w: max_depth=%d (0..32)", ErrParams, p.MaxDepth)
	case p.MaxDepth == 0 && p.MaxLeaves < 2:
		return fmt.Errorf("%w: max_depth=0 needs max_leaves ≥ 2", ErrParams)
	case p.LearningRate <= 0 || p.LearningRate > 1:
		return fmt.Errorf("%w: learning_rate=%g", ErrParams, p.LearningRate)
	case p.Subsample <= 0 || p.Subsample > 1:
		return fmt.Errorf("%w: subsample=%g", ErrParams, p.Subsample)
	case p.ColsampleByTree <= 0 || p.ColsampleByTree > 1:
		return fmt.Errorf("%w: colsample_bytree=%g", ErrParams, p.ColsampleByTree)
	case p.RegLambda < 0 || p.Gamma < 0 || p.MinChildWeight < 0:
		return fmt.Errorf("%w: reg_lambda, gamma and min_child_weight must be ≥ 0", ErrParams)
	case p.MaxBin < 2 || p.MaxBin > maxRealBins:
		return fmt.Errorf("%w: max_bin=%d (2..%d)", ErrParams, p.MaxBin, maxRealBins)
	case p.EarlyStoppingRounds < 0 || (p.EarlyStoppingRounds > 0 && (p.ValidationFraction <= 0 || p.ValidationFraction >= 1)):
		return fmt.Errorf("%w: early stopping needs 0 < validation_fraction < 1", ErrParams)
	}
	return nil
}

func baseScore(obj Objective, outputs int, y []float64, rows []int) []float64 {
	base := make([]float64, outputs)
	switch obj {
	case RegSquaredError:
		var s float64
		for _, i := range rows {
			s += y[i]
		}
		base[0] = s / float64(len(rows))
	case BinaryLogistic:
		var pos float64
		for _, i := range rows {
			pos += y[i]
		}
		p := math.Min(math.Max(pos/float64(len(rows)), 1e-6), 1-1e-6)
		base[0] = math.Log(p / (1 - p))
	case MultiSoftprob:
		cnt := make([]float64, outputs)
		for _, i := range rows {
			cnt[int(y[i])]++
		}
		for c := range base {
			base[c] = math.Log(math.Max(cnt[c]/float64(len(rows)), 1e-6))
		}
	}
	return base
}

// sigmoid is 1/(1+exp(-z)) for z ≥ 0 and exp(z)/(1+exp(z)) below, both
// computed as num/(1+e) with e = exp(-|z|): the same values, with the
// numerator picked by a mask from the sign bit instead of a branch that the
// sign of the margin would mispredict half the time.
func sigmoid(z float64) float64 {
	e := math.Exp(-math.Abs(z))
	neg := -(math.Float64bits(z) >> 63) // all ones when the sign bit is set (also -0, where e = 1)
	num := math.Float64bits(1)&^neg | math.Float64bits(e)&neg
	return math.Float64frombits(num) / (1 + e)
}

// gradients fills gh[o][2i], gh[o][2i+1] with the gradient and hessian of
// the loss at the current margins.
func gradients(obj Objective, outputs int, y, margin []float64, gh [][]float32) {
	n := len(y)
	blocks := parallel.Blocks(n, 8192, 64)
	parallel.Run(len(blocks), func(b int) {
		prob := make([]float64, outputs)
		for i := blocks[b][0]; i < blocks[b][1]; i++ {
			switch obj {
			case RegSquaredError:
				gh[0][2*i] = float32(margin[i] - y[i])
				gh[0][2*i+1] = 1
			case BinaryLogistic:
				p := sigmoid(margin[i])
				gh[0][2*i] = float32(p - y[i])
				h := p * (1 - p) // ≥ 0 or NaN: the same as math.Max(h, minHess)
				if h < minHess {
					h = minHess
				}
				gh[0][2*i+1] = float32(h)
			case MultiSoftprob:
				softmax(margin[i*outputs:(i+1)*outputs], prob)
				c := int(y[i])
				for o := range outputs {
					t := 0.0
					if o == c {
						t = 1
					}
					gh[o][2*i] = float32(prob[o] - t)
					gh[o][2*i+1] = float32(math.Max(2*prob[o]*(1-prob[o]), minHess))
				}
			}
		}
	})
}

func softmax(z, out []float64) {
	mx := z[0]
	for _, v := range z[1:] {
		mx = math.Max(mx, v)
	}
	var s float64
	for i, v := range z {
		out[i] = math.Exp(v - mx)
		s += out[i]
	}
	for i := range out {
		out[i] /= s
	}
}

// ExampleLoss is the loss of one example at the given margins: log-loss for
// classification, squared error for regression.
func ExampleLoss(obj Objective, y float64, margin []float64) float64 {
	switch obj {
	case RegSquaredError:
		d := margin[0] - y
		return d * d
	case BinaryLogistic:
		p := sigmoid(margin[0])
		if y == 1 {
			return -math.Log(math.Max(p, 1e-15))
		}
		return -math.Log(math.Max(1-p, 1e-15))
	default:
		prob := make([]float64, len(margin))
		softmax(margin, prob)
		return -math.Log(math.Max(prob[int(y)], 1e-15))
	}
}

// meanLoss averages the example losses of rows. The losses are computed on
// all cores; the sum runs in row order, so the value does not depend on
// the number of cores.
func meanLoss(obj Objective, outputs int, y, margin []float64, rows []int) float64 {
	losses := make([]float64, len(rows))
	blocks := parallel.Blocks(len(rows), 8192, 64)
	parallel.Run(len(blocks), func(b int) {
		for j := blocks[b][0]; j < blocks[b][1]; j++ {
			i := rows[j]
			losses[j] = ExampleLoss(obj, y[i], margin[i*outputs:(i+1)*outputs])
		}
	})
	var s float64
	for _, l := range losses {
		s += l
	}
	return s / float64(len(rows))
}

// applyTree adds the tree's output to the margins of the given rows, walking
// binned data.
func applyTree(ds *dataset, tree []Node, margin []float64, outputs, o int, rows []int) {
	if len(rows) == 0 {
		return
	}
	blocks := parallel.Blocks(len(rows), 8192, 64)
	// Split bins are recovered from thresholds once per tree.
	splitBin := make([]uint8, len(tree))
	for t, nd := range tree {
		if nd.Feature >= 0 {
			splitBin[t] = uint8(sort.SearchFloat64s(ds.binners[nd.Feature].upper, nd.Threshold))
		}
	}
	parallel.Run(len(blocks), func(b int) {
		for _, i := range rows[blocks[b][0]:blocks[b][1]] {
			t := int32(0)
			for tree[t].Feature >= 0 {
				nd := &tree[t]
				bn := ds.bin(i, int(nd.Feature))
				if bn == ds.miss[nd.Feature] {
					if nd.DefaultLeft {
						t = nd.Left
					} else {
						t = nd.Right
					}
				} else if bn <= splitBin[t] {
					t = nd.Left
				} else {
					t = nd.Right
				}
			}
			margin[i*outputs+o] += tree[t].Value
		}
	})
}

// Margins writes the raw outputs (before the link function) of row x.
func (m *Model) Margins(x, out []float64) {
	copy(out, m.Base)
	for ti, tree := range m.Trees {
		t := int32(0)
		for tree[t].Feature >= 0 {
			nd := &tree[t]
			v := x[nd.Feature]
			switch {
			case v <= nd.Threshold:
				t = nd.Left
			case v > nd.Threshold:
				t = nd.Right
			case nd.DefaultLeft: // NaN compares false both ways
				t = nd.Left
			default:
				t = nd.Right
			}
		}
		out[ti%m.Outputs] += tree[t].Value
	}
}

// flatNode is the prediction-time form of a node, 16 bytes so that four
// share a cache line. Nodes are renumbered breadth-first so that a node's
// children are adjacent: the right child is Left+1. A leaf points to
// itself and its threshold is +Inf, so no value leaves it; a fixed number
// of steps (the tree's depth) therefore always ends on the right leaf,
// which lets several rows walk one tree in lock-step.
//
// Missing values need no test while walking: each row is laid out twice,
// first with NaN replaced by +Inf, then with NaN replaced by -Inf, and a
// node whose missing values go right reads feature f of the first copy
// (+Inf > any finite threshold), one whose missing values go left reads
// the second (index d+f). This is exact while every split threshold is
// finite, which the builder guarantees; a model with an infinite threshold
// (only a hand-made artifact) is scored row by row instead.
type flatNode struct {
	thr  float64
	feat uint32 // index into the doubled row
	left int32
}

type flatTree struct {
	nodes  []flatNode
	values []float64 // leaf values by flat node index
	depth  int
}

// compile lays tree out for prediction over d features; ok is false when a
// split threshold is infinite.
func compile(tree []Node, d int) (ft flatTree, ok bool) {
	ok = true
	ft = flatTree{nodes: make([]flatNode, len(tree)), values: make([]float64, len(tree))}
	// Breadth-first renumbering: order[i] is the Node at flat index i.
	order := make([]int32, 1, len(tree))
	depth := make([]int, len(tree))
	for i := 0; i < len(order); i++ {
		t := order[i]
		nd := tree[t]
		if nd.Feature < 0 {
			ft.nodes[i] = flatNode{thr: math.Inf(1), left: int32(i)}
			ft.values[i] = nd.Value
			continue
		}
		if len(order)+2 > len(tree) {
			// Only a tree with a shared child (Decode refuses those; the
			// builder never makes them) gets here: stay in bounds.
			ft.nodes[i] = flatNode{thr: math.Inf(1), left: int32(i)}
			continue
		}
		fn := flatNode{thr: nd.Threshold, feat: uint32(nd.Feature), left: int32(len(order))}
		if nd.DefaultLeft {
			fn.feat += uint32(d)
		}
		if math.IsInf(nd.Threshold, 0) {
			ok = false
		}
		ft.nodes[i] = fn
		// Children come after parents (builder and decoder guarantee it),
		// so each node is reached once.
		depth[nd.Left] = depth[t] + 1
		depth[nd.Right] = depth[t] + 1
		ft.depth = max(ft.depth, depth[t]+1)
		order = append(order, nd.Left, nd.Right)
	}
	return ft, ok
}

func (m *Model) compiled() ([]flatTree, bool) {
	m.once.Do(func() {
		m.flat = make([]flatTree, len(m.Trees))
		m.flatOK = true
		for i, t := range m.Trees {
			var ok bool
			m.flat[i], ok = compile(t, m.D)
			m.flatOK = m.flatOK && ok
		}
	})
	return m.flat, m.flatOK
}

// step moves the row starting at x[off] down one level without a
// data-dependent branch (one would be mispredicted half the time): v > thr
// picks the right child (SETA).
func step(nodes []flatNode, p int32, x []float64, off int) int32 {
	nd := &nodes[p]
	var side int32
	if x[off+int(nd.feat)] > nd.thr {
		side = 1
	}
	return nd.left + side
}

// predictChunk is the number of rows walked through all trees together:
// their doubled rows (64 × 2d float64s) stay in the L1 cache while each tree is
// walked, and every tree is loaded once per chunk.
const predictChunk = 64

// PredictRows writes, for n rows of x, class probabilities (n×K, K=2 for
// binary) or regression values (n×1) into out. It runs on the calling
// goroutine; callers parallelise over row blocks. Rows go in chunks of
// predictChunk through all trees; in a chunk, eight rows walk each tree in
// lock-step so that their independent node loads overlap.
func (m *Model) PredictRows(x []float64, n int, out []float64) {
	w := m.Width()
	d, k := m.D, m.Outputs
	trees, ok := m.compiled()
	if !ok {
		for i := range n {
			m.Predict(x[i*d:(i+1)*d], out[i*w:(i+1)*w])
		}
		return
	}
	var mgBuf [predictChunk * 8]float64
	mg := mgBuf[:0]
	if predictChunk*k > len(mgBuf) {
		mg = make([]float64, 0, predictChunk*k)
	}
	buf := chunkBufs.Get().(*[]float64)
	if cap(*buf) < predictChunk*2*d {
		*buf = make([]float64, predictChunk*2*d)
	}
	xx := (*buf)[:predictChunk*2*d]
	inf := math.Inf(1)
	for lo := 0; lo < n; lo += predictChunk {
		hi := min(lo+predictChunk, n)
		mg := mg[:(hi-lo)*k]
		for i := range hi - lo {
			copy(mg[i*k:(i+1)*k], m.Base)
		}
		// The doubled rows: NaN → +Inf, then NaN → -Inf.
		for i := range hi - lo {
			src := x[(lo+i)*d : (lo+i+1)*d]
			up := xx[2*i*d : 2*i*d+d]
			down := xx[2*i*d+d : 2*i*d+2*d]
			for f, v := range src {
				u, l := v, v
				if v != v {
					u, l = inf, -inf
				}
				up[f], down[f] = u, l
			}
		}
		for ti := range trees {
			walkChunk(&trees[ti], xx, hi-lo, 2*d, mg[ti%k:], k)
		}
		for i := range hi - lo {
			m.link(mg[i*k:(i+1)*k], out[(lo+i)*w:(lo+i+1)*w])
		}
	}
	chunkBufs.Put(buf)
}

var chunkBufs = sync.Pool{New: func() any { return new([]float64) }}

// walkChunk adds tree ft's value for each of the n rows of x (n×d) to
// mg[i*k]. Rows are addressed by offset into x rather than as eight slices,
// which keeps the eight walks' state in registers.
func walkChunk(ft *flatTree, x []float64, n, d int, mg []float64, k int) {
	nodes, vals := ft.nodes, ft.values
	i := 0
	for ; i+8 <= n; i += 8 {
		var p0, p1, p2, p3, p4, p5, p6, p7 int32
		o := i * d
		for range ft.depth {
			p0 = step(nodes, p0, x, o)
			p1 = step(nodes, p1, x, o+d)
			p2 = step(nodes, p2, x, o+2*d)
			p3 = step(nodes, p3, x, o+3*d)
			p4 = step(nodes, p4, x, o+4*d)
			p5 = step(nodes, p5, x, o+5*d)
			p6 = step(nodes, p6, x, o+6*d)
			p7 = step(nodes, p7, x, o+7*d)
		}
		mg[i*k] += vals[p0]
		mg[(i+1)*k] += vals[p1]
		mg[(i+2)*k] += vals[p2]
		mg[(i+3)*k] += vals[p3]
		mg[(i+4)*k] += vals[p4]
		mg[(i+5)*k] += vals[p5]
		mg[(i+6)*k] += vals[p6]
		mg[(i+7)*k] += vals[p7]
	}
	for ; i < n; i++ {
		var p int32
		for range ft.depth {
			p = step(nodes, p, x, i*d)
		}
		mg[i*k] += vals[p]
	}
}

// Width is the number of values PredictRows writes per row.
func (m *Model) Width() int {
	switch m.Objective {
	case BinaryLogistic:
		return 2
	case MultiSoftprob:
		return m.Outputs
	}
	return 1
}

func (m *Model) link(margin, out []float64) {
	switch m.Objective {
	case BinaryLogistic:
		p := sigmoid(margin[0])
		out[0], out[1] = 1-p, p
	case MultiSoftprob:
		softmax(margin, out)
	default:
		out[0] = margin[0]
	}
}

// Predict writes one row's probabilities or value (Width values) into out.
func (m *Model) Predict(x, out []float64) {
	mg := make([]float64, m.Outputs)
	m.Margins(x, mg)
	m.link(mg, out)
}

// SplitCounts counts the splits on each feature, a cheap importance measure.
func (m *Model) SplitCounts() []int {
	cnt := make([]int, m.D)
	for _, tree := range m.Trees {
		for _, nd := range tree {
			if nd.Feature >= 0 {
				cnt[nd.Feature]++
			}
		}
	}
	return cnt
}
