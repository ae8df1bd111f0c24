// Package ml is Rampart's pure-Go machine-learning engine: columnar frames,
// preprocessing fitted into the model, four learners (logistic regression,
// ridge regression, histogram GBDT, MLP), differentially private training,
// metrics and a canonical, versioned artifact format.
//
// The one entry point for training is Train; a Model scores raw frames or
// records, reports per-example losses, and round-trips through Marshal and
// Unmarshal byte for byte (TRAIN-6). The package depends on no server code.
package ml

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/rampart-mlaas/rampart/ml/dp"
	"github.com/rampart-mlaas/rampart/ml/gbdt"
	"github.com/rampart-mlaas/rampart/ml/linear"
	"github.com/rampart-mlaas/rampart/ml/mlp"
)

// Algorithm names.
const (
	LogReg = "logreg"
	LinReg = "linreg"
	GBDT   = "gbdt"
	MLP    = "mlp"
)

// Task is what the model predicts.
type Task string

// Tasks.
const (
	Classification Task = "classification"
	Regression     Task = "regression"
)

// ErrDiverged is wrapped when training produced a non-finite loss (TRAIN-4).
var ErrDiverged = errors.New("training diverged: loss is not finite")

// DPSpec asks for differentially private training (TRAIN-2).
type DPSpec struct {
	Epsilon float64
	Delta   float64 // must be < 1/N
	// MaxGradNorm is the per-example clipping bound (default 1).
	MaxGradNorm float64
	// Seeded makes the noise reproducible from TrainSpec.Seed. NOT PRIVATE:
	// for tests only; the model records Private=false.
	Seeded bool
}

// TrainSpec describes one training run.
type TrainSpec struct {
	Algorithm string // logreg, linreg, gbdt, mlp
	Task      Task   // default: regression for linreg, classification otherwise
	Target    string
	Features  []string // default: every column but the target
	// Params uses scikit-learn / XGBoost names; unknown names are errors.
	Params map[string]string
	Seed   uint64
	DP     *DPSpec
}

// Progress is streamed to the job runner during training.
type Progress struct {
	Stage string  // "preprocess", "epoch", "iteration", "trees", "done"
	Step  int     // epochs, iterations or trees so far
	Total int     // planned steps, 0 when unknown
	Loss  float64 // training loss at Step (NaN when not computed)
}

// DPReport records the privacy guarantee of a trained model.
type DPReport struct {
	Epsilon, Delta  float64
	NoiseMultiplier float64
	MaxGradNorm     float64
	SampleRate      float64
	Steps           int
	Accountant      string // which analysis and conversion produced Epsilon
	Private         bool   // false when trained with seeded (test) noise
}

// TrainInfo is training metadata stored in the artifact. It holds nothing
// that varies between identical runs (no timestamps), so digests repeat.
type TrainInfo struct {
	Rows       int
	Width      int // encoded feature columns
	Iterations int
	FinalLoss  float64
	Warnings   []string
}

// Model is a trained model with its preprocessing and schema.
type Model struct {
	Algorithm string
	Task      Task
	Target    string
	Classes   []string // sorted class labels; empty for regression
	Params    map[string]string
	Seed      uint64
	Prep      *Preprocessor
	DP        *DPReport
	Info      TrainInfo

	linear *linear.Model
	gbdt   *gbdt.Model
	mlp    *mlp.Model
}

// Schema lists the input features with their training statistics.
func (m *Model) Schema() []FeatureInfo { return m.Prep.Features }

// Train fits spec.Algorithm on frame f. progress may be nil. Cancelling ctx
// stops training between iterations with ctx's error.
func Train(ctx context.Context, f *Frame, spec TrainSpec, progress func(Progress)) (*Model, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	m := &Model{Algorithm: spec.Algorithm, Task: spec.Task, Target: spec.Target, Params: map[string]string{}, Seed: spec.Seed}
	for k, v := range spec.Params {
		m.Params[k] = v
	}
	switch spec.Algorithm {
	case LogReg, GBDT, MLP:
		if m.Task == "" {
			m.Task = Classification
		}
	case LinReg:
		if m.Task == "" {
			m.Task = Regression
		}
	default:
		return nil, fmt.Errorf("%w: unknown algorithm %q (logreg, linreg, gbdt, mlp)", ErrParam, spec.Algorithm)
	}
	if (spec.Algorithm == LogReg && m.Task != Classification) || (spec.Algorithm == LinReg && m.Task != Regression) ||
		(m.Task != Classification && m.Task != Regression) {
		return nil, fmt.Errorf("%w: algorithm %s cannot do task %q", ErrParam, spec.Algorithm, m.Task)
	}
	if spec.DP != nil && spec.Algorithm != LogReg && spec.Algorithm != MLP {
		return nil, fmt.Errorf("%w: differential privacy is available for logreg and mlp, not %s", ErrParam, spec.Algorithm)
	}
	features := spec.Features
	if len(features) == 0 {
		for _, c := range f.Columns {
			if c.Name != spec.Target {
				features = append(features, c.Name)
			}
		}
	}
	for _, name := range features {
		if name == spec.Target {
			return nil, fmt.Errorf("%w: target %q is also a feature", ErrData, name)
		}
	}
	n := f.NumRows()
	y, classes, err := targetValues(f, spec.Target, m.Task)
	if err != nil {
		return nil, err
	}
	m.Classes = classes
	// Trees route missing values natively and need no scaling; linear models
	// and networks get mean imputation and standardisation.
	tree := spec.Algorithm == GBDT
	prep, warnings, err := FitPreprocessor(f, features, !tree, !tree)
	if err != nil {
		return nil, err
	}
	m.Prep = prep
	x, err := prep.Transform(f)
	if err != nil {
		return nil, err
	}
	d := prep.Width()
	m.Info = TrainInfo{Rows: n, Width: d, Warnings: warnings}
	progress(Progress{Stage: "preprocess", Loss: math.NaN()})
	k := len(classes)
	pr := newParamReader(spec.Params)
	switch spec.Algorithm {
	case LogReg:
		err = m.trainLogReg(ctx, pr, spec, x, n, d, y, k, progress)
	case LinReg:
		alpha := pr.float("alpha", 1, 0, math.MaxFloat64)
		if err = pr.done(); err == nil {
			m.linear, err = linear.FitRidge(x, n, d, y, alpha)
			m.Info.Iterations = 1
		}
	case GBDT:
		err = m.trainGBDT(ctx, pr, spec, x, n, d, y, k, progress)
	case MLP:
		err = m.trainMLP(ctx, pr, spec, x, n, d, y, k, progress)
	}
	if err != nil {
		return nil, mapDiverged(err)
	}
	if spec.Algorithm == LinReg {
		if losses, lerr := m.ExampleLosses(f); lerr == nil {
			var s float64
			for _, l := range losses {
				s += l
			}
			m.Info.FinalLoss = s / float64(len(losses))
		}
	}
	if math.IsNaN(m.Info.FinalLoss) || math.IsInf(m.Info.FinalLoss, 0) {
		return nil, fmt.Errorf("%s: final training loss %g: %w", spec.Algorithm, m.Info.FinalLoss, ErrDiverged)
	}
	progress(Progress{Stage: "done", Step: m.Info.Iterations, Total: m.Info.Iterations, Loss: m.Info.FinalLoss})
	return m, nil
}

// mapDiverged makes every learner's divergence error match ml.ErrDiverged.
func mapDiverged(err error) error {
	if errors.Is(err, linear.ErrDiverged) || errors.Is(err, gbdt.ErrDiverged) || errors.Is(err, mlp.ErrDiverged) || errors.Is(err, dp.ErrDiverged) {
		return fmt.Errorf("%w: %w", ErrDiverged, err)
	}
	return err
}

// targetValues encodes the target: class indices into sorted labels (numeric
// labels sorted numerically) or regression values.
func targetValues(f *Frame, target string, task Task) ([]float64, []string, error) {
	c, ok := f.Column(target)
	if !ok {
		return nil, nil, fmt.Errorf("%w: target column %q not in frame", ErrData, target)
	}
	n := f.NumRows()
	if n == 0 {
		return nil, nil, fmt.Errorf("%w: no rows", ErrData)
	}
	y := make([]float64, n)
	if task == Regression {
		if c.Kind != Numeric {
			return nil, nil, fmt.Errorf("%w: regression target %q is not numeric", ErrData, target)
		}
		for i, v := range c.Num {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("%w: target %q row %d is missing or not finite", ErrData, target, i+1)
			}
			y[i] = v
		}
		return y, nil, nil
	}
	labels := c.Labels()
	seen := map[string]bool{}
	for i, l := range labels {
		if l == "" {
			return nil, nil, fmt.Errorf("%w: target %q row %d is missing", ErrData, target, i+1)
		}
		seen[l] = true
	}
	classes := make([]string, 0, len(seen))
	for l := range seen {
		classes = append(classes, l)
	}
	if c.Kind == Numeric {
		sort.Slice(classes, func(a, b int) bool {
			x, _ := strconv.ParseFloat(classes[a], 64)
			z, _ := strconv.ParseFloat(classes[b], 64)
			return x < z
		})
	} else {
		sort.Strings(classes)
	}
	switch {
	case len(classes) < 2:
		return nil, nil, fmt.Errorf("%w: target %q has a single class %q", ErrData, target, classes[0])
	case len(classes) > n/2:
		return nil, nil, fmt.Errorf("%w: target %q has %d classes for %d rows (need at least 2 rows per class)", ErrData, target, len(classes), n)
	}
	idx := make(map[string]int, len(classes))
	for i, l := range classes {
		idx[l] = i
	}
	for i, l := range labels {
		y[i] = float64(idx[l])
	}
	return y, classes, nil
}

func asInts(y []float64) []int {
	out := make([]int, len(y))
	for i, v := range y {
		out[i] = int(v)
	}
	return out
}

func (m *Model) trainLogReg(ctx context.Context, pr *paramReader, spec TrainSpec, x []float64, n, d int, y []float64, k int, progress func(Progress)) error {
	c := pr.float("C", 1, 1e-12, math.MaxFloat64)
	maxIter := pr.int("max_iter", 100, 1, 1_000_000)
	tol := pr.float("tol", 1e-4, 0, 1)
	if spec.DP != nil {
		cfg, err := m.dpConfig(pr, spec, n, "learning_rate", 0.1, 256, 20)
		if err != nil {
			return err
		}
		if err := pr.done(); err != nil {
			return err
		}
		// The L2 penalty of scikit-learn's objective, per example.
		cfg.L2 = 1 / (c * float64(n))
		lm, err := linear.FitLogisticDP(ctx, x, n, d, asInts(y), k, cfg, func(epoch int, loss float64) {
			m.Info.Iterations, m.Info.FinalLoss = epoch, loss
			progress(Progress{Stage: "epoch", Step: epoch, Total: cfg.Epochs, Loss: loss})
		})
		m.linear = lm
		return err
	}
	if err := pr.done(); err != nil {
		return err
	}
	lm, loss, err := linear.FitLogistic(ctx, x, n, d, asInts(y), k, linear.Params{C: c, MaxIter: maxIter, Tol: tol}, func(iter int, loss float64) {
		m.Info.Iterations = iter
		progress(Progress{Stage: "iteration", Step: iter, Total: maxIter, Loss: loss})
	})
	m.linear = lm
	m.Info.FinalLoss = loss
	return err
}

// dpConfig reads the DP-SGD parameters and picks the noise multiplier for
// the target (ε, δ) with the RDP accountant (TRAIN-2).
func (m *Model) dpConfig(pr *paramReader, spec TrainSpec, n int, lrName string, lr float64, batch, epochs int) (dp.SGDConfig, error) {
	cfg := dp.SGDConfig{
		Epochs:       pr.int("epochs", epochs, 1, 100_000),
		BatchSize:    pr.int("batch_size", batch, 1, math.MaxInt32),
		LearningRate: pr.float(lrName, lr, 1e-12, 100),
		MaxGradNorm:  spec.DP.MaxGradNorm,
	}
	if cfg.MaxGradNorm == 0 {
		cfg.MaxGradNorm = 1
	}
	if cfg.BatchSize > n {
		cfg.BatchSize = n
	}
	e, delta := spec.DP.Epsilon, spec.DP.Delta
	if !(e > 0) || math.IsInf(e, 0) || !(delta > 0) || !(cfg.MaxGradNorm > 0) {
		return cfg, fmt.Errorf("%w: DP needs ε > 0, δ > 0 and max_grad_norm > 0", ErrParam)
	}
	// TRAIN-2: δ must be below 1/N, or the "guarantee" allows publishing
	// some individual's record outright.
	if delta >= 1/float64(n) {
		return cfg, fmt.Errorf("%w: δ=%g must be below 1/N = %g", ErrParam, delta, 1/float64(n))
	}
	q := float64(cfg.BatchSize) / float64(n)
	steps := cfg.Steps(n)
	sigma, err := dp.NoiseMultiplier(e, delta, q, steps)
	if err != nil {
		return cfg, fmt.Errorf("choosing the noise multiplier: %w", err)
	}
	achieved, _, err := dp.Epsilon(q, sigma, steps, delta, nil)
	if err != nil {
		return cfg, err
	}
	cfg.NoiseMultiplier = sigma
	if spec.DP.Seeded {
		cfg.Noise = dp.SeededNoise(spec.Seed)
	} else {
		cfg.Noise = dp.SecureNoise()
	}
	m.DP = &DPReport{Epsilon: achieved, Delta: delta, NoiseMultiplier: sigma, MaxGradNorm: cfg.MaxGradNorm,
		SampleRate: q, Steps: steps, Accountant: "rdp-poisson-subsampled-gaussian (Mironov et al. 2019); eps via Balle et al. 2020 Prop. 12",
		Private: cfg.Noise.Private()}
	return cfg, nil
}

func (m *Model) trainGBDT(ctx context.Context, pr *paramReader, spec TrainSpec, x []float64, n, d int, y []float64, k int, progress func(Progress)) error {
	def := gbdt.DefaultParams()
	p := gbdt.Params{
		NEstimators:         pr.int("n_estimators", def.NEstimators, 1, 100_000),
		MaxDepth:            pr.int("max_depth", def.MaxDepth, 0, 32),
		MaxLeaves:           pr.int("max_leaves", def.MaxLeaves, 0, 1<<20),
		LearningRate:        pr.float("learning_rate", def.LearningRate, 0, 1),
		Subsample:           pr.float("subsample", def.Subsample, 0, 1),
		ColsampleByTree:     pr.float("colsample_bytree", def.ColsampleByTree, 0, 1),
		RegLambda:           pr.float("reg_lambda", def.RegLambda, 0, math.MaxFloat64),
		Gamma:               pr.float("gamma", def.Gamma, 0, math.MaxFloat64),
		MinChildWeight:      pr.float("min_child_weight", def.MinChildWeight, 0, math.MaxFloat64),
		MaxBin:              pr.int("max_bin", def.MaxBin, 2, 256),
		EarlyStoppingRounds: pr.int("early_stopping_rounds", 0, 0, 100_000),
		ValidationFraction:  pr.float("validation_fraction", def.ValidationFraction, 0, 1),
	}
	// XGBoost's max_bin counts its missing-value bin; ours keeps that bin
	// apart, so 256 (a common XGBoost setting) maps to 255 real bins.
	p.MaxBin = min(p.MaxBin, 255)
	if err := pr.done(); err != nil {
		return err
	}
	gm, err := gbdt.Fit(ctx, x, n, d, y, k, p, spec.Seed, func(trees int, train, valid float64) {
		m.Info.Iterations = trees
		if !math.IsNaN(train) {
			m.Info.FinalLoss = train
		}
		progress(Progress{Stage: "trees", Step: trees, Total: p.NEstimators, Loss: train})
	})
	if err != nil {
		return err
	}
	m.gbdt = gm
	m.Info.Iterations = len(gm.Trees) / gm.Outputs
	return nil
}

func (m *Model) trainMLP(ctx context.Context, pr *paramReader, spec TrainSpec, x []float64, n, d int, y []float64, k int, progress func(Progress)) error {
	def := mlp.DefaultParams()
	p := mlp.Params{
		HiddenLayerSizes: pr.ints("hidden_layer_sizes", def.HiddenLayerSizes, 1, 4096, 3),
		Alpha:            pr.float("alpha", def.Alpha, 0, math.MaxFloat64),
		Tol:              pr.float("tol", def.Tol, 0, 1),
		NIterNoChange:    pr.int("n_iter_no_change", def.NIterNoChange, 0, 1_000_000),
	}
	report := func(epoch int, loss float64) {
		m.Info.Iterations, m.Info.FinalLoss = epoch, loss
		progress(Progress{Stage: "epoch", Step: epoch, Loss: loss})
	}
	if spec.DP != nil {
		p.LearningRate, p.BatchSize, p.Epochs = 1, 1, 1 // unused by DP-SGD; validated below
		cfg, err := m.dpConfig(pr, spec, n, "learning_rate_init", 0.01, 256, 30)
		if err != nil {
			return err
		}
		if err := pr.done(); err != nil {
			return err
		}
		cfg.Adam = true
		cfg.L2 = p.Alpha / float64(n)
		m.mlp, err = mlp.FitDP(ctx, x, n, d, y, k, p, spec.Seed, cfg, report)
		return err
	}
	p.LearningRate = pr.float("learning_rate_init", def.LearningRate, 1e-12, 100)
	p.BatchSize = pr.int("batch_size", def.BatchSize, 1, math.MaxInt32)
	p.Epochs = pr.int("epochs", def.Epochs, 1, 1_000_000)
	if err := pr.done(); err != nil {
		return err
	}
	var err error
	m.mlp, err = mlp.Fit(ctx, x, n, d, y, k, p, spec.Seed, report)
	return err
}
