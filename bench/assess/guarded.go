package main

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart/assess"
	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/ml"
)

// guardedOracle puts the serving pipeline's default guards in front of a
// model, with the guard package's own code: the output policy (label and
// its probability to 2 decimals, INF-2), the per-principal daily budget
// (INF-1), OOD scoring (INF-5) and the extraction monitor (INF-3) fed the
// way serving feeds it (numeric features standardised, categories
// hashed). The default extraction policy throttles a flagged principal to
// one request per second, and a request may carry up to 10,000 rows, so a
// batching attacker loses nothing within the daily budget: the throttle
// is reported, not enforced here.
type guardedOracle struct {
	inner   *assess.ModelOracle
	space   assess.Space
	schema  *guard.Schema
	monitor *guard.Monitor
	now     time.Time

	mu      sync.Mutex
	flagged string
	at      int64
}

func newGuarded(m *ml.Model, budgetPerDay int64) *guardedOracle {
	in := assess.NewModelOracle(m, assess.OutputPolicy{Mode: assess.OutputLabel, Decimals: guard.DefaultDecimals})
	in.Budget = budgetPerDay
	return &guardedOracle{inner: in, space: assess.SpaceOf(m), schema: guard.SchemaFromML(m.Schema(), 0.5),
		monitor: guard.NewMonitor(guard.MonitorConfig{}), now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (g *guardedOracle) Predict(ctx context.Context, rows [][]float64) ([]assess.Prediction, error) {
	p, err := g.inner.Predict(ctx, rows)
	if err != nil {
		return nil, err
	}
	gr := g.guardRows(rows)
	qs := make([]guard.Query, len(rows))
	for i, r := range rows {
		x := make([]float64, len(r))
		for j, f := range g.space.Features {
			if f.Categorical {
				h := uint32(2166136261)
				for _, b := range []byte(gr.Cat[j][i]) {
					h = (h ^ uint32(b)) * 16777619
				}
				x[j] = float64(h%1000) / 1000
				continue
			}
			v := r[j]
			if math.IsNaN(v) {
				v = f.Mean
			}
			x[j] = (v - f.Mean) / f.Std
		}
		pm := p[i].PLabel
		if math.IsNaN(pm) {
			pm = 1
		}
		qs[i] = guard.Query{X: x, Class: p[i].Class, PMax: pm, OOD: g.schema.Score(gr, i)}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now = g.now.Add(time.Second)
	v := g.monitor.Observe("attacker", qs, g.now)
	if v.Suspected && g.flagged == "" {
		g.flagged = v.Reason
	}
	return p, nil
}

// Flagged implements assess.Flagger.
func (g *guardedOracle) Flagged(context.Context) (bool, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.flagged != "", g.flagged, nil
}

func (g *guardedOracle) guardRows(rows [][]float64) *guard.Rows {
	F := len(g.space.Features)
	r := &guard.Rows{N: len(rows), Num: make([][]float64, F), Cat: make([][]string, F)}
	for j, f := range g.space.Features {
		if f.Categorical {
			r.Cat[j] = make([]string, len(rows))
			for i, row := range rows {
				if k := row[j]; !math.IsNaN(k) && int(k) >= 0 && int(k) < len(f.Categories) {
					r.Cat[j][i] = f.Categories[int(k)]
				}
			}
		} else {
			r.Num[j] = make([]float64, len(rows))
			for i, row := range rows {
				r.Num[j][i] = row[j]
			}
		}
	}
	return r
}

// oodScorer is the endpoint's INF-5 score (guard.Schema.Score) with its
// default threshold.
type oodScorer struct {
	g *guardedOracle
}

func (o oodScorer) Scores(_ context.Context, rows [][]float64) ([]float64, error) {
	gr := o.g.guardRows(rows)
	out := make([]float64, len(rows))
	for i := range rows {
		out[i] = o.g.schema.Score(gr, i)
	}
	return out, nil
}

func (o oodScorer) Threshold() float64 { return guard.DefaultOODThreshold }
