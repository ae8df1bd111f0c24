package ml

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Kind is a column's type.
type Kind uint8

// Column kinds.
const (
	Numeric     Kind = 1 // float64 values, NaN is missing
	Categorical Kind = 2 // string values, "" is missing
)

func (k Kind) String() string {
	switch k {
	case Numeric:
		return "numeric"
	case Categorical:
		return "categorical"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Column is one named column of a Frame. Exactly one of Num and Cat is used,
// according to Kind.
type Column struct {
	Name string
	Kind Kind
	Num  []float64
	Cat  []string
}

// Len is the number of rows in the column.
func (c *Column) Len() int {
	if c.Kind == Numeric {
		return len(c.Num)
	}
	return len(c.Cat)
}

// NumericColumn builds a numeric column; NaN marks a missing value.
func NumericColumn(name string, v []float64) *Column {
	return &Column{Name: name, Kind: Numeric, Num: v}
}

// CategoricalColumn builds a categorical column; "" marks a missing value.
func CategoricalColumn(name string, v []string) *Column {
	return &Column{Name: name, Kind: Categorical, Cat: v}
}

// Frame is a columnar table. Columns share one length.
type Frame struct {
	Columns []*Column
	rows    int
	byName  map[string]int
}

// ErrFrame is wrapped by every frame construction or lookup error.
var ErrFrame = errors.New("invalid frame")

// NewFrame checks that columns have distinct non-empty names, a valid kind
// and equal lengths.
func NewFrame(cols ...*Column) (*Frame, error) {
	f := &Frame{Columns: cols, byName: make(map[string]int, len(cols))}
	for i, c := range cols {
		if c == nil || c.Name == "" {
			return nil, fmt.Errorf("%w: column %d has no name", ErrFrame, i)
		}
		if _, dup := f.byName[c.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate column %q", ErrFrame, c.Name)
		}
		if c.Kind != Numeric && c.Kind != Categorical {
			return nil, fmt.Errorf("%w: column %q has unknown kind %d", ErrFrame, c.Name, c.Kind)
		}
		f.byName[c.Name] = i
		if i == 0 {
			f.rows = c.Len()
		} else if c.Len() != f.rows {
			return nil, fmt.Errorf("%w: column %q has %d rows, want %d", ErrFrame, c.Name, c.Len(), f.rows)
		}
	}
	return f, nil
}

// NumRows is the number of rows.
func (f *Frame) NumRows() int { return f.rows }

// Column returns the named column.
func (f *Frame) Column(name string) (*Column, bool) {
	i, ok := f.byName[name]
	if !ok {
		return nil, false
	}
	return f.Columns[i], true
}

// Names lists the column names in order.
func (f *Frame) Names() []string {
	out := make([]string, len(f.Columns))
	for i, c := range f.Columns {
		out[i] = c.Name
	}
	return out
}

// Take returns a new frame holding the given rows, in the given order.
func (f *Frame) Take(rows []int) *Frame {
	cols := make([]*Column, len(f.Columns))
	for j, c := range f.Columns {
		nc := &Column{Name: c.Name, Kind: c.Kind}
		if c.Kind == Numeric {
			nc.Num = make([]float64, len(rows))
			for i, r := range rows {
				nc.Num[i] = c.Num[r]
			}
		} else {
			nc.Cat = make([]string, len(rows))
			for i, r := range rows {
				nc.Cat[i] = c.Cat[r]
			}
		}
		cols[j] = nc
	}
	out, _ := NewFrame(cols...) // cannot fail: same names and kinds, equal lengths
	return out
}

// CSVOptions bound and steer ReadCSV.
type CSVOptions struct {
	// Categorical forces the named columns to be categorical even if every
	// value parses as a number (e.g. ZIP codes).
	Categorical []string
	// MaxRows and MaxColumns bound the input; zero means 10,000,000 rows and
	// 10,000 columns. Exceeding them is an error, not a truncation.
	MaxRows, MaxColumns int
}

// ReadCSV reads a CSV table with a header row. Empty fields are missing.
// A column is numeric when every non-empty field parses as a float; a numeric
// field that is NaN or infinite is an error naming the row and column, since
// such a value can only poison a model (INF-4, and the bad-input rules of TRAIN-4).
func ReadCSV(r io.Reader, opt CSVOptions) (*Frame, error) {
	if opt.MaxRows <= 0 {
		opt.MaxRows = 10_000_000
	}
	if opt.MaxColumns <= 0 {
		opt.MaxColumns = 10_000
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading CSV header: %w", err)
	}
	if len(header) > opt.MaxColumns {
		return nil, fmt.Errorf("%w: %d columns exceed the limit of %d", ErrFrame, len(header), opt.MaxColumns)
	}
	names := slices.Clone(header)
	raw := make([][]string, len(names))
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading CSV: %w", err)
		}
		if len(raw[0]) >= opt.MaxRows {
			return nil, fmt.Errorf("%w: more than %d rows", ErrFrame, opt.MaxRows)
		}
		for j, v := range rec {
			raw[j] = append(raw[j], strings.Clone(v))
		}
	}
	forced := make(map[string]bool, len(opt.Categorical))
	for _, n := range opt.Categorical {
		forced[n] = true
	}
	cols := make([]*Column, len(names))
	for j, name := range names {
		vals := raw[j]
		numeric := !forced[name]
		if numeric {
			for _, v := range vals {
				if v == "" {
					continue
				}
				if _, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
					numeric = false
					break
				}
			}
		}
		if !numeric {
			cols[j] = CategoricalColumn(name, vals)
			continue
		}
		num := make([]float64, len(vals))
		for i, v := range vals {
			if v == "" {
				num[i] = math.NaN()
				continue
			}
			x, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("%w: column %q row %d: non-finite value %q (leave the field empty for missing)", ErrFrame, name, i+1, v)
			}
			num[i] = x
		}
		cols[j] = NumericColumn(name, num)
	}
	return NewFrame(cols...)
}

// Labels returns the column's values as strings, numbers formatted in their
// shortest form, missing values as "".
func (c *Column) Labels() []string {
	if c.Kind == Categorical {
		return c.Cat
	}
	out := make([]string, len(c.Num))
	for i, x := range c.Num {
		if !math.IsNaN(x) {
			out[i] = strconv.FormatFloat(x, 'g', -1, 64)
		}
	}
	return out
}

// StratifiedSplit splits row indices into train and test sets keeping each
// label's share, like scikit-learn's StratifiedShuffleSplit. The split depends
// only on labels, testFraction and seed. Both index lists are ascending.
func StratifiedSplit(labels []string, testFraction float64, seed uint64) (train, test []int) {
	byLabel := map[string][]int{}
	for i, l := range labels {
		byLabel[l] = append(byLabel[l], i)
	}
	keys := make([]string, 0, len(byLabel))
	for k := range byLabel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, k := range keys {
		idx := byLabel[k]
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		nTest := int(math.Round(testFraction * float64(len(idx))))
		test = append(test, idx[:nTest]...)
		train = append(train, idx[nTest:]...)
	}
	sort.Ints(train)
	sort.Ints(test)
	return train, test
}
