package assess

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/rampart-mlaas/rampart/ml"
)

// MembershipConfig describes a membership-inference assessment (PRIV-1).
type MembershipConfig struct {
	Target Oracle
	Space  Space
	Label  string // target column of the frames
	// Members are rows the model was trained on, NonMembers rows it was
	// not (from the same distribution); both carry the label column.
	Members, NonMembers *ml.Frame
	// Shadow, when set, adds the offline LiRA attack.
	Shadow *ShadowConfig
	// Bootstrap resamples for the confidence intervals (default 200).
	Bootstrap int
	Seed      uint64
	// DP, when the model was trained with differential privacy, is its
	// guarantee: every measured ROC point is checked against it.
	DP *DPGuarantee
	// Progress, if set, receives human-readable steps.
	Progress func(step string)
}

// ShadowConfig trains the shadow models of the offline LiRA attack
// (Carlini et al. 2022) on the platform, from data the model developer may
// use: each shadow model trains on a random half of NonMembers ∪ Extra
// with the target's training specification, so for every target row some
// shadow models did not see it (members: none did).
type ShadowConfig struct {
	Spec   ml.TrainSpec
	Extra  *ml.Frame // more population data, optional
	Models int       // default 8
	// Decimals rounds shadow probabilities like the endpoint's output
	// policy (< 0: exact).
	Decimals int
}

// DPGuarantee is a model's (ε, δ) guarantee.
type DPGuarantee struct {
	Epsilon float64 `json:"epsilon"`
	Delta   float64 `json:"delta"`
}

// DPCheck compares measured operating points with the hypothesis-testing
// region of (ε, δ)-DP (Kairouz et al. 2015): TPR ≤ e^ε·FPR + δ and
// 1−FPR ≤ e^ε·(1−TPR) + δ.
type DPCheck struct {
	DPGuarantee
	Points int `json:"points"`
	// PointViolations counts measured points outside the region. With a
	// finite sample, points near FPR = 0 can fall outside by sampling
	// noise alone (one member ranked first gives TPR = 1/n at FPR = 0).
	PointViolations int `json:"point_violations"`
	// Violations counts points outside the region even after allowing
	// for sampling error: the Clopper–Pearson lower bound of TPR exceeds
	// e^ε times the upper bound of FPR plus δ (Bonferroni-corrected 95 %
	// over all points). A violation means the model leaks more than its
	// guarantee allows: the bound is broken, not merely approached.
	Violations int `json:"violations"`
	// EpsilonLowerBound is the largest ε the measurements prove, with the
	// same confidence (Jagielski et al. 2020); it must not exceed Epsilon.
	EpsilonLowerBound float64 `json:"epsilon_lower_bound"`
	Violated          bool    `json:"violated"`
}

// MembershipAttack is one attack's result.
type MembershipAttack struct {
	Name   string     `json:"name"`
	AUC    Interval   `json:"auc"`
	TPR1   Interval   `json:"tpr_at_1pct_fpr"`
	TPR01  Interval   `json:"tpr_at_0.1pct_fpr"`
	ROC    []ROCPoint `json:"roc"`
	DP     *DPCheck   `json:"dp_check,omitempty"`
	Detail string     `json:"detail,omitempty"`
}

// MembershipReport is the PRIV-1 section of a report.
type MembershipReport struct {
	Members    int    `json:"members"`
	NonMembers int    `json:"non_members"`
	Output     string `json:"output"` // "probabilities" or "label-only"
	// Accuracy of the target on members and non-members (the
	// generalisation gap the loss attack feeds on).
	MemberAccuracy    float64            `json:"member_accuracy"`
	NonMemberAccuracy float64            `json:"non_member_accuracy"`
	ShadowModels      int                `json:"shadow_models,omitempty"`
	Attacks           []MembershipAttack `json:"attacks"`
	Skipped           []string           `json:"skipped,omitempty"`
}

// Membership runs the loss-threshold attack (Yeom et al. 2018) and, with a
// shadow configuration and probability outputs, the offline LiRA attack.
func Membership(ctx context.Context, cfg MembershipConfig) (*MembershipReport, error) {
	if cfg.Target == nil || cfg.Members == nil || cfg.NonMembers == nil {
		return nil, fmt.Errorf("%w: membership needs a target, members and non-members", ErrInput)
	}
	if cfg.Members.NumRows() < 10 || cfg.NonMembers.NumRows() < 10 {
		return nil, fmt.Errorf("%w: membership needs at least 10 members and 10 non-members", ErrInput)
	}
	if cfg.Bootstrap == 0 {
		cfg.Bootstrap = 200
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	k := len(cfg.Space.Classes)
	query := func(f *ml.Frame) ([]Prediction, []int, error) {
		rows, err := cfg.Space.Rows(f)
		if err != nil {
			return nil, nil, err
		}
		y, err := cfg.Space.Labels(f, cfg.Label)
		if err != nil {
			return nil, nil, err
		}
		for i, c := range y {
			if c < 0 {
				return nil, nil, fmt.Errorf("%w: row %d has a label outside the model's classes", ErrInput, i+1)
			}
		}
		p, err := cfg.Target.Predict(ctx, rows)
		if err != nil {
			return nil, nil, fmt.Errorf("membership: querying the target: %w", err)
		}
		return p, y, nil
	}
	progress("querying members and non-members")
	pm, ym, err := query(cfg.Members)
	if err != nil {
		return nil, err
	}
	pn, yn, err := query(cfg.NonMembers)
	if err != nil {
		return nil, err
	}
	rep := &MembershipReport{Members: len(pm), NonMembers: len(pn), Output: "probabilities",
		MemberAccuracy: accuracyOf(pm, ym), NonMemberAccuracy: accuracyOf(pn, yn)}
	_, probs := pm[0].ProbOf(ym[0], k)
	if !probs {
		rep.Output = "label-only"
	}

	// Loss threshold: a lower loss suggests a member. Label-only outputs
	// reduce it to correctness (the gap attack).
	lossScore := func(p []Prediction, y []int) []float64 {
		s := make([]float64, len(p))
		for i := range p {
			if v, ok := p[i].ProbOf(y[i], k); ok {
				s[i] = math.Log(math.Max(v, 1e-12))
			} else if p[i].Class == y[i] {
				s[i] = 0
			} else {
				s[i] = -1
			}
		}
		return s
	}
	loss := cfg.attack("loss-threshold", lossScore(pm, ym), lossScore(pn, yn), 1)
	loss.Detail = "Yeom et al. 2018: score = log p(true label); members have lower loss"
	if !probs {
		loss.Detail = "label-only: score = 1 if the endpoint's label is correct (gap attack)"
	}
	rep.Attacks = append(rep.Attacks, loss)

	if cfg.Shadow != nil {
		if !probs {
			rep.Skipped = append(rep.Skipped, "lira-offline: the endpoint returns labels only, the attack needs probabilities")
		} else {
			a, n, err := cfg.lira(ctx, pm, ym, pn, yn, progress)
			if err != nil {
				return nil, err
			}
			rep.ShadowModels = n
			rep.Attacks = append(rep.Attacks, a)
		}
	}
	return rep, nil
}

func (cfg *MembershipConfig) attack(name string, member, non []float64, seedOff uint64) MembershipAttack {
	a := MembershipAttack{Name: name}
	a.AUC, a.TPR1, a.TPR01 = bootstrap(member, non, cfg.Bootstrap, cfg.Seed+seedOff)
	pts := roc(member, non)
	if cfg.DP != nil {
		a.DP = checkDP(pts, len(member), len(non), *cfg.DP)
	}
	a.ROC = thin(pts, 1500)
	return a
}

func accuracyOf(p []Prediction, y []int) float64 {
	ok := 0
	for i := range p {
		if p[i].Class == y[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(p))
}

// logit is LiRA's confidence scaling φ(p) = log(p / (1−p)), clipped at
// the resolution of the outputs.
func logit(p, clip float64) float64 {
	p = math.Min(math.Max(p, clip), 1-clip)
	return math.Log(p) - math.Log1p(-p)
}

// lira is the offline LiRA attack with a global variance: a row's score is
// how far the target's scaled confidence lies above the mean of the
// shadow models that did not train on it, in units of the pooled standard
// deviation of those OUT confidences.
func (cfg *MembershipConfig) lira(ctx context.Context, pm []Prediction, ym []int, pn []Prediction, yn []int, progress func(string)) (MembershipAttack, int, error) {
	sc := cfg.Shadow
	models := sc.Models
	if models == 0 {
		models = 8
	}
	clip := 1e-7
	if sc.Decimals >= 0 {
		clip = 0.5 * math.Pow(10, -float64(sc.Decimals))
	}
	k := len(cfg.Space.Classes)
	pool := cfg.NonMembers
	if sc.Extra != nil {
		var err error
		if pool, err = concatFrames(cfg.NonMembers, sc.Extra); err != nil {
			return MembershipAttack{}, 0, err
		}
	}
	nPool, nNon := pool.NumRows(), cfg.NonMembers.NumRows()
	// Targets to score with every shadow: members, then non-members.
	targets, err := concatFrames(cfg.Members, cfg.NonMembers)
	if err != nil {
		return MembershipAttack{}, 0, err
	}
	y := append(append([]int(nil), ym...), yn...)
	nm := len(ym)
	outs := make([][]float64, len(y)) // OUT confidences per target
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x11a))
	for s := range models {
		if err := ctx.Err(); err != nil {
			return MembershipAttack{}, 0, err
		}
		progress(fmt.Sprintf("training shadow model %d of %d", s+1, models))
		in := make([]bool, nPool)
		var idx []int
		for i := range in {
			if rng.IntN(2) == 0 {
				in[i] = true
				idx = append(idx, i)
			}
		}
		spec := sc.Spec
		spec.Seed = cfg.Seed + uint64(s) + 1
		m, err := ml.Train(ctx, pool.Take(idx), spec, nil)
		if err != nil {
			return MembershipAttack{}, 0, fmt.Errorf("membership: training shadow model %d: %w", s+1, err)
		}
		p, err := m.PredictProba(targets)
		if err != nil {
			return MembershipAttack{}, 0, fmt.Errorf("membership: scoring with shadow model %d: %w", s+1, err)
		}
		// The shadow's classes may be ordered like the target's only if
		// it saw every class; map by label.
		col := make([]int, k)
		for c := range col {
			col[c] = -1
			for j, l := range m.Classes {
				if l == cfg.Space.Classes[c] {
					col[c] = j
				}
			}
		}
		w := len(m.Classes)
		for t := range y {
			if t >= nm && t-nm < nNon && in[t-nm] {
				continue // this shadow trained on the non-member: IN, unused offline
			}
			v := 0.0
			if j := col[y[t]]; j >= 0 {
				v = p[t*w+j]
			}
			outs[t] = append(outs[t], logit(round(v, sc.Decimals), clip))
		}
	}
	// Pooled variance of OUT confidences around each row's mean.
	var ss, all float64
	var cnt, nall int
	for _, o := range outs {
		mu := mean(o)
		for _, v := range o {
			ss += (v - mu) * (v - mu)
			all += v
			nall++
		}
		if len(o) > 1 {
			cnt += len(o) - 1
		}
	}
	sigma := 1.0
	if cnt > 0 && ss > 0 {
		sigma = math.Sqrt(ss / float64(cnt))
	}
	globalMu := all / float64(max(nall, 1))
	score := func(p Prediction, yi int, o []float64) float64 {
		v, _ := p.ProbOf(yi, k)
		mu := globalMu
		if len(o) > 0 {
			mu = mean(o)
		}
		return (logit(v, clip) - mu) / sigma
	}
	ms := make([]float64, nm)
	for i := range ms {
		ms[i] = score(pm[i], ym[i], outs[i])
	}
	ns := make([]float64, len(yn))
	for i := range ns {
		ns[i] = score(pn[i], yn[i], outs[nm+i])
	}
	a := cfg.attack("lira-offline", ms, ns, 2)
	a.Detail = fmt.Sprintf("Carlini et al. 2022, offline, global variance: %d shadow models trained with %s on random halves of %d rows the developer may use; σ_out = %.3g",
		models, sc.Spec.Algorithm, nPool, sigma)
	return a, models, nil
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// checkDP checks every measured point against the (ε, δ) region.
func checkDP(pts []ROCPoint, nm, nn int, g DPGuarantee) *DPCheck {
	c := &DPCheck{DPGuarantee: g}
	e := math.Exp(g.Epsilon)
	inner := 0
	for _, p := range pts {
		if (p.FPR > 0 || p.TPR > 0) && (p.FPR < 1 || p.TPR < 1) {
			inner++
		}
	}
	alpha := 0.05 / float64(max(inner, 1))
	for _, p := range pts {
		if !((p.FPR > 0 || p.TPR > 0) && (p.FPR < 1 || p.TPR < 1)) {
			continue
		}
		c.Points++
		if p.TPR > e*p.FPR+g.Delta+1e-12 || 1-p.FPR > e*(1-p.TPR)+g.Delta+1e-12 {
			c.PointViolations++
		}
		tp := int(math.Round(p.TPR * float64(nm)))
		fp := int(math.Round(p.FPR * float64(nn)))
		tLo, _ := clopperPearson(tp, nm, alpha)
		_, fHi := clopperPearson(fp, nn, alpha)
		// Both directions of the test: (TPR, FPR) and (1−FPR, 1−TPR).
		if tLo > e*fHi+g.Delta || (1-fHi) > e*(1-tLo)+g.Delta {
			c.Violations++
		}
		if lb := epsLB(tLo, fHi, g.Delta); lb > c.EpsilonLowerBound {
			c.EpsilonLowerBound = lb
		}
		if lb := epsLB(1-fHi, 1-tLo, g.Delta); lb > c.EpsilonLowerBound {
			c.EpsilonLowerBound = lb
		}
	}
	c.Violated = c.Violations > 0
	return c
}

// epsLB is the ε implied by a (lower-bounded) rate a over an
// (upper-bounded) rate b: a ≤ e^ε·b + δ.
func epsLB(a, b, delta float64) float64 {
	if a-delta <= 0 || b <= 0 {
		return 0
	}
	return math.Max(0, math.Log((a-delta)/b))
}

// thin keeps at most n points of a curve, always the first and the last,
// and every point at FPR ≤ 1 % (the low-FPR region the report plots on
// log axes).
func thin(pts []ROCPoint, n int) []ROCPoint {
	if len(pts) <= n {
		return pts
	}
	var out []ROCPoint
	step := float64(len(pts)) / float64(n)
	next := 0.0
	for i, p := range pts {
		if p.FPR <= 0.01 || i == len(pts)-1 || float64(i) >= next {
			out = append(out, p)
			if float64(i) >= next {
				next += step
			}
		}
	}
	return out
}

// concatFrames stacks two frames with the same columns.
func concatFrames(a, b *ml.Frame) (*ml.Frame, error) {
	var cols []*ml.Column
	for _, name := range a.Names() {
		ca, _ := a.Column(name)
		cb, ok := b.Column(name)
		if !ok || cb.Kind != ca.Kind {
			return nil, fmt.Errorf("%w: column %q differs between frames", ErrInput, name)
		}
		if ca.Kind == ml.Numeric {
			cols = append(cols, ml.NumericColumn(name, append(append([]float64(nil), ca.Num...), cb.Num...)))
		} else {
			cols = append(cols, ml.CategoricalColumn(name, append(append([]string(nil), ca.Cat...), cb.Cat...)))
		}
	}
	f, err := ml.NewFrame(cols...)
	if err != nil {
		return nil, fmt.Errorf("assess: %w", err)
	}
	return f, nil
}
