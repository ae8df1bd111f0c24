package assess

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/ml"
)

// PoisonConfig describes the label-flip poisoning drill (DATA-5): copies
// of the training data with a share of labels flipped go through the
// dataset package's label screening, and a model is trained with and
// without the flagged rows.
type PoisonConfig struct {
	Data  *ml.Frame // the clean data with the label column
	Label string
	// Spec trains the victim model (Target is set here).
	Spec ml.TrainSpec
	// Rates of flipped training labels (default 0, 0.05, 0.10, 0.20; 0
	// measures false flags on clean data).
	Rates        []float64
	TestFraction float64 // clean held-out share (default 0.25)
	Seed         uint64
	Progress     func(step string)
}

// PoisonPoint is one flip rate.
type PoisonPoint struct {
	Rate      float64 `json:"rate"`
	Flipped   int     `json:"flipped"`
	Flagged   int     `json:"flagged"`
	Recall    float64 `json:"recall"`
	Precision float64 `json:"precision"`
	// FlaggedShare: flagged rows over all training rows.
	FlaggedShare float64 `json:"flagged_share"`
	// Accuracy on the clean test rows of the model trained on every
	// (poisoned) row, and on the rows screening did not flag.
	AccuracyUnscreened float64 `json:"accuracy_unscreened"`
	AccuracyScreened   float64 `json:"accuracy_screened"`
	Skipped            string  `json:"skipped,omitempty"`
}

// PoisonReport is the DATA-5 drill section of a report.
type PoisonReport struct {
	Screening string        `json:"screening"`
	TrainRows int           `json:"train_rows"`
	TestRows  int           `json:"test_rows"`
	Points    []PoisonPoint `json:"points"`
}

// Poison runs the drill.
func Poison(ctx context.Context, cfg PoisonConfig) (*PoisonReport, error) {
	if cfg.Data == nil {
		return nil, fmt.Errorf("%w: the poisoning drill needs data", ErrInput)
	}
	if len(cfg.Rates) == 0 {
		cfg.Rates = []float64{0, 0.05, 0.10, 0.20}
	}
	for _, r := range cfg.Rates {
		if !(r >= 0 && r < 0.5) {
			return nil, fmt.Errorf("%w: flip rate %g outside [0, 0.5)", ErrInput, r)
		}
	}
	if cfg.TestFraction == 0 {
		cfg.TestFraction = 0.25
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
	}
	lc, ok := cfg.Data.Column(cfg.Label)
	if !ok {
		return nil, fmt.Errorf("%w: label %q not in the data", ErrInput, cfg.Label)
	}
	labels := lc.Labels()
	trIdx, teIdx := ml.StratifiedSplit(labels, cfg.TestFraction, cfg.Seed)
	train, test := cfg.Data.Take(trIdx), cfg.Data.Take(teIdx)
	classes := slices.Compact(slices.Sorted(slices.Values(labels)))
	rep := &PoisonReport{TrainRows: len(trIdx), TestRows: len(teIdx)}
	for ri, rate := range cfg.Rates {
		cfg.Progress(fmt.Sprintf("poisoning drill: %.0f %% flipped labels", rate*100))
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(ri)+0x9015))
		given := make([]string, len(trIdx))
		for k, i := range trIdx {
			given[k] = labels[i]
		}
		nFlip := int(math.Round(rate * float64(len(given))))
		flipped := make([]bool, len(given))
		for _, k := range rng.Perm(len(given))[:nFlip] {
			others := slices.DeleteFunc(slices.Clone(classes), func(c string) bool { return c == given[k] })
			given[k] = others[rng.IntN(len(others))]
			flipped[k] = true
		}
		poisoned, err := withLabels(train, cfg.Label, given)
		if err != nil {
			return nil, err
		}
		pt := PoisonPoint{Rate: rate, Flipped: nFlip}
		flags, name, skipped, err := screen(ctx, poisoned, cfg.Label, cfg.Seed)
		if err != nil {
			return nil, err
		}
		rep.Screening = name
		pt.Skipped = skipped
		tp := 0
		var keep []int
		for k, f := range flags {
			if f {
				pt.Flagged++
				if flipped[k] {
					tp++
				}
			} else {
				keep = append(keep, k)
			}
		}
		pt.FlaggedShare = float64(pt.Flagged) / float64(len(flags))
		if nFlip > 0 {
			pt.Recall = float64(tp) / float64(nFlip)
		}
		if pt.Flagged > 0 {
			pt.Precision = float64(tp) / float64(pt.Flagged)
		}
		if pt.AccuracyUnscreened, err = trainAccuracy(ctx, poisoned, test, cfg); err != nil {
			return nil, err
		}
		if pt.AccuracyScreened, err = trainAccuracy(ctx, poisoned.Take(keep), test, cfg); err != nil {
			return nil, err
		}
		rep.Points = append(rep.Points, pt)
	}
	return rep, nil
}

func trainAccuracy(ctx context.Context, train, test *ml.Frame, cfg PoisonConfig) (float64, error) {
	spec := cfg.Spec
	spec.Target, spec.Seed = cfg.Label, cfg.Seed
	m, err := ml.Train(ctx, train, spec, nil)
	if err != nil {
		return 0, fmt.Errorf("poisoning drill: training: %w", err)
	}
	ev, err := m.Evaluate(test)
	if err != nil {
		return 0, fmt.Errorf("poisoning drill: evaluating: %w", err)
	}
	return ev.Accuracy, nil
}

// withLabels replaces the label column.
func withLabels(f *ml.Frame, label string, given []string) (*ml.Frame, error) {
	var cols []*ml.Column
	for _, name := range f.Names() {
		c, _ := f.Column(name)
		if name == label {
			c = ml.CategoricalColumn(label, given)
		}
		cols = append(cols, c)
	}
	out, err := ml.NewFrame(cols...)
	if err != nil {
		return nil, fmt.Errorf("assess: %w", err)
	}
	return out, nil
}

// screen runs the dataset package's label screening (DATA-5) over the
// frame, written as the CSV an upload would carry, and returns which rows
// it flags.
func screen(ctx context.Context, f *ml.Frame, label string, seed uint64) ([]bool, string, string, error) {
	var buf bytes.Buffer
	if err := writeCSV(&buf, f); err != nil {
		return nil, "", "", err
	}
	res, err := dataset.Ingest(ctx, &buf, dataset.Options{Label: label, Seed: seed}, io.Discard)
	if err != nil {
		return nil, "", "", fmt.Errorf("poisoning drill: ingest: %w", err)
	}
	lf, err := dataset.ScreenLabels(ctx, res.Sample, label, res.Report.Columns, seed)
	if err != nil {
		return nil, "", "", fmt.Errorf("poisoning drill: screening: %w", err)
	}
	flags := make([]bool, f.NumRows())
	for _, s := range lf.Suspects {
		if s.Row >= 1 && int(s.Row) <= len(flags) {
			flags[s.Row-1] = true
		}
	}
	return flags, lf.Learner, lf.Skipped, nil
}

func writeCSV(w io.Writer, f *ml.Frame) error {
	cw := csv.NewWriter(w)
	names := f.Names()
	if err := cw.Write(names); err != nil {
		return err
	}
	cols := make([]*ml.Column, len(names))
	for j, n := range names {
		cols[j], _ = f.Column(n)
	}
	rec := make([]string, len(names))
	for i := range f.NumRows() {
		for j, c := range cols {
			if c.Kind == ml.Numeric {
				rec[j] = ""
				if v := c.Num[i]; !math.IsNaN(v) {
					rec[j] = strconv.FormatFloat(v, 'g', -1, 64)
				}
			} else {
				rec[j] = c.Cat[i]
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
