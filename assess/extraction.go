package assess

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/rampart-mlaas/rampart/ml"
)

// Extraction query strategies (PRIV-2).
const (
	Synthetic = "synthetic" // uniform within the published feature ranges
	Boundary  = "boundary"  // points between nearest differently labelled points
	Natural   = "natural"   // held-out rows from the data distribution
)

// OracleFactory returns the oracle one attacker uses for one strategy:
// a fresh principal per strategy, so budgets and the extraction monitor
// see each strategy on its own.
type OracleFactory func(ctx context.Context, strategy string) (Oracle, error)

// Fixed returns a factory that hands out the same oracle.
func Fixed(o Oracle) OracleFactory {
	return func(context.Context, string) (Oracle, error) { return o, nil }
}

// ExtractionConfig describes an extraction assessment.
type ExtractionConfig struct {
	Target     OracleFactory
	Space      Space
	Strategies []string // default: all three
	// Budgets are the query counts at which a surrogate is trained,
	// ascending (default 50, 100, 200, 500, 1000, 2000).
	Budgets []int
	// Natural rows the attacker holds (unlabelled); needed by Natural and
	// used as Boundary's seeds.
	Natural [][]float64
	// Eval rows and the target model's labels for them (computed by the
	// assessor, not charged to the attacker): fidelity is label agreement.
	Eval       [][]float64
	EvalLabels []int
	// Surrogate is the attacker's learner (default: GBDT, 100 trees of
	// depth 4). Target and Features are set here.
	Surrogate ml.TrainSpec
	Batch     int // rows per query (default 50)
	Seed      uint64
	Progress  func(step string)
}

// FidelityPoint is one surrogate.
type FidelityPoint struct {
	Queries  int     `json:"queries"`
	Fidelity float64 `json:"fidelity"`
}

// ExtractionCurve is one strategy's result.
type ExtractionCurve struct {
	Strategy string          `json:"strategy"`
	Points   []FidelityPoint `json:"points"`
	Obtained int             `json:"queries_obtained"`
	// Refused is why the endpoint stopped answering, if it did.
	Refused string `json:"refused,omitempty"`
	// FlaggedAt is the query count after which the endpoint flagged the
	// principal as a suspected extractor (0: never).
	FlaggedAt  int    `json:"flagged_at,omitempty"`
	FlagReason string `json:"flag_reason,omitempty"`
}

// ExtractionReport is the PRIV-2 section of a report (one per guard
// setting).
type ExtractionReport struct {
	Guards    string            `json:"guards"` // e.g. "off", "on (default policy)"
	Surrogate string            `json:"surrogate"`
	EvalRows  int               `json:"eval_rows"`
	Curves    []ExtractionCurve `json:"curves"`
}

// Extraction trains surrogates from what one principal obtains.
func Extraction(ctx context.Context, cfg ExtractionConfig) (*ExtractionReport, error) {
	if cfg.Target == nil || len(cfg.Eval) == 0 || len(cfg.Eval) != len(cfg.EvalLabels) {
		return nil, fmt.Errorf("%w: extraction needs a target and labelled evaluation rows", ErrInput)
	}
	if len(cfg.Strategies) == 0 {
		cfg.Strategies = []string{Synthetic, Boundary, Natural}
	}
	if len(cfg.Budgets) == 0 {
		cfg.Budgets = []int{50, 100, 200, 500, 1000, 2000}
	}
	if !slices.IsSorted(cfg.Budgets) || cfg.Budgets[0] < 1 {
		return nil, fmt.Errorf("%w: budgets must be positive and ascending", ErrInput)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 50
	}
	if cfg.Surrogate.Algorithm == "" {
		cfg.Surrogate = ml.TrainSpec{Algorithm: ml.GBDT, Params: map[string]string{"n_estimators": "100", "max_depth": "4"}}
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
	}
	rep := &ExtractionReport{Surrogate: cfg.Surrogate.Algorithm, EvalRows: len(cfg.Eval)}
	for si, st := range cfg.Strategies {
		if st != Synthetic && st != Boundary && st != Natural {
			return nil, fmt.Errorf("%w: unknown extraction strategy %q", ErrInput, st)
		}
		if st == Natural && len(cfg.Natural) == 0 {
			return nil, fmt.Errorf("%w: the natural strategy needs natural rows", ErrInput)
		}
		o, err := cfg.Target(ctx, st)
		if err != nil {
			return nil, err
		}
		c, err := cfg.run(ctx, o, st, cfg.Seed+uint64(si)*7919)
		if err != nil {
			return nil, err
		}
		rep.Curves = append(rep.Curves, *c)
	}
	return rep, nil
}

type extractor struct {
	cfg    *ExtractionConfig
	o      Oracle
	rng    *rand.Rand
	rows   [][]float64
	labels []int
	curve  *ExtractionCurve
	num    []int
}

// ask queries a batch; a refusal ends the stream (returns false).
func (e *extractor) ask(ctx context.Context, rows [][]float64) (bool, error) {
	p, err := e.o.Predict(ctx, rows)
	if errors.Is(err, ErrRefused) {
		e.curve.Refused = err.Error()
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("extraction (%s): %w", e.curve.Strategy, err)
	}
	for i := range rows {
		e.rows = append(e.rows, rows[i])
		e.labels = append(e.labels, p[i].Class)
	}
	e.curve.Obtained = len(e.rows)
	if f, ok := e.o.(Flagger); ok && e.curve.FlaggedAt == 0 {
		flagged, why, err := f.Flagged(ctx)
		if err != nil {
			return false, err
		}
		if flagged {
			e.curve.FlaggedAt, e.curve.FlagReason = len(e.rows), why
		}
	}
	return true, nil
}

func (cfg *ExtractionConfig) run(ctx context.Context, o Oracle, strategy string, seed uint64) (*ExtractionCurve, error) {
	e := &extractor{cfg: cfg, o: o, rng: rand.New(rand.NewPCG(seed, 0xe7)), curve: &ExtractionCurve{Strategy: strategy}, num: cfg.Space.numeric()}
	total := cfg.Budgets[len(cfg.Budgets)-1]
	natural := cfg.Space.Admissible(cfg.Natural)
	e.rng.Shuffle(len(natural), func(a, b int) { natural[a], natural[b] = natural[b], natural[a] })
	next := 0 // next budget index to train at
	for len(e.rows) < total {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := min(cfg.Batch, total-len(e.rows), cfg.Budgets[next]-len(e.rows))
		var batch [][]float64
		switch {
		case strategy == Natural:
			if len(e.rows) >= len(natural) {
				e.curve.Refused = fmt.Sprintf("attacker's natural pool of %d rows exhausted", len(natural))
			} else {
				batch = natural[len(e.rows):min(len(e.rows)+n, len(natural))]
			}
		case strategy == Synthetic:
			batch = e.synthetic(n)
		default:
			batch = e.boundary(n, natural)
		}
		if len(batch) == 0 {
			break
		}
		ok, err := e.ask(ctx, batch)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		for next < len(cfg.Budgets) && len(e.rows) >= cfg.Budgets[next] {
			if err := e.fit(ctx, cfg.Budgets[next]); err != nil {
				return nil, err
			}
			next++
		}
		if next == len(cfg.Budgets) {
			break
		}
	}
	// A stream cut short still yields a surrogate from what it obtained.
	if len(e.curve.Points) == 0 || e.curve.Points[len(e.curve.Points)-1].Queries < len(e.rows) {
		if len(e.rows) > 0 {
			if err := e.fit(ctx, len(e.rows)); err != nil {
				return nil, err
			}
		}
	}
	return e.curve, nil
}

// synthetic draws rows uniformly within the published ranges.
func (e *extractor) synthetic(n int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		r := make([]float64, len(e.cfg.Space.Features))
		for j, f := range e.cfg.Space.Features {
			if f.Categorical {
				r[j] = float64(e.rng.IntN(max(len(f.Categories), 1)))
			} else {
				r[j] = f.Min + e.rng.Float64()*(f.Max-f.Min)
			}
		}
		out[i] = r
	}
	return out
}

// boundary seeds with natural (else synthetic) rows, then queries points
// between a labelled row and its nearest differently labelled row, with a
// little jitter: the queries concentrate where the labels change.
func (e *extractor) boundary(n int, natural [][]float64) [][]float64 {
	seeds := max(20, e.cfg.Budgets[len(e.cfg.Budgets)-1]/10)
	if len(e.rows) < seeds || !e.twoLabels() {
		if len(e.rows) < len(natural) {
			return natural[len(e.rows):min(len(e.rows)+n, len(natural))]
		}
		return e.synthetic(n)
	}
	out := make([][]float64, 0, n)
	for range n {
		a := e.rng.IntN(len(e.rows))
		b := e.nearestOther(a)
		t := 0.3 + 0.4*e.rng.Float64()
		r := make([]float64, len(e.rows[a]))
		for j, f := range e.cfg.Space.Features {
			xa, xb := e.rows[a][j], e.rows[b][j]
			if f.Categorical || math.IsNaN(xa) || math.IsNaN(xb) {
				if e.rng.IntN(2) == 0 {
					r[j] = xa
				} else {
					r[j] = xb
				}
				continue
			}
			v := xa + t*(xb-xa) + 0.05*f.Std*e.rng.NormFloat64()
			r[j] = math.Min(math.Max(v, f.Min), f.Max)
		}
		out = append(out, r)
	}
	return out
}

func (e *extractor) twoLabels() bool {
	for _, l := range e.labels {
		if l != e.labels[0] {
			return true
		}
	}
	return false
}

// nearestOther is the nearest row (standardised numeric features) with a
// label different from row a's.
func (e *extractor) nearestOther(a int) int {
	best, bd := -1, math.Inf(1)
	for i, r := range e.rows {
		if e.labels[i] == e.labels[a] {
			continue
		}
		d := 0.0
		for _, j := range e.num {
			x := (r[j] - e.rows[a][j]) / e.cfg.Space.Features[j].Std
			if !math.IsNaN(x) {
				d += x * x
			}
		}
		if d < bd {
			best, bd = i, d
		}
	}
	return best
}

// fit trains a surrogate on the first n answers and measures fidelity.
func (e *extractor) fit(ctx context.Context, n int) error {
	const target = "__label__"
	fid := 0.0
	if !slices.ContainsFunc(e.labels[:n], func(l int) bool { return l != e.labels[0] }) {
		// One class seen: the best surrogate is the constant.
		for _, l := range e.cfg.EvalLabels {
			if l == e.labels[0] {
				fid++
			}
		}
	} else {
		f, err := e.cfg.Space.Frame(e.rows[:n], target, e.labels[:n])
		if err != nil {
			return err
		}
		spec := e.cfg.Surrogate
		spec.Target, spec.Features, spec.Seed = target, nil, e.cfg.Seed
		m, err := ml.Train(ctx, f, spec, nil)
		if err != nil {
			return fmt.Errorf("extraction: training the surrogate on %d answers: %w", n, err)
		}
		ef, err := e.cfg.Space.Frame(e.cfg.Eval, "", nil)
		if err != nil {
			return err
		}
		pred, err := m.PredictLabels(ef)
		if err != nil {
			return fmt.Errorf("extraction: surrogate predictions: %w", err)
		}
		for i, l := range pred {
			if l == e.cfg.Space.Classes[e.cfg.EvalLabels[i]] {
				fid++
			}
		}
	}
	fid /= float64(len(e.cfg.EvalLabels))
	e.curve.Points = append(e.curve.Points, FidelityPoint{Queries: n, Fidelity: fid})
	e.cfg.Progress(fmt.Sprintf("extraction %s: %d queries, fidelity %.3f", e.curve.Strategy, n, fid))
	return nil
}
