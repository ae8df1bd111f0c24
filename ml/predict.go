package ml

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/rampart-mlaas/rampart/ml/internal/parallel"
	"github.com/rampart-mlaas/rampart/ml/linear"
	"github.com/rampart-mlaas/rampart/ml/metrics"
)

// ErrTask is wrapped when a prediction method does not fit the model's task.
var ErrTask = errors.New("operation does not match the model's task")

// OutputWidth is the number of values per row of Scores: the number of
// classes for classification, 1 for regression.
func (m *Model) OutputWidth() int {
	if m.Task == Classification {
		return len(m.Classes)
	}
	return 1
}

// Scores returns n×OutputWidth() row-major outputs: class probabilities or
// regression predictions. Rows are processed in fixed blocks on all cores.
func (m *Model) Scores(f *Frame) ([]float64, error) {
	cols, err := m.Prep.resolve(f)
	if err != nil {
		return nil, err
	}
	return m.scoresOf(cols, f.NumRows()), nil
}

// scoresOf is Scores on resolved columns (schema order) of n rows.
func (m *Model) scoresOf(cols []*Column, n int) []float64 {
	w := m.OutputWidth()
	d := m.Prep.Width()
	out := make([]float64, n*w)
	if n == 1 {
		// One row (online serving): scored on the calling goroutine, without
		// the block list and closure; the same calls as the one block would
		// make.
		if m.linear != nil {
			m.linearBlock(cols, 0, 1, out)
			return out
		}
		buf := encodeBufs.Get().(*[]float64)
		if cap(*buf) < d {
			*buf = make([]float64, d)
		}
		x := (*buf)[:d]
		m.Prep.transformRows(cols, 0, 1, x)
		m.predictRows(x, 1, out)
		encodeBufs.Put(buf)
		return out
	}
	blocks := parallel.Blocks(n, 1024, 1<<20)
	parallel.Run(len(blocks), func(b int) {
		lo, hi := blocks[b][0], blocks[b][1]
		if m.linear != nil {
			m.linearBlock(cols, lo, hi, out[lo*w:hi*w])
			return
		}
		// Reused encode buffers keep a large batch from producing garbage at
		// hundreds of MB/s, whose collection would stall the scoring loops.
		buf := encodeBufs.Get().(*[]float64)
		if cap(*buf) < (hi-lo)*d {
			*buf = make([]float64, (hi-lo)*d)
		}
		x := (*buf)[:(hi-lo)*d]
		m.Prep.transformRows(cols, lo, hi, x)
		m.predictRows(x, hi-lo, out[lo*w:hi*w])
		encodeBufs.Put(buf)
	})
	return out
}

var encodeBufs = sync.Pool{New: func() any { return new([]float64) }}

// linearBlock scores rows [lo, hi) of a linear model column by column,
// folding imputation and standardisation into the weights instead of
// materialising the encoded matrix: this is what makes batch scoring run at
// memory speed. Results equal predictRows up to floating-point rounding.
func (m *Model) linearBlock(cols []*Column, lo, hi int, out []float64) {
	lm := m.linear
	n := hi - lo
	z := make([]float64, n*lm.Rows)
	for k := range lm.Rows {
		for i := range n {
			z[i*lm.Rows+k] = lm.B[k]
		}
	}
	off := 0
	for j := range m.Prep.Features {
		fi := &m.Prep.Features[j]
		c := cols[j]
		if fi.Kind == Numeric {
			mean, scale := 0.0, 1.0
			if m.Prep.Standardize {
				mean = fi.Mean
				if fi.Std > 0 {
					scale = 1 / fi.Std
				}
			}
			for k := range lm.Rows {
				a := lm.W[k*lm.D+off] * scale
				miss := 0.0 // imputed value: the mean, which standardises to 0 …
				if !m.Prep.Standardize {
					miss = a * fi.Mean // … or stays the mean without standardisation
				}
				src := c.Num[lo:hi]
				for i, v := range src {
					t := a * (v - mean)
					if v != v {
						t = miss
					}
					z[i*lm.Rows+k] += t
				}
			}
			off++
			continue
		}
		nc := len(fi.Categories)
		for i, s := range c.Cat[lo:hi] {
			idx := nc + 1
			if s == "" {
				idx = nc
			} else if v, ok := fi.catIndex[s]; ok {
				idx = v
			}
			for k := range lm.Rows {
				z[i*lm.Rows+k] += lm.W[k*lm.D+off+idx]
			}
		}
		off += nc + 2
	}
	switch {
	case m.Task == Regression:
		copy(out, z)
	case lm.Rows == 1:
		for i, v := range z {
			p := linear.Sigmoid(v)
			out[2*i], out[2*i+1] = 1-p, p
		}
	default:
		for i := range n {
			r := out[i*lm.Rows : (i+1)*lm.Rows]
			copy(r, z[i*lm.Rows:(i+1)*lm.Rows])
			linear.Softmax(r)
		}
	}
}

// predictRows scores encoded rows on the calling goroutine.
func (m *Model) predictRows(x []float64, n int, out []float64) {
	d := m.Prep.Width()
	w := m.OutputWidth()
	switch {
	case m.gbdt != nil:
		m.gbdt.PredictRows(x, n, out)
	case m.mlp != nil:
		m.mlp.PredictBatch(x, n, out)
	case m.linear != nil && m.Task == Regression:
		var s [1]float64
		for i := range n {
			m.linear.Scores(x[i*d:(i+1)*d], s[:])
			out[i] = s[0]
		}
	default:
		for i := range n {
			m.linear.Proba(x[i*d:(i+1)*d], out[i*w:(i+1)*w])
		}
	}
}

// PredictProba returns n×len(Classes) class probabilities.
func (m *Model) PredictProba(f *Frame) ([]float64, error) {
	if m.Task != Classification {
		return nil, fmt.Errorf("%w: PredictProba on a %s model", ErrTask, m.Task)
	}
	return m.Scores(f)
}

// Predict returns regression predictions.
func (m *Model) Predict(f *Frame) ([]float64, error) {
	if m.Task != Regression {
		return nil, fmt.Errorf("%w: Predict on a %s model (use PredictClass)", ErrTask, m.Task)
	}
	return m.Scores(f)
}

// PredictClass returns the most probable class index per row (ties go to
// the lower index, as numpy's argmax does).
func (m *Model) PredictClass(f *Frame) ([]int, error) {
	p, err := m.PredictProba(f)
	if err != nil {
		return nil, err
	}
	return argmax(p, len(m.Classes)), nil
}

func argmax(p []float64, k int) []int {
	out := make([]int, len(p)/k)
	for i := range out {
		best := 0
		for c := 1; c < k; c++ {
			if p[i*k+c] > p[i*k+best] {
				best = c
			}
		}
		out[i] = best
	}
	return out
}

// PredictLabels returns the most probable class label per row.
func (m *Model) PredictLabels(f *Frame) ([]string, error) {
	idx, err := m.PredictClass(f)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(idx))
	for i, c := range idx {
		out[i] = m.Classes[c]
	}
	return out, nil
}

// Prediction is the result for one record.
type Prediction struct {
	Label string    // classification: the most probable class
	Proba []float64 // classification: probabilities in Classes order
	Value float64   // regression: the prediction
}

// PredictRecord scores one record keyed by feature name. Values may be
// numbers, numeric strings, strings (categorical) or nil (missing). Unknown
// keys, missing features and wrong types are errors naming the field (INF-4).
func (m *Model) PredictRecord(rec map[string]any) (*Prediction, error) {
	cols := make([]*Column, len(m.Prep.Features))
	known := make(map[string]bool, len(cols))
	for i, fi := range m.Prep.Features {
		known[fi.Name] = true
		v, ok := rec[fi.Name]
		if !ok {
			return nil, fmt.Errorf("%w: missing field %q", ErrSchema, fi.Name)
		}
		c, err := recordColumn(fi, v)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	for k := range rec {
		if !known[k] {
			return nil, fmt.Errorf("%w: unknown field %q", ErrSchema, k)
		}
	}
	return m.predictOne(cols)
}

// PredictRow scores one record given as strings in schema order ("" is missing).
func (m *Model) PredictRow(values []string) (*Prediction, error) {
	if len(values) != len(m.Prep.Features) {
		return nil, fmt.Errorf("%w: %d values for %d features", ErrSchema, len(values), len(m.Prep.Features))
	}
	cols := make([]*Column, len(values))
	for i, fi := range m.Prep.Features {
		var v any
		if values[i] != "" {
			v = values[i]
		}
		c, err := recordColumn(fi, v)
		if err != nil {
			return nil, err
		}
		cols[i] = c
	}
	return m.predictOne(cols)
}

func recordColumn(fi FeatureInfo, v any) (*Column, error) {
	if fi.Kind == Categorical {
		switch t := v.(type) {
		case nil:
			return CategoricalColumn(fi.Name, []string{""}), nil
		case string:
			return CategoricalColumn(fi.Name, []string{t}), nil
		}
		return nil, fmt.Errorf("%w: field %q must be a string, got %T", ErrSchema, fi.Name, v)
	}
	x := math.NaN()
	switch t := v.(type) {
	case nil:
	case float64:
		x = t
	case float32:
		x = float64(t)
	case int:
		x = float64(t)
	case int64:
		x = float64(t)
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: field %q: %q is not a number", ErrSchema, fi.Name, t)
		}
		x = f
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return nil, fmt.Errorf("%w: field %q: %q is not a number", ErrSchema, fi.Name, t)
		}
		x = f
	default:
		return nil, fmt.Errorf("%w: field %q must be a number, got %T", ErrSchema, fi.Name, v)
	}
	if math.IsInf(x, 0) || (v != nil && math.IsNaN(x)) {
		return nil, fmt.Errorf("%w: field %q is not finite", ErrSchema, fi.Name)
	}
	return NumericColumn(fi.Name, []float64{x}), nil
}

func (m *Model) predictOne(cols []*Column) (*Prediction, error) {
	f, err := NewFrame(cols...)
	if err != nil {
		return nil, err
	}
	s, err := m.Scores(f)
	if err != nil {
		return nil, err
	}
	if m.Task == Regression {
		return &Prediction{Value: s[0]}, nil
	}
	return &Prediction{Label: m.Classes[argmax(s, len(s))[0]], Proba: s}, nil
}

// labelsOf encodes f's target column against the model: class indices or values.
func (m *Model) labelsOf(f *Frame) ([]float64, error) {
	c, ok := f.Column(m.Target)
	if !ok {
		return nil, fmt.Errorf("%w: target column %q not in frame", ErrSchema, m.Target)
	}
	y := make([]float64, f.NumRows())
	if m.Task == Regression {
		if c.Kind != Numeric {
			return nil, fmt.Errorf("%w: target %q is not numeric", ErrSchema, m.Target)
		}
		for i, v := range c.Num {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: target %q row %d is missing or not finite", ErrSchema, m.Target, i+1)
			}
		}
		copy(y, c.Num)
		return y, nil
	}
	idx := make(map[string]int, len(m.Classes))
	for i, l := range m.Classes {
		idx[l] = i
	}
	for i, l := range c.Labels() {
		k, ok := idx[l]
		if !ok {
			return nil, fmt.Errorf("%w: target %q row %d has unknown class %q", ErrSchema, m.Target, i+1, l)
		}
		y[i] = float64(k)
	}
	return y, nil
}

// ExampleLosses returns each row's loss against f's target column:
// cross-entropy for classification, squared error for regression. These
// feed loss-threshold membership inference (PRIV-1).
func (m *Model) ExampleLosses(f *Frame) ([]float64, error) {
	y, err := m.labelsOf(f)
	if err != nil {
		return nil, err
	}
	s, err := m.Scores(f)
	if err != nil {
		return nil, err
	}
	w := m.OutputWidth()
	out := make([]float64, len(y))
	for i := range y {
		if m.Task == Regression {
			d := s[i] - y[i]
			out[i] = d * d
		} else {
			out[i] = metrics.ExampleLogLoss(int(y[i]), s[i*w:(i+1)*w])
		}
	}
	return out, nil
}

// Evaluation holds test metrics. Classification fills Accuracy, LogLoss, AUC
// (binary, or macro one-vs-rest), F1 (binary for class 1, else macro) and
// Confusion; regression fills RMSE, MAE and R2.
type Evaluation struct {
	Rows              int
	Accuracy, LogLoss float64
	AUC, F1           float64
	Confusion         [][]int
	RMSE, MAE, R2     float64
}

// Evaluate scores the model on f, which must hold the target column.
func (m *Model) Evaluate(f *Frame) (*Evaluation, error) {
	y, err := m.labelsOf(f)
	if err != nil {
		return nil, err
	}
	s, err := m.Scores(f)
	if err != nil {
		return nil, err
	}
	ev := &Evaluation{Rows: len(y)}
	if m.Task == Regression {
		r, err := metrics.Regress(y, s)
		if err != nil {
			return nil, err
		}
		ev.RMSE, ev.MAE, ev.R2 = r.RMSE, r.MAE, r.R2
		return ev, nil
	}
	k := len(m.Classes)
	yi := asInts(y)
	pred := argmax(s, k)
	if ev.Accuracy, err = metrics.Accuracy(yi, pred); err != nil {
		return nil, err
	}
	if ev.LogLoss, err = metrics.LogLoss(yi, s, k); err != nil {
		return nil, err
	}
	if ev.F1, err = metrics.F1(yi, pred, k); err != nil {
		return nil, err
	}
	if ev.Confusion, err = metrics.ConfusionMatrix(yi, pred, k); err != nil {
		return nil, err
	}
	// AUC is undefined when the evaluation set lacks a class; leave it NaN.
	if ev.AUC, err = metrics.MacroAUC(yi, s, k); err != nil {
		ev.AUC = math.NaN()
	}
	return ev, nil
}
