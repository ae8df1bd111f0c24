package guard

import "math"

// ScoreErfinv is Score with the normal quantile through math.Erfinv (the
// implementation before normQuantile), for TestOODDecisionsUnchanged.
func (s *Schema) ScoreErfinv(r *Rows, i int) float64 {
	if !s.Profiled || len(s.Features) == 0 {
		return 0
	}
	var mx float64
	for j := range s.Features {
		f := &s.Features[j]
		var z float64
		if f.Categorical {
			z = catScore(f, r.Cat[j][i])
		} else {
			z = numScoreWith(f, r.Num[j][i], probitErfinv)
		}
		mx = math.Max(mx, math.Abs(z))
	}
	return mx
}

// NormaliseErfinv is Normalise with the math.Erfinv normal quantile.
func (s *Schema) NormaliseErfinv(r *Rows, i int) []float64 {
	x := s.Normalise(r, i, nil)
	for j := range s.Features {
		f := &s.Features[j]
		if !f.Categorical && s.Profiled && len(f.Quantiles) >= 2 && !math.IsNaN(r.Num[j][i]) {
			x[j] = numScoreWith(f, r.Num[j][i], probitErfinv)
		}
	}
	return x
}

var (
	NormQuantile = normQuantile
	ProbitErfinv = probitErfinv
)
