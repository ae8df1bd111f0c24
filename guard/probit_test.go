package guard_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rampart-mlaas/rampart/guard"
)

// TestNormQuantileMatchesErfinv bounds normQuantile's error against
// √2·math.Erfinv(2u−1), the normal quantile the guards used before it:
// ≤ 1e-12 relative (and 1e-15 absolute near ½, where both are ~0) over a
// dense grid, both regions' boundaries, random u and the upper tail down
// to the smallest clamp a profile can have (½/(n+1)). Below u = 1e-5 the
// reference itself loses digits (2u−1 rounds away u's last bits: its
// residual Φ(z)−u reaches 3e-11·u at 1e-6 and 8e-8·u at 1e-10), so there
// normQuantile is checked by its residual through math.Erfc instead:
// ≤ 1e-13 relative error in z, and never worse than the reference's.
func TestNormQuantileMatchesErfinv(t *testing.T) {
	check := func(u float64) float64 {
		got, want := guard.NormQuantile(u), guard.ProbitErfinv(u)
		d := math.Abs(got - want)
		rel := d / math.Max(math.Abs(want), 1e-300)
		if d > 1e-15 && rel > 1e-12 {
			t.Fatalf("u=%v: %v, want %v (relative error %.3g)", u, got, want, rel)
		}
		if math.Signbit(got) != math.Signbit(want) && want != 0 {
			t.Fatalf("u=%v: sign of %v differs from %v", u, got, want)
		}
		return rel
	}
	// z's relative error as a quantile of u, from its residual Φ(z)−u
	// through math.Erfc (accurate to a few ulps in the lower tail) by one
	// Newton step: (Φ(z)−u)/(φ(z)·|z|).
	resid := func(z, u float64) float64 {
		return math.Abs(0.5*math.Erfc(-z/math.Sqrt2)-u) / (math.Exp(-z*z/2) / math.Sqrt(2*math.Pi) * math.Abs(z))
	}
	tail := func(u float64) {
		z := guard.NormQuantile(u)
		if r, ref := resid(z, u), resid(guard.ProbitErfinv(u), u); r > 1e-13 || r > math.Max(ref, 1e-14) {
			t.Fatalf("u=%v: z=%v has residual %.3g (math.Erfinv's %.3g)", u, z, r, ref)
		}
	}
	worst := 0.0
	for i := 10; i < 1_000_000; i++ {
		worst = math.Max(worst, check(float64(i)/1_000_000))
	}
	for _, c := range []float64{0.075, 0.925, 0.5, 0.5 - 1e-17, 0.5 + 1e-16} {
		for k := -50; k <= 50; k++ {
			worst = math.Max(worst, check(c+float64(k)*1e-16))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1_000_000 {
		if u := rng.Float64(); u >= 1e-5 {
			worst = math.Max(worst, check(u))
		}
	}
	// Tails: u = ½/(n+1) for training sets of 1 to 10^8 rows, and their
	// mirror images; r = √(−ln u) crosses AS241's 5 at u ≈ 1.4e-11.
	for n := 1.0; n <= 1e8; n *= 1.1 {
		u := 0.5 / (n + 1)
		if u >= 1e-5 {
			worst = math.Max(worst, check(u))
		} else {
			tail(u)
		}
		worst = math.Max(worst, check(1-u))
	}
	for e := -300; e <= -6; e++ { // the far tail (AS241's r > 5 below 1.4e-11)
		tail(math.Pow(10, float64(e)))
	}
	if !math.IsInf(guard.NormQuantile(0), -1) || !math.IsInf(guard.NormQuantile(1), 1) || !math.IsNaN(guard.NormQuantile(-0.1)) ||
		!math.IsNaN(guard.NormQuantile(1.5)) || !math.IsNaN(guard.NormQuantile(math.NaN())) {
		t.Fatal("special cases")
	}
	t.Logf("largest relative error against math.Erfinv: %.3g", worst)
}

// TestOODDecisionsUnchanged: on every shared dataset's test rows, clean and
// shifted (scaled, swapped, out of range), the OOD score with normQuantile
// is within 1e-12 relative of the score through math.Erfinv and every
// flag at the default threshold (and at 3 and 5) is the same (INF-5); the
// monitor's normalised rows are as close (INF-3).
func TestOODDecisionsUnchanged(t *testing.T) {
	flags := 0
	for _, d := range datasets {
		s := load(t, d.name, d.path, d.target)
		idx := make([]int, s.test.NumRows())
		for i := range idx {
			idx[i] = i
		}
		r := rows(s, s.test, idx)
		rng := rand.New(rand.NewPCG(7, 8))
		for i := range r.N {
			for _, fam := range []string{"clean", "scaled", "swapped", "out-of-range"} {
				one, _ := shift(s, r, i, fam, rng)
				got, want := s.schema.Score(one, 0), s.schema.ScoreErfinv(one, 0)
				if math.Abs(got-want) > 1e-12*math.Max(math.Abs(want), 1) {
					t.Fatalf("%s row %d %s: score %v, with math.Erfinv %v", d.name, i, fam, got, want)
				}
				for _, thr := range []float64{3, guard.DefaultOODThreshold, 5} {
					if (got > thr) != (want > thr) {
						t.Fatalf("%s row %d %s: flag at %v differs (%v vs %v)", d.name, i, fam, thr, got, want)
					}
					if got > thr {
						flags++
					}
				}
				x, xe := s.schema.Normalise(one, 0, nil), s.schema.NormaliseErfinv(one, 0)
				for j := range x {
					if math.Abs(x[j]-xe[j]) > 1e-12*math.Max(math.Abs(xe[j]), 1) {
						t.Fatalf("%s row %d %s feature %d: %v, with math.Erfinv %v", d.name, i, fam, j, x[j], xe[j])
					}
				}
			}
		}
	}
	if flags == 0 {
		t.Fatal("no row flagged: the comparison tested nothing")
	}
	t.Logf("%d flags, all equal", flags)
}
