package metrics

import (
	"errors"
	"math"
	"testing"
)

// Expected values are scikit-learn 1.2's for the same inputs, worked by hand.
func TestAUC(t *testing.T) {
	cases := []struct {
		name  string
		y     []int
		score []float64
		want  float64
	}{
		{"sklearn docstring example", []int{0, 0, 1, 1}, []float64{0.1, 0.4, 0.35, 0.8}, 0.75},
		{"perfect", []int{0, 0, 1, 1}, []float64{0.1, 0.2, 0.3, 0.4}, 1},
		{"inverted", []int{1, 1, 0, 0}, []float64{0.1, 0.2, 0.3, 0.4}, 0},
		{"all tied", []int{0, 1, 0, 1}, []float64{0.5, 0.5, 0.5, 0.5}, 0.5},
		{"one tie across classes", []int{0, 1, 1}, []float64{0.3, 0.3, 0.9}, 0.75},
	}
	for _, c := range cases {
		got, err := AUC(c.y, c.score)
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: AUC = %g, %v; want %g", c.name, got, err, c.want)
		}
	}
	if _, err := AUC([]int{1, 1}, []float64{0.2, 0.3}); !errors.Is(err, ErrInput) {
		t.Errorf("single class: %v", err)
	}
	if _, err := AUC([]int{0, 1}, []float64{math.NaN(), 0.3}); !errors.Is(err, ErrInput) {
		t.Errorf("NaN score: %v", err)
	}
}

func TestMacroAUC(t *testing.T) {
	// Three classes, each perfectly ranked by its own column: macro AUC 1.
	y := []int{0, 1, 2, 0, 1, 2}
	p := []float64{
		.8, .1, .1, .1, .8, .1, .1, .1, .8,
		.7, .2, .1, .2, .7, .1, .1, .2, .7,
	}
	if got, err := MacroAUC(y, p, 3); err != nil || got != 1 {
		t.Errorf("macro AUC = %g, %v", got, err)
	}
	// Binary macro AUC is the AUC of column 1.
	if got, _ := MacroAUC([]int{0, 0, 1, 1}, []float64{.9, .1, .6, .4, .65, .35, .2, .8}, 2); got != 0.75 {
		t.Errorf("binary = %g", got)
	}
}

func TestClassification(t *testing.T) {
	y := []int{0, 1, 1, 0, 1}
	pred := []int{0, 1, 0, 0, 1}
	if a, _ := Accuracy(y, pred); a != 0.8 {
		t.Errorf("accuracy %g", a)
	}
	// tp=2, fp=0, fn=1 → F1 = 4/5.
	if f, _ := F1(y, pred, 2); math.Abs(f-0.8) > 1e-12 {
		t.Errorf("F1 %g", f)
	}
	m, _ := ConfusionMatrix(y, pred, 2)
	if m[0][0] != 2 || m[1][1] != 2 || m[1][0] != 1 || m[0][1] != 0 {
		t.Errorf("confusion %v", m)
	}
	// Macro F1 over 3 classes: class 0 F1=1, class 1 F1=2/3, class 2 F1=0.
	if f, _ := F1([]int{0, 1, 1, 2}, []int{0, 1, 2, 1}, 3); math.Abs(f-(1+0.5+0)/3) > 1e-12 {
		t.Errorf("macro F1 %g", f)
	}
	// log_loss([1, 0], [[.2,.8],[.6,.4]]) = -(ln .8 + ln .6)/2.
	ll, _ := LogLoss([]int{1, 0}, []float64{.2, .8, .6, .4}, 2)
	if want := -(math.Log(.8) + math.Log(.6)) / 2; math.Abs(ll-want) > 1e-12 {
		t.Errorf("log-loss %g want %g", ll, want)
	}
	// A certain mistake is large but finite (clipped at 1e-15).
	if l := ExampleLogLoss(0, []float64{0, 1}); math.IsInf(l, 0) || l < 34 {
		t.Errorf("clipped loss %g", l)
	}
	if _, err := ConfusionMatrix([]int{3}, []int{0}, 2); !errors.Is(err, ErrInput) {
		t.Error("out-of-range class accepted")
	}
}

func TestRegress(t *testing.T) {
	r, err := Regress([]float64{3, -0.5, 2, 7}, []float64{2.5, 0, 2, 8})
	if err != nil {
		t.Fatal(err)
	}
	// scikit-learn docstring values: MSE 0.375, MAE 0.5, R² 0.9486081370449679.
	if math.Abs(r.RMSE-math.Sqrt(0.375)) > 1e-12 || r.MAE != 0.5 || math.Abs(r.R2-0.9486081370449679) > 1e-12 {
		t.Errorf("%+v", r)
	}
	if r, _ := Regress([]float64{1, 1}, []float64{1, 1}); r.R2 != 1 {
		t.Errorf("constant exact R² %g", r.R2)
	}
	if r, _ := Regress([]float64{1, 1}, []float64{1, 2}); r.R2 != 0 {
		t.Errorf("constant inexact R² %g", r.R2)
	}
}
