package guard

import (
	"math"
)

// DefaultOODThreshold is the row score above which a row is out of
// distribution when the endpoint sets none (INF-5); see Score.
const DefaultOODThreshold = 4.0

// Score is the out-of-distribution score of row i against the training
// profile (INF-5). Each numeric value becomes a normal score
// z = Φ⁻¹(F(x)) through the training deciles (F piecewise linear, clamped
// at ½/(n+1)); beyond the training range z keeps growing by oodSlope per
// training standard deviation or per width of the outer decile, whichever
// is larger (heavy tails have wide outer deciles). A categorical value
// scores √(−2 ln p) for its training frequency p (unseen: ½/(n+1)). The
// row's score is the largest |z|. By the union bound the maximum of F
// marginal normal scores exceeds t with probability at most 2F(1−Φ(t))
// however the features correlate, which keeps clean rows under the default
// threshold; scaled, swapped and out-of-range columns push at least one
// feature into a tail (TestOODSeparation measures both on the shared
// datasets). Unprofiled schemas score 0.
func (s *Schema) Score(r *Rows, i int) float64 {
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
			z = numScore(f, r.Num[j][i])
		}
		mx = math.Max(mx, math.Abs(z))
	}
	return mx
}

func eps(n int) float64 { return 0.5 / float64(n+1) }

func probit(u float64) float64 { return math.Sqrt2 * math.Erfinv(2*u-1) }

func catScore(f *Feature, v string) float64 {
	if v == "" {
		return 0
	}
	p, ok := f.Freq[v]
	if !ok || p <= 0 {
		p = eps(f.Count)
	}
	return math.Sqrt(-2 * math.Log(p))
}

func numScore(f *Feature, x float64) float64 {
	q := f.Quantiles
	if math.IsNaN(x) || len(q) < 2 {
		return 0
	}
	e := eps(f.Count)
	zEdge := probit(1 - e)
	lo, hi := q[0], q[len(q)-1]
	scale := f.Std
	if !(scale > 0) {
		scale = (hi - lo) / 4
		if hi == lo {
			// A constant training feature has no unit: take its magnitude,
			// at least 1.
			scale = math.Max(math.Abs(hi)*0.1, 1)
		}
	}
	switch {
	case x < lo:
		return -(zEdge + oodSlope*(lo-x)/math.Max(scale, q[1]-q[0]))
	case x > hi:
		return zEdge + oodSlope*(x-hi)/math.Max(scale, q[len(q)-1]-q[len(q)-2])
	}
	// Position among the deciles; a value equal to several deciles (ties)
	// takes the middle of their span.
	k := len(q) - 1
	first, last := -1, -1
	for m := 0; m <= k; m++ {
		if q[m] == x {
			if first < 0 {
				first = m
			}
			last = m
		}
	}
	var u float64
	if first >= 0 {
		u = float64(first+last) / 2 / float64(k)
	} else {
		m := 0
		for m < k && q[m+1] < x {
			m++
		}
		u = (float64(m) + (x-q[m])/(q[m+1]-q[m])) / float64(k)
	}
	u = math.Min(math.Max(u, e), 1-e)
	return probit(u)
}

// oodSlope is how fast a numeric value's score grows beyond the training
// range (see Score).
const oodSlope = 1.0

// prep holds the per-feature constants of numScore, computed once per
// schema (ScoreRows).
type prep struct {
	ok           bool // numeric with at least two deciles
	zEdge        float64
	eps          float64
	loDen, hiDen float64
}

func (s *Schema) prepared() []prep {
	s.prepOnce.Do(func() {
		s.prep = make([]prep, len(s.Features))
		for j := range s.Features {
			f := &s.Features[j]
			q := f.Quantiles
			if f.Categorical || len(q) < 2 {
				continue
			}
			e := eps(f.Count)
			lo, hi := q[0], q[len(q)-1]
			scale := f.Std
			if !(scale > 0) {
				scale = (hi - lo) / 4
				if hi == lo {
					scale = math.Max(math.Abs(hi)*0.1, 1)
				}
			}
			s.prep[j] = prep{ok: true, zEdge: probit(1 - e), eps: e,
				loDen: math.Max(scale, q[1]-q[0]), hiDen: math.Max(scale, q[len(q)-1]-q[len(q)-2])}
		}
	})
	return s.prep
}

// numScorePrep is numScore with the feature's constants precomputed
// (the same arithmetic, so the same values).
func numScorePrep(f *Feature, p *prep, x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	q := f.Quantiles
	lo, hi := q[0], q[len(q)-1]
	switch {
	case x < lo:
		return -(p.zEdge + oodSlope*(lo-x)/p.loDen)
	case x > hi:
		return p.zEdge + oodSlope*(x-hi)/p.hiDen
	}
	// lo ≤ x ≤ hi and q is sorted: g is the first decile ≥ x; ties with x
	// follow it (numScore's two scans, in one).
	k := len(q) - 1
	g := 0
	for q[g] < x {
		g++
	}
	var u float64
	if q[g] == x {
		last := g
		for last < k && q[last+1] == x {
			last++
		}
		u = float64(g+last) / 2 / float64(k)
	} else {
		m := g - 1
		u = (float64(m) + (x-q[m])/(q[m+1]-q[m])) / float64(k)
	}
	// math.Min(math.Max(u, eps), 1-eps) without the calls: u is never
	// NaN here and eps > 0.
	if u < p.eps {
		u = p.eps
	}
	if hi := 1 - p.eps; u > hi {
		u = hi
	}
	return probit(u)
}

// ScoreRows computes for every row of r, in one pass over its values,
// what Normalise writes (into x, row-major: len(Features) values per row;
// nil skips it) and the out-of-distribution score Score returns (into
// ood; nil skips it), each numeric value's normal score computed once.
func (s *Schema) ScoreRows(r *Rows, x, ood []float64) { s.ScoreRange(r, 0, r.N, x, ood) }

// ScoreRange is ScoreRows for rows lo ≤ i < hi (ranges may be scored
// concurrently).
func (s *Schema) ScoreRange(r *Rows, lo, hi int, x, ood []float64) {
	F := len(s.Features)
	pr := s.prepared()
	for i := lo; i < hi; i++ {
		var mx float64
		for j := range s.Features {
			f := &s.Features[j]
			var xv, z float64
			if f.Categorical {
				v := r.Cat[j][i]
				if x != nil {
					h := uint32(2166136261)
					for k := 0; k < len(v); k++ {
						h = (h ^ uint32(v[k])) * 16777619
					}
					xv = float64(h%1000) / 1000
				}
				if ood != nil && s.Profiled {
					z = catScore(f, v)
				}
			} else {
				v := r.Num[j][i]
				switch {
				case math.IsNaN(v):
				case s.Profiled && pr[j].ok:
					z = numScorePrep(f, &pr[j], v)
					xv = z
				default:
					xv = v
				}
			}
			if x != nil {
				x[i*F+j] = xv
			}
			if a := math.Abs(z); a > mx { // math.Max for finite z
				mx = a
			}
		}
		if ood != nil {
			ood[i] = mx
		}
	}
}
