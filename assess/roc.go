package assess

import (
	"math"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// ROCPoint is one operating point of a membership attack.
type ROCPoint struct {
	FPR float64 `json:"fpr"`
	TPR float64 `json:"tpr"`
	// Threshold: scores ≥ Threshold are called members.
	Threshold float64 `json:"-"`
}

// Interval is a point estimate with a 95 % bootstrap confidence interval.
type Interval struct {
	Value float64 `json:"value"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
}

// roc returns the empirical ROC curve of scores (higher = member) with
// ties grouped, from (0,0) to (1,1), and the counts it was computed from.
func roc(member, non []float64) []ROCPoint {
	type sc struct {
		s float64
		m bool
	}
	all := make([]sc, 0, len(member)+len(non))
	for _, s := range member {
		all = append(all, sc{s, true})
	}
	for _, s := range non {
		all = append(all, sc{s, false})
	}
	sort.Slice(all, func(a, b int) bool { return all[a].s > all[b].s })
	pts := []ROCPoint{{0, 0, math.Inf(1)}}
	tp, fp := 0, 0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].s == all[i].s {
			if all[j].m {
				tp++
			} else {
				fp++
			}
			j++
		}
		pts = append(pts, ROCPoint{FPR: float64(fp) / float64(len(non)), TPR: float64(tp) / float64(len(member)), Threshold: all[i].s})
		i = j
	}
	return pts
}

// aucOf is the trapezoidal area under an ROC curve.
func aucOf(pts []ROCPoint) float64 {
	a := 0.0
	for i := 1; i < len(pts); i++ {
		a += (pts[i].FPR - pts[i-1].FPR) * (pts[i].TPR + pts[i-1].TPR) / 2
	}
	return a
}

// tprAt is the largest TPR among points with FPR ≤ fpr (Carlini et al.'s
// "TPR at low FPR").
func tprAt(pts []ROCPoint, fpr float64) float64 {
	best := 0.0
	for _, p := range pts {
		if p.FPR <= fpr+1e-12 && p.TPR > best {
			best = p.TPR
		}
	}
	return best
}

// rocSummary holds the headline numbers of one curve.
type rocSummary struct{ auc, t1, t01 float64 }

func summarise(member, non []float64) rocSummary {
	pts := roc(member, non)
	return rocSummary{aucOf(pts), tprAt(pts, 0.01), tprAt(pts, 0.001)}
}

// bootstrap resamples members and non-members separately b times and
// returns percentile 95 % intervals around the full-sample values.
func bootstrap(member, non []float64, b int, seed uint64) (auc, t1, t01 Interval) {
	full := summarise(member, non)
	auc, t1, t01 = Interval{Value: full.auc}, Interval{Value: full.t1}, Interval{Value: full.t01}
	if b <= 1 {
		auc.Lo, auc.Hi, t1.Lo, t1.Hi, t01.Lo, t01.Hi = full.auc, full.auc, full.t1, full.t1, full.t01, full.t01
		return
	}
	rng := rand.New(rand.NewPCG(seed, 0xb007))
	var as, s1, s01 []float64
	mb := make([]float64, len(member))
	nb := make([]float64, len(non))
	for range b {
		for i := range mb {
			mb[i] = member[rng.IntN(len(member))]
		}
		for i := range nb {
			nb[i] = non[rng.IntN(len(non))]
		}
		s := summarise(mb, nb)
		as, s1, s01 = append(as, s.auc), append(s1, s.t1), append(s01, s.t01)
	}
	auc.Lo, auc.Hi = percentiles(as)
	t1.Lo, t1.Hi = percentiles(s1)
	t01.Lo, t01.Hi = percentiles(s01)
	return
}

func percentiles(v []float64) (lo, hi float64) {
	sort.Float64s(v)
	at := func(q float64) float64 {
		i := int(math.Round(q * float64(len(v)-1)))
		return v[i]
	}
	return at(0.025), at(0.975)
}

// clopperPearson is the exact two-sided (1−alpha) binomial interval of
// k successes in n trials.
func clopperPearson(k, n int, alpha float64) (lo, hi float64) {
	if k > 0 {
		lo = distuv.Beta{Alpha: float64(k), Beta: float64(n - k + 1)}.Quantile(alpha / 2)
	}
	hi = 1
	if k < n {
		hi = distuv.Beta{Alpha: float64(k + 1), Beta: float64(n - k)}.Quantile(1 - alpha/2)
	}
	return lo, hi
}
