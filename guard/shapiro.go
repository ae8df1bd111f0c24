package guard

import (
	"math"
	"slices"
)

// ShapiroWilkW is the Shapiro-Wilk W statistic of x (Royston 1995,
// algorithm AS R94 coefficients), 3 ≤ len(x) ≤ 5000; W near 1 means x
// looks normally distributed. It returns 1 for fewer than 3 values or
// zero variance (nothing to test). x is not modified.
func ShapiroWilkW(x []float64) float64 {
	n := len(x)
	if n < 3 {
		return 1
	}
	if n > 5000 {
		x, n = x[len(x)-5000:], 5000
	}
	y := slices.Clone(x)
	slices.Sort(y)
	mean := 0.0
	for _, v := range y {
		mean += v
	}
	mean /= float64(n)
	ss := 0.0
	for _, v := range y {
		ss += (v - mean) * (v - mean)
	}
	if ss <= 1e-300 {
		return 1
	}
	m := make([]float64, n)
	mm := 0.0
	for i := range n {
		m[i] = probitErfinv((float64(i+1) - 0.375) / (float64(n) + 0.25))
		mm += m[i] * m[i]
	}
	a := make([]float64, n)
	u := 1 / math.Sqrt(float64(n))
	poly := func(c0 float64, c []float64) float64 {
		r, p := c0, u
		for _, ci := range c {
			r += ci * p
			p *= u
		}
		return r
	}
	an := poly(m[n-1]/math.Sqrt(mm), []float64{0.221157, -0.147981, -2.071190, 4.434685, -2.706056})
	if n == 3 {
		a[0], a[2] = -math.Sqrt(0.5), math.Sqrt(0.5)
	} else if n <= 5 {
		phi := (mm - 2*m[n-1]*m[n-1]) / (1 - 2*an*an)
		for i := 1; i < n-1; i++ {
			a[i] = m[i] / math.Sqrt(phi)
		}
		a[0], a[n-1] = -an, an
	} else {
		an1 := poly(m[n-2]/math.Sqrt(mm), []float64{0.042981, -0.293762, -1.752461, 5.682633, -3.582633})
		phi := (mm - 2*m[n-1]*m[n-1] - 2*m[n-2]*m[n-2]) / (1 - 2*an*an - 2*an1*an1)
		for i := 2; i < n-2; i++ {
			a[i] = m[i] / math.Sqrt(phi)
		}
		a[0], a[1], a[n-2], a[n-1] = -an, -an1, an1, an
	}
	b := 0.0
	for i := range n {
		b += a[i] * y[i]
	}
	w := b * b / ss
	return math.Min(w, 1)
}
