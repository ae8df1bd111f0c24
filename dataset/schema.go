package dataset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Type is a column's inferred or declared type.
type Type string

// The column types.
const (
	TypeNumeric     Type = "numeric"
	TypeInteger     Type = "integer"
	TypeBoolean     Type = "boolean"
	TypeCategorical Type = "categorical"
	TypeText        Type = "text"
)

// Types lists every type.
var Types = []Type{TypeNumeric, TypeInteger, TypeBoolean, TypeCategorical, TypeText}

// Column declares one column of a schema.
type Column struct {
	Name     string   `json:"name"`
	Type     Type     `json:"type"`
	Nullable bool     `json:"nullable,omitempty"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	// Values restricts a categorical column to these values.
	Values []string `json:"values,omitempty"`
}

// Schema is a declared table layout. Columns appear in file order.
type Schema struct {
	Columns []Column `json:"columns"`
}

// Schema limits.
const (
	MaxSchemaBytes  = 1 << 20
	maxNameBytes    = 256
	maxSchemaValues = 10_000
)

// ParseSchema decodes and checks a declared schema (untrusted input, fuzzed
// by FuzzParseSchema): unknown fields, duplicate or empty column names,
// unknown types, min > max and bounds on types that have none are errors
// naming the column.
func ParseSchema(b []byte) (*Schema, error) {
	if len(b) > MaxSchemaBytes {
		return nil, invalid("schema", "schema exceeds %d bytes", MaxSchemaBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Schema
	if err := dec.Decode(&s); err != nil {
		return nil, invalid("schema", "schema is not valid JSON of the documented shape: %s", jsonMsg(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("schema", "schema has trailing data")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func jsonMsg(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Validate checks a schema built in code or decoded.
func (s *Schema) Validate() error {
	if len(s.Columns) == 0 {
		return invalid("schema", "schema declares no columns")
	}
	if len(s.Columns) > DefaultMaxColumns {
		return invalid("schema", "schema declares more than %d columns", DefaultMaxColumns)
	}
	seen := map[string]bool{}
	for i, c := range s.Columns {
		field := fmt.Sprintf("schema.columns[%d]", i)
		if c.Name == "" || len(c.Name) > maxNameBytes || !utf8.ValidString(c.Name) || strings.ContainsRune(c.Name, 0) {
			return invalid(field, "column %d: name must be 1-%d bytes of UTF-8", i+1, maxNameBytes)
		}
		if seen[c.Name] {
			return invalid(field, "column %q is declared twice", c.Name)
		}
		seen[c.Name] = true
		if !slices.Contains(Types, c.Type) {
			return invalid(field, "column %q: type must be one of numeric, integer, boolean, categorical, text", c.Name)
		}
		for _, v := range []*float64{c.Min, c.Max} {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
				return invalid(field, "column %q: bounds must be finite", c.Name)
			}
		}
		if (c.Min != nil || c.Max != nil) && c.Type != TypeNumeric && c.Type != TypeInteger {
			return invalid(field, "column %q: min/max apply only to numeric and integer columns", c.Name)
		}
		if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
			return invalid(field, "column %q: min exceeds max", c.Name)
		}
		if len(c.Values) > 0 && c.Type != TypeCategorical {
			return invalid(field, "column %q: values apply only to categorical columns", c.Name)
		}
		if len(c.Values) > maxSchemaValues {
			return invalid(field, "column %q: more than %d values", c.Name, maxSchemaValues)
		}
	}
	return nil
}

// checker validates one column's fields against its declaration.
type checker struct {
	col    Column
	values map[string]struct{}
}

func newChecker(c Column) *checker {
	ck := &checker{col: c}
	if len(c.Values) > 0 {
		ck.values = make(map[string]struct{}, len(c.Values))
		for _, v := range c.Values {
			ck.values[v] = struct{}{}
		}
	}
	return ck
}

// check returns "" or why f violates the declaration. Values are never
// echoed: they may be personal data.
func (ck *checker) check(f []byte) string {
	if len(f) == 0 {
		if ck.col.Nullable {
			return ""
		}
		return "missing value in a non-nullable column"
	}
	switch ck.col.Type {
	case TypeNumeric, TypeInteger:
		v, ok := parseNumber(f)
		if !ok {
			return "not a number"
		}
		if ck.col.Type == TypeInteger && v != math.Trunc(v) {
			return "not an integer"
		}
		if ck.col.Min != nil && v < *ck.col.Min {
			return "below the declared minimum"
		}
		if ck.col.Max != nil && v > *ck.col.Max {
			return "above the declared maximum"
		}
	case TypeBoolean:
		if _, ok := parseBool(f); !ok {
			return "not a boolean (true/false/yes/no)"
		}
	case TypeCategorical:
		if ck.values != nil {
			if _, ok := ck.values[string(f)]; !ok {
				return "not one of the declared values"
			}
		}
	}
	return ""
}

// parseNumber parses a finite decimal number. Integers take a fast path;
// NaN and infinities are not numbers here (they can only poison a model).
func parseNumber(f []byte) (float64, bool) {
	if len(f) == 0 || len(f) > 64 {
		return 0, false
	}
	i, neg := 0, false
	if f[0] == '-' || f[0] == '+' {
		neg = f[0] == '-'
		i = 1
		if len(f) == 1 {
			return 0, false
		}
	}
	if len(f)-i <= 16 {
		// Fast path: up to 15 digits with at most one '.', exact in
		// float64 (a mantissa < 2^53 divided by an exact power of ten is
		// correctly rounded, as in strconv's own exact path).
		var n uint64
		j := i
		for ; j < len(f); j++ {
			d := f[j] - '0'
			if d > 9 {
				break
			}
			n = n*10 + uint64(d)
		}
		digits, frac := j-i, 0
		if j < len(f) && f[j] == '.' {
			j++
			k := j
			for ; j < len(f); j++ {
				d := f[j] - '0'
				if d > 9 {
					break
				}
				n = n*10 + uint64(d)
			}
			frac = j - k
			digits += frac
		}
		if j == len(f) && digits > 0 && digits <= 15 {
			v := float64(n)
			if frac > 0 {
				v /= pow10[frac]
			}
			if neg {
				v = -v
			}
			return v, true
		}
	}
	c := f[i]
	if !(c >= '0' && c <= '9' || c == '.') {
		return 0, false // rejects "Inf", "NaN", "0x…" without strconv
	}
	v, err := strconv.ParseFloat(string(f), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	for _, b := range f {
		if b == '_' || b == 'x' || b == 'X' || b == 'p' || b == 'P' {
			return 0, false // Go syntax, not a CSV number
		}
	}
	return v, true
}

// parseBool accepts true/false/yes/no in any letter case (ASCII: no other
// rune lower-cases to these letters' bytes).
func parseBool(f []byte) (bool, bool) {
	switch len(f) {
	case 2:
		if f[0]|0x20 == 'n' && f[1]|0x20 == 'o' {
			return false, true
		}
	case 3:
		if f[0]|0x20 == 'y' && f[1]|0x20 == 'e' && f[2]|0x20 == 's' {
			return true, true
		}
	case 4:
		if f[0]|0x20 == 't' && f[1]|0x20 == 'r' && f[2]|0x20 == 'u' && f[3]|0x20 == 'e' {
			return true, true
		}
	case 5:
		if f[0]|0x20 == 'f' && f[1]|0x20 == 'a' && f[2]|0x20 == 'l' && f[3]|0x20 == 's' && f[4]|0x20 == 'e' {
			return false, true
		}
	}
	return false, false
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16}
