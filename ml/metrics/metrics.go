// Package metrics scores predictions: accuracy, log-loss, ROC AUC (binary and
// macro one-vs-rest), F1, confusion matrices, RMSE, MAE and R².
//
// Classes are integer indices 0..k-1; probabilities are row-major n×k. The
// definitions follow scikit-learn's so numbers can be compared side by side.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrInput is wrapped by every argument error.
var ErrInput = errors.New("invalid metric input")

// eps clips probabilities in log-loss, as scikit-learn does, so one confident
// mistake gives a large but finite loss.
const eps = 1e-15

// Accuracy is the fraction of equal entries.
func Accuracy(y, pred []int) (float64, error) {
	if len(y) != len(pred) || len(y) == 0 {
		return 0, fmt.Errorf("%w: %d labels, %d predictions", ErrInput, len(y), len(pred))
	}
	ok := 0
	for i := range y {
		if y[i] == pred[i] {
			ok++
		}
	}
	return float64(ok) / float64(len(y)), nil
}

// ExampleLogLoss is the cross-entropy of one example: -log p[y], clipped.
func ExampleLogLoss(y int, proba []float64) float64 {
	p := min(max(proba[y], eps), 1-eps)
	return -math.Log(p)
}

// LogLoss is the mean cross-entropy of row-major n×k probabilities.
func LogLoss(y []int, proba []float64, k int) (float64, error) {
	if k < 2 || len(proba) != len(y)*k || len(y) == 0 {
		return 0, fmt.Errorf("%w: %d labels, %d probabilities, %d classes", ErrInput, len(y), len(proba), k)
	}
	var s float64
	for i, c := range y {
		if c < 0 || c >= k {
			return 0, fmt.Errorf("%w: label %d out of range", ErrInput, c)
		}
		s += ExampleLogLoss(c, proba[i*k:(i+1)*k])
	}
	return s / float64(len(y)), nil
}

// AUC is the area under the ROC curve for binary labels (1 = positive),
// computed from ranks with ties counted as one half (the Mann-Whitney U).
func AUC(y []int, score []float64) (float64, error) {
	if len(y) != len(score) || len(y) == 0 {
		return 0, fmt.Errorf("%w: %d labels, %d scores", ErrInput, len(y), len(score))
	}
	idx := make([]int, len(y))
	for i := range idx {
		idx[i] = i
		if math.IsNaN(score[i]) {
			return 0, fmt.Errorf("%w: NaN score at row %d", ErrInput, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return score[idx[a]] < score[idx[b]] })
	var pos, neg int
	var rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && score[idx[j]] == score[idx[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2 // ranks are 1-based; ties share the mean rank
		for t := i; t < j; t++ {
			if y[idx[t]] == 1 {
				pos++
				rankSum += avgRank
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return 0, fmt.Errorf("%w: AUC needs both classes (%d positive, %d negative)", ErrInput, pos, neg)
	}
	return (rankSum - float64(pos)*float64(pos+1)/2) / (float64(pos) * float64(neg)), nil
}

// MacroAUC averages one-vs-rest AUCs over the k classes (scikit-learn's
// roc_auc_score(multi_class="ovr", average="macro")). For k = 2 it is the
// binary AUC of class 1.
func MacroAUC(y []int, proba []float64, k int) (float64, error) {
	if k < 2 || len(proba) != len(y)*k {
		return 0, fmt.Errorf("%w: %d labels, %d probabilities, %d classes", ErrInput, len(y), len(proba), k)
	}
	score := make([]float64, len(y))
	bin := make([]int, len(y))
	classes := []int{1}
	if k > 2 {
		classes = classes[:0]
		for c := range k {
			classes = append(classes, c)
		}
	}
	var sum float64
	for _, c := range classes {
		for i := range y {
			score[i] = proba[i*k+c]
			bin[i] = 0
			if y[i] == c {
				bin[i] = 1
			}
		}
		a, err := AUC(bin, score)
		if err != nil {
			return 0, fmt.Errorf("class %d: %w", c, err)
		}
		sum += a
	}
	return sum / float64(len(classes)), nil
}

// ConfusionMatrix counts m[true][predicted].
func ConfusionMatrix(y, pred []int, k int) ([][]int, error) {
	if len(y) != len(pred) {
		return nil, fmt.Errorf("%w: %d labels, %d predictions", ErrInput, len(y), len(pred))
	}
	m := make([][]int, k)
	for i := range m {
		m[i] = make([]int, k)
	}
	for i := range y {
		if y[i] < 0 || y[i] >= k || pred[i] < 0 || pred[i] >= k {
			return nil, fmt.Errorf("%w: class out of range at row %d", ErrInput, i)
		}
		m[y[i]][pred[i]]++
	}
	return m, nil
}

// F1 is the F1 score of class 1 for k = 2 and the unweighted mean of per-class
// F1 scores otherwise (scikit-learn's average="binary" / "macro"). A class
// with no true and no predicted members scores 0, as in scikit-learn.
func F1(y, pred []int, k int) (float64, error) {
	m, err := ConfusionMatrix(y, pred, k)
	if err != nil {
		return 0, err
	}
	f1 := func(c int) float64 {
		tp := m[c][c]
		var fp, fn int
		for o := range k {
			if o != c {
				fp += m[o][c]
				fn += m[c][o]
			}
		}
		if 2*tp+fp+fn == 0 {
			return 0
		}
		return 2 * float64(tp) / float64(2*tp+fp+fn)
	}
	if k == 2 {
		return f1(1), nil
	}
	var s float64
	for c := range k {
		s += f1(c)
	}
	return s / float64(k), nil
}

// Regression holds RMSE, MAE and R².
type Regression struct{ RMSE, MAE, R2 float64 }

// Regress scores real-valued predictions. R² is 1 - SSres/SStot; with a
// constant target it is 0 unless predictions are exact (scikit-learn's rule).
func Regress(y, pred []float64) (Regression, error) {
	if len(y) != len(pred) || len(y) == 0 {
		return Regression{}, fmt.Errorf("%w: %d targets, %d predictions", ErrInput, len(y), len(pred))
	}
	var mean float64
	for _, v := range y {
		mean += v
	}
	mean /= float64(len(y))
	var se, ae, st float64
	for i := range y {
		d := y[i] - pred[i]
		se += d * d
		ae += math.Abs(d)
		st += (y[i] - mean) * (y[i] - mean)
	}
	n := float64(len(y))
	r := Regression{RMSE: math.Sqrt(se / n), MAE: ae / n}
	switch {
	case st > 0:
		r.R2 = 1 - se/st
	case se == 0:
		r.R2 = 1
	}
	return r, nil
}
