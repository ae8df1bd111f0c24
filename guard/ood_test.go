package guard_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rampart-mlaas/rampart/guard"
)

// shift returns a shifted copy of row i of r by family, and whether the
// shift changed anything (a row of zeros does not change when scaled).
func shift(s *split, r *guard.Rows, i int, family string, rng *rand.Rand) (*guard.Rows, bool) {
	one := &guard.Rows{N: 1, Num: make([][]float64, len(r.Num)), Cat: make([][]string, len(r.Cat))}
	for j := range r.Num {
		if r.Num[j] != nil {
			one.Num[j] = []float64{r.Num[j][i]}
		}
		if r.Cat[j] != nil {
			one.Cat[j] = []string{r.Cat[j][i]}
		}
	}
	num := numericIdx(s)
	orig := cloneRows(one)
	switch family {
	case "scaled": // a unit error: every numeric feature ×10
		for _, j := range num {
			one.Num[j][0] *= 10
		}
	case "swapped": // the numeric columns arrive in a random order
		vals := make([]float64, len(num))
		for k, j := range num {
			vals[k] = one.Num[j][0]
		}
		rng.Shuffle(len(vals), func(a, b int) { vals[a], vals[b] = vals[b], vals[a] })
		for k, j := range num {
			one.Num[j][0] = vals[k]
		}
	case "out-of-range": // one feature drawn beyond its training range
		j := num[rng.IntN(len(num))]
		f := s.schema.Features[j]
		q := f.Quantiles
		w := q[len(q)-1] - q[0]
		if w == 0 {
			w = 1
		}
		one.Num[j][0] = q[len(q)-1] + (0.25+rng.Float64())*w
	}
	changed := false
	for j := range one.Num {
		if one.Num[j] != nil && one.Num[j][0] != orig.Num[j][0] && !(math.IsNaN(one.Num[j][0]) && math.IsNaN(orig.Num[j][0])) {
			changed = true
		}
	}
	return one, changed
}

// TestOODSeparation is INF-5 on the shared datasets: the OOD score
// separates clean test rows from shifted ones (features scaled ×10,
// numeric columns swapped, one feature out of range) with AUROC ≥ 0.90
// per dataset, and the default threshold rejects ≤ 2 % of clean rows.
func TestOODSeparation(t *testing.T) {
	for _, d := range datasets {
		t.Run(d.name, func(t *testing.T) {
			s := load(t, d.name, d.path, d.target)
			idx := make([]int, s.test.NumRows())
			for i := range idx {
				idx[i] = i
			}
			r := rows(s, s.test, idx)
			rng := rand.New(rand.NewPCG(3, 4))
			var clean []float64
			rejected := 0
			for i := range r.N {
				sc := s.schema.Score(r, i)
				clean = append(clean, sc)
				if sc > guard.DefaultOODThreshold {
					rejected++
				}
			}
			var all []float64
			for _, fam := range []string{"scaled", "swapped", "out-of-range"} {
				var shifted []float64
				for i := range r.N {
					one, changed := shift(s, r, i, fam, rng)
					if changed {
						shifted = append(shifted, s.schema.Score(one, 0))
					}
				}
				all = append(all, shifted...)
				t.Logf("%s %s: AUROC %.3f over %d clean / %d shifted rows", d.name, fam, auroc(shifted, clean), len(clean), len(shifted))
			}
			a := auroc(all, clean)
			rate := float64(rejected) / float64(len(clean))
			t.Logf("%s: AUROC %.3f (all shifts); %.2f %% of clean rows over the default threshold %.1f", d.name, a, 100*rate, guard.DefaultOODThreshold)
			if a < 0.90 {
				t.Errorf("AUROC %.3f < 0.90", a)
			}
			if rate > 0.02 {
				t.Errorf("%.2f %% of clean rows rejected > 2 %%", 100*rate)
			}
		})
	}
}

// ScoreRows computes exactly what Normalise and Score compute row by row,
// on clean and shifted rows of datasets with numeric, categorical and
// missing values.
func TestScoreRowsMatchesScore(t *testing.T) {
	for _, d := range []struct{ name, path, target string }{
		{"breast_cancer", "../dataset/testdata/breast_cancer.csv", "diagnosis"},
		{"hr_attrition", "../dataset/testdata/hr_attrition.csv", "Attrition"},
		{"credit_data", "../dataset/testdata/credit_data.csv", "Status"},
	} {
		s := load(t, d.name, d.path, d.target)
		idx := make([]int, s.test.NumRows())
		for i := range idx {
			idx[i] = i
		}
		r := rows(s, s.test, idx)
		rng := rand.New(rand.NewPCG(1, 2))
		for _, j := range numericIdx(s) { // some values far out, some missing
			for i := range r.N {
				switch rng.IntN(10) {
				case 0:
					r.Num[j][i] *= 100
				case 1:
					r.Num[j][i] = -r.Num[j][i] - 1e6
				case 2:
					r.Num[j][i] = math.NaN()
				}
			}
		}
		F := len(s.schema.Features)
		x, ood := make([]float64, r.N*F), make([]float64, r.N)
		s.schema.ScoreRows(r, x, ood)
		for i := range r.N {
			if want := s.schema.Score(r, i); math.Float64bits(ood[i]) != math.Float64bits(want) {
				t.Fatalf("%s row %d: score %v, want %v", d.name, i, ood[i], want)
			}
			want := s.schema.Normalise(r, i, nil)
			for j := range F {
				if math.Float64bits(x[i*F+j]) != math.Float64bits(want[j]) {
					t.Fatalf("%s row %d feature %d: %v, want %v", d.name, i, j, x[i*F+j], want[j])
				}
			}
		}
	}
}
