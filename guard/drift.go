package guard

import (
	"math"
	"sort"
	"sync"
)

// DriftAlertPSI is the population stability index above which drift
// alerts (INF-7; 0.25 is the customary "significant shift" level).
const DriftAlertPSI = 0.25

// Drift tracks an endpoint's input and prediction distributions over
// consecutive windows (INF-7). Inputs are compared with the training
// profile (decile bins for numeric features, categories for categorical
// ones); predictions with the endpoint's first full window.
type Drift struct {
	mu     sync.Mutex
	schema *Schema
	window int
	edges  [][]float64 // numeric bin edges per feature
	expect [][]float64 // expected bin proportions per feature
	counts [][]float64 // current window counts per feature
	seen   int
	pred   []float64 // current window prediction counts
	ref    []float64 // reference prediction proportions
	last   DriftReport
	catIdx []map[string]int
	// pad[j] is edges[j] padded with +Inf to 16 for the branch-free
	// search in Observe (nil when a feature has more than 15 edges).
	pad []*[16]float64
}

// DriftReport is the result of one closed window.
type DriftReport struct {
	Windows        int     `json:"windows"`
	InputPSI       float64 `json:"input_psi" doc:"Largest per-feature PSI of the last window."`
	Feature        string  `json:"feature,omitempty" doc:"Feature with the largest PSI."`
	PredictionPSI  float64 `json:"prediction_psi"`
	Alert          bool    `json:"alert"`
	WindowRows     int     `json:"window_rows"`
	CurrentRows    int     `json:"current_rows"`
	ReferenceReady bool    `json:"reference_ready"`
}

// NewDrift returns a tracker for a profiled schema with classes outputs
// (1 for regression: predictions are then not tracked) and windows of
// window rows (default 1000).
func NewDrift(s *Schema, classes, window int) *Drift {
	if window <= 0 {
		window = 1000
	}
	d := &Drift{schema: s, window: window, pred: make([]float64, max(classes, 1))}
	for _, f := range s.Features {
		var edges, exp []float64
		if f.Categorical {
			cats := make([]string, 0, len(f.Freq))
			for c := range f.Freq {
				cats = append(cats, c)
			}
			sort.Strings(cats)
			idx := make(map[string]int, len(cats))
			for i, c := range cats {
				exp = append(exp, f.Freq[c])
				idx[c] = i
			}
			d.catIdx = append(d.catIdx, idx)
			exp = append(exp, 0) // unseen categories
		} else if d.catIdx = append(d.catIdx, nil); len(f.Quantiles) >= 2 {
			q := f.Quantiles
			for _, v := range q[1 : len(q)-1] {
				if len(edges) == 0 || v > edges[len(edges)-1] {
					edges = append(edges, v)
				}
			}
			prev := 0.0
			for _, e := range edges {
				c := cdfLeft(q, e)
				exp = append(exp, c-prev)
				prev = c
			}
			exp = append(exp, 1-prev)
		}
		d.edges = append(d.edges, edges)
		pad := padEdges(edges)
		d.pad = append(d.pad, pad)
		d.expect = append(d.expect, exp)
		d.counts = append(d.counts, make([]float64, len(exp)))
	}
	return d
}

// cdfLeft is the training mass strictly below x by the deciles q.
func cdfLeft(q []float64, x float64) float64 {
	k := len(q) - 1
	if x <= q[0] {
		return 0
	}
	if x > q[k] {
		return 1
	}
	for m := 0; m < k; m++ {
		if q[m+1] >= x {
			if q[m+1] == x {
				return float64(m+1) / float64(k)
			}
			return (float64(m) + (x-q[m])/(q[m+1]-q[m])) / float64(k)
		}
	}
	return 1
}

func (d *Drift) bin(j int, r *Rows, i int) int {
	f := &d.schema.Features[j]
	if f.Categorical {
		if b, ok := d.catIdx[j][r.Cat[j][i]]; ok {
			return b
		}
		return len(d.expect[j]) - 1
	}
	x := r.Num[j][i]
	if math.IsNaN(x) {
		return -1
	}
	// The first edge above x (edges are few and sorted: a scan beats a
	// binary search).
	e := d.edges[j]
	b := 0
	for b < len(e) && e[b] <= x {
		b++
	}
	return b
}

// PSI is the population stability index of actual against expected
// proportions (both smoothed by 1e-4 so empty bins stay finite).
func PSI(actual, expected []float64) float64 {
	const eps = 1e-4
	sa, se := 0.0, 0.0
	for i := range actual {
		sa += actual[i]
		se += expected[i]
	}
	if sa == 0 || se == 0 {
		return 0
	}
	psi := 0.0
	for i := range actual {
		a := math.Max(actual[i]/sa, eps)
		e := math.Max(expected[i]/se, eps)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}

// Observe adds rows with their predicted classes; when a window closes it
// returns its report and true.
func (d *Drift) Observe(r *Rows, classes []int) (DriftReport, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	closed := false
	// Row by row in effect, column by column in the loops: each segment
	// of rows up to the end of the current window is counted feature by
	// feature, then the window closes if full.
	for lo := 0; lo < r.N; {
		hi := min(r.N, lo+d.window-d.seen)
		for j := range d.schema.Features {
			if len(d.expect[j]) == 0 {
				continue
			}
			cnt := d.counts[j]
			if d.schema.Features[j].Categorical {
				for i := lo; i < hi; i++ {
					cnt[d.bin(j, r, i)]++
				}
				continue
			}
			col := r.Num[j][lo:hi]
			if p := d.pad[j]; p != nil {
				countBins(p, col, cnt)
				continue
			}
			e := d.edges[j]
			for _, x := range col {
				if x != x { // missing
					continue
				}
				// Edges are sorted: the count of edges ≤ x is the bin,
				// counted without an early exit (no mispredicted branch).
				b := 0
				for _, v := range e {
					if v <= x {
						b++
					}
				}
				cnt[b]++
			}
		}
		if classes != nil {
			for _, c := range classes[lo:hi] {
				if c < len(d.pred) {
					d.pred[c]++
				}
			}
		}
		d.seen += hi - lo
		lo = hi
		if d.seen >= d.window {
			d.close()
			closed = true
		}
	}
	return d.last, closed
}

// padEdges returns edges padded with +Inf to 16 for countBins, −0 stored
// as +0 (nil beyond 15 edges).
func padEdges(edges []float64) *[16]float64 {
	if len(edges) > 15 {
		return nil
	}
	pad := new([16]float64)
	for k := range pad {
		pad[k] = math.Inf(1)
	}
	for k, v := range edges {
		pad[k] = v + 0
	}
	return pad
}

// countBins adds to cnt, for each non-missing value x of col, one at the
// number of edges ≤ x (what bin returns), found by a branch-free binary
// search over the edges padded with +Inf (p; len(cnt) is the number of
// edges + 1). Counts are kept as integers during the column and added
// once: float64 holds them exactly, so the result equals counting one by
// one (TestCountBinsMatchesBin).
func countBins(p *[16]float64, col []float64, cnt []float64) {
	var h [16]int64
	for _, x := range col {
		if x != x { // missing
			continue
		}
		// p[i] ≤ x exactly when x−p[i] is not negative: the sign bit as
		// an integer (Go compiles float comparisons to jumps). x+0 is x
		// with −0 as +0, and the pads are never −0 (NewDrift), so the
		// difference is −0 only when x < p[i].
		x += 0
		b := 8 * int(1^math.Float64bits(x-p[7])>>63)
		b += 4 * int(1^math.Float64bits(x-p[b+3])>>63)
		b += 2 * int(1^math.Float64bits(x-p[b+1])>>63)
		b += int(1 ^ math.Float64bits(x-p[b])>>63)
		h[b]++
	}
	// Only x = +Inf (which the decoders refuse) passes the padding: it
	// is above every edge, the last bin.
	last := len(cnt) - 1
	for b := last + 1; b < len(h); b++ {
		h[last] += h[b]
	}
	for b, n := range h[:len(cnt)] {
		if n != 0 {
			cnt[b] += float64(n)
		}
	}
}

func (d *Drift) close() {
	rep := DriftReport{Windows: d.last.Windows + 1, WindowRows: d.seen}
	for j := range d.counts {
		if len(d.expect[j]) == 0 {
			continue
		}
		if p := PSI(d.counts[j], d.expect[j]); p > rep.InputPSI {
			rep.InputPSI, rep.Feature = p, d.schema.Features[j].Name
		}
		clear(d.counts[j])
	}
	if d.ref == nil {
		d.ref = append([]float64(nil), d.pred...)
	} else {
		rep.PredictionPSI = PSI(d.pred, d.ref)
	}
	rep.ReferenceReady = true
	clear(d.pred)
	d.seen = 0
	rep.Alert = rep.InputPSI > DriftAlertPSI || rep.PredictionPSI > DriftAlertPSI
	d.last = rep
}

// Report returns the last closed window's report and the rows so far.
func (d *Drift) Report() DriftReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.last
	r.CurrentRows = d.seen
	r.ReferenceReady = d.ref != nil
	return r
}

// MeanPSI is the mean over features of the PSI of the rows observed so far
// in the current window against the training profile: how far a stream's
// inputs are from the training distribution, feature by feature.
func (d *Drift) MeanPSI() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	sum, n := 0.0, 0
	for j := range d.counts {
		if len(d.expect[j]) == 0 {
			continue
		}
		sum += PSI(d.counts[j], d.expect[j])
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// observeRow counts row i of r into the current window (no window close).
func (d *Drift) observeRow(r *Rows, i int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for j := range d.schema.Features {
		if len(d.expect[j]) == 0 {
			continue
		}
		if b := d.bin(j, r, i); b >= 0 {
			d.counts[j][b]++
		}
	}
}
