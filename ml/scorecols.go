package ml

import (
	"fmt"
	"math"
	"sync"
)

// ScoresColumns is Scores for n rows given column by column in the model's
// schema order (Schema()): num[j] holds feature j's values when it is
// numeric (NaN = missing), cat[j] when it is categorical ("" = missing).
// It checks what Scores checks (every feature present with its kind and n
// values, no infinite number; errors wrap ErrSchema) and returns the same
// values bit for bit, without building a Frame: serving scores one-row
// requests with it, where the Frame's columns and name index were most of
// the request's allocations.
func (m *Model) ScoresColumns(num [][]float64, cat [][]string, n int) ([]float64, error) {
	fs := m.Prep.Features
	sc := colScratch.Get().(*colsScratch)
	defer func() {
		clear(sc.cols) // keep no caller data alive in the pool
		colScratch.Put(sc)
	}()
	if cap(sc.cols) < len(fs) {
		sc.cols = make([]Column, len(fs))
		sc.ptrs = make([]*Column, len(fs))
	}
	cols, ptrs := sc.cols[:len(fs)], sc.ptrs[:len(fs)]
	for j := range fs {
		fi := &fs[j]
		c := &cols[j]
		*c = Column{Name: fi.Name, Kind: fi.Kind}
		switch {
		case fi.Kind == Numeric && j < len(num) && num[j] != nil:
			c.Num = num[j]
			for r, x := range c.Num {
				if math.IsInf(x, 0) {
					return nil, fmt.Errorf("%w: column %q row %d is infinite", ErrSchema, fi.Name, r+1)
				}
			}
		case fi.Kind == Categorical && j < len(cat) && cat[j] != nil:
			c.Cat = cat[j]
		default:
			return nil, fmt.Errorf("%w: missing column %q", ErrSchema, fi.Name)
		}
		if c.Len() != n {
			return nil, fmt.Errorf("%w: column %q has %d rows, want %d", ErrFrame, fi.Name, c.Len(), n)
		}
		ptrs[j] = c
	}
	if n < 1 {
		return []float64{}, nil
	}
	return m.scoresOf(ptrs, n), nil
}

type colsScratch struct {
	cols []Column
	ptrs []*Column
}

var colScratch = sync.Pool{New: func() any { return new(colsScratch) }}
