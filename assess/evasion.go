package assess

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"

	"github.com/rampart-mlaas/rampart/ml"
)

// Evasion methods (PRIV-3).
const (
	// ExactLinear: the closed-form minimal L2 perturbation of a linear
	// model, w recovered exactly from the affine log-odds.
	ExactLinear = "exact-linear"
	// Gradient: DeepFool (Moosavi-Dezfooli et al. 2016) on the model's
	// log-probability margins, gradients by central differences.
	Gradient = "gradient-deepfool"
	// Decision: a HopSkipJump-style decision-based attack (Chen et al.
	// 2020) that sees only labels, through the Oracle.
	Decision = "decision-hopskipjump"
)

// OODScorer scores rows as the endpoint's out-of-distribution guard does
// (INF-5); a row scoring above Threshold is caught.
type OODScorer interface {
	Scores(ctx context.Context, rows [][]float64) ([]float64, error)
	Threshold() float64
}

// EvasionConfig describes an evasion assessment. Perturbations are
// measured in L2 norm over the numeric features in units of each
// feature's training standard deviation; categorical features and
// missing values are never changed.
type EvasionConfig struct {
	// Model gives white-box access for ExactLinear and Gradient; may be
	// nil for a decision-based attack on an endpoint.
	Model *ml.Model
	// Target answers the decision-based attack (default: Model, label
	// only).
	Target Oracle
	Space  Space
	// Rows to perturb with their true labels; rows the model already
	// misclassifies are skipped.
	Rows    [][]float64
	Labels  []int
	Method  string    // default: by the model's algorithm
	Budgets []float64 // default 0.1 … 10 (σ units)
	MaxRows int       // default 100
	// QueriesPerRow bounds the decision-based attack (default 1500).
	QueriesPerRow int
	OOD           OODScorer
	Seed          uint64
}

// SuccessPoint is the success rate at one perturbation budget.
type SuccessPoint struct {
	Budget      float64 `json:"budget"`
	SuccessRate float64 `json:"success_rate"`
	// OODCaught is the share of the successful adversarial inputs within
	// this budget that the OOD guard flags.
	OODCaught float64 `json:"ood_caught"`
}

// EvasionReport is the PRIV-3 section for one model.
type EvasionReport struct {
	Model    string         `json:"model,omitempty"`
	Method   string         `json:"method"`
	Norm     string         `json:"norm"`
	Attacked int            `json:"rows_attacked"`
	Found    int            `json:"adversarial_found"`
	Median   float64        `json:"median_perturbation"`
	Curve    []SuccessPoint `json:"curve"`
	Queries  int64          `json:"queries,omitempty"`
	// OODCaught: share of all found adversarial inputs the OOD guard
	// flags; CleanOOD: share of the unperturbed rows it flags.
	OODCaught float64 `json:"ood_caught"`
	CleanOOD  float64 `json:"clean_ood"`
	OODNote   string  `json:"ood_note,omitempty"`
}

// Evasion finds, for each correctly classified row, a small perturbation
// that changes the model's label.
func Evasion(ctx context.Context, cfg EvasionConfig) (*EvasionReport, error) {
	if len(cfg.Rows) == 0 || len(cfg.Rows) != len(cfg.Labels) {
		return nil, fmt.Errorf("%w: evasion needs rows with labels", ErrInput)
	}
	if cfg.Method == "" {
		if cfg.Model == nil {
			cfg.Method = Decision
		} else {
			switch cfg.Model.Algorithm {
			case ml.LogReg:
				cfg.Method = ExactLinear
			case ml.MLP:
				cfg.Method = Gradient
			default:
				cfg.Method = Decision
			}
		}
	}
	if cfg.Method != Decision && cfg.Model == nil {
		return nil, fmt.Errorf("%w: %s needs the model itself", ErrInput, cfg.Method)
	}
	if cfg.Method == ExactLinear && cfg.Model.Algorithm != ml.LogReg {
		return nil, fmt.Errorf("%w: %s applies to logistic regression only", ErrInput, ExactLinear)
	}
	if cfg.Target == nil {
		if cfg.Model == nil {
			return nil, fmt.Errorf("%w: evasion needs a model or a target", ErrInput)
		}
		cfg.Target = NewModelOracle(cfg.Model, OutputPolicy{Mode: OutputLabel, Decimals: -1})
	}
	if len(cfg.Budgets) == 0 {
		cfg.Budgets = []float64{0.1, 0.2, 0.5, 1, 2, 5, 10}
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 100
	}
	if cfg.QueriesPerRow <= 0 {
		cfg.QueriesPerRow = 1500
	}
	// Rows the target classifies correctly.
	pred, err := cfg.Target.Predict(ctx, cfg.Rows)
	if err != nil {
		return nil, fmt.Errorf("evasion: %w", err)
	}
	var x0 [][]float64
	var cls []int
	for i, p := range pred {
		if p.Class == cfg.Labels[i] && len(x0) < cfg.MaxRows {
			x0 = append(x0, slices.Clone(cfg.Rows[i]))
			cls = append(cls, p.Class)
		}
	}
	if len(x0) == 0 {
		return nil, fmt.Errorf("%w: the model classifies none of the rows correctly", ErrInput)
	}
	// The decision attack starts from rows the model labels differently.
	var pool [][]float64
	var poolCls []int
	for i, p := range pred {
		pool = append(pool, cfg.Rows[i])
		poolCls = append(poolCls, p.Class)
	}
	rep := &EvasionReport{Method: cfg.Method, Norm: "L2 over numeric features, in training standard deviations", Attacked: len(x0)}
	if cfg.Model != nil {
		rep.Model = cfg.Model.Algorithm
	}
	var adv [][]float64
	switch cfg.Method {
	case ExactLinear:
		adv, err = exactLinear(cfg.Model, cfg.Space, x0, cls)
	case Gradient:
		adv, err = deepFool(ctx, cfg.Model, cfg.Space, x0, cls)
	case Decision:
		var q int64
		adv, q, err = hopSkipJump(ctx, cfg, x0, cls, pool, poolCls)
		rep.Queries = q
	default:
		return nil, fmt.Errorf("%w: unknown evasion method %q", ErrInput, cfg.Method)
	}
	if err != nil {
		return nil, err
	}
	// Check every adversarial input against the model and measure it.
	dist := make([]float64, len(x0))
	var found [][]float64
	var foundIdx []int
	cands := make([][]float64, 0, len(x0))
	var candIdx []int
	for i, a := range adv {
		if a != nil {
			cands = append(cands, a)
			candIdx = append(candIdx, i)
		}
	}
	for i := range dist {
		dist[i] = math.Inf(1)
	}
	if len(cands) > 0 {
		p, err := cfg.Target.Predict(ctx, cands)
		if err != nil {
			return nil, fmt.Errorf("evasion: verifying: %w", err)
		}
		for k, i := range candIdx {
			if p[k].Class != cls[i] {
				dist[i] = zdist(cfg.Space, x0[i], cands[k])
				found = append(found, cands[k])
				foundIdx = append(foundIdx, i)
			}
		}
	}
	rep.Found = len(found)
	var fd []float64
	for _, d := range dist {
		if !math.IsInf(d, 1) {
			fd = append(fd, d)
		}
	}
	if len(fd) > 0 {
		sort.Float64s(fd)
		rep.Median = fd[len(fd)/2]
	}
	var caught []bool
	if cfg.OOD != nil {
		clean, err := cfg.OOD.Scores(ctx, x0)
		if err != nil {
			return nil, fmt.Errorf("evasion: OOD scores: %w", err)
		}
		rep.CleanOOD = shareAbove(clean, cfg.OOD.Threshold())
		if len(found) > 0 {
			s, err := cfg.OOD.Scores(ctx, found)
			if err != nil {
				return nil, fmt.Errorf("evasion: OOD scores: %w", err)
			}
			rep.OODCaught = shareAbove(s, cfg.OOD.Threshold())
			caught = make([]bool, len(s))
			for k, v := range s {
				caught[k] = v > cfg.OOD.Threshold()
			}
		}
	} else {
		rep.OODNote = "no OOD scorer configured"
	}
	for _, b := range cfg.Budgets {
		pt := SuccessPoint{Budget: b}
		var n, c int
		for k, i := range foundIdx {
			if dist[i] <= b {
				n++
				if caught != nil && caught[k] {
					c++
				}
			}
		}
		pt.SuccessRate = float64(n) / float64(len(x0))
		if n > 0 {
			pt.OODCaught = float64(c) / float64(n)
		}
		rep.Curve = append(rep.Curve, pt)
	}
	return rep, nil
}

func shareAbove(s []float64, t float64) float64 {
	if len(s) == 0 {
		return 0
	}
	n := 0
	for _, v := range s {
		if v > t {
			n++
		}
	}
	return float64(n) / float64(len(s))
}

// zdist is the L2 distance over numeric features in standard deviations.
func zdist(s Space, a, b []float64) float64 {
	d := 0.0
	for _, j := range s.numeric() {
		x := (a[j] - b[j]) / s.Features[j].Std
		if !math.IsNaN(x) {
			d += x * x
		}
	}
	return math.Sqrt(d)
}

// movable lists, per row, the numeric features with a value (missing
// values stay missing).
func movable(s Space, x []float64) []int {
	var out []int
	for _, j := range s.numeric() {
		if !math.IsNaN(x[j]) {
			out = append(out, j)
		}
	}
	return out
}

// margins returns log p[c] − log p[k] for every class k of every row.
func margins(m *ml.Model, s Space, rows [][]float64, cls []int) ([][]float64, error) {
	p, err := modelProba(m, s, rows)
	if err != nil {
		return nil, err
	}
	k := len(s.Classes)
	out := make([][]float64, len(rows))
	for i := range rows {
		out[i] = make([]float64, k)
		lc := math.Log(math.Max(p[i*k+cls[i]], 1e-300))
		for c := range k {
			out[i][c] = lc - math.Log(math.Max(p[i*k+c], 1e-300))
		}
	}
	return out, nil
}

// marginGrads returns, for every row and class, the margin and its
// gradient in standardised coordinates by central differences (step h σ).
func marginGrads(m *ml.Model, s Space, rows [][]float64, cls []int, h float64) (g [][]float64, grad [][][]float64, err error) {
	num := s.numeric()
	batch := make([][]float64, 0, len(rows)*(1+2*len(num)))
	bcls := make([]int, 0, cap(batch))
	for i, r := range rows {
		batch = append(batch, r)
		bcls = append(bcls, cls[i])
		for _, j := range num {
			for _, sgn := range []float64{1, -1} {
				q := slices.Clone(r)
				q[j] += sgn * h * s.Features[j].Std
				batch = append(batch, q)
				bcls = append(bcls, cls[i])
			}
		}
	}
	all, err := margins(m, s, batch, bcls)
	if err != nil {
		return nil, nil, err
	}
	k := len(s.Classes)
	stride := 1 + 2*len(num)
	g = make([][]float64, len(rows))
	grad = make([][][]float64, len(rows))
	for i, r := range rows {
		base := i * stride
		g[i] = all[base]
		grad[i] = make([][]float64, k)
		for c := range k {
			grad[i][c] = make([]float64, len(r))
			for t, j := range num {
				if math.IsNaN(r[j]) {
					continue
				}
				grad[i][c][j] = (all[base+1+2*t][c] - all[base+2+2*t][c]) / (2 * h)
			}
		}
	}
	return g, grad, nil
}

// step moves x by delta (in σ units) along the given coordinates.
func step(s Space, x []float64, dir []float64, scale float64) []float64 {
	out := slices.Clone(x)
	for _, j := range s.numeric() {
		if !math.IsNaN(x[j]) {
			out[j] += scale * dir[j] * s.Features[j].Std
		}
	}
	return out
}

// exactLinear: for logistic regression every margin log p[c] − log p[k]
// is affine in the standardised inputs with the same gradient w_k
// everywhere, so w_k is read once by a central difference (exact for an
// affine function up to rounding) at the least saturated row, and the
// minimal L2 step to the boundary g_k(x) = 0 is |g_k(x)| / ‖w_k‖ along
// −w_k. Saturated rows (probabilities rounded to 0 or 1) walk along −w_k
// in measured strides until the margin can be read. For two classes this
// is the exact minimum; for more, the smallest over k, checked by the
// caller.
func exactLinear(m *ml.Model, s Space, x0 [][]float64, cls []int) ([][]float64, error) {
	g0, err := margins(m, s, x0, cls)
	if err != nil {
		return nil, err
	}
	ref := 0
	for i := range x0 {
		if maxAbs(g0[i]) < maxAbs(g0[ref]) {
			ref = i
		}
	}
	k := len(s.Classes)
	// Gradients of every pair (c, k) at the reference row.
	w := make([][][]float64, k)
	for c := range k {
		_, gr, err := marginGrads(m, s, [][]float64{x0[ref]}, []int{c}, 0.01)
		if err != nil {
			return nil, err
		}
		w[c] = gr[0]
	}
	out := make([][]float64, len(x0))
	for i := range x0 {
		if len(movable(s, x0[i])) < len(s.numeric()) {
			// A missing value is imputed by the model: its coordinate
			// cannot move, so restrict w to the present features.
			continue
		}
		best, bd := -1, math.Inf(1)
		for c := range k {
			if c == cls[i] {
				continue
			}
			if n := norm(w[cls[i]][c]); n > 0 && g0[i][c]/n < bd {
				best, bd = c, g0[i][c]/n
			}
		}
		if best < 0 {
			continue
		}
		dir := w[cls[i]][best]
		n := norm(dir)
		walked := 0.0
		g := g0[i][best]
		for range 100 {
			if math.Abs(g) < 20 {
				break
			}
			walked += 15 / n
			gm, err := margins(m, s, [][]float64{step(s, x0[i], dir, -walked/n)}, []int{cls[i]})
			if err != nil {
				return nil, err
			}
			g = gm[0][best]
		}
		// Cross the boundary by a hair (relative 1e-9, absolute 1e-9).
		t := walked + g/n
		out[i] = step(s, x0[i], dir, -(t*(1+1e-9)+1e-9)/n)
	}
	return out, nil
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// deepFool iterates linearised minimal steps on the margins until the
// label changes (at most 50 steps, overshoot 2 %), then shrinks the
// perturbation by bisection to the boundary.
func deepFool(ctx context.Context, m *ml.Model, s Space, x0 [][]float64, cls []int) ([][]float64, error) {
	const overshoot, maxIter, h = 0.02, 50, 1e-4
	cur := make([][]float64, len(x0))
	for i := range x0 {
		cur[i] = slices.Clone(x0[i])
	}
	done := make([]bool, len(x0))
	for range maxIter {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var idx []int
		var rows [][]float64
		var rc []int
		for i := range cur {
			if !done[i] {
				idx, rows, rc = append(idx, i), append(rows, cur[i]), append(rc, cls[i])
			}
		}
		if len(idx) == 0 {
			break
		}
		g, grad, err := marginGrads(m, s, rows, rc, h)
		if err != nil {
			return nil, err
		}
		for t, i := range idx {
			flipped := false
			for c := range s.Classes {
				if c != cls[i] && g[t][c] < 0 {
					flipped = true
				}
			}
			if flipped {
				done[i] = true
				continue
			}
			best, bd := -1, math.Inf(1)
			for c := range s.Classes {
				if c == cls[i] {
					continue
				}
				if n := norm(grad[t][c]); n > 0 && g[t][c]/n < bd {
					best, bd = c, g[t][c]/n
				}
			}
			if best < 0 {
				done[i] = true // flat: no gradient to follow
				continue
			}
			w := grad[t][best]
			cur[i] = step(s, cur[i], w, -(bd+1e-4)*(1+overshoot)/norm(w))
		}
	}
	// Keep only rows whose label changed, pulled back to the boundary.
	return shrink(ctx, NewModelOracle(m, OutputPolicy{Mode: OutputLabel, Decimals: -1}), s, x0, cur, cls)
}

// shrink bisects each segment x0 → adv to the boundary (adversarial side);
// a row whose adv is not adversarial yields nil.
func shrink(ctx context.Context, o Oracle, s Space, x0, adv [][]float64, cls []int) ([][]float64, error) {
	p, err := o.Predict(ctx, adv)
	if err != nil {
		return nil, err
	}
	lo := make([]float64, len(x0))
	hi := make([]float64, len(x0))
	out := make([][]float64, len(x0))
	var live []int
	for i := range x0 {
		if p[i].Class != cls[i] {
			hi[i] = 1
			live = append(live, i)
		}
	}
	for range 20 {
		if len(live) == 0 {
			break
		}
		rows := make([][]float64, len(live))
		for t, i := range live {
			rows[t] = lerp(x0[i], adv[i], (lo[i]+hi[i])/2)
		}
		q, err := o.Predict(ctx, rows)
		if err != nil {
			return nil, err
		}
		for t, i := range live {
			mid := (lo[i] + hi[i]) / 2
			if q[t].Class != cls[i] {
				hi[i] = mid
			} else {
				lo[i] = mid
			}
		}
	}
	for _, i := range live {
		out[i] = lerp(x0[i], adv[i], hi[i])
	}
	return out, nil
}

func lerp(a, b []float64, t float64) []float64 {
	out := make([]float64, len(a))
	for j := range a {
		if math.IsNaN(a[j]) || a[j] == b[j] {
			out[j] = a[j]
		} else {
			out[j] = a[j] + t*(b[j]-a[j])
		}
	}
	return out
}

// hopSkipJump runs the decision-based attack row by row (rows in
// parallel), each within QueriesPerRow label queries.
func hopSkipJump(ctx context.Context, cfg EvasionConfig, x0 [][]float64, cls []int, pool [][]float64, poolCls []int) ([][]float64, int64, error) {
	out := make([][]float64, len(x0))
	queries := make([]int64, len(x0))
	errs := make([]error, len(x0))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range x0 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			h := &hsj{cfg: &cfg, o: cfg.Target, x0: x0[i], c: cls[i], rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)), num: movable(cfg.Space, x0[i])}
			out[i], errs[i] = h.run(ctx, pool, poolCls)
			queries[i] = h.q
		}()
	}
	wg.Wait()
	var total int64
	for i := range x0 {
		if errs[i] != nil {
			return nil, 0, errs[i]
		}
		total += queries[i]
	}
	return out, total, nil
}

type hsj struct {
	cfg *EvasionConfig
	o   Oracle
	x0  []float64
	c   int
	rng *rand.Rand
	num []int
	q   int64
}

// adversarial asks which rows the target labels other than c.
func (h *hsj) adversarial(ctx context.Context, rows [][]float64) ([]bool, error) {
	h.q += int64(len(rows))
	p, err := h.o.Predict(ctx, rows)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(rows))
	for i := range p {
		out[i] = p[i].Class != h.c
	}
	return out, nil
}

// toBoundary finds the point nearest x0 on the segment x0 → a that is
// still adversarial: two rounds of 16 evenly spaced queries.
func (h *hsj) toBoundary(ctx context.Context, a []float64) ([]float64, error) {
	lo, hi := 0.0, 1.0
	for range 2 {
		const n = 16
		rows := make([][]float64, n)
		for k := range n {
			rows[k] = lerp(h.x0, a, lo+(hi-lo)*float64(k+1)/n)
		}
		adv, err := h.adversarial(ctx, rows)
		if err != nil {
			return nil, err
		}
		first := n - 1 // the endpoint is adversarial
		for k := range n {
			if adv[k] {
				first = k
				break
			}
		}
		lo, hi = lo+(hi-lo)*float64(first)/n, lo+(hi-lo)*float64(first+1)/n
	}
	return lerp(h.x0, a, hi), nil
}

func (h *hsj) run(ctx context.Context, pool [][]float64, poolCls []int) ([]float64, error) {
	s := h.cfg.Space
	if len(h.num) == 0 {
		return nil, nil
	}
	// Start: the nearest differently labelled rows, with x0's categories
	// and missing values.
	type cand struct {
		d float64
		r []float64
	}
	var cs []cand
	for i, r := range pool {
		if poolCls[i] == h.c {
			continue
		}
		a := slices.Clone(h.x0)
		for _, j := range h.num {
			if !math.IsNaN(r[j]) {
				a[j] = r[j]
			}
		}
		cs = append(cs, cand{zdist(s, h.x0, a), a})
	}
	sort.Slice(cs, func(a, b int) bool { return cs[a].d < cs[b].d })
	var start []float64
	for k := 0; k < len(cs) && k < 64; k += 16 {
		rows := make([][]float64, 0, 16)
		for _, c := range cs[k:min(k+16, len(cs))] {
			rows = append(rows, c.r)
		}
		adv, err := h.adversarial(ctx, rows)
		if err != nil {
			return nil, err
		}
		if i := slices.Index(adv, true); i >= 0 {
			start = rows[i]
			break
		}
	}
	if start == nil {
		// Random directions of growing size.
		for scale := 1.0; scale <= 64 && start == nil; scale *= 2 {
			rows := make([][]float64, 16)
			for k := range rows {
				rows[k] = step(s, h.x0, h.randDir(), scale)
			}
			adv, err := h.adversarial(ctx, rows)
			if err != nil {
				return nil, err
			}
			if i := slices.Index(adv, true); i >= 0 {
				start = rows[i]
			}
		}
	}
	if start == nil {
		return nil, nil
	}
	xb, err := h.toBoundary(ctx, start)
	if err != nil {
		return nil, err
	}
	best, bd := xb, zdist(s, h.x0, xb)
	budget := int64(h.cfg.QueriesPerRow)
	for t := 1; h.q < budget; t++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d := zdist(s, h.x0, xb)
		if d == 0 {
			break
		}
		// Gradient direction at the boundary from the signs of B probes.
		b := min(100, int(20*math.Sqrt(float64(t))))
		delta := math.Max(0.01*d, 1e-4)
		dirs := make([][]float64, b)
		rows := make([][]float64, b)
		for k := range b {
			dirs[k] = h.randDir()
			rows[k] = step(s, xb, dirs[k], delta)
		}
		adv, err := h.adversarial(ctx, rows)
		if err != nil {
			return nil, err
		}
		meanPhi := 0.0
		for _, a := range adv {
			if a {
				meanPhi++
			}
		}
		meanPhi = 2*meanPhi/float64(b) - 1
		g := make([]float64, len(xb))
		for k := range b {
			phi := -1.0
			if adv[k] {
				phi = 1
			}
			if math.Abs(meanPhi) < 1 {
				phi -= meanPhi
			}
			for _, j := range h.num {
				g[j] += phi * dirs[k][j]
			}
		}
		gn := norm(g)
		if gn == 0 {
			continue
		}
		// Geometric step search along the estimated gradient.
		xi := d / math.Sqrt(float64(t))
		cand := make([][]float64, 8)
		for k := range cand {
			cand[k] = step(s, xb, g, xi/gn/math.Pow(2, float64(k)))
		}
		adv, err = h.adversarial(ctx, cand)
		if err != nil {
			return nil, err
		}
		i := slices.Index(adv, true)
		if i < 0 {
			continue
		}
		nb, err := h.toBoundary(ctx, cand[i])
		if err != nil {
			return nil, err
		}
		xb = nb
		if nd := zdist(s, h.x0, xb); nd < bd {
			best, bd = xb, nd
		}
	}
	return best, nil
}

// randDir is a random unit direction over the row's movable features, in
// σ units.
func (h *hsj) randDir() []float64 {
	v := make([]float64, len(h.x0))
	for _, j := range h.num {
		v[j] = h.rng.NormFloat64()
	}
	n := norm(v)
	for _, j := range h.num {
		v[j] /= n
	}
	return v
}
