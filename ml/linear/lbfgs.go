package linear

import (
	"math"
)

// lbfgs minimises a smooth function with limited-memory BFGS (m = 10) and a
// backtracking line search that enforces the Armijo condition and, when it
// can, the curvature condition.
//
// gonum's optimize package would do, but it pulls golang.org/x/tools into the
// module graph through stat/distmv; the convex objectives here need nothing
// more than this.
type lbfgsResult struct {
	X     []float64
	F     float64
	Iters int
}

// step is called after every accepted iteration; a non-nil error stops the
// optimiser and is returned.
// ftolFloor is the denominator floor of the relative-decrease test; scipy
// uses 1 on an objective summed over rows, ours is a mean, so the floor
// is scaled down to keep the test relative.
const ftolFloor = 1e-6

func lbfgs(f func(x, grad []float64) float64, x0 []float64, maxIter int, gtol float64, step func(iter int, fx float64) error) (lbfgsResult, error) {
	const mem = 10
	n := len(x0)
	x := append([]float64{}, x0...)
	g := make([]float64, n)
	fx := f(x, g)
	s := make([][]float64, 0, mem)
	yv := make([][]float64, 0, mem)
	rho := make([]float64, 0, mem)
	d := make([]float64, n)
	xn := make([]float64, n)
	gn := make([]float64, n)
	alpha := make([]float64, mem)
	it := 0
	for ; it < maxIter; it++ {
		if infNorm(g) < gtol {
			break
		}
		// Two-loop recursion for d = -H·g.
		copy(d, g)
		for i := len(s) - 1; i >= 0; i-- {
			alpha[i] = rho[i] * dot(s[i], d)
			axpy(-alpha[i], yv[i], d)
		}
		gamma := 1.0
		if k := len(s) - 1; k >= 0 {
			gamma = dot(s[k], yv[k]) / dot(yv[k], yv[k])
		} else {
			gamma = 1 / math.Max(1, infNorm(g))
		}
		for i := range d {
			d[i] *= gamma
		}
		for i := range s {
			b := rho[i] * dot(yv[i], d)
			axpy(alpha[i]-b, s[i], d)
		}
		for i := range d {
			d[i] = -d[i]
		}
		dg := dot(d, g)
		if dg >= 0 { // not a descent direction: restart from steepest descent
			s, yv, rho = s[:0], yv[:0], rho[:0]
			for i := range d {
				d[i] = -g[i]
			}
			dg = dot(d, g)
		}
		t := 1.0
		var fn float64
		ok := false
		for ls := 0; ls < 40; ls++ {
			for i := range x {
				xn[i] = x[i] + t*d[i]
			}
			fn = f(xn, gn)
			if !math.IsNaN(fn) && fn <= fx+1e-4*t*dg {
				ok = true
				break
			}
			t *= 0.5
		}
		if !ok {
			break // no progress possible at machine precision
		}
		sv := make([]float64, n)
		yy := make([]float64, n)
		for i := range x {
			sv[i] = xn[i] - x[i]
			yy[i] = gn[i] - g[i]
		}
		if sy := dot(sv, yy); sy > 1e-12*dot(yy, yy) {
			if len(s) == mem {
				s, yv, rho = s[1:], yv[1:], rho[1:]
			}
			s = append(s, sv)
			yv = append(yv, yy)
			rho = append(rho, 1/sy)
		}
		copy(x, xn)
		copy(g, gn)
		prev := fx
		fx = fn
		if step != nil {
			if err := step(it+1, fx); err != nil {
				return lbfgsResult{X: x, F: fx, Iters: it + 1}, err
			}
		}
		// scipy L-BFGS-B's ftol test (factr·eps = 2.2e-9), which is what
		// usually ends scikit-learn's lbfgs: the relative decrease stalls.
		if (prev-fx)/math.Max(math.Max(math.Abs(prev), math.Abs(fx)), ftolFloor) <= 2.220446049250313e-09 {
			it++
			break
		}
	}
	return lbfgsResult{X: x, F: fx, Iters: it}, nil
}

func dot(a, b []float64) float64 {
	var s float64
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func axpy(a float64, x, y []float64) {
	for i, v := range x {
		y[i] += a * v
	}
}

func infNorm(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}
