// Package dp implements differentially private training (TRAIN-2): DP-SGD
// with Poisson-subsampled lots, per-example clipping and Gaussian noise, and a
// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism.
//
// The accountant follows Mironov, Talwar and Zhang, "Rényi Differential
// Privacy of the Sampled Gaussian Mechanism" (2019, arXiv:1908.10530), as
// implemented by TensorFlow Privacy (compute_rdp) and Opacus
// (opacus/accountants/analysis/rdp.py): integer orders by the exact binomial
// expansion, fractional orders by the two-sided series of Section 3.3.
// RDP is converted to (ε, δ) with Balle et al., "Hypothesis Testing
// Interpretations and Rényi Differential Privacy" (AISTATS 2020,
// arXiv:2004.00010) Proposition 12 — the conversion both Opacus and
// Google's dp_accounting use:
//
//	ε = min_α  RDP(α) + log((α-1)/α) - (log δ + log α)/(α-1).
package dp

import (
	"errors"
	"fmt"
	"math"
)

// ErrParams is wrapped by every invalid-argument error.
var ErrParams = errors.New("invalid privacy parameters")

// DefaultOrders are Opacus's RDPAccountant.DEFAULT_ALPHAS:
// 1.1, 1.2, …, 10.9 and 12, …, 63.
func DefaultOrders() []float64 {
	var o []float64
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10)
	}
	for a := 12; a < 64; a++ {
		o = append(o, float64(a))
	}
	return o
}

// logAdd returns log(exp(a)+exp(b)).
func logAdd(a, b float64) float64 {
	lo, hi := math.Min(a, b), math.Max(a, b)
	if math.IsInf(lo, -1) {
		return hi
	}
	return math.Log1p(math.Exp(lo-hi)) + hi
}

// logSub returns log(exp(a)-exp(b)) for a ≥ b.
func logSub(a, b float64) float64 {
	if math.IsInf(b, -1) {
		return a
	}
	if a == b {
		return math.Inf(-1)
	}
	return math.Log(-math.Expm1(b-a)) + a
}

// logErfc is log(erfc(x)) without underflow for large x, where erfc(x)
// is below the smallest float64 (x > ~26): there the asymptotic series
// erfc(x) ≈ exp(-x²)/(x√π)·(1 - 1/(2x²) + 3/(4x⁴) - 15/(8x⁶)) is exact to
// double precision.
func logErfc(x float64) float64 {
	if x < 20 {
		return math.Log(math.Erfc(x))
	}
	r := 1 / (x * x)
	return -x*x - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log1p(-r/2+3*r*r/4-15*r*r*r/8)
}

// logAInt is log A_α for integer α (Mironov et al. 2019, Section 3.3, eq. 4).
func logAInt(q, sigma float64, alpha int) float64 {
	la := math.Inf(-1)
	lg := func(n, k int) float64 {
		a, _ := math.Lgamma(float64(n + 1))
		b, _ := math.Lgamma(float64(k + 1))
		c, _ := math.Lgamma(float64(n - k + 1))
		return a - b - c
	}
	for i := 0; i <= alpha; i++ {
		fi := float64(i)
		s := lg(alpha, i) + fi*math.Log(q) + float64(alpha-i)*math.Log1p(-q) + (fi*fi-fi)/(2*sigma*sigma)
		la = logAdd(la, s)
	}
	return la
}

// logAFrac is log A_α for fractional α (Mironov et al. 2019, Section 3.3):
// the two series split at z0 = σ² log(1/q - 1) + ½, summed until terms fall
// below e^-30 relative to nothing, as TF Privacy and Opacus do.
func logAFrac(q, sigma, alpha float64) float64 {
	la0, la1 := math.Inf(-1), math.Inf(-1)
	z0 := sigma*sigma*math.Log(1/q-1) + 0.5
	lc, sign := 0.0, 1.0 // log|C(α, i)| and its sign, updated incrementally
	for i := 0; ; i++ {
		if i > 0 {
			t := (alpha - float64(i-1)) / float64(i)
			if t < 0 {
				sign = -sign
			}
			lc += math.Log(math.Abs(t))
		}
		fi := float64(i)
		j := alpha - fi
		lt0 := lc + fi*math.Log(q) + j*math.Log1p(-q)
		lt1 := lc + j*math.Log(q) + fi*math.Log1p(-q)
		le0 := math.Log(0.5) + logErfc((fi-z0)/(math.Sqrt2*sigma))
		le1 := math.Log(0.5) + logErfc((z0-j)/(math.Sqrt2*sigma))
		ls0 := lt0 + (fi*fi-fi)/(2*sigma*sigma) + le0
		ls1 := lt1 + (j*j-j)/(2*sigma*sigma) + le1
		if sign > 0 {
			la0 = logAdd(la0, ls0)
			la1 = logAdd(la1, ls1)
		} else {
			la0 = logSub(la0, ls0)
			la1 = logSub(la1, ls1)
		}
		if math.Max(ls0, ls1) < -30 || i > 100000 {
			break
		}
	}
	return logAdd(la0, la1)
}

// RDP is the Rényi divergence of order alpha of one step of the
// Poisson-subsampled Gaussian mechanism with sampling rate q and noise
// multiplier sigma.
func RDP(q, sigma, alpha float64) float64 {
	switch {
	case q == 0:
		return 0
	case sigma == 0:
		return math.Inf(1)
	case q == 1:
		return alpha / (2 * sigma * sigma)
	case math.IsInf(alpha, 1):
		return math.Inf(1)
	}
	if alpha == math.Trunc(alpha) {
		return logAInt(q, sigma, int(alpha)) / (alpha - 1)
	}
	return logAFrac(q, sigma, alpha) / (alpha - 1)
}

// Epsilon is the ε of `steps` compositions of the subsampled Gaussian at the
// given δ, minimised over orders (DefaultOrders when nil). It also returns
// the optimal order.
func Epsilon(q, sigma float64, steps int, delta float64, orders []float64) (float64, float64, error) {
	if q < 0 || q > 1 || sigma < 0 || steps < 0 || delta <= 0 || delta >= 1 {
		return 0, 0, fmt.Errorf("%w: q=%g sigma=%g steps=%d delta=%g", ErrParams, q, sigma, steps, delta)
	}
	if orders == nil {
		orders = DefaultOrders()
	}
	best, bestOrder := math.Inf(1), math.NaN()
	for _, a := range orders {
		if a <= 1 {
			return 0, 0, fmt.Errorf("%w: order %g must exceed 1", ErrParams, a)
		}
		r := RDP(q, sigma, a) * float64(steps)
		// Balle et al. 2020, Proposition 12 (the Opacus / dp_accounting conversion).
		eps := r + math.Log1p(-1/a) - (math.Log(delta)+math.Log(a))/(a-1)
		if eps < best {
			best, bestOrder = eps, a
		}
	}
	return math.Max(0, best), bestOrder, nil
}

// NoiseMultiplier finds, by bisection, the smallest noise multiplier whose
// ε after `steps` steps at rate q is at most targetEps (within 0.1 % of it),
// the way Opacus's get_noise_multiplier does.
func NoiseMultiplier(targetEps, delta, q float64, steps int) (float64, error) {
	if targetEps <= 0 || math.IsNaN(targetEps) || math.IsInf(targetEps, 0) {
		return 0, fmt.Errorf("%w: target epsilon %g", ErrParams, targetEps)
	}
	eps := func(s float64) float64 {
		e, _, err := Epsilon(q, s, steps, delta, nil)
		if err != nil {
			return math.Inf(1)
		}
		return e
	}
	lo, hi := 0.0, 10.0
	for eps(hi) > targetEps {
		hi *= 2
		if hi > 1e6 {
			return 0, fmt.Errorf("%w: no noise multiplier reaches ε=%g", ErrParams, targetEps)
		}
	}
	for hi-lo > 1e-6*hi {
		mid := (lo + hi) / 2
		if eps(mid) > targetEps {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}
