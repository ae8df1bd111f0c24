package assess

import (
	"context"
	"math"
	"testing"

	"github.com/rampart-mlaas/rampart/ml"
)

func bcSetup(t *testing.T, spec ml.TrainSpec) (*ml.Model, Space, [][]float64, []int) {
	t.Helper()
	data := loadFrame(t, "breast_cancer.csv")
	tr, te := split(t, data, "diagnosis", 0.3, 6)
	spec.Target = "diagnosis"
	m := train(t, tr, spec)
	s := SpaceOf(m)
	rows, err := s.Rows(te)
	if err != nil {
		t.Fatal(err)
	}
	y, err := s.Labels(te, "diagnosis")
	if err != nil {
		t.Fatal(err)
	}
	return m, s, rows, y
}

// PRIV-3: the exact linear attack finds the minimal perturbation: the
// label flips at it and not at 99.9 % of it, and the decision-based
// attack on the same model never beats it.
func TestEvasionExactLinear(t *testing.T) {
	ctx := context.Background()
	m, s, rows, y := bcSetup(t, ml.TrainSpec{Algorithm: ml.LogReg})
	cfg := EvasionConfig{Model: m, Space: s, Rows: rows, Labels: y, MaxRows: 30, Seed: 6}
	ex, err := Evasion(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Method != ExactLinear || ex.Found != ex.Attacked || ex.Attacked != 30 {
		t.Fatalf("exact: %+v", ex)
	}
	x0, cls, adv := attackedRows(t, m, s, rows, y, 30)
	o := NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: -1})
	under := make([][]float64, len(adv))
	for i := range adv {
		under[i] = lerp(x0[i], adv[i], 0.999)
	}
	p, err := o.Predict(ctx, under)
	if err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if p[i].Class != cls[i] {
			t.Errorf("row %d: 99.9 %% of the exact perturbation already flips the label", i)
		}
	}
	cfg.Method = Decision
	cfg.QueriesPerRow = 600
	dec, err := Evasion(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exact median %.4f, decision median %.4f (%d queries), found %d/%d", ex.Median, dec.Median, dec.Queries, dec.Found, dec.Attacked)
	if dec.Median < ex.Median*0.999 {
		t.Errorf("decision-based median %.4f beats the exact minimum %.4f", dec.Median, ex.Median)
	}
	if dec.Found < dec.Attacked*9/10 || dec.Median > 3*ex.Median {
		t.Errorf("decision-based attack is weak: %+v", dec)
	}
	for i := 1; i < len(ex.Curve); i++ {
		if ex.Curve[i].SuccessRate < ex.Curve[i-1].SuccessRate {
			t.Errorf("success rate falls with budget: %+v", ex.Curve)
		}
	}
}

// attackedRows reruns the exact attack to get the perturbed rows.
func attackedRows(t *testing.T, m *ml.Model, s Space, rows [][]float64, y []int, n int) ([][]float64, []int, [][]float64) {
	t.Helper()
	var x0 [][]float64
	var cls []int
	p, _ := NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: -1}).Predict(context.Background(), rows)
	for i := range rows {
		if p[i].Class == y[i] && len(x0) < n {
			x0, cls = append(x0, rows[i]), append(cls, y[i])
		}
	}
	adv, err := exactLinear(m, s, x0, cls)
	if err != nil {
		t.Fatal(err)
	}
	return x0, cls, adv
}

// PRIV-3: gradient (MLP) and decision-based (GBDT) attacks succeed within
// moderate budgets; success is counted only for verified label changes.
func TestEvasionMLPAndGBDT(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []ml.TrainSpec{
		{Algorithm: ml.MLP, Seed: 7, Params: map[string]string{"hidden_layer_sizes": "16", "epochs": "60"}},
		{Algorithm: ml.GBDT, Seed: 7, Params: map[string]string{"n_estimators": "40"}},
	} {
		m, s, rows, y := bcSetup(t, spec)
		rep, err := Evasion(ctx, EvasionConfig{Model: m, Space: s, Rows: rows, Labels: y, MaxRows: 20, QueriesPerRow: 500, Seed: 7,
			OOD: zScorer{s, 4}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s/%s: found %d/%d, median %.3f, OOD caught %.2f (clean %.2f), curve %+v", spec.Algorithm, rep.Method, rep.Found, rep.Attacked, rep.Median, rep.OODCaught, rep.CleanOOD, rep.Curve)
		if rep.Found < rep.Attacked*8/10 || math.IsNaN(rep.Median) || rep.Median <= 0 {
			t.Errorf("%s: %+v", spec.Algorithm, rep)
		}
	}
}

// zScorer is a test OOD scorer: the largest |z| of a row.
type zScorer struct {
	s Space
	t float64
}

func (z zScorer) Scores(_ context.Context, rows [][]float64) ([]float64, error) {
	out := make([]float64, len(rows))
	for i, r := range rows {
		for _, j := range z.s.numeric() {
			f := z.s.Features[j]
			out[i] = math.Max(out[i], math.Abs(r[j]-f.Mean)/f.Std)
		}
	}
	return out, nil
}

func (z zScorer) Threshold() float64 { return z.t }
