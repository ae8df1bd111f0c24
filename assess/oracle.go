package assess

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/rampart-mlaas/rampart/ml"
)

// ErrRefused is wrapped by an Oracle when the endpoint refused the query
// (rate limit, budget, quarantine): an attack stops querying and reports
// what it obtained.
var ErrRefused = errors.New("assess: query refused by the endpoint")

// Prediction is what an endpoint returns for one row under its output
// policy.
type Prediction struct {
	Class int // index into Space.Classes
	// Proba holds every class probability when the policy returns them
	// (possibly rounded); nil otherwise.
	Proba []float64
	// PLabel is the probability of Class when returned, NaN otherwise.
	PLabel float64
}

// ProbOf returns the probability of class c if the prediction reveals it:
// from Proba, from PLabel for the predicted class, or from 1−PLabel for
// the other class of a binary model. ok is false for label-only outputs.
func (p Prediction) ProbOf(c, classes int) (float64, bool) {
	switch {
	case p.Proba != nil:
		return p.Proba[c], true
	case math.IsNaN(p.PLabel):
		return 0, false
	case c == p.Class:
		return p.PLabel, true
	case classes == 2:
		return 1 - p.PLabel, true
	}
	return 0, false
}

// Oracle answers prediction queries: a model loaded directly, or a live
// endpoint through a principal's credentials. Rows follow the Space
// encoding. Implementations must be safe for concurrent use.
type Oracle interface {
	Predict(ctx context.Context, rows [][]float64) ([]Prediction, error)
}

// Flagger is implemented by oracles that can tell whether the querying
// principal has been flagged as a suspected extraction attacker (INF-3).
type Flagger interface {
	Flagged(ctx context.Context) (bool, string, error)
}

// Output policies an oracle can simulate (the endpoint's INF-2 policy).
const (
	OutputProba = "proba" // every class probability
	OutputLabel = "label" // the label, with its probability unless Decimals < 0
)

// OutputPolicy is the output minimisation applied by ModelOracle.
type OutputPolicy struct {
	Mode     string // OutputProba or OutputLabel
	Decimals int    // rounding; < 0 with OutputLabel: label only
}

// ModelOracle answers from a model loaded directly, applying an output
// policy the way an endpoint would.
type ModelOracle struct {
	Model  *ml.Model
	Space  Space
	Policy OutputPolicy
	// Budget, when > 0, refuses queries beyond that many rows in total
	// (the endpoint's per-principal budget, simulated).
	Budget int64

	mu   sync.Mutex
	used int64
}

// NewModelOracle returns an oracle over m with the given policy.
func NewModelOracle(m *ml.Model, p OutputPolicy) *ModelOracle {
	return &ModelOracle{Model: m, Space: SpaceOf(m), Policy: p}
}

// Queries returns the number of rows answered so far.
func (o *ModelOracle) Queries() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.used
}

// Predict implements Oracle.
func (o *ModelOracle) Predict(ctx context.Context, rows [][]float64) ([]Prediction, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o.mu.Lock()
	if o.Budget > 0 && o.used+int64(len(rows)) > o.Budget {
		o.mu.Unlock()
		return nil, fmt.Errorf("%w: budget of %d rows exhausted", ErrRefused, o.Budget)
	}
	o.used += int64(len(rows))
	o.mu.Unlock()
	p, err := modelProba(o.Model, o.Space, rows)
	if err != nil {
		return nil, err
	}
	k := len(o.Space.Classes)
	out := make([]Prediction, len(rows))
	for i := range rows {
		pi := p[i*k : (i+1)*k]
		c := argmax(pi)
		out[i] = Prediction{Class: c, PLabel: math.NaN()}
		switch {
		case o.Policy.Mode == OutputProba:
			out[i].Proba = make([]float64, k)
			for j, v := range pi {
				out[i].Proba[j] = round(v, o.Policy.Decimals)
			}
			out[i].PLabel = out[i].Proba[c]
		case o.Policy.Decimals >= 0:
			out[i].PLabel = round(pi[c], o.Policy.Decimals)
		}
	}
	return out, nil
}

// modelProba scores rows with the model's exact probabilities.
func modelProba(m *ml.Model, s Space, rows [][]float64) ([]float64, error) {
	if m.Task != ml.Classification {
		return nil, fmt.Errorf("%w: only classification models are assessed", ErrInput)
	}
	f, err := s.Frame(rows, "", nil)
	if err != nil {
		return nil, err
	}
	p, err := m.PredictProba(f)
	if err != nil {
		return nil, fmt.Errorf("assess: scoring: %w", err)
	}
	return p, nil
}

func round(v float64, d int) float64 {
	if d < 0 {
		return v
	}
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

func argmax(p []float64) int {
	b := 0
	for i := 1; i < len(p); i++ {
		if p[i] > p[b] {
			b = i
		}
	}
	return b
}
