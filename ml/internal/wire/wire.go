// Package wire is the canonical little-endian binary encoding shared by the
// model artifact and every learner's payload.
//
// Canonical means one value has exactly one encoding: fixed-width integers,
// IEEE-754 bits for floats (so -0 and NaN payloads survive), length-prefixed
// strings and slices, and no maps (callers sort keys first). That is what lets
// identical training runs produce byte-identical artifacts (TRAIN-6).
//
// The Reader treats its input as untrusted: every length is checked against
// the bytes that remain before anything is allocated, so a malformed artifact
// costs at most its own size in memory and yields an error, never a panic.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed encoding")

// Writer appends canonical encodings to a byte slice.
type Writer struct {
	buf []byte
}

// Bytes returns the encoded bytes.
func (w *Writer) Bytes() []byte { return w.buf }

// U8 writes one byte.
func (w *Writer) U8(v uint8) { w.buf = append(w.buf, v) }

// Bool writes 0 or 1.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// U32 writes a little-endian uint32.
func (w *Writer) U32(v uint32) { w.buf = binary.LittleEndian.AppendUint32(w.buf, v) }

// U64 writes a little-endian uint64.
func (w *Writer) U64(v uint64) { w.buf = binary.LittleEndian.AppendUint64(w.buf, v) }

// Int writes a non-negative int as a uint64.
func (w *Writer) Int(v int) { w.U64(uint64(v)) }

// I64 writes a signed integer.
func (w *Writer) I64(v int64) { w.U64(uint64(v)) }

// F64 writes the IEEE-754 bits of v.
func (w *Writer) F64(v float64) { w.U64(math.Float64bits(v)) }

// String writes a length-prefixed string.
func (w *Writer) String(s string) {
	w.U32(uint32(len(s)))
	w.buf = append(w.buf, s...)
}

// F64s writes a length-prefixed float slice.
func (w *Writer) F64s(v []float64) {
	w.U32(uint32(len(v)))
	for _, x := range v {
		w.F64(x)
	}
}

// Ints writes a length-prefixed int slice.
func (w *Writer) Ints(v []int) {
	w.U32(uint32(len(v)))
	for _, x := range v {
		w.I64(int64(x))
	}
}

// Strings writes a length-prefixed string slice.
func (w *Writer) Strings(v []string) {
	w.U32(uint32(len(v)))
	for _, s := range v {
		w.String(s)
	}
}

// Reader decodes what Writer wrote. The first error sticks: later calls
// return zero values, and Err reports it.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader reads from b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Remaining is the number of unread bytes.
func (r *Reader) Remaining() int { return len(r.buf) - r.off }

// Fail records an error (if none yet) so callers can report semantic
// problems, such as an out-of-range index, through the same channel.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), r.off)
	}
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.Remaining() {
		r.Fail("need %d bytes, %d left", n, r.Remaining())
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

// U8 reads one byte.
func (r *Reader) U8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	v := r.U8()
	if v > 1 {
		r.Fail("bool byte %d", v)
	}
	return v == 1
}

// U32 reads a little-endian uint32.
func (r *Reader) U32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// U64 reads a little-endian uint64.
func (r *Reader) U64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// I64 reads a signed integer.
func (r *Reader) I64() int64 { return int64(r.U64()) }

// Int reads a non-negative int no larger than max.
func (r *Reader) Int(max int) int {
	v := r.U64()
	if r.err == nil && v > uint64(max) {
		r.Fail("integer %d exceeds limit %d", v, max)
		return 0
	}
	return int(v)
}

// F64 reads a float.
func (r *Reader) F64() float64 { return math.Float64frombits(r.U64()) }

// Finite reads a float that must be finite.
func (r *Reader) Finite() float64 {
	v := r.F64()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.Fail("non-finite float")
		return 0
	}
	return v
}

// count reads a slice length and checks that elem-sized elements fit in the
// remaining input, so no allocation can exceed the artifact's own size.
func (r *Reader) count(elem int) int {
	n := int(r.U32())
	if r.err != nil {
		return 0
	}
	if n > r.Remaining()/elem {
		r.Fail("length %d exceeds remaining input", n)
		return 0
	}
	return n
}

// String reads a length-prefixed string of at most max bytes.
func (r *Reader) String(max int) string {
	n := r.count(1)
	if n > max {
		r.Fail("string of %d bytes exceeds limit %d", n, max)
		return ""
	}
	return string(r.take(n))
}

// F64s reads a float slice.
func (r *Reader) F64s() []float64 {
	n := r.count(8)
	if r.err != nil {
		return nil
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = r.F64()
	}
	return v
}

// FiniteF64s reads a float slice whose elements must be finite.
func (r *Reader) FiniteF64s() []float64 {
	v := r.F64s()
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			r.Fail("non-finite float in slice")
			return nil
		}
	}
	return v
}

// Ints reads an int slice whose elements lie in [lo, hi].
func (r *Reader) Ints(lo, hi int) []int {
	n := r.count(8)
	if r.err != nil {
		return nil
	}
	v := make([]int, n)
	for i := range v {
		x := r.I64()
		if x < int64(lo) || x > int64(hi) {
			r.Fail("integer %d outside [%d, %d]", x, lo, hi)
			return nil
		}
		v[i] = int(x)
	}
	return v
}

// Strings reads a string slice, each at most max bytes.
func (r *Reader) Strings(max int) []string {
	n := r.count(4)
	if r.err != nil {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.String(max)
	}
	return v
}

// End reports an error if unread bytes remain: trailing garbage would let two
// different byte strings decode to the same model.
func (r *Reader) End() error {
	if r.err == nil && r.Remaining() != 0 {
		r.Fail("%d trailing bytes", r.Remaining())
	}
	return r.err
}
