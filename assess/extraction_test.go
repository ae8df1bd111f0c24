package assess

import (
	"context"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart/ml"
)

// credit returns a GBDT on credit_data, the attacker's natural rows and
// the evaluation rows with the model's labels.
func creditSetup(t *testing.T) (*ml.Model, Space, [][]float64, [][]float64, []int) {
	t.Helper()
	data := loadFrame(t, "credit_data.csv")
	tr, rest := split(t, data, "Status", 0.5, 4)
	pool, eval := split(t, rest, "Status", 0.3, 5)
	m := train(t, tr, ml.TrainSpec{Algorithm: ml.GBDT, Target: "Status", Seed: 4, Params: map[string]string{"n_estimators": "60"}})
	s := SpaceOf(m)
	natural, err := s.Rows(pool)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := s.Rows(eval)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: -1}).Predict(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int, len(p))
	for i := range p {
		labels[i] = p[i].Class
	}
	return m, s, natural, ev, labels
}

// PRIV-2: fidelity against queries for every strategy, label-only.
func TestExtractionCurves(t *testing.T) {
	m, s, natural, ev, labels := creditSetup(t)
	rep, err := Extraction(context.Background(), ExtractionConfig{
		Target: func(context.Context, string) (Oracle, error) {
			return NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: -1}), nil
		},
		Space: s, Budgets: []int{50, 200, 800}, Natural: natural, Eval: ev, EvalLabels: labels, Seed: 4,
		Surrogate: ml.TrainSpec{Algorithm: ml.GBDT, Params: map[string]string{"n_estimators": "40", "max_depth": "4"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The majority class alone agrees with the model this often.
	base := 0.0
	for _, l := range labels {
		if l == labels[0] {
			base++
		}
	}
	base /= float64(len(labels))
	base = max(base, 1-base)
	if len(rep.Curves) != 3 {
		t.Fatalf("curves: %+v", rep.Curves)
	}
	for _, c := range rep.Curves {
		t.Logf("%s: %+v (obtained %d)", c.Strategy, c.Points, c.Obtained)
		if len(c.Points) != 3 || c.Obtained != 800 || c.Refused != "" {
			t.Errorf("%s: curve %+v", c.Strategy, c)
		}
	}
	nat := rep.Curves[2].Points
	if nat[2].Fidelity < 0.85 || nat[2].Fidelity <= base {
		t.Errorf("natural queries: fidelity %.3f at 800 queries (majority %.3f)", nat[2].Fidelity, base)
	}
	if nat[2].Fidelity < nat[0].Fidelity {
		t.Errorf("natural fidelity fell with more queries: %+v", nat)
	}
}

// A budget (the guard, simulated) cuts the attacker off; the curve ends
// at what was obtained.
func TestExtractionBudget(t *testing.T) {
	m, s, natural, ev, labels := creditSetup(t)
	rep, err := Extraction(context.Background(), ExtractionConfig{
		Target: func(context.Context, string) (Oracle, error) {
			o := NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: 2})
			o.Budget = 130
			return o, nil
		},
		Space: s, Strategies: []string{Natural}, Budgets: []int{100, 400}, Natural: natural, Eval: ev, EvalLabels: labels, Batch: 25})
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Curves[0]
	if c.Obtained != 125 || !strings.Contains(c.Refused, "budget") || len(c.Points) != 2 || c.Points[1].Queries != 125 {
		t.Fatalf("curve %+v", c)
	}
}
