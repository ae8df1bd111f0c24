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

// probit is Φ⁻¹(u) for 0 < u < 1 (the OOD and monitor normal scores,
// INF-3/INF-5): normQuantile, within 1e-12 relative of
// √2·math.Erfinv(2u−1) (TestNormQuantileMatchesErfinv; the OOD decisions
// on the shared datasets are unchanged, TestOODDecisionsUnchanged).
func probit(u float64) float64 { return normQuantile(u) }

// probitErfinv is the normal quantile through math.Erfinv (Shapiro-Wilk's
// expected order statistics and the reference of the tests).
func probitErfinv(u float64) float64 { return math.Sqrt2 * math.Erfinv(2*u-1) }

// normQuantile is Φ⁻¹(p) for 0 < p < 1 by Wichura's AS241 (PPND16,
// Applied Statistics 37, 1988), the algorithm math.Erfinv implements,
// with Go's coefficients (math/erfinv.go; erfinv(x) = Φ⁻¹((x+1)/2)/√2),
// evaluated directly in p: no rounding of 2p−1 and 1−x, and the degree-7
// polynomials by Estrin's scheme (three dependent steps instead of seven,
// which is what bounded math.Erfinv per value in 10,000-row batches).
func normQuantile(p float64) float64 {
	q := p - 0.5
	if q >= -0.425 && q <= 0.425 {
		r := 0.180625 - q*q
		r2 := r * r
		r4 := r2 * r2
		n := (erfA0 + erfA1*r + r2*(erfA2+erfA3*r)) + r4*((erfA4+erfA5*r)+r2*(erfA6+erfA7*r))
		d := (1 + erfB1*r + r2*(erfB2+erfB3*r)) + r4*((erfB4+erfB5*r)+r2*(erfB6+erfB7*r))
		return 2 * math.Sqrt2 * q * n / d
	}
	if !(p > 0 && p < 1) {
		switch {
		case p == 0:
			return math.Inf(-1)
		case p == 1:
			return math.Inf(1)
		}
		return math.NaN()
	}
	t := p
	if q > 0 {
		t = 1 - p // exact for p ≥ ½
	}
	r := math.Sqrt(-math.Log(t))
	var n, d float64
	if r <= 5 {
		r -= 1.6
		r2 := r * r
		r4 := r2 * r2
		n = (erfC0 + erfC1*r + r2*(erfC2+erfC3*r)) + r4*((erfC4+erfC5*r)+r2*(erfC6+erfC7*r))
		d = (erfD0 + erfD1*r + r2*(erfD2+erfD3*r)) + r4*((erfD4+erfD5*r)+r2*(erfD6+erfD7*r))
	} else {
		r -= 5
		r2 := r * r
		r4 := r2 * r2
		n = (erfE0 + erfE1*r + r2*(erfE2+erfE3*r)) + r4*((erfE4+erfE5*r)+r2*(erfE6+erfE7*r))
		d = (erfF0 + erfF1*r + r2*(erfF2+erfF3*r)) + r4*((erfF4+erfF5*r)+r2*(erfF6+erfF7*r))
	}
	z := math.Sqrt2 * n / d
	if q < 0 {
		return -z
	}
	return z
}

// AS241's coefficients as math/erfinv.go writes them (for erfinv).
const (
	erfA0 = 1.1975323115670912564578e0
	erfA1 = 4.7072688112383978012285e1
	erfA2 = 6.9706266534389598238465e2
	erfA3 = 4.8548868893843886794648e3
	erfA4 = 1.6235862515167575384252e4
	erfA5 = 2.3782041382114385731252e4
	erfA6 = 1.1819493347062294404278e4
	erfA7 = 8.8709406962545514830200e2
	erfB1 = 4.2313330701600911252e1
	erfB2 = 6.8718700749205790830e2
	erfB3 = 5.3941960214247511077e3
	erfB4 = 2.1213794301586595867e4
	erfB5 = 3.9307895800092710610e4
	erfB6 = 2.8729085735721942674e4
	erfB7 = 5.2264952788528545610e3
	erfC0 = 1.42343711074968357734e0
	erfC1 = 4.63033784615654529590e0
	erfC2 = 5.76949722146069140550e0
	erfC3 = 3.64784832476320460504e0
	erfC4 = 1.27045825245236838258e0
	erfC5 = 2.41780725177450611770e-1
	erfC6 = 2.27238449892691845833e-2
	erfC7 = 7.74545014278341407640e-4
	erfD0 = 1.4142135623730950488016887e0
	erfD1 = 2.9036514445419946173133295e0
	erfD2 = 2.3707661626024532365971225e0
	erfD3 = 9.7547832001787427186894837e-1
	erfD4 = 2.0945065210512749128288442e-1
	erfD5 = 2.1494160384252876777097297e-2
	erfD6 = 7.7441459065157709165577218e-4
	erfD7 = 1.4859850019840355905497876e-9
	erfE0 = 6.65790464350110377720e0
	erfE1 = 5.46378491116411436990e0
	erfE2 = 1.78482653991729133580e0
	erfE3 = 2.96560571828504891230e-1
	erfE4 = 2.65321895265761230930e-2
	erfE5 = 1.24266094738807843860e-3
	erfE6 = 2.71155556874348757815e-5
	erfE7 = 2.01033439929228813265e-7
	erfF0 = 1.414213562373095048801689e0
	erfF1 = 8.482908416595164588112026e-1
	erfF2 = 1.936480946950659106176712e-1
	erfF3 = 2.103693768272068968719679e-2
	erfF4 = 1.112800997078859844711555e-3
	erfF5 = 2.611088405080593625138020e-5
	erfF6 = 2.010321207683943062279931e-7
	erfF7 = 2.891024605872965461538222e-15
)

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

func numScore(f *Feature, x float64) float64 { return numScoreWith(f, x, probit) }

// numScoreWith is numScore with the normal quantile pf (tests compare
// decisions under probit and probitErfinv).
func numScoreWith(f *Feature, x float64, pf func(float64) float64) float64 {
	q := f.Quantiles
	if math.IsNaN(x) || len(q) < 2 {
		return 0
	}
	e := eps(f.Count)
	zEdge := pf(1 - e)
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
	return pf(u)
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
	// qpad: the deciles padded with +Inf to 16 (nil beyond 16 deciles)
	// for numScorePrep's branch-free search.
	qpad *[16]float64
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
			if len(q) <= 16 {
				p := new([16]float64)
				for k := range p {
					p[k] = math.Inf(1)
				}
				for k, v := range q {
					p[k] = v + 0 // −0 as +0 (numScorePrep's search)
				}
				s.prep[j].qpad = p
			}
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
	if p := p.qpad; p != nil {
		// The count of deciles below x (< 16: x ≤ hi), by a branch-free
		// binary search: which decile bin a value falls in is what the
		// branch predictor cannot guess.
		// p[i] < x exactly when p[i]−x is negative: the sign bit, as an
		// integer (Go compiles float comparisons to jumps). The
		// difference of distinct floats is never zero, and no pad is −0
		// (prepared), so it is never −0 for p[i] ≥ x.
		g = 8 * int(math.Float64bits(p[7]-x)>>63)
		g += 4 * int(math.Float64bits(p[g+3]-x)>>63)
		g += 2 * int(math.Float64bits(p[g+1]-x)>>63)
		g += int(math.Float64bits(p[g]-x) >> 63)
	} else {
		for q[g] < x {
			g++
		}
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
// concurrently). Blocks of rows are scored feature by feature (the
// feature's constants stay in registers, no per-value branch on its kind),
// each value exactly as Score and Normalise compute it.
func (s *Schema) ScoreRange(r *Rows, lo, hi int, x, ood []float64) {
	F := len(s.Features)
	pr := s.prepared()
	const block = 256
	var mxb [block]uint64 // the rows' largest |z| so far, as bits
	for b0 := lo; b0 < hi; b0 += block {
		b1 := min(hi, b0+block)
		mx := mxb[:b1-b0]
		clear(mx)
		for j := range s.Features {
			f := &s.Features[j]
			if f.Categorical {
				for k, v := range r.Cat[j][b0:b1] {
					if x != nil {
						h := uint32(2166136261)
						for n := 0; n < len(v); n++ {
							h = (h ^ uint32(v[n])) * 16777619
						}
						x[(b0+k)*F+j] = float64(h%1000) / 1000
					}
					if ood != nil && s.Profiled {
						mx[k] = maxAbsBits(mx[k], catScore(f, v))
					}
				}
				continue
			}
			col := r.Num[j][b0:b1]
			if p := &pr[j]; s.Profiled && p.ok && p.qpad != nil {
				numScoresPad(f, p, col, x, F, b0*F+j, mx)
				continue
			} else if s.Profiled && p.ok {
				for k, v := range col {
					z := numScorePrep(f, p, v) // 0 for a missing value
					if x != nil {
						x[(b0+k)*F+j] = z
					}
					mx[k] = maxAbsBits(mx[k], z)
				}
				continue
			}
			if x != nil { // unprofiled: the value itself (missing: 0), no score
				for k, v := range col {
					if v != v {
						v = 0
					}
					x[(b0+k)*F+j] = v
				}
			}
		}
		if ood != nil {
			for k, m := range mx {
				ood[b0+k] = math.Float64frombits(m)
			}
		}
	}
}

// numScoresPad is numScorePrep for every value of col (a feature with
// padded deciles), inlined with the feature's constants in locals: the
// same arithmetic in the same order, so the same bits. Each z goes to
// x[at], x[at+stride], … (x nil: not written) and into mx.
func numScoresPad(f *Feature, p *prep, col, x []float64, stride, at int, mx []uint64) {
	q := f.Quantiles
	pad := p.qpad
	k := len(q) - 1
	fk := float64(k)
	lo, hi := q[0], q[k]
	e, eHi := p.eps, 1-p.eps
	zEdge, loDen, hiDen := p.zEdge, p.loDen, p.hiDen
	mx = mx[:len(col)]
	for i, x0 := range col {
		var z float64
		switch {
		case x0 != x0: // missing
		case x0 < lo:
			z = -(zEdge + oodSlope*(lo-x0)/loDen)
		case x0 > hi:
			z = zEdge + oodSlope*(x0-hi)/hiDen
		default:
			g := 8 * int(math.Float64bits(pad[7]-x0)>>63)
			g += 4 * int(math.Float64bits(pad[g+3]-x0)>>63)
			g += 2 * int(math.Float64bits(pad[g+1]-x0)>>63)
			g += int(math.Float64bits(pad[g]-x0) >> 63)
			var u float64
			if q[g] == x0 {
				last := g
				for last < k && q[last+1] == x0 {
					last++
				}
				u = float64(g+last) / 2 / fk
			} else {
				m := g - 1
				u = (float64(m) + (x0-q[m])/(q[m+1]-q[m])) / fk
			}
			if u < e {
				u = e
			}
			if u > eHi {
				u = eHi
			}
			z = normQuantile(u)
		}
		if x != nil {
			x[at+i*stride] = z
		}
		mx[i] = maxAbsBits(mx[i], z)
	}
}

// maxAbsBits is the larger of m (the bits of a non-negative float64) and
// |z|, NaN ignored, as bits: non-negative floats order as their bits, and
// integer comparisons compile without jumps (Score's running maximum of
// |z| mispredicted on every new row maximum).
func maxAbsBits(m uint64, z float64) uint64 {
	b := math.Float64bits(z) &^ (1 << 63)
	if b > 0x7ff0000000000000 { // NaN
		b = 0
	}
	return max(m, b)
}
