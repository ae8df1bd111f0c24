package guard

import (
	"math"
	"sort"
	"sync"

	"github.com/rampart-mlaas/rampart/ml"
)

// Feature is one model input as the guards see it: what validation allows
// (INF-4) and the training profile OOD scoring compares with (INF-5).
type Feature struct {
	Name        string
	Categorical bool
	// Lo and Hi bound numeric values when HasRange (training range ± margin).
	Lo, Hi   float64
	HasRange bool
	// AllowMissing: training saw missing values, so null is a valid input.
	AllowMissing bool

	// Profile (numeric): deciles of training values, std, count.
	Quantiles []float64
	Mean, Std float64
	Count     int
	// Profile (categorical): training frequency of each category.
	Freq map[string]float64
}

// Schema is the ordered inputs of a model.
type Schema struct {
	Features []Feature
	index    map[string]int
	// Profiled: the features carry a training profile (models trained on
	// Rampart); imported models have only a width.
	Profiled bool

	prepOnce sync.Once
	prep     []prep // ScoreRows' per-feature constants
}

// Index returns the position of the named feature.
func (s *Schema) Index(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Numeric reports whether every feature is numeric (a [N, F] tensor fits).
func (s *Schema) Numeric() bool {
	for _, f := range s.Features {
		if f.Categorical {
			return false
		}
	}
	return true
}

func newSchema(fs []Feature, profiled bool) *Schema {
	s := &Schema{Features: fs, index: make(map[string]int, len(fs)), Profiled: profiled}
	for i, f := range fs {
		s.index[f.Name] = i
	}
	return s
}

// SchemaFromML derives the schema from a Rampart model's training
// statistics. margin widens each numeric range by that fraction of its
// width on both sides; margin < 0 disables range checks.
func SchemaFromML(fis []ml.FeatureInfo, margin float64) *Schema {
	fs := make([]Feature, len(fis))
	for i, fi := range fis {
		f := Feature{Name: fi.Name, Categorical: fi.Kind == ml.Categorical, AllowMissing: fi.Missing > 0, Count: fi.Count}
		if f.Categorical {
			f.Freq = map[string]float64{}
			total := 0
			for _, c := range fi.CategoryCounts {
				total += c
			}
			for j, c := range fi.Categories {
				if j < len(fi.CategoryCounts) && total > 0 {
					f.Freq[c] = float64(fi.CategoryCounts[j]) / float64(total)
				}
			}
		} else {
			f.Quantiles = append([]float64(nil), fi.Quantiles...)
			sort.Float64s(f.Quantiles)
			f.Mean, f.Std = fi.Mean, fi.Std
			if margin >= 0 && fi.Count > 0 && !math.IsNaN(fi.Min) && !math.IsNaN(fi.Max) {
				w := fi.Max - fi.Min
				if w == 0 {
					w = math.Max(math.Abs(fi.Max), 1)
				}
				f.Lo, f.Hi, f.HasRange = fi.Min-margin*w, fi.Max+margin*w, true
			}
		}
		fs[i] = f
	}
	return newSchema(fs, true)
}

// SchemaNumeric is the schema of an imported model: n numeric features
// f0 … f{n-1} without a profile (missing values allowed, as the
// originating libraries route them).
func SchemaNumeric(names []string) *Schema {
	fs := make([]Feature, len(names))
	for i, n := range names {
		fs[i] = Feature{Name: n, AllowMissing: true}
	}
	return newSchema(fs, false)
}

// Rows is a validated batch in columns: Num[j] for numeric features (NaN =
// missing), Cat[j] for categorical ones ("" = missing).
type Rows struct {
	N   int
	Num [][]float64
	Cat [][]string
}

// MaxCategoryLen bounds one categorical value.
const MaxCategoryLen = 256

// Validate checks a batch against the schema (INF-4): sizes, missing
// values where training had none, numeric ranges. Non-finite numbers are
// refused by the decoders before they get here and again here.
func (s *Schema) Validate(r *Rows, maxRows int) error {
	if r.N < 1 {
		return Invalid("inputs", "no rows")
	}
	if maxRows > 0 && r.N > maxRows {
		return Invalid("inputs", "%d rows exceed this endpoint's limit of %d per request", r.N, maxRows)
	}
	for j := range s.Features {
		f := &s.Features[j]
		if f.Categorical {
			col := r.Cat[j]
			if len(col) != r.N {
				return Invalid(f.Name, "feature %q has %d values, want %d", f.Name, len(col), r.N)
			}
			for i, v := range col {
				if v == "" && !f.AllowMissing {
					return Invalid(f.Name, "row %d: feature %q is missing", i, f.Name)
				}
				if len(v) > MaxCategoryLen {
					return Invalid(f.Name, "row %d: feature %q is longer than %d bytes", i, f.Name, MaxCategoryLen)
				}
			}
			continue
		}
		col := r.Num[j]
		if len(col) != r.N {
			return Invalid(f.Name, "feature %q has %d values, want %d", f.Name, len(col), r.N)
		}
		for i, v := range col {
			switch {
			case math.IsNaN(v):
				if !f.AllowMissing {
					return Invalid(f.Name, "row %d: feature %q is missing", i, f.Name)
				}
			case math.IsInf(v, 0):
				return Invalid(f.Name, "row %d: feature %q is not finite", i, f.Name)
			case f.HasRange && (v < f.Lo || v > f.Hi):
				return Invalid(f.Name, "row %d: feature %q is outside the range the model was trained on", i, f.Name)
			}
		}
	}
	return nil
}

// Normalise writes row i into dst in the extraction monitor's space:
// numeric features as their normal scores through the training deciles
// (as in Score; missing: 0), so natural rows of skewed features look
// Gaussian and synthetic rows spread into the tails; categorical ones as a
// hash of the value in [0, 1). Unprofiled features pass through.
func (s *Schema) Normalise(r *Rows, i int, dst []float64) []float64 {
	dst = dst[:0]
	for j := range s.Features {
		f := &s.Features[j]
		if f.Categorical {
			h := uint32(2166136261)
			for _, b := range []byte(r.Cat[j][i]) {
				h = (h ^ uint32(b)) * 16777619
			}
			dst = append(dst, float64(h%1000)/1000)
			continue
		}
		v := r.Num[j][i]
		sd := f.Std
		if !(sd > 0) {
			sd = 1
		}
		switch {
		case math.IsNaN(v):
			dst = append(dst, 0)
		case s.Profiled && len(f.Quantiles) >= 2:
			dst = append(dst, numScore(f, v))
		default:
			dst = append(dst, v)
		}
	}
	return dst
}

// Plausibility is the mean squared normal score over the numeric features
// of a row normalised by Normalise: about 1 for rows drawn from the
// training distribution (each normal score is N(0,1) marginally, whatever
// the features' correlation), larger for synthetic rows that spread into
// the tails. Unprofiled schemas return 0.
func (s *Schema) Plausibility(x []float64) float64 {
	if !s.Profiled {
		return 0
	}
	sum, n := 0.0, 0
	for j := range s.Features {
		if !s.Features[j].Categorical && j < len(x) {
			sum += x[j] * x[j]
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
