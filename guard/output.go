package guard

import (
	"math"
	"sort"

	"github.com/rampart-mlaas/rampart"
)

// Output policy defaults (INF-2): the label with its probability rounded to
// two decimals; never raw scores.
const (
	DefaultDecimals = 2
	MaxDecimals     = 6
)

// OutputPolicy is the resolved output policy of an endpoint.
type OutputPolicy struct {
	Mode     string // rampart.OutputLabel, OutputTopK or OutputProba
	TopK     int
	Decimals int // < 0: no probabilities at all
}

// Prediction is one row's minimised output.
type Prediction struct {
	Label  string    // classification
	Labels []string  // topk: the K labels, most probable first
	Proba  []float64 // topk: their probabilities; proba: all classes'
	Value  float64   // regression
	HasP   bool      // Proba (or the label's probability) is present
}

// Round rounds v to d decimals (half away from zero).
func Round(v float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// Apply minimises one row's scores under the policy. For classification
// scores are the class probabilities in classes order; for regression the
// one value. Ties in top-k go to the lower class index.
func (o OutputPolicy) Apply(classes []string, scores []float64, regression bool, pr *Prediction) {
	*pr = Prediction{Labels: pr.Labels[:0], Proba: pr.Proba[:0]}
	if regression {
		d := o.Decimals
		if d < 0 {
			d = DefaultDecimals
		}
		pr.Value = Round(scores[0], d)
		return
	}
	best := 0
	for c := 1; c < len(scores); c++ {
		if scores[c] > scores[best] {
			best = c
		}
	}
	pr.Label = classes[best]
	switch o.Mode {
	case rampart.OutputLabel:
		if o.Decimals >= 0 {
			pr.Proba = append(pr.Proba, Round(scores[best], o.Decimals))
			pr.HasP = true
		}
	case rampart.OutputTopK:
		idx := make([]int, len(scores))
		for c := range idx {
			idx[c] = c
		}
		sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
		k := min(max(o.TopK, 1), len(idx))
		for _, c := range idx[:k] {
			pr.Labels = append(pr.Labels, classes[c])
			if o.Decimals >= 0 {
				pr.Proba = append(pr.Proba, Round(scores[c], o.Decimals))
			}
		}
		pr.HasP = o.Decimals >= 0
	case rampart.OutputProba:
		d := max(o.Decimals, 0)
		for _, p := range scores {
			pr.Proba = append(pr.Proba, Round(p, d))
		}
		pr.HasP = true
	}
}
