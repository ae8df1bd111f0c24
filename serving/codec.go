package serving

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/rampart-mlaas/rampart/guard"
)

// Limits of the request decoders (INF-4).
const (
	// MaxBody bounds a prediction request body.
	MaxBody = 32 << 20
	// MaxElements bounds the values of one request.
	MaxElements = 4_000_000
	// MaxRowsHard caps any endpoint's max_rows.
	MaxRowsHard = 100_000
	maxDepth    = 3
)

// OIPRequest is an Open Inference Protocol v2 inference request (REST,
// JSON). Unknown fields are refused.
type OIPRequest struct {
	ID         string                     `json:"id,omitempty"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Inputs     []OIPInput                 `json:"inputs"`
	Outputs    []OIPOutputSpec            `json:"outputs,omitempty"`
}

// OIPInput is one input tensor.
type OIPInput struct {
	Name       string                     `json:"name"`
	Shape      []int64                    `json:"shape"`
	Datatype   string                     `json:"datatype"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Data       json.RawMessage            `json:"data"`
}

// OIPOutputSpec names a requested output.
type OIPOutputSpec struct {
	Name       string                     `json:"name"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
}

func strictUnmarshal(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// jsonError turns a decoder error into a caller-safe message.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return guard.Invalid("body", "malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return guard.Invalid(te.Field, "field %q has the wrong type", te.Field)
	}
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	if !utf8.ValidString(msg) {
		msg = "malformed JSON"
	}
	return guard.Invalid("body", "%s", msg)
}

var numericTypes = map[string]bool{"BOOL": true, "UINT8": true, "UINT16": true, "UINT32": true, "UINT64": true,
	"INT8": true, "INT16": true, "INT32": true, "INT64": true, "FP16": true, "FP32": true, "FP64": true}

// OIPMeta is what an OIP request carries besides its rows.
type OIPMeta struct {
	ID      string
	Outputs []string // requested output names; empty = all
}

// DecodeOIP parses an OIP v2 inference request for schema s: either one
// numeric tensor of shape [N, F] (all features numeric, in schema order) or
// one input per feature named after it, of shape [N] or [N, 1] (BYTES for
// categorical features). It returns the rows and the request's ID and
// requested outputs.
func DecodeOIP(body []byte, s *guard.Schema) (*guard.Rows, OIPMeta, error) {
	r, id, outs, err := decodeOIP(body, s)
	return r, OIPMeta{ID: id, Outputs: outs}, err
}

func decodeOIP(body []byte, s *guard.Schema) (*guard.Rows, string, []string, error) {
	// The common shape in one pass (codec_fast.go); anything else, and
	// every refusal, through encoding/json as the reference.
	var fast OIPRequest
	bp := rowBuf.Get().(*[]float64)
	pre := preParsed{vals: (*bp)[:0], input: -1}
	ok := fastOIPRequest(body, &fast, &pre)
	if cap(pre.vals) <= 1<<20 {
		*bp = pre.vals[:0]
	}
	defer rowBuf.Put(bp)
	if ok {
		if r, err := oipRowsPre(&fast, s, &pre); err == nil {
			return r, fast.ID, outputNames(fast.Outputs), nil
		}
	}
	return decodeOIPJSON(body, s)
}

func outputNames(os []OIPOutputSpec) []string {
	var outs []string
	for _, o := range os {
		outs = append(outs, o.Name)
	}
	return outs
}

// decodeOIPJSON is decodeOIP through encoding/json (strict: unknown fields
// refused).
func decodeOIPJSON(body []byte, s *guard.Schema) (*guard.Rows, string, []string, error) {
	var req OIPRequest
	if err := strictUnmarshal(body, &req); err != nil {
		return nil, "", nil, jsonError(err)
	}
	r, err := oipRows(&req, s)
	return r, req.ID, outputNames(req.Outputs), err
}

func oipRows(req *OIPRequest, s *guard.Schema) (*guard.Rows, error) { return oipRowsPre(req, s, nil) }

// oipRowsPre is oipRows with the single tensor's values already read by
// the fast reader (pre; nil: read them from the data bytes).
func oipRowsPre(req *OIPRequest, s *guard.Schema, pre *preParsed) (*guard.Rows, error) {
	if len(req.ID) > 256 {
		return nil, guard.Invalid("id", "id is longer than 256 bytes")
	}
	for k := range req.Parameters {
		if k == "binary_data_output" || k == "binary_data_size" {
			return nil, guard.Invalid("parameters", "the binary tensor extension is not supported; send JSON data")
		}
	}
	if len(req.Inputs) == 0 {
		return nil, guard.Invalid("inputs", "inputs must not be empty")
	}
	for _, o := range req.Outputs {
		if _, ok := o.Parameters["binary_data"]; ok {
			return nil, guard.Invalid("outputs", "the binary tensor extension is not supported")
		}
	}
	F := len(s.Features)
	_, named := s.Index(req.Inputs[0].Name)
	if len(req.Inputs) == 1 && (F > 1 || !named) {
		in := req.Inputs[0]
		if len(in.Shape) != 2 || in.Shape[1] != int64(F) {
			return nil, guard.Invalid("inputs", "a single input must have shape [N, %d]", F)
		}
		if !numericTypes[in.Datatype] {
			return nil, guard.Invalid("inputs", "datatype %q is not numeric", truncate(in.Datatype, 16))
		}
		if !s.Numeric() {
			return nil, guard.Invalid("inputs", "the model has categorical features: send one input per feature")
		}
		if err := checkParams(in.Parameters); err != nil {
			return nil, err
		}
		n, err := rowsOf(in.Shape, int64(F))
		if err != nil {
			return nil, err
		}
		var vals []float64
		if pre != nil && pre.input == 0 && pre.fits(in.Datatype, n*F) {
			vals = pre.vals // exactly what parseNumbers reads (see preParsed)
		} else {
			bp := rowBuf.Get().(*[]float64)
			defer rowBuf.Put(bp)
			vals, err = parseNumbers(in.Data, (*bp)[:0], in.Datatype, n*F)
			if cap(vals) <= 1<<20 {
				*bp = vals[:0]
			}
			if err != nil {
				return nil, err
			}
		}
		// Row-major values into columns (one allocation for all of them).
		// (All features are numeric here: no categorical columns.)
		r := &guard.Rows{N: n, Num: make([][]float64, F)}
		cols := make([]float64, n*F)
		for j := range F {
			col := cols[j*n : (j+1)*n : (j+1)*n]
			for i := range n {
				col[i] = vals[i*F+j]
			}
			r.Num[j] = col
		}
		return r, nil
	}
	if len(req.Inputs) != F {
		return nil, guard.Invalid("inputs", "send one [N, %d] tensor or %d inputs, one per feature", F, F)
	}
	r := &guard.Rows{N: -1, Num: make([][]float64, F), Cat: make([][]string, F)}
	seen := make([]bool, F)
	for _, in := range req.Inputs {
		j, ok := s.Index(in.Name)
		if !ok {
			return nil, guard.Invalid("inputs", "unknown input %q", truncate(in.Name, 64))
		}
		if seen[j] {
			return nil, guard.Invalid("inputs", "input %q appears twice", in.Name)
		}
		seen[j] = true
		if err := checkParams(in.Parameters); err != nil {
			return nil, err
		}
		if len(in.Shape) == 2 && in.Shape[1] != 1 || len(in.Shape) < 1 || len(in.Shape) > 2 {
			return nil, guard.Invalid(in.Name, "input %q must have shape [N] or [N, 1]", in.Name)
		}
		n, err := rowsOf(in.Shape[:1], 1)
		if err != nil {
			return nil, err
		}
		if r.N >= 0 && n != r.N {
			return nil, guard.Invalid(in.Name, "input %q has %d rows, others have %d", in.Name, n, r.N)
		}
		r.N = n
		if s.Features[j].Categorical {
			if in.Datatype != "BYTES" {
				return nil, guard.Invalid(in.Name, "input %q is categorical: datatype must be BYTES", in.Name)
			}
			r.Cat[j], err = parseStrings(in.Data, n)
		} else {
			if !numericTypes[in.Datatype] {
				return nil, guard.Invalid(in.Name, "input %q must be numeric", in.Name)
			}
			r.Num[j], err = parseNumbers(in.Data, make([]float64, 0, n), in.Datatype, n)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// rowBuf recycles the row-major buffer a tensor is read into.
var rowBuf = sync.Pool{New: func() any { b := make([]float64, 0, 1024); return &b }}

func checkParams(p map[string]json.RawMessage) error {
	if _, ok := p["binary_data_size"]; ok {
		return guard.Invalid("parameters", "the binary tensor extension is not supported; send JSON data")
	}
	return nil
}

// rowsOf checks a shape whose trailing product is width and returns N.
func rowsOf(shape []int64, width int64) (int, error) {
	if len(shape) == 0 || shape[0] < 1 {
		return 0, guard.Invalid("shape", "the first dimension must be at least 1")
	}
	if shape[0] > MaxRowsHard || width < 1 || shape[0]*width > MaxElements {
		return 0, guard.Invalid("shape", "the request is larger than %d rows or %d values", MaxRowsHard, MaxElements)
	}
	return int(shape[0]), nil
}

// parseNumbers reads a (possibly nested, row-major) JSON array of exactly
// want numbers; null is a missing value (NaN). Values must be finite and
// fit the datatype.
func parseNumbers(raw []byte, dst []float64, dtype string, want int) ([]float64, error) {
	p := scanner{b: raw, want: want, isBool: dtype == "BOOL"}
	p.lo, p.hi, p.integral = bounds(dtype)
	p.ws()
	if !p.eat('[') {
		return nil, guard.Invalid("data", "data must be an array")
	}
	// Room for the values up front, bounded by what the bytes can hold (a
	// value takes at least two), so a large declared shape with little
	// data allocates nothing big.
	if room := min(want, len(raw)/2+1); cap(dst)-len(dst) < room {
		dst = append(make([]float64, 0, len(dst)+room), dst...)
	}
	dst, err := p.numbers(dst, dtype, 1)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, guard.Invalid("data", "malformed data")
	}
	if len(dst) != want {
		return nil, guard.Invalid("data", "data has %d values, the shape needs %d", len(dst), want)
	}
	return dst, nil
}

func parseStrings(raw []byte, want int) ([]string, error) {
	var out []string
	d := json.NewDecoder(bytes.NewReader(raw))
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, guard.Invalid("data", "malformed data")
	}
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		if depth > maxDepth {
			return guard.Invalid("data", "data is nested too deeply")
		}
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if err := walk(e, depth+1); err != nil {
					return err
				}
				if len(out) > want {
					return guard.Invalid("data", "data has more values than the shape")
				}
			}
		case string:
			out = append(out, x)
		case nil:
			out = append(out, "")
		default:
			return guard.Invalid("data", "BYTES data must be strings")
		}
		return nil
	}
	if _, ok := v.([]any); !ok {
		return nil, guard.Invalid("data", "data must be an array")
	}
	if err := walk(v, 0); err != nil {
		return nil, err
	}
	if len(out) != want {
		return nil, guard.Invalid("data", "data has %d values, the shape needs %d", len(out), want)
	}
	return out, nil
}

type scanner struct {
	b []byte
	i int
	// what a value must satisfy (parseNumbers)
	want     int
	isBool   bool
	lo, hi   float64
	integral bool
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// numbers reads the elements of an array whose '[' was consumed.
func (p *scanner) numbers(dst []float64, dtype string, depth int) ([]float64, error) {
	if depth > maxDepth {
		return nil, guard.Invalid("data", "data is nested too deeply")
	}
	p.ws()
	if p.eat(']') {
		return dst, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return nil, guard.Invalid("data", "malformed data")
		}
		switch c := p.b[p.i]; {
		case c == '[':
			p.i++
			var err error
			if dst, err = p.numbers(dst, dtype, depth+1); err != nil {
				return nil, err
			}
		case c == 'n' && bytes.HasPrefix(p.b[p.i:], []byte("null")):
			p.i += 4
			dst = append(dst, math.NaN())
		case c == 't' && bytes.HasPrefix(p.b[p.i:], []byte("true")) && p.isBool:
			p.i += 4
			dst = append(dst, 1)
		case c == 'f' && bytes.HasPrefix(p.b[p.i:], []byte("false")) && p.isBool:
			p.i += 5
			dst = append(dst, 0)
		case c == '-' || c >= '0' && c <= '9':
			// A JSON number of at most 64 bytes, finite, read once.
			v, j, ok := readNumber(p.b, p.i)
			if !ok {
				return nil, guard.Invalid("data", "value %d is not a finite number", len(dst))
			}
			if v < p.lo || v > p.hi || p.integral && v != math.Trunc(v) {
				return nil, guard.Invalid("data", "a value does not fit datatype %s", dtype)
			}
			p.i = j
			dst = append(dst, v)
		default:
			return nil, guard.Invalid("data", "value %d is not a number", len(dst))
		}
		if len(dst) > p.want {
			return nil, guard.Invalid("data", "data has more values than the shape")
		}
		p.ws()
		if p.eat(']') {
			return dst, nil
		}
		if !p.eat(',') {
			return nil, guard.Invalid("data", "malformed data")
		}
	}
}

// validJSONNumber refuses forms ParseFloat accepts but JSON does not
// (leading '+', "1.", ".5", hex, underscores are excluded by the scanner).
func validJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return false
	}
	if b[i] == '0' && i+1 < len(b) && b[i+1] >= '0' && b[i+1] <= '9' {
		return false
	}
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// bounds returns the values datatype dtype holds.
func bounds(dtype string) (lo, hi float64, integral bool) {
	lo, hi = math.Inf(-1), math.Inf(1)
	switch dtype {
	case "BOOL":
		lo, hi, integral = 0, 1, true
	case "UINT8":
		lo, hi, integral = 0, math.MaxUint8, true
	case "UINT16":
		lo, hi, integral = 0, math.MaxUint16, true
	case "UINT32":
		lo, hi, integral = 0, math.MaxUint32, true
	case "UINT64":
		lo, hi, integral = 0, math.MaxUint64, true
	case "INT8":
		lo, hi, integral = math.MinInt8, math.MaxInt8, true
	case "INT16":
		lo, hi, integral = math.MinInt16, math.MaxInt16, true
	case "INT32":
		lo, hi, integral = math.MinInt32, math.MaxInt32, true
	case "INT64":
		lo, hi, integral = math.MinInt64, math.MaxInt64, true
	case "FP16":
		lo, hi = -65504, 65504
	case "FP32":
		lo, hi = -math.MaxFloat32, math.MaxFloat32
	}
	return lo, hi, integral
}

// PredictRequest is the body of POST /v1/endpoints/{endpoint}/predict: rows
// as JSON objects keyed by feature name.
type PredictRequest struct {
	Rows []map[string]json.RawMessage `json:"rows"`
}

// DecodeRows parses a /v1 predict body for schema s. Every row must name
// every feature exactly; unknown names are refused (INF-4).
func DecodeRows(body []byte, s *guard.Schema, maxRows int) (*guard.Rows, error) {
	var req PredictRequest
	if err := strictUnmarshal(body, &req); err != nil {
		return nil, jsonError(err)
	}
	n := len(req.Rows)
	if n == 0 {
		return nil, guard.Invalid("rows", "rows must not be empty")
	}
	if n > MaxRowsHard || (maxRows > 0 && n > maxRows) {
		return nil, guard.Invalid("rows", "%d rows exceed the limit per request", n)
	}
	F := len(s.Features)
	r := &guard.Rows{N: n, Num: make([][]float64, F), Cat: make([][]string, F)}
	for j, f := range s.Features {
		if f.Categorical {
			r.Cat[j] = make([]string, n)
		} else {
			r.Num[j] = make([]float64, n)
		}
	}
	for i, row := range req.Rows {
		if len(row) != F {
			for k := range row {
				if _, ok := s.Index(k); !ok {
					return nil, guard.Invalid("rows", "row %d: unknown feature %q", i, truncate(k, 64))
				}
			}
			return nil, guard.Invalid("rows", "row %d has %d features, the model takes %d", i, len(row), F)
		}
		for k, raw := range row {
			j, ok := s.Index(k)
			if !ok {
				return nil, guard.Invalid("rows", "row %d: unknown feature %q", i, truncate(k, 64))
			}
			raw = bytes.TrimSpace(raw)
			isNull := bytes.Equal(raw, []byte("null"))
			if s.Features[j].Categorical {
				switch {
				case isNull:
				case len(raw) > 0 && raw[0] == '"':
					if err := json.Unmarshal(raw, &r.Cat[j][i]); err != nil {
						return nil, guard.Invalid(k, "row %d: feature %q is not a valid string", i, k)
					}
				default:
					// A number for a categorical feature is its text.
					if _, err := strconv.ParseFloat(string(raw), 64); err != nil || !validJSONNumber(raw) {
						return nil, guard.Invalid(k, "row %d: feature %q must be a string", i, k)
					}
					r.Cat[j][i] = string(raw)
				}
				continue
			}
			if isNull {
				r.Num[j][i] = math.NaN()
				continue
			}
			if !validJSONNumber(raw) {
				return nil, guard.Invalid(k, "row %d: feature %q must be a number", i, k)
			}
			v, err := strconv.ParseFloat(string(raw), 64)
			if err != nil || math.IsInf(v, 0) {
				return nil, guard.Invalid(k, "row %d: feature %q is not a finite number", i, k)
			}
			r.Num[j][i] = v
		}
	}
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	if !utf8.ValidString(s) {
		return "(invalid UTF-8)"
	}
	return s
}
