package assess

import (
	"math"
	"testing"
)

func TestROC(t *testing.T) {
	for _, tc := range []struct {
		name        string
		member, non []float64
		auc, t1     float64
	}{
		{"separated", []float64{5, 6, 7}, []float64{1, 2, 3}, 1, 1},
		{"reversed", []float64{1, 2, 3}, []float64{5, 6, 7}, 0, 0},
		{"ties", []float64{1, 1}, []float64{1, 1}, 0.5, 0},
		{"half", []float64{4, 2}, []float64{3, 1}, 0.75, 0.5},
	} {
		pts := roc(tc.member, tc.non)
		if a := aucOf(pts); math.Abs(a-tc.auc) > 1e-12 {
			t.Errorf("%s: AUC %g, want %g", tc.name, a, tc.auc)
		}
		if v := tprAt(pts, 0.01); v != tc.t1 {
			t.Errorf("%s: TPR@1%% %g, want %g", tc.name, v, tc.t1)
		}
		if p := pts[len(pts)-1]; p.FPR != 1 || p.TPR != 1 {
			t.Errorf("%s: curve ends at %+v", tc.name, p)
		}
	}
}

func TestClopperPearson(t *testing.T) {
	// Reference values (scipy.stats.beta.ppf): k=5, n=10, 95 %.
	lo, hi := clopperPearson(5, 10, 0.05)
	if math.Abs(lo-0.18709) > 1e-4 || math.Abs(hi-0.81291) > 1e-4 {
		t.Errorf("CP(5,10) = [%g, %g]", lo, hi)
	}
	if lo, hi := clopperPearson(0, 10, 0.05); lo != 0 || math.Abs(hi-0.30850) > 1e-4 {
		t.Errorf("CP(0,10) = [%g, %g]", lo, hi)
	}
}

// checkDP flags a curve that no (ε, δ) model could produce and accepts
// chance.
func TestCheckDP(t *testing.T) {
	n := 1000
	member := make([]float64, n)
	non := make([]float64, n)
	for i := range n {
		member[i], non[i] = float64(i)+0.5*float64(n), float64(i)
	}
	g := DPGuarantee{Epsilon: 1, Delta: 1e-5}
	if c := checkDP(roc(member, non), n, n, g); !c.Violated || c.EpsilonLowerBound <= 1 {
		t.Errorf("separated scores: %+v", c)
	}
	for i := range non {
		non[i] = member[i] // identical distributions
	}
	if c := checkDP(roc(member, non), n, n, g); c.Violated || c.EpsilonLowerBound > 0 {
		t.Errorf("identical scores: %+v", c)
	}
}
