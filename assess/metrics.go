package assess

import "math"

// Names of the headline metrics of a report, the values promotion gates
// bound (MODEL-5). Higher is worse for every one of them.
const (
	MetricMembershipAUC     = "membership.auc"
	MetricMembershipTPR1    = "membership.tpr_at_1pct_fpr"
	MetricMembershipTPR01   = "membership.tpr_at_0.1pct_fpr"
	MetricDPViolations      = "membership.dp_violations"
	MetricExtraction        = "extraction.fidelity"
	MetricExtractionGuarded = "extraction.fidelity_guards_on"
	MetricEvasion1          = "evasion.success_at_1sigma"
	MetricEvasionMedian     = "evasion.min_median_perturbation" // lower is worse
)

// Metrics summarises a report for gates: the strongest attack of each
// kind (the largest AUC and TPRs, the highest fidelity a surrogate
// reached at the largest query count obtained, the highest evasion
// success within one standard deviation).
func (r *Report) Metrics() map[string]float64 {
	out := map[string]float64{}
	if m := r.Membership; m != nil && len(m.Attacks) > 0 {
		viol := 0.0
		for _, a := range m.Attacks {
			maxInto(out, MetricMembershipAUC, a.AUC.Value)
			maxInto(out, MetricMembershipTPR1, a.TPR1.Value)
			maxInto(out, MetricMembershipTPR01, a.TPR01.Value)
			if a.DP != nil {
				viol += float64(a.DP.Violations)
			}
		}
		if r.Model.DP != nil {
			out[MetricDPViolations] = viol
		}
	}
	for _, e := range r.Extraction {
		for _, c := range e.Curves {
			if len(c.Points) == 0 {
				continue
			}
			f := c.Points[len(c.Points)-1].Fidelity
			maxInto(out, MetricExtraction, f)
			if e.Guards != "off" {
				maxInto(out, MetricExtractionGuarded, f)
			}
		}
	}
	for _, e := range r.Evasion {
		for _, p := range e.Curve {
			if p.Budget <= 1 {
				maxInto(out, MetricEvasion1, p.SuccessRate)
			}
		}
		if e.Found > 0 {
			if v, ok := out[MetricEvasionMedian]; !ok || e.Median < v {
				out[MetricEvasionMedian] = e.Median
			}
		}
	}
	return out
}

func maxInto(m map[string]float64, k string, v float64) {
	if math.IsNaN(v) {
		return
	}
	if old, ok := m[k]; !ok || v > old {
		m[k] = v
	}
}
