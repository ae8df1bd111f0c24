package assess

import (
	"errors"
	"fmt"
	"math"

	"github.com/rampart-mlaas/rampart/ml"
)

// ErrInput is wrapped by every argument error of the package.
var ErrInput = errors.New("assess: invalid input")

// Feature is one input as an attacker who has read the model's published
// schema sees it.
type Feature struct {
	Name        string
	Categorical bool
	Categories  []string // categorical: the training categories
	Mode        int      // categorical: index of the most frequent category
	// Missing: training saw missing values, so an endpoint accepts them
	// (INF-4 refuses a missing value where training had none).
	Missing bool
	// Numeric: training range and moments.
	Min, Max, Mean, Std float64
}

// Space is a model's input space and classes.
type Space struct {
	Features []Feature
	Classes  []string
}

// SpaceOf reads the input space of a Rampart model.
func SpaceOf(m *ml.Model) Space {
	s := Space{Classes: append([]string(nil), m.Classes...)}
	for _, fi := range m.Schema() {
		f := Feature{Name: fi.Name, Categorical: fi.Kind == ml.Categorical, Missing: fi.Missing > 0}
		if f.Categorical {
			f.Categories = append([]string(nil), fi.Categories...)
			for k, c := range fi.CategoryCounts {
				if c > fi.CategoryCounts[f.Mode] {
					f.Mode = k
				}
			}
		} else {
			f.Min, f.Max, f.Mean, f.Std = fi.Min, fi.Max, fi.Mean, fi.Std
			if !(f.Std > 0) {
				f.Std = 1
			}
		}
		s.Features = append(s.Features, f)
	}
	return s
}

// ClassIndex returns the index of label among the classes, or -1.
func (s Space) ClassIndex(label string) int {
	for i, c := range s.Classes {
		if c == label {
			return i
		}
	}
	return -1
}

// Rows encodes a frame's feature columns as rows. Unknown categories and
// missing values become NaN.
func (s Space) Rows(f *ml.Frame) ([][]float64, error) {
	n := f.NumRows()
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = make([]float64, len(s.Features))
	}
	for j, ft := range s.Features {
		c, ok := f.Column(ft.Name)
		if !ok {
			return nil, fmt.Errorf("%w: feature %q not in frame", ErrInput, ft.Name)
		}
		if ft.Categorical {
			idx := make(map[string]int, len(ft.Categories))
			for k, v := range ft.Categories {
				idx[v] = k
			}
			for i, v := range c.Labels() {
				k, ok := idx[v]
				if !ok {
					rows[i][j] = math.NaN()
					continue
				}
				rows[i][j] = float64(k)
			}
			continue
		}
		if c.Kind != ml.Numeric {
			return nil, fmt.Errorf("%w: feature %q is not numeric in the frame", ErrInput, ft.Name)
		}
		for i, v := range c.Num {
			rows[i][j] = v
		}
	}
	return rows, nil
}

// Labels returns the class index of each row of f's target column (-1 for
// a label outside the classes).
func (s Space) Labels(f *ml.Frame, target string) ([]int, error) {
	c, ok := f.Column(target)
	if !ok {
		return nil, fmt.Errorf("%w: target %q not in frame", ErrInput, target)
	}
	ls := c.Labels()
	out := make([]int, len(ls))
	for i, l := range ls {
		out[i] = s.ClassIndex(l)
	}
	return out, nil
}

// Frame decodes rows into a frame with the space's feature columns, plus a
// categorical target column when labels is not nil.
func (s Space) Frame(rows [][]float64, target string, labels []int) (*ml.Frame, error) {
	cols := make([]*ml.Column, 0, len(s.Features)+1)
	for j, ft := range s.Features {
		if ft.Categorical {
			v := make([]string, len(rows))
			for i, r := range rows {
				k := r[j]
				if !math.IsNaN(k) && k >= 0 && int(k) < len(ft.Categories) {
					v[i] = ft.Categories[int(k)]
				}
			}
			cols = append(cols, ml.CategoricalColumn(ft.Name, v))
			continue
		}
		v := make([]float64, len(rows))
		for i, r := range rows {
			v[i] = r[j]
		}
		cols = append(cols, ml.NumericColumn(ft.Name, v))
	}
	if labels != nil {
		v := make([]string, len(labels))
		for i, l := range labels {
			v[i] = s.Classes[l]
		}
		cols = append(cols, ml.CategoricalColumn(target, v))
	}
	f, err := ml.NewFrame(cols...)
	if err != nil {
		return nil, fmt.Errorf("assess: building frame: %w", err)
	}
	return f, nil
}

// Admissible returns a copy of rows in which every missing value of a
// feature that had none in training is filled with the training mean or
// the most frequent category, as an attacker does before querying an
// endpoint that refuses such values.
func (s Space) Admissible(rows [][]float64) [][]float64 {
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = append([]float64(nil), r...)
		for j, f := range s.Features {
			if math.IsNaN(r[j]) && !f.Missing {
				if f.Categorical {
					out[i][j] = float64(f.Mode)
				} else {
					out[i][j] = f.Mean
				}
			}
		}
	}
	return out
}

// numeric lists the indices of the numeric features.
func (s Space) numeric() []int {
	var out []int
	for j, f := range s.Features {
		if !f.Categorical {
			out = append(out, j)
		}
	}
	return out
}
