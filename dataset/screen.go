package dataset

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/rampart-mlaas/rampart/ml"
)

// Label screening (DATA-5) is confident learning (Northcutt et al.): every
// row's class probabilities come from models that never saw the row
// (stratified 5-fold, out-of-fold; logistic regression and gradient-boosted
// trees from package ml, averaged). The calibrated confident joint estimates
// how many rows of each class are mislabelled, that many rows with the
// largest margin against their label are candidates, and a candidate is
// flagged when its given label's probability is below MaxGivenProb.
const (
	screenFolds     = 5
	minScreenRows   = 50
	maxScreenLevels = 50
	// MaxGivenProb is the largest out-of-fold probability of the given label
	// for which a row may be flagged.
	MaxGivenProb = 0.3
)

// ScreenLabels runs label-flip screening over the sample. profiles give
// the column types; the learner skips free-text columns.
func ScreenLabels(ctx context.Context, s *Sample, label string, profiles []ColumnProfile, seed uint64) (*LabelFlipReport, error) {
	rep := &LabelFlipReport{Learner: "5-fold out-of-fold logreg+gbdt, confident learning", Threshold: MaxGivenProb,
		Screened: len(s.Rows), Sampled: int64(len(s.Rows)) < s.Total}
	li := slices.Index(s.Header, label)
	if li < 0 {
		return nil, fmt.Errorf("screen: label %q not in sample", label)
	}
	// Rows with a label.
	var idx []int
	for i, r := range s.Rows {
		if r[li] != "" {
			idx = append(idx, i)
		}
	}
	labels := make([]string, len(idx))
	for k, i := range idx {
		labels[k] = s.Rows[i][li]
	}
	counts := map[string]int{}
	for _, l := range labels {
		counts[l]++
	}
	if len(idx) < minScreenRows {
		rep.Skipped = fmt.Sprintf("fewer than %d labelled rows", minScreenRows)
		return rep, nil
	}
	if len(counts) < 2 || len(counts) > maxScreenLevels {
		rep.Skipped = fmt.Sprintf("label has %d classes (screening needs 2 to %d)", len(counts), maxScreenLevels)
		return rep, nil
	}
	for _, n := range counts {
		if n < screenFolds {
			rep.Skipped = "a class has fewer rows than folds"
			return rep, nil
		}
	}
	var cols []*ml.Column
	for ci, name := range s.Header {
		if ci == li {
			continue
		}
		var p *ColumnProfile
		for i := range profiles {
			if profiles[i].Name == name {
				p = &profiles[i]
			}
		}
		if p == nil {
			continue
		}
		switch p.Type {
		case TypeNumeric, TypeInteger:
			v := make([]float64, len(idx))
			for k, i := range idx {
				x, ok := parseNumber([]byte(s.Rows[i][ci]))
				if !ok {
					x = math.NaN()
				}
				v[k] = x
			}
			cols = append(cols, ml.NumericColumn(name, v))
		case TypeBoolean, TypeCategorical:
			v := make([]string, len(idx))
			lv := map[string]bool{}
			for k, i := range idx {
				v[k] = s.Rows[i][ci]
				lv[v[k]] = true
			}
			if len(lv) <= maxScreenLevels {
				cols = append(cols, ml.CategoricalColumn(name, v))
			}
		}
	}
	if len(cols) == 0 {
		rep.Skipped = "no usable feature columns"
		return rep, nil
	}
	target := "__rampart_label"
	for slices.ContainsFunc(cols, func(c *ml.Column) bool { return c.Name == target }) {
		target += "_"
	}
	cols = append(cols, ml.CategoricalColumn(target, labels))
	frame, err := ml.NewFrame(cols...)
	if err != nil {
		return nil, fmt.Errorf("screen: %w", err)
	}
	classes := make([]string, 0, len(counts))
	for c := range counts {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	ci := map[string]int{}
	for i, c := range classes {
		ci[c] = i
	}
	probs, err := outOfFold(ctx, frame, target, labels, classes, seed)
	if err != nil {
		return nil, err
	}
	flags := confidentFlags(probs, labels, ci, len(classes))
	for k, f := range flags {
		if f && probs[k][ci[labels[k]]] < MaxGivenProb {
			rep.Suspects = append(rep.Suspects, Suspect{Row: s.RowNum[idx[k]], Score: round4(probs[k][ci[labels[k]]]), Given: labels[k]})
		}
	}
	slices.SortFunc(rep.Suspects, func(a, b Suspect) int { return int(a.Row - b.Row) })
	rep.Flagged = len(rep.Suspects)
	return rep, nil
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// outOfFold returns each row's class probabilities from models trained on
// the other folds (stratified), averaging logistic regression and GBDT.
func outOfFold(ctx context.Context, f *ml.Frame, target string, labels, classes []string, seed uint64) ([][]float64, error) {
	n := len(labels)
	fold := make([]int, n)
	byClass := map[string][]int{}
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	rng := rand.New(rand.NewPCG(seed, 17))
	for _, c := range classes {
		rows := byClass[c]
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		for k, r := range rows {
			fold[r] = k % screenFolds
		}
	}
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, len(classes))
	}
	specs := screenSpecs(target, seed)
	for k := range screenFolds {
		var tr, te []int
		for i, fo := range fold {
			if fo == k {
				te = append(te, i)
			} else {
				tr = append(tr, i)
			}
		}
		train, test := f.Take(tr), f.Take(te)
		for _, spec := range specs {
			m, err := ml.Train(ctx, train, spec, nil)
			if err != nil {
				return nil, fmt.Errorf("screen: train %s: %w", spec.Algorithm, err)
			}
			p, err := m.PredictProba(test)
			if err != nil {
				return nil, fmt.Errorf("screen: predict: %w", err)
			}
			w := len(m.Classes)
			for j, row := range te {
				for c, name := range m.Classes {
					out[row][slices.Index(classes, name)] += p[j*w+c] / float64(len(specs))
				}
			}
		}
	}
	return out, nil
}

// confidentFlags is confident learning's "prune by noise rate": the
// confident joint (rows whose most probable above-threshold class differs
// from the given label, thresholds being each class's mean
// self-confidence) estimates how many rows of each given class are
// mislabelled; that many rows of the class, those with the largest margin
// max_{j≠i} p_j − p_i, are flagged. The count adapts to the data: clean
// data yields a small joint off-diagonal and few flags.
func confidentFlags(probs [][]float64, labels []string, ci map[string]int, nc int) []bool {
	thr := make([]float64, nc)
	cnt := make([]float64, nc)
	for i, l := range labels {
		c := ci[l]
		thr[c] += probs[i][c]
		cnt[c]++
	}
	for c := range thr {
		if cnt[c] > 0 {
			thr[c] /= cnt[c]
		}
	}
	k := make([]int, nc)
	inJoint := make([]int, nc)
	type cand struct {
		row    int
		margin float64
	}
	byClass := make([][]cand, nc)
	for i, l := range labels {
		given := ci[l]
		best, bestP := -1, -1.0
		other := 0.0
		for c := range nc {
			if probs[i][c] >= thr[c] && probs[i][c] > bestP {
				best, bestP = c, probs[i][c]
			}
			if c != given && probs[i][c] > other {
				other = probs[i][c]
			}
		}
		if best >= 0 {
			inJoint[given]++
			if best != given {
				k[given]++
			}
		}
		byClass[given] = append(byClass[given], cand{i, other - probs[i][given]})
	}
	out := make([]bool, len(labels))
	for c := range nc {
		cs := byClass[c]
		// Calibrate: rows above no threshold are outside the joint; scale
		// its row to the class size.
		if inJoint[c] > 0 {
			k[c] = int(math.Round(float64(k[c]) * float64(len(cs)) / float64(inJoint[c])))
		}
		sort.SliceStable(cs, func(a, b int) bool { return cs[a].margin > cs[b].margin })
		for _, x := range cs[:min(k[c], len(cs))] {
			if x.margin > 0 { // never flag a row whose label the model prefers
				out[x.row] = true
			}
		}
	}
	return out
}

// screenSpecs are the learners whose out-of-fold probabilities are averaged.
func screenSpecs(target string, seed uint64) []ml.TrainSpec {
	return []ml.TrainSpec{
		{Algorithm: ml.LogReg, Target: target, Params: map[string]string{"C": "1", "max_iter": "200"}, Seed: seed},
		{Algorithm: ml.GBDT, Target: target, Params: map[string]string{"n_estimators": "150", "max_depth": "5", "learning_rate": "0.1"}, Seed: seed},
	}
}
