package ml

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func smallFrame(t *testing.T, extra ...*Column) *Frame {
	t.Helper()
	n := 40
	x := make([]float64, n)
	y := make([]string, n)
	for i := range n {
		x[i] = float64(i)
		y[i] = []string{"no", "yes"}[i%2]
	}
	f, err := NewFrame(append([]*Column{NumericColumn("x", x), CategoricalColumn("y", y)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func constCol(name string, n int, v float64) *Column {
	c := make([]float64, n)
	for i := range c {
		c[i] = v
	}
	return NumericColumn(name, c)
}

// TestBadTrainingInput: each bad input is a clear error naming the column (or
// a documented warning), never a panic or a NaN model.
func TestBadTrainingInput(t *testing.T) {
	nan := constCol("empty", 40, math.NaN())
	inf := constCol("inf", 40, 1)
	inf.Num[3] = math.Inf(1)
	single := smallFrame(t)
	yc, _ := single.Column("y")
	oneClass := make([]string, 40)
	for i := range oneClass {
		oneClass[i] = "yes"
	}
	manyClass := make([]string, 40)
	for i := range manyClass {
		manyClass[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	_ = yc
	cases := []struct {
		name    string
		frame   func() *Frame
		spec    TrainSpec
		want    error
		mention string
	}{
		{"all-missing column", func() *Frame { return smallFrame(t, nan) }, TrainSpec{Algorithm: LogReg, Target: "y"}, ErrData, `"empty"`},
		{"infinite value", func() *Frame { return smallFrame(t, inf) }, TrainSpec{Algorithm: GBDT, Target: "y"}, ErrData, `"inf" row 4`},
		{"single class", func() *Frame {
			f, _ := NewFrame(NumericColumn("x", make([]float64, 40)), CategoricalColumn("y", oneClass))
			return f
		}, TrainSpec{Algorithm: LogReg, Target: "y"}, ErrData, "single class"},
		{"more classes than rows allow", func() *Frame {
			f, _ := NewFrame(NumericColumn("x", make([]float64, 40)), CategoricalColumn("y", manyClass))
			return f
		}, TrainSpec{Algorithm: MLP, Target: "y"}, ErrData, "40 classes for 40 rows"},
		{"missing target", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: LogReg, Target: "nope"}, ErrData, `"nope"`},
		{"unknown feature", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: LogReg, Target: "y", Features: []string{"zz"}}, ErrData, `"zz"`},
		{"target as feature", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: LogReg, Target: "y", Features: []string{"y"}}, ErrData, `"y"`},
		{"unknown algorithm", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: "svm", Target: "y"}, ErrParam, "svm"},
		{"unknown param", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: GBDT, Target: "y", Params: map[string]string{"n_estimator": "5"}}, ErrParam, "n_estimator"},
		{"bad param value", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: GBDT, Target: "y", Params: map[string]string{"max_depth": "-1"}}, ErrParam, "max_depth"},
		{"too many layers", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: MLP, Target: "y", Params: map[string]string{"hidden_layer_sizes": "4,4,4,4"}}, ErrParam, "hidden_layer_sizes"},
		{"regression on text target", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: LinReg, Target: "y"}, ErrData, "not numeric"},
		{"DP delta ≥ 1/N", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: LogReg, Target: "y", DP: &DPSpec{Epsilon: 1, Delta: 1.0 / 40}}, ErrParam, "1/N"},
		{"DP on gbdt", func() *Frame { return smallFrame(t) }, TrainSpec{Algorithm: GBDT, Target: "y", DP: &DPSpec{Epsilon: 1, Delta: 1e-5}}, ErrParam, "logreg and mlp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Train(context.Background(), c.frame(), c.spec, nil)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("error %q does not mention %s", err, c.mention)
			}
		})
	}
}

// TestConstantColumn: a constant column trains a finite model with a warning.
func TestConstantColumn(t *testing.T) {
	f := smallFrame(t, constCol("c", 40, 5), CategoricalColumn("k", make([]string, 40)))
	kc, _ := f.Column("k")
	for i := range kc.Cat {
		kc.Cat[i] = "same"
	}
	for _, alg := range []string{LogReg, GBDT, MLP} {
		m, err := Train(context.Background(), f, TrainSpec{Algorithm: alg, Target: "y", Params: map[string]string{}}, nil)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if len(m.Info.Warnings) != 2 || !strings.Contains(m.Info.Warnings[0], `"c"`) {
			t.Errorf("%s: warnings %v", alg, m.Info.Warnings)
		}
		p, err := m.PredictProba(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range p {
			if math.IsNaN(v) {
				t.Fatalf("%s: NaN probability", alg)
			}
		}
	}
}

// TestPredictSchema: prediction-time mismatches name the column (INF-4).
func TestPredictSchema(t *testing.T) {
	f := smallFrame(t, CategoricalColumn("k", strings.Split(strings.Repeat("a,b,", 20), ",")[:40]))
	m, err := Train(context.Background(), f, TrainSpec{Algorithm: LogReg, Target: "y"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	missing, _ := NewFrame(NumericColumn("x", []float64{1}))
	wrongKind, _ := NewFrame(CategoricalColumn("x", []string{"1"}), CategoricalColumn("k", []string{"a"}))
	inf, _ := NewFrame(NumericColumn("x", []float64{1, math.Inf(-1)}), CategoricalColumn("k", []string{"a", "b"}))
	for name, c := range map[string]struct {
		f       *Frame
		mention string
	}{
		"missing column": {missing, `"k"`},
		"wrong kind":     {wrongKind, `"x" is categorical`},
		"infinite":       {inf, `"x" row 2`},
	} {
		_, err := m.PredictProba(c.f)
		if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Records: unknown fields, bad types and non-finite numbers are refused;
	// an unseen category and a missing value are scored.
	recs := []struct {
		rec     map[string]any
		mention string
	}{
		{map[string]any{"x": 1.0, "k": "a", "extra": 1}, `"extra"`},
		{map[string]any{"x": "abc", "k": "a"}, `"x"`},
		{map[string]any{"x": math.NaN(), "k": "a"}, `"x"`},
		{map[string]any{"x": 1.0, "k": 3}, `"k"`},
		{map[string]any{"x": 1.0}, `"k"`},
	}
	for _, r := range recs {
		if _, err := m.PredictRecord(r.rec); !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), r.mention) {
			t.Errorf("%v: %v", r.rec, err)
		}
	}
	for _, rec := range []map[string]any{{"x": 3, "k": "never-seen"}, {"x": nil, "k": nil}, {"x": "2.5", "k": "a"}} {
		p, err := m.PredictRecord(rec)
		if err != nil || len(p.Proba) != 2 || math.IsNaN(p.Proba[0]) || (p.Label != "no" && p.Label != "yes") {
			t.Errorf("%v: %+v %v", rec, p, err)
		}
	}
	if p, err := m.PredictRow([]string{"1", ""}); err != nil || p.Label == "" {
		t.Errorf("PredictRow: %+v %v", p, err)
	}
	if _, err := m.PredictRow([]string{"1"}); !errors.Is(err, ErrSchema) {
		t.Errorf("short row: %v", err)
	}
}

// TestDivergence: a loss that blows up fails with ErrDiverged (TRAIN-4).
func TestDivergence(t *testing.T) {
	n := 200
	x, y := make([]float64, n), make([]float64, n)
	for i := range n {
		x[i] = float64(i % 17)
		y[i] = 1e300 * float64(i%3)
	}
	f, _ := NewFrame(NumericColumn("x", x), NumericColumn("t", y))
	for _, alg := range []string{MLP, GBDT} {
		_, err := Train(context.Background(), f, TrainSpec{Algorithm: alg, Task: Regression, Target: "t",
			Params: map[string]string{}}, nil)
		if !errors.Is(err, ErrDiverged) {
			t.Errorf("%s: got %v, want ErrDiverged", alg, err)
		}
	}
}

func TestCancel(t *testing.T) {
	f := loadCSV(t, "credit_data.csv")
	for _, alg := range []string{LogReg, GBDT, MLP} {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		_, err := Train(ctx, f, TrainSpec{Algorithm: alg, Target: "Status"}, func(p Progress) {
			calls++
			if p.Step >= 1 {
				cancel()
			}
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: got %v after %d progress calls", alg, err, calls)
		}
	}
}
