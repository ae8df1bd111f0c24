package serving

import (
	"encoding/json"
	"math"
	"strconv"
)

// The single-pass OIP request reader. fastOIPRequest reads the common
// shape of an OIP v2 inference request — exact lowercase field names, each
// at most once, plain ASCII strings without escapes, integer shapes —
// straight out of the body: the tensors' data arrays are not copied (they
// stay slices of the body and parseNumbers reads each value once). Anything
// else (escapes, non-ASCII, null fields, case-folded or duplicate keys,
// trailing bytes, wrong types, deep nesting) makes it decline, and the
// request goes through encoding/json exactly as before; so does any request
// the fast path cannot turn into rows (decodeOIP), so every refusal carries
// the same problem, field and message as the encoding/json path.
// FuzzDecodeOIPDifferential checks that whatever the fast path accepts,
// the encoding/json path accepts with the same rows, ID and outputs.

type fastReader struct {
	b []byte
	i int
}

func (p *fastReader) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte (0 at the end).
func (p *fastReader) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *fastReader) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// plainString reads a string of printable ASCII without escapes and
// returns its bytes (a slice of the body).
func (p *fastReader) plainString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// skipString passes over any valid JSON string (escapes checked; bytes
// ≥ 0x80 pass as encoding/json lets them).
func (p *fastReader) skipString() bool {
	if !p.eat('"') {
		return false
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch {
		case c == '"':
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if p.i >= len(p.b) {
				return false
			}
			e := p.b[p.i]
			p.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p.i+4 > len(p.b) {
					return false
				}
				for _, h := range p.b[p.i : p.i+4] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.i += 4
			default:
				return false
			}
		}
	}
	return false
}

// skipValue passes over one valid JSON value and returns its bytes.
func (p *fastReader) skipValue(depth int) ([]byte, bool) {
	if depth > 64 {
		return nil, false
	}
	c := p.peek()
	start := p.i
	switch {
	case c == '"':
		if !p.skipString() {
			return nil, false
		}
	case c == '{':
		p.i++
		if !p.eat('}') {
			for {
				if p.peek() != '"' || !p.skipString() || !p.eat(':') {
					return nil, false
				}
				if _, ok := p.skipValue(depth + 1); !ok {
					return nil, false
				}
				if p.eat('}') {
					break
				}
				if !p.eat(',') {
					return nil, false
				}
			}
		}
	case c == '[':
		p.i++
		if !p.eat(']') {
			for {
				if _, ok := p.skipValue(depth + 1); !ok {
					return nil, false
				}
				if p.eat(']') {
					break
				}
				if !p.eat(',') {
					return nil, false
				}
			}
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
				p.i += len(lit)
				return p.b[start:p.i], true
			}
		}
		return nil, false
	case c == '-' || c >= '0' && c <= '9':
		j := p.i
		for j < len(p.b) && (p.b[j] >= '0' && p.b[j] <= '9' || p.b[j] == '-' || p.b[j] == '+' || p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E') {
			j++
		}
		if !validJSONNumber(p.b[p.i:j]) {
			return nil, false
		}
		p.i = j
	default:
		return nil, false
	}
	return p.b[start:p.i], true
}

// dataSpan finds the end of a data value without reading its numbers
// (parseNumbers or parseStrings validate it strictly afterwards; a request
// is only accepted when they do): brackets are matched, strings skipped.
func (p *fastReader) dataSpan() ([]byte, bool) {
	if p.peek() != '[' {
		return p.skipValue(0)
	}
	start, depth := p.i, 0
	for p.i < len(p.b) {
		if !spanStop[p.b[p.i]] {
			p.i++
			continue
		}
		switch p.b[p.i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				p.i++
				return p.b[start:p.i], true
			}
		case '"':
			if !p.skipString() {
				return nil, false
			}
			continue
		case '{', '}':
			return nil, false // never valid tensor data; let encoding/json say why
		}
		p.i++
	}
	return nil, false
}

// spanStop marks the bytes dataSpan looks at.
var spanStop = [256]bool{'[': true, ']': true, '"': true, '{': true, '}': true}

// object reads the members of an object with plain keys, calling member
// for each (which must read the value); a repeated key declines.
func (p *fastReader) object(member func(key []byte) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	var seen [8][]byte
	n := 0
	for {
		key, ok := p.plainString()
		if !ok || !p.eat(':') {
			return false
		}
		for _, s := range seen[:n] {
			if string(s) == string(key) {
				return false
			}
		}
		if n < len(seen) {
			seen[n] = key
			n++
		} else {
			return false
		}
		if !member(key) {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

func (p *fastReader) array(elem func() bool) bool {
	if !p.eat('[') {
		return false
	}
	if p.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.eat(']') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// params reads a parameters object (values kept as slices of the body).
func (p *fastReader) params(dst *map[string]json.RawMessage) bool {
	m := map[string]json.RawMessage{}
	ok := p.object(func(key []byte) bool {
		v, ok := p.skipValue(1)
		m[string(key)] = v
		return ok
	})
	*dst = m
	return ok
}

// int64Value reads an integer literal the way encoding/json fills an
// int64 (no fraction, no exponent, in range).
func (p *fastReader) int64Value() (int64, bool) {
	p.ws()
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	d := j
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == d || j-d > 18 || p.b[d] == '0' && j-d > 1 {
		return 0, false
	}
	if j < len(p.b) && (p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseInt(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return v, true
}

// preParsed holds the values of the first input's data as the fast reader
// read them on its way (when they are numbers, nulls and booleans nested
// as parseNumbers allows): the same readNumber, the same depth rule, null
// as NaN, true/false as 1/0. What parseNumbers also checks depends on the
// datatype and shape, which may come after the data: fits checks them
// afterwards, and any doubt sends the data through parseNumbers.
type preParsed struct {
	input   int // index of the input read (-1: none)
	vals    []float64
	hasBool bool // a true or false literal was read
}

// fits reports whether the values are what parseNumbers would return for
// datatype dtype and want values (otherwise parseNumbers decides).
func (pp *preParsed) fits(dtype string, want int) bool {
	if len(pp.vals) != want || pp.hasBool && dtype != "BOOL" {
		return false
	}
	lo, hi, integral := bounds(dtype)
	if math.IsInf(lo, -1) && math.IsInf(hi, 1) && !integral {
		return true // FP64 (and unknown types, refused before this)
	}
	for _, v := range pp.vals {
		if v != v { // null
			continue
		}
		if v < lo || v > hi || integral && v != math.Trunc(v) {
			return false
		}
	}
	return true
}

// numbers reads a data array of numbers, nulls and booleans into pp.vals
// (depth and syntax as parseNumbers); false: something else is there.
func (p *fastReader) numbers(pp *preParsed, depth int) bool {
	if depth > maxDepth || !p.eat('[') {
		return false
	}
	if p.eat(']') {
		return true
	}
	for {
		c := p.peek()
		switch {
		case c == '[':
			if !p.numbers(pp, depth+1) {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			v, j, ok := readNumber(p.b, p.i)
			if !ok {
				return false
			}
			p.i = j
			pp.vals = append(pp.vals, v)
		case c == 'n' && len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null":
			p.i += 4
			pp.vals = append(pp.vals, math.NaN())
		case c == 't' && len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
			p.i += 4
			pp.vals = append(pp.vals, 1)
			pp.hasBool = true
		case c == 'f' && len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
			p.i += 5
			pp.vals = append(pp.vals, 0)
			pp.hasBool = true
		default:
			return false
		}
		if len(pp.vals) > MaxElements {
			return false
		}
		if p.eat(']') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// fastOIPRequest fills req from body when body has the common shape (see
// above) and reports whether it did; pre (optional) receives the first
// input's data values when they are numeric.
func fastOIPRequest(body []byte, req *OIPRequest, pre *preParsed) bool {
	p := &fastReader{b: body}
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "id":
			s, ok := p.plainString()
			req.ID = string(s)
			return ok
		case "parameters":
			return p.params(&req.Parameters)
		case "inputs":
			req.Inputs = []OIPInput{}
			return p.array(func() bool {
				var in OIPInput
				ok := p.object(func(key []byte) bool {
					switch string(key) {
					case "name":
						s, ok := p.plainString()
						in.Name = string(s)
						return ok
					case "datatype":
						s, ok := p.plainString()
						in.Datatype = string(s)
						return ok
					case "shape":
						in.Shape = []int64{}
						return p.array(func() bool {
							v, ok := p.int64Value()
							in.Shape = append(in.Shape, v)
							return ok
						})
					case "parameters":
						return p.params(&in.Parameters)
					case "data":
						if pre != nil && len(req.Inputs) == 0 && p.peek() == '[' {
							start := p.i
							if p.numbers(pre, 1) {
								in.Data, pre.input = p.b[start:p.i], 0
								return true
							}
							p.i, pre.vals, pre.hasBool = start, pre.vals[:0], false
						}
						d, ok := p.dataSpan()
						in.Data = d
						return ok
					}
					return false
				})
				req.Inputs = append(req.Inputs, in)
				return ok
			})
		case "outputs":
			req.Outputs = []OIPOutputSpec{}
			return p.array(func() bool {
				var o OIPOutputSpec
				ok := p.object(func(key []byte) bool {
					switch string(key) {
					case "name":
						s, ok := p.plainString()
						o.Name = string(s)
						return ok
					case "parameters":
						return p.params(&o.Parameters)
					}
					return false
				})
				req.Outputs = append(req.Outputs, o)
				return ok
			})
		}
		return false
	})
	p.ws()
	return ok && p.i == len(p.b)
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
	1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// readNumber reads the JSON number at b[i:] and returns its value, the
// index after it and whether it is a valid JSON number of at most 64 bytes
// that is finite as a float64. Numbers whose decimal mantissa fits in 53
// bits with a power of ten up to 22 are converted exactly by one
// multiplication or division (Clinger's fast path, as strconv does); the
// others go through strconv.ParseFloat. Either way the value is the
// correctly rounded one.
func readNumber(b []byte, i int) (float64, int, bool) {
	start := i
	neg := false
	if i < len(b) && b[i] == '-' {
		neg = true
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return 0, i, false
	}
	var mant uint64
	nd, e10, exact := 0, 0, true
	if b[i] == '0' {
		i++
	} else {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if nd < 19 {
				mant = mant*10 + uint64(b[i]-'0')
				nd++
			} else {
				exact = false
			}
			i++
		}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, i, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if nd < 19 {
				mant = mant*10 + uint64(b[i]-'0')
				if mant != 0 {
					nd++
				}
				e10--
			} else {
				exact = false
			}
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, i, false
		}
		x := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if x < 100_000 {
				x = x*10 + int(b[i]-'0')
			}
			i++
		}
		if eneg {
			x = -x
		}
		e10 += x
	}
	if i-start > 64 {
		return 0, i, false
	}
	var v float64
	switch {
	case exact && mant == 0:
		v = 0
	case exact && mant < 1<<53 && e10 >= -22 && e10 <= 22:
		v = float64(mant)
		if e10 < 0 {
			v /= pow10[-e10]
		} else {
			v *= pow10[e10]
		}
	default:
		f, err := strconv.ParseFloat(string(b[start:i]), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, i, false
		}
		return f, i, true
	}
	if neg {
		v = -v
	}
	return v, i, true
}
