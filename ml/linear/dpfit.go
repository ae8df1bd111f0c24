package linear

import (
	"context"
	"fmt"

	"github.com/rampart-mlaas/rampart/ml/dp"
)

// logisticProblem exposes per-example logistic gradients to DP-SGD.
type logisticProblem struct {
	x    []float64
	n, d int
	y    []int
	rows int
}

func (p *logisticProblem) NumParams() int   { return p.rows*p.d + p.rows }
func (p *logisticProblem) NumExamples() int { return p.n }

func (p *logisticProblem) ExampleGrad(w []float64, i int, g []float64) float64 {
	m := Model{Logistic: true, Rows: p.rows, D: p.d, W: w[:p.rows*p.d], B: w[p.rows*p.d:]}
	return m.ExampleLoss(p.x[i*p.d:(i+1)*p.d], p.y[i], g)
}

// FitLogisticDP trains logistic regression with DP-SGD (TRAIN-2). The caller
// chooses cfg.NoiseMultiplier with the accountant.
func FitLogisticDP(ctx context.Context, x []float64, n, d int, y []int, k int, cfg dp.SGDConfig, progress Progress) (*Model, error) {
	m := NewLogistic(d, k)
	prob := &logisticProblem{x: x, n: n, d: d, y: y, rows: m.Rows}
	params := m.params()
	if err := dp.SGD(ctx, prob, params, cfg, dp.Progress(progress)); err != nil {
		return nil, fmt.Errorf("logistic regression: %w", err)
	}
	m.setParams(params)
	return m, nil
}
