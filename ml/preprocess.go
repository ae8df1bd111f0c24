package ml

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/rampart-mlaas/rampart/ml/internal/parallel"
	"github.com/rampart-mlaas/rampart/ml/internal/wire"
)

// ErrSchema is wrapped when a frame does not match a model's feature schema.
var ErrSchema = errors.New("input does not match the feature schema")

// ErrData is wrapped when training data cannot produce a sound model.
var ErrData = errors.New("unusable training data")

// maxCategories bounds one-hot width; beyond it a column is an identifier,
// not a category, and one-hot encoding would only memorise rows.
const maxCategories = 10_000

// quantileSample bounds the values sorted per column for the deciles.
const quantileSample = 100_000

// FeatureInfo is one input feature as seen in training: its kind and the
// statistics that later drive input validation and OOD scoring (INF-4, INF-5).
type FeatureInfo struct {
	Name    string
	Kind    Kind
	Count   int // non-missing training values
	Missing int // missing training values
	// Numeric features: statistics of the non-missing values. Std is the
	// population standard deviation; Quantiles are the 0, 10, …, 100 % points.
	Min, Max, Mean, Std float64
	Quantiles           []float64
	// Categorical features: the sorted distinct values and their counts.
	Categories     []string
	CategoryCounts []int

	catIndex map[string]int
}

// Width is the number of encoded columns the feature expands to: one for a
// numeric feature; for a categorical one, one per category plus a "missing"
// and an "unknown category" bucket.
func (fi *FeatureInfo) Width() int {
	if fi.Kind == Numeric {
		return 1
	}
	return len(fi.Categories) + 2
}

// Preprocessor turns raw frame columns into the dense matrix a learner sees.
// It is fitted on training data and stored in the model, so a model scores
// raw rows.
type Preprocessor struct {
	Features []FeatureInfo
	// Impute replaces a missing numeric value by the training mean; without
	// it the value stays NaN (trees route missing values natively).
	Impute bool
	// Standardize scales numeric features to zero mean and unit variance.
	Standardize bool

	width   int
	offsets []int
}

// FitPreprocessor computes per-feature statistics over the given columns.
// All-missing and non-finite columns are errors naming the column; constant
// columns are kept (they carry no signal but are legitimate data) and reported
// through the returned warnings.
func FitPreprocessor(f *Frame, features []string, impute, standardize bool) (*Preprocessor, []string, error) {
	p := &Preprocessor{Impute: impute, Standardize: standardize}
	if len(features) == 0 {
		return nil, nil, fmt.Errorf("%w: no feature columns", ErrData)
	}
	type result struct {
		fi   FeatureInfo
		warn string
		err  error
	}
	res := make([]result, len(features))
	// Features are independent: fit them on all cores, report in order.
	parallel.Run(len(features), func(i int) {
		fi, warn, err := fitFeature(f, features[i])
		res[i] = result{fi, warn, err}
	})
	var warnings []string
	for _, r := range res {
		if r.err != nil {
			return nil, nil, r.err
		}
		if r.warn != "" {
			warnings = append(warnings, r.warn)
		}
		p.Features = append(p.Features, r.fi)
	}
	p.init()
	return p, warnings, nil
}

func fitFeature(f *Frame, name string) (FeatureInfo, string, error) {
	c, ok := f.Column(name)
	if !ok {
		return FeatureInfo{}, "", fmt.Errorf("%w: feature column %q not in frame", ErrData, name)
	}
	fi := FeatureInfo{Name: name, Kind: c.Kind}
	warn := ""
	switch c.Kind {
	case Numeric:
		// Two passes over the column, no copy of it: count, sum, min and
		// max, then the squared deviations and the decile sample. Every
		// sum runs over the non-missing values in row order, as it did
		// over a filtered copy.
		var sum float64
		first := true
		for i, x := range c.Num {
			if math.IsNaN(x) {
				continue
			}
			if math.IsInf(x, 0) {
				return fi, "", fmt.Errorf("%w: column %q row %d is infinite", ErrData, name, i+1)
			}
			fi.Count++
			sum += x
			if first {
				fi.Min, fi.Max, first = x, x, false
			}
			if x <= fi.Min { // math.Min only where it can change the minimum (it orders -0 < +0)
				fi.Min = math.Min(fi.Min, x)
			}
			if x >= fi.Max {
				fi.Max = math.Max(fi.Max, x)
			}
		}
		fi.Missing = len(c.Num) - fi.Count
		if fi.Count == 0 {
			return fi, "", fmt.Errorf("%w: column %q has no non-missing values", ErrData, name)
		}
		fi.Mean = sum / float64(fi.Count)
		// Deciles (for OOD scoring) from a fixed stride sample: sorting a
		// million values per column costs more than the deciles are worth.
		stride := fi.Count / quantileSample
		if stride <= 1 {
			stride = 1
		}
		keep := fi.Count // sample values[0], values[stride], … (at most quantileSample of them)
		if stride > 1 {
			keep = quantileSample
		}
		vals := make([]float64, 0, keep)
		var ss float64
		j, next := 0, 0
		for _, x := range c.Num {
			if math.IsNaN(x) {
				continue
			}
			ss += (x - fi.Mean) * (x - fi.Mean)
			if j == next && len(vals) < keep {
				vals = append(vals, x)
				next += stride
			}
			j++
		}
		fi.Std = math.Sqrt(ss / float64(fi.Count))
		// The deciles are order statistics: select them, no full sort.
		fi.Quantiles = make([]float64, 11)
		pos := make([]int, 11)
		for q := range pos {
			pos[q] = q * (len(vals) - 1) / 10
		}
		selectOrder(vals, pos, 0)
		for q := range fi.Quantiles {
			fi.Quantiles[q] = vals[pos[q]]
		}
		fi.Quantiles[0], fi.Quantiles[10] = fi.Min, fi.Max
		if fi.Min == fi.Max {
			warn = fmt.Sprintf("column %q is constant", name)
		}
	case Categorical:
		counts := map[string]int{}
		for _, s := range c.Cat {
			if s == "" {
				fi.Missing++
				continue
			}
			counts[s]++
		}
		fi.Count = len(c.Cat) - fi.Missing
		if fi.Count == 0 {
			return fi, "", fmt.Errorf("%w: column %q has no non-missing values", ErrData, name)
		}
		if len(counts) > maxCategories {
			return fi, "", fmt.Errorf("%w: column %q has %d distinct values (limit %d)", ErrData, name, len(counts), maxCategories)
		}
		for s := range counts {
			fi.Categories = append(fi.Categories, s)
		}
		sort.Strings(fi.Categories)
		for _, s := range fi.Categories {
			fi.CategoryCounts = append(fi.CategoryCounts, counts[s])
		}
		if len(counts) == 1 {
			warn = fmt.Sprintf("column %q is constant", name)
		}
	}
	return fi, warn, nil
}

func (p *Preprocessor) init() {
	p.offsets = make([]int, len(p.Features))
	p.width = 0
	for i := range p.Features {
		fi := &p.Features[i]
		p.offsets[i] = p.width
		p.width += fi.Width()
		if fi.Kind == Categorical {
			fi.catIndex = make(map[string]int, len(fi.Categories))
			for j, s := range fi.Categories {
				fi.catIndex[s] = j
			}
		}
	}
}

// Width is the number of encoded columns.
func (p *Preprocessor) Width() int { return p.width }

// EncodedNames names the encoded columns ("age", "home=rent", "home=<missing>", "home=<unknown>").
func (p *Preprocessor) EncodedNames() []string {
	out := make([]string, 0, p.width)
	for _, fi := range p.Features {
		if fi.Kind == Numeric {
			out = append(out, fi.Name)
			continue
		}
		for _, s := range fi.Categories {
			out = append(out, fi.Name+"="+s)
		}
		out = append(out, fi.Name+"=<missing>", fi.Name+"=<unknown>")
	}
	return out
}

// resolve maps the schema's features to the frame's columns, checking kinds
// and values: a mismatch is an error naming the column (INF-4).
func (p *Preprocessor) resolve(f *Frame) ([]*Column, error) {
	cols := make([]*Column, len(p.Features))
	for i, fi := range p.Features {
		c, ok := f.Column(fi.Name)
		if !ok {
			return nil, fmt.Errorf("%w: missing column %q", ErrSchema, fi.Name)
		}
		if c.Kind != fi.Kind {
			return nil, fmt.Errorf("%w: column %q is %s, the model expects %s", ErrSchema, fi.Name, c.Kind, fi.Kind)
		}
		if c.Kind == Numeric {
			for r, x := range c.Num {
				if math.IsInf(x, 0) {
					return nil, fmt.Errorf("%w: column %q row %d is infinite", ErrSchema, fi.Name, r+1)
				}
			}
		}
		cols[i] = c
	}
	return cols, nil
}

// Transform encodes every row of f into a row-major matrix of Width columns.
func (p *Preprocessor) Transform(f *Frame) ([]float64, error) {
	cols, err := p.resolve(f)
	if err != nil {
		return nil, err
	}
	n := f.NumRows()
	out := make([]float64, n*p.width)
	blocks := parallel.Blocks(n, 4096, 64)
	parallel.Run(len(blocks), func(b int) {
		p.transformRows(cols, blocks[b][0], blocks[b][1], out[blocks[b][0]*p.width:blocks[b][1]*p.width])
	})
	return out, nil
}

// transformRows encodes rows [lo, hi) into dst, which must have room for them.
func (p *Preprocessor) transformRows(cols []*Column, lo, hi int, dst []float64) {
	w := p.width
	clear(dst[:(hi-lo)*w])
	for j := range p.Features {
		fi := &p.Features[j]
		off := p.offsets[j]
		c := cols[j]
		if fi.Kind == Numeric {
			mean, scale := 0.0, 1.0
			if p.Standardize {
				mean = fi.Mean
				if fi.Std > 0 {
					scale = 1 / fi.Std
				}
			}
			for r := lo; r < hi; r++ {
				x := c.Num[r]
				if math.IsNaN(x) {
					if p.Impute {
						x = fi.Mean
					} else {
						dst[(r-lo)*w+off] = math.NaN()
						continue
					}
				}
				dst[(r-lo)*w+off] = (x - mean) * scale
			}
			continue
		}
		nc := len(fi.Categories)
		for r := lo; r < hi; r++ {
			s := c.Cat[r]
			k := nc + 1 // unknown bucket
			if s == "" {
				k = nc
			} else if idx, ok := fi.catIndex[s]; ok {
				k = idx
			}
			dst[(r-lo)*w+off+k] = 1
		}
	}
}

func (p *Preprocessor) encode(w *wire.Writer) {
	w.Bool(p.Impute)
	w.Bool(p.Standardize)
	w.U32(uint32(len(p.Features)))
	for _, fi := range p.Features {
		w.String(fi.Name)
		w.U8(uint8(fi.Kind))
		w.Int(fi.Count)
		w.Int(fi.Missing)
		if fi.Kind == Numeric {
			w.F64(fi.Min)
			w.F64(fi.Max)
			w.F64(fi.Mean)
			w.F64(fi.Std)
			w.F64s(fi.Quantiles)
		} else {
			w.Strings(fi.Categories)
			w.Ints(fi.CategoryCounts)
		}
	}
}

func decodePreprocessor(r *wire.Reader) *Preprocessor {
	p := &Preprocessor{Impute: r.Bool(), Standardize: r.Bool()}
	n := int(r.U32())
	if n > r.Remaining()/16 {
		r.Fail("feature count %d", n)
		return nil
	}
	seen := map[string]bool{}
	width := 0
	for range n {
		fi := FeatureInfo{Name: r.String(1 << 12), Kind: Kind(r.U8())}
		fi.Count = r.Int(math.MaxInt32)
		fi.Missing = r.Int(math.MaxInt32)
		if r.Err() != nil {
			return nil
		}
		if fi.Name == "" || seen[fi.Name] {
			r.Fail("empty or duplicate feature name %q", fi.Name)
			return nil
		}
		seen[fi.Name] = true
		switch fi.Kind {
		case Numeric:
			fi.Min, fi.Max, fi.Mean, fi.Std = r.Finite(), r.Finite(), r.Finite(), r.Finite()
			fi.Quantiles = r.FiniteF64s()
		case Categorical:
			fi.Categories = r.Strings(1 << 12)
			fi.CategoryCounts = r.Ints(0, math.MaxInt32)
			if r.Err() == nil && (len(fi.Categories) != len(fi.CategoryCounts) || len(fi.Categories) > maxCategories ||
				!slices.IsSorted(fi.Categories) || slices.Contains(fi.Categories, "")) {
				r.Fail("feature %q: bad category list", fi.Name)
			}
			for i := 1; r.Err() == nil && i < len(fi.Categories); i++ {
				if fi.Categories[i] == fi.Categories[i-1] {
					r.Fail("feature %q: duplicate category", fi.Name)
				}
			}
		default:
			r.Fail("feature %q: unknown kind %d", fi.Name, fi.Kind)
		}
		if r.Err() != nil {
			return nil
		}
		width += fi.Width()
		p.Features = append(p.Features, fi)
	}
	if n == 0 {
		r.Fail("no features")
		return nil
	}
	p.init()
	return p
}

// selectOrder rearranges a (no NaNs) so that a[k] is the k-th smallest value
// for every k in ks (ascending indices into a), as a sort
// would place it, in expected linear time: quickselect with a
// median-of-three pivot and a three-way partition, recursing only into the
// parts that hold a wanted index. Past a depth limit (adversarial data) a
// part is sorted instead, so the worst case stays O(n log n).
func selectOrder(a []float64, ks []int, depth int) {
	if len(ks) == 0 || len(a) <= 1 {
		return
	}
	if len(a) <= 32 || depth > 64 {
		sort.Float64s(a)
		return
	}
	x, y, z := a[0], a[len(a)/2], a[len(a)-1]
	p := max(min(x, y), min(max(x, y), z))
	// a[:lt] < p, a[lt:gt] == p, a[gt:] > p.
	lt, i, gt := 0, 0, len(a)
	for i < gt {
		switch v := a[i]; {
		case v < p:
			a[lt], a[i] = v, a[lt]
			lt++
			i++
		case v > p:
			gt--
			a[gt], a[i] = v, a[gt]
		default:
			i++
		}
	}
	left, right := ks[:sort.SearchInts(ks, lt)], ks[sort.SearchInts(ks, gt):]
	selectOrder(a[:lt], left, depth+1)
	if len(right) > 0 {
		shifted := make([]int, len(right))
		for j, k := range right {
			shifted[j] = k - gt
		}
		selectOrder(a[gt:], shifted, depth+1)
	}
}
