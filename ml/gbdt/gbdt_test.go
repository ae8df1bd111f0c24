package gbdt

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/rampart-mlaas/rampart/ml/internal/wire"
)

// xorData is not linearly separable; a depth-2 tree per round solves it.
func xorData(n int, missing bool) ([]float64, []float64) {
	rng := rand.New(rand.NewPCG(4, 4))
	x := make([]float64, n*3)
	y := make([]float64, n)
	for i := range n {
		a, b := rng.Float64()*2-1, rng.Float64()*2-1
		x[i*3], x[i*3+1], x[i*3+2] = a, b, rng.NormFloat64()
		if (a > 0) != (b > 0) {
			y[i] = 1
		}
		if missing && i%5 == 0 {
			// Missing a ⇒ label 1: only the learned default direction can tell.
			x[i*3] = math.NaN()
			y[i] = 1
		}
	}
	return x, y
}

func accuracy(m *Model, x, y []float64) float64 {
	n := len(y)
	out := make([]float64, n*m.Width())
	m.PredictRows(x, n, out)
	ok := 0
	for i := range n {
		if (out[2*i+1] > 0.5) == (y[i] == 1) {
			ok++
		}
	}
	return float64(ok) / float64(n)
}

func TestFitXOR(t *testing.T) {
	for _, missing := range []bool{false, true} {
		x, y := xorData(2000, missing)
		p := DefaultParams()
		p.NEstimators, p.MaxDepth = 30, 3
		m, err := Fit(context.Background(), x, 2000, 3, y, 2, p, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if acc := accuracy(m, x, y); acc < 0.97 {
			t.Errorf("missing=%v: accuracy %g", missing, acc)
		}
		// Single-row and batch prediction agree exactly.
		one := make([]float64, 2)
		batch := make([]float64, 2*10)
		m.PredictRows(x[:30], 10, batch)
		for i := range 10 {
			m.Predict(x[i*3:(i+1)*3], one)
			if one[1] != batch[2*i+1] {
				t.Fatalf("row %d: %g vs %g", i, one[1], batch[2*i+1])
			}
		}
	}
}

func TestMaxLeavesAndDepth(t *testing.T) {
	x, y := xorData(1000, false)
	p := DefaultParams()
	p.NEstimators, p.MaxDepth, p.MaxLeaves = 3, 0, 5
	m, err := Fit(context.Background(), x, 1000, 3, y, 2, p, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tree := range m.Trees {
		leaves := 0
		for _, nd := range tree {
			if nd.Feature < 0 {
				leaves++
			}
		}
		if leaves > 5 {
			t.Errorf("tree with %d leaves > max_leaves 5", leaves)
		}
	}
	p.MaxDepth, p.MaxLeaves = 2, 0
	m, _ = Fit(context.Background(), x, 1000, 3, y, 2, p, 1, nil)
	for _, tree := range m.Trees {
		if len(tree) > 7 {
			t.Errorf("depth-2 tree has %d nodes", len(tree))
		}
	}
}

func TestEarlyStopping(t *testing.T) {
	// Pure noise labels: validation loss stops improving almost at once.
	rng := rand.New(rand.NewPCG(8, 8))
	n := 1000
	x := make([]float64, n*2)
	y := make([]float64, n)
	for i := range n {
		x[2*i], x[2*i+1] = rng.NormFloat64(), rng.NormFloat64()
		y[i] = float64(rng.IntN(2))
	}
	p := DefaultParams()
	p.NEstimators, p.EarlyStoppingRounds = 200, 5
	m, err := Fit(context.Background(), x, n, 2, y, 2, p, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trees) >= 50 {
		t.Errorf("early stopping kept %d trees on noise", len(m.Trees))
	}
}

func TestMultiClassAndRegression(t *testing.T) {
	n := 900
	x := make([]float64, n)
	yc := make([]float64, n)
	yr := make([]float64, n)
	for i := range n {
		x[i] = float64(i) / float64(n)
		yc[i] = float64(i * 3 / n)
		yr[i] = math.Sin(6 * x[i])
	}
	p := DefaultParams()
	p.NEstimators = 20
	m, err := Fit(context.Background(), x, n, 1, yc, 3, p, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trees) != 60 || m.Width() != 3 {
		t.Fatalf("%d trees, width %d", len(m.Trees), m.Width())
	}
	out := make([]float64, 3)
	m.Predict([]float64{0.9}, out)
	if out[2] < 0.9 || math.Abs(out[0]+out[1]+out[2]-1) > 1e-12 {
		t.Errorf("proba %v", out)
	}
	m, err = Fit(context.Background(), x, n, 1, yr, 0, p, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var se float64
	for i := range n {
		m.Predict(x[i:i+1], out[:1])
		se += (out[0] - yr[i]) * (out[0] - yr[i])
	}
	if rmse := math.Sqrt(se / float64(n)); rmse > 0.05 {
		t.Errorf("regression RMSE %g", rmse)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, mod := range []func(*Params){
		func(p *Params) { p.NEstimators = 0 },
		func(p *Params) { p.MaxDepth = 0 },
		func(p *Params) { p.LearningRate = 0 },
		func(p *Params) { p.Subsample = 1.5 },
		func(p *Params) { p.MaxBin = 300 },
		func(p *Params) { p.EarlyStoppingRounds, p.ValidationFraction = 3, 0 },
	} {
		p := DefaultParams()
		mod(&p)
		if _, err := Fit(context.Background(), []float64{1, 2}, 2, 1, []float64{0, 1}, 2, p, 1, nil); !errors.Is(err, ErrParams) {
			t.Errorf("%+v accepted: %v", p, err)
		}
	}
}

// TestDecodeRejectsCycles: a child index pointing backwards would loop
// forever at prediction time, so the decoder refuses it.
func TestDecodeRejectsCycles(t *testing.T) {
	m := &Model{Objective: BinaryLogistic, Outputs: 1, D: 1, Base: []float64{0},
		Trees: [][]Node{{{Feature: 0, Left: 1, Right: 0}, {Feature: -1}}}}
	w := &wire.Writer{}
	m.Encode(w)
	r := wire.NewReader(w.Bytes())
	if Decode(r, 1); !errors.Is(r.Err(), wire.ErrMalformed) {
		t.Errorf("cyclic tree accepted: %v", r.Err())
	}
	m.Trees[0][0].Right = 2
	w = &wire.Writer{}
	m.Encode(w)
	m.Trees[0] = append(m.Trees[0], Node{Feature: -1})
	r = wire.NewReader(w.Bytes())
	if Decode(r, 1); r.Err() == nil {
		t.Error("out-of-range child accepted")
	}
}

// TestBinMatchesSearch: the inlined bin search is sort.SearchFloat64s.
func TestBinMatchesSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, nb := range []int{0, 1, 2, 3, 7, 100, 254} {
		vals := make([]float64, 5000)
		for i := range vals {
			vals[i] = math.Round(rng.NormFloat64()*20) / 4
		}
		b := fitBinner(append([]float64{}, vals...), max(nb, 2))
		if nb == 0 {
			b = binner{}
		}
		probe := append(vals, b.upper...)
		probe = append(probe, math.Inf(1), math.Inf(-1), math.NaN(), 0, math.Copysign(0, -1))
		for _, x := range probe {
			want := uint8(sort.SearchFloat64s(b.upper, x))
			if math.IsNaN(x) {
				want = uint8(len(b.upper) + 1)
			}
			if got := b.bin(x); got != want {
				t.Fatalf("%d bins: bin(%v) = %d, want %d", nb, x, got, want)
			}
		}
	}
}

// TestSigmoidExact: the branch-free sigmoid is the two-branch formula.
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
		if got, want := sigmoid(z), ref(z); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("sigmoid(%v) = %v, want %v", z, got, want)
		}
	}
}

// TestDecodeRejectsSharedChild: a node reached from two parents is refused
// (prediction lays trees out breadth-first, one parent per node), and
// compiling such a tree built in code stays in bounds.
func TestDecodeRejectsSharedChild(t *testing.T) {
	m := &Model{Objective: BinaryLogistic, Outputs: 1, D: 1, Base: []float64{0},
		Trees: [][]Node{{{Feature: 0, Left: 1, Right: 2}, {Feature: 0, Left: 3, Right: 4}, {Feature: 0, Left: 3, Right: 4},
			{Feature: -1, Value: 1}, {Feature: -1, Value: 2}}}}
	w := &wire.Writer{}
	m.Encode(w)
	r := wire.NewReader(w.Bytes())
	if Decode(r, 1); !errors.Is(r.Err(), wire.ErrMalformed) {
		t.Errorf("shared child accepted: %v", r.Err())
	}
	out := make([]float64, 2*3)
	m.PredictRows([]float64{-1, 0.5, math.NaN()}, 3, out) // must not panic
}

// TestPredictRowsMatchesPredict: batch scoring (doubled rows, no NaN test)
// equals the row-by-row tree walk exactly, with missing and infinite
// inputs, and for a model with an infinite threshold (scored row by row).
func TestPredictRowsMatchesPredict(t *testing.T) {
	x, y := xorData(3000, true)
	p := DefaultParams()
	p.NEstimators, p.MaxDepth = 20, 4
	m, err := Fit(context.Background(), x, 3000, 3, y, 2, p, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	probe := append([]float64{}, x[:300]...)
	for i := range probe {
		switch i % 17 {
		case 3:
			probe[i] = math.Inf(1)
		case 7:
			probe[i] = math.Inf(-1)
		case 11:
			probe[i] = math.NaN()
		}
	}
	check := func(m *Model) {
		n := len(probe) / 3
		batch := make([]float64, 2*n)
		m.PredictRows(probe, n, batch)
		one := make([]float64, 2)
		for i := range n {
			m.Predict(probe[3*i:3*i+3], one)
			if one[0] != batch[2*i] || one[1] != batch[2*i+1] {
				t.Fatalf("row %d: batch %v, single %v", i, batch[2*i:2*i+2], one)
			}
		}
	}
	check(m)
	hand := &Model{Objective: BinaryLogistic, Outputs: 1, D: 3, Base: []float64{0},
		Trees: [][]Node{{{Feature: 0, Left: 1, Right: 2, Threshold: math.Inf(1)}, {Feature: -1, Value: 1}, {Feature: -1, Value: -1}}}}
	check(hand)
	hand.Trees[0][0].DefaultLeft = true
	hand.once = sync.Once{}
	check(hand)
}
