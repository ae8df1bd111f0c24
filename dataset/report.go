package dataset

import (
	"fmt"

	"github.com/rampart-mlaas/rampart"
)

// Report is the data audit report stored (sealed) with every version
// (DATA-4, Y.3531 7.4.1 "ML data audit").
type Report struct {
	Format    string          `json:"format"`
	Rows      int64           `json:"rows"`
	Columns   []ColumnProfile `json:"columns"`
	Bytes     int64           `json:"bytes"`
	Label     string          `json:"label,omitempty"`
	Duplicate DuplicateStats  `json:"duplicates"`
	// Classes is the label distribution (label column only).
	Classes    []Count          `json:"classes,omitempty"`
	ClassOther int64            `json:"class_other,omitempty"`
	PII        *PIIReport       `json:"pii,omitempty"`
	Formula    FormulaReport    `json:"formula_injection"`
	LabelFlip  *LabelFlipReport `json:"label_screening,omitempty"`
	// DriftAgainst is the previous version the PSI values compare with.
	DriftAgainst int      `json:"drift_against,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
}

// Count is a value and how often it occurs.
type Count struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// ColumnProfile describes one column.
type ColumnProfile struct {
	Name     string  `json:"name"`
	Type     Type    `json:"type"`
	Declared bool    `json:"declared,omitempty"`
	Count    int64   `json:"count"`
	Missing  int64   `json:"missing"`
	MissPct  float64 `json:"missing_share"`
	// Numeric columns.
	Min       *float64   `json:"min,omitempty"`
	Max       *float64   `json:"max,omitempty"`
	Mean      *float64   `json:"mean,omitempty"`
	Std       *float64   `json:"std,omitempty"`
	Quantiles []Quantile `json:"quantiles,omitempty"`
	// Approximate is set when quantiles come from a sample or top
	// categories from a bounded sketch.
	Approximate bool `json:"approximate,omitempty"`
	// Categorical and text columns.
	Distinct      int     `json:"distinct,omitempty"`
	DistinctAtCap bool    `json:"distinct_at_least,omitempty"`
	Top           []Count `json:"top,omitempty"`
	MeanLen       float64 `json:"mean_length,omitempty"`
	MaxLen        int     `json:"max_length,omitempty"`
	// PSI against the previous version (population stability index).
	PSI *float64 `json:"psi,omitempty"`
	// Bins are decile edges and BinShares the share of values in each of
	// the len(Bins)+1 intervals; the next version's PSI compares with them.
	Bins      []float64 `json:"bins,omitempty"`
	BinShares []float64 `json:"bin_shares,omitempty"`
	// TopShares holds the shares of Top for categorical PSI.
	Formula int64 `json:"formula_cells,omitempty"`
}

// Quantile is one point of a column's distribution.
type Quantile struct {
	Q     float64 `json:"q"`
	Value float64 `json:"value"`
}

// DuplicateStats counts repeated rows. Exact is false once the bounded row
// index filled up; from then on only repeats of rows already indexed count.
type DuplicateStats struct {
	Rows int64 `json:"rows"`
	// ConflictingLabels counts rows whose features repeat an earlier row's
	// with a different label.
	ConflictingLabels int64 `json:"conflicting_labels"`
	Exact             bool  `json:"exact"`
}

// FormulaReport counts cells that a spreadsheet would evaluate (CSV
// injection). They are stored as uploaded and escaped on every export.
type FormulaReport struct {
	Cells   int64    `json:"cells"`
	Columns []string `json:"columns,omitempty"`
}

// PIIReport lists direct identifiers found at upload (DATA-6).
type PIIReport struct {
	Policy   string      `json:"policy"`
	Columns  []PIIColumn `json:"columns,omitempty"`
	Hints    []string    `json:"name_hints,omitempty"`
	Declared []string    `json:"declared,omitempty"`
}

// PIIColumn is one column's detections.
type PIIColumn struct {
	Column string           `json:"column"`
	Kinds  map[string]int64 `json:"kinds"`
	// Rows are the first data rows with a detection (row-level detail:
	// omitted for grantees).
	Rows []int64 `json:"rows,omitempty"`
}

// LabelFlipReport is the label-consistency screening (DATA-5).
type LabelFlipReport struct {
	Policy    string  `json:"policy"`
	Learner   string  `json:"learner"`
	Screened  int     `json:"screened_rows"`
	Sampled   bool    `json:"sampled,omitempty"`
	Flagged   int     `json:"flagged"`
	Threshold float64 `json:"threshold"`
	Skipped   string  `json:"skipped,omitempty"`
	// Suspects are flagged rows with their given label's out-of-fold
	// probability (row-level detail: omitted for grantees).
	Suspects []Suspect `json:"suspects,omitempty"`
	// Quarantined rows are excluded from training unless released.
	Quarantined bool `json:"quarantined,omitempty"`
}

// Suspect is one flagged row.
type Suspect struct {
	Row   int64   `json:"row"`
	Score float64 `json:"score"`
	Given string  `json:"-"`
}

// Redacted returns the report without row-level detail, for grantees who
// may use but not read the data (DATA-7).
func (r *Report) Redacted() *Report {
	c := *r
	if r.PII != nil {
		p := *r.PII
		p.Columns = nil
		for _, col := range r.PII.Columns {
			col.Rows = nil
			p.Columns = append(p.Columns, col)
		}
		c.PII = &p
	}
	if r.LabelFlip != nil {
		l := *r.LabelFlip
		l.Suspects = nil
		c.LabelFlip = &l
	}
	c.Columns = nil
	for _, col := range r.Columns {
		// Category values and extremes are data values: a grantee that may
		// not read rows sees shapes, not values.
		col.Top = nil
		col.Min, col.Max = nil, nil
		col.Quantiles = nil
		col.Bins, col.BinShares = nil, nil
		c.Columns = append(c.Columns, col)
	}
	c.Classes = nil
	return &c
}

func invalid(field, format string, args ...any) *rampart.Error {
	return rampart.Invalid(field, format, args...)
}

// Violation is one field that breaks the declared schema.
type Violation struct {
	Row    int64  `json:"row"`
	Line   int64  `json:"line"`
	Column string `json:"column"`
	Reason string `json:"reason"`
}

func (v Violation) String() string {
	return fmt.Sprintf("row %d (line %d), column %q: %s", v.Row, v.Line, v.Column, v.Reason)
}

// RejectError refuses an upload that violates its declared schema; it
// lists the violations (at most MaxViolations) with row and column.
type RejectError struct {
	Err        *rampart.Error
	Violations []Violation
	Total      int64
}

func (e *RejectError) Error() string { return e.Err.Error() }

// Unwrap exposes the rampart.Error (code invalid) for the error mapping.
func (e *RejectError) Unwrap() error { return e.Err }
