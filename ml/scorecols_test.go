package ml

import (
	"context"
	"errors"
	"math"
	"testing"
)

// columnsOf splits a frame into ScoresColumns' arguments in m's schema
// order.
func columnsOf(t *testing.T, m *Model, f *Frame) ([][]float64, [][]string) {
	t.Helper()
	num := make([][]float64, len(m.Prep.Features))
	cat := make([][]string, len(m.Prep.Features))
	for j, fi := range m.Prep.Features {
		c, ok := f.Column(fi.Name)
		if !ok {
			t.Fatalf("no column %q", fi.Name)
		}
		num[j], cat[j] = c.Num, c.Cat
	}
	return num, cat
}

func sameBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

// TestScoresColumnsMatchesScores: ScoresColumns returns Scores' values bit
// for bit, for one row (its fast path) and for the whole table, for every
// learner, with categorical features and missing values.
func TestScoresColumnsMatchesScores(t *testing.T) {
	f := loadCSV(t, "credit_data.csv")
	train := f.Take(seq(0, 1500))
	inc, _ := f.Column("Income")
	var withIncome []int
	for i, v := range inc.Num[:1500] {
		if !math.IsNaN(v) {
			withIncome = append(withIncome, i)
		}
	}
	specs := []TrainSpec{
		{Algorithm: LogReg, Target: "Status"},
		{Algorithm: GBDT, Target: "Status", Params: map[string]string{"n_estimators": "20", "max_depth": "3"}},
		{Algorithm: MLP, Target: "Status", Params: map[string]string{"hidden_layer_sizes": "8", "epochs": "2"}},
		{Algorithm: LinReg, Target: "Income", Task: Regression},
		{Algorithm: GBDT, Target: "Income", Task: Regression, Params: map[string]string{"n_estimators": "10"}},
	}
	for _, spec := range specs {
		t.Run(spec.Algorithm+"/"+spec.Target, func(t *testing.T) {
			tr := train
			if spec.Target == "Income" {
				tr = f.Take(withIncome)
			}
			spec.Seed = 3
			m, err := Train(context.Background(), tr, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := m.Scores(f)
			if err != nil {
				t.Fatal(err)
			}
			num, cat := columnsOf(t, m, f)
			got, err := m.ScoresColumns(num, cat, f.NumRows())
			if err != nil {
				t.Fatal(err)
			}
			if !sameBits(got, want) {
				t.Fatal("whole table: ScoresColumns differs from Scores")
			}
			w := m.OutputWidth()
			for _, i := range []int{0, 1, 7, 100, f.NumRows() - 1} {
				one := f.Take([]int{i})
				want1, err := m.Scores(one)
				if err != nil {
					t.Fatal(err)
				}
				if !sameBits(want1, want[i*w:(i+1)*w]) {
					t.Fatalf("row %d: Scores of the row alone differs from the batch", i)
				}
				num, cat := columnsOf(t, m, one)
				got1, err := m.ScoresColumns(num, cat, 1)
				if err != nil {
					t.Fatal(err)
				}
				if !sameBits(got1, want1) {
					t.Fatalf("row %d: %v, want %v", i, got1, want1)
				}
			}
		})
	}
}

func TestScoresColumnsRejects(t *testing.T) {
	f := loadCSV(t, "credit_data.csv")
	m, err := Train(context.Background(), f.Take(seq(0, 500)), TrainSpec{Algorithm: LogReg, Target: "Status", Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	one := f.Take([]int{0})
	var jNum, jCat = -1, -1
	for j, fi := range m.Prep.Features {
		if fi.Kind == Numeric && jNum < 0 {
			jNum = j
		}
		if fi.Kind == Categorical && jCat < 0 {
			jCat = j
		}
	}
	if jNum < 0 || jCat < 0 {
		t.Fatal("credit_data needs a numeric and a categorical feature")
	}
	cases := map[string]func(num [][]float64, cat [][]string) ([][]float64, [][]string, int){
		"infinite": func(num [][]float64, cat [][]string) ([][]float64, [][]string, int) {
			num[jNum] = []float64{math.Inf(1)}
			return num, cat, 1
		},
		"numeric given as categorical": func(num [][]float64, cat [][]string) ([][]float64, [][]string, int) {
			num[jNum], cat[jNum] = nil, []string{"x"}
			return num, cat, 1
		},
		"categorical missing": func(num [][]float64, cat [][]string) ([][]float64, [][]string, int) {
			cat[jCat] = nil
			return num, cat, 1
		},
		"short": func(num [][]float64, cat [][]string) ([][]float64, [][]string, int) {
			return num[:jNum], cat, 1
		},
		"wrong length": func(num [][]float64, cat [][]string) ([][]float64, [][]string, int) {
			return num, cat, 2
		},
	}
	for name, mut := range cases {
		num, cat := columnsOf(t, m, one)
		num2, cat2, n := mut(append([][]float64(nil), num...), append([][]string(nil), cat...))
		if _, err := m.ScoresColumns(num2, cat2, n); !errors.Is(err, ErrSchema) && !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The pool keeps nothing: a valid call after the refusals still works.
	num, cat := columnsOf(t, m, one)
	if _, err := m.ScoresColumns(num, cat, 1); err != nil {
		t.Fatal(err)
	}
}

// A one-row call allocates only its result.
func TestScoresColumnsOneRowAllocs(t *testing.T) {
	f := loadCSV(t, "credit_data.csv")
	m, err := Train(context.Background(), f.Take(seq(0, 500)), TrainSpec{Algorithm: LogReg, Target: "Status", Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	num, cat := columnsOf(t, m, f.Take([]int{3}))
	a := testing.AllocsPerRun(100, func() {
		if _, err := m.ScoresColumns(num, cat, 1); err != nil {
			t.Fatal(err)
		}
	})
	if a > 3 {
		t.Errorf("%v allocations per one-row call", a)
	}
}
