package wire

import (
	"errors"
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	w := &Writer{}
	w.U8(7)
	w.Bool(true)
	w.U32(1 << 30)
	w.I64(-5)
	w.F64(math.Copysign(0, -1))
	w.String("héllo")
	w.F64s([]float64{1.5, -2})
	w.Ints([]int{3, 0, 9})
	w.Strings([]string{"a", ""})
	r := NewReader(w.Bytes())
	if r.U8() != 7 || !r.Bool() || r.U32() != 1<<30 || r.I64() != -5 {
		t.Fatal("integers")
	}
	if z := r.F64(); z != 0 || !math.Signbit(z) {
		t.Error("-0 not preserved")
	}
	if r.String(10) != "héllo" {
		t.Error("string")
	}
	if f := r.F64s(); len(f) != 2 || f[1] != -2 {
		t.Error("floats")
	}
	if v := r.Ints(0, 9); len(v) != 3 || v[2] != 9 {
		t.Error("ints")
	}
	if s := r.Strings(5); len(s) != 2 || s[0] != "a" {
		t.Error("strings")
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
}

func TestMalformed(t *testing.T) {
	huge := &Writer{}
	huge.U32(math.MaxUint32) // a length that cannot fit
	long := &Writer{}
	long.String("abcdef")
	nan := &Writer{}
	nan.F64(math.NaN())
	ints := &Writer{}
	ints.Ints([]int{5})
	cases := map[string]func(r *Reader){
		"short read":       func(r *Reader) { r.U64() },
		"huge float slice": func(r *Reader) { r.F64s() },
		"string limit":     func(r *Reader) { r.String(3) },
		"non-finite":       func(r *Reader) { r.Finite() },
		"int range":        func(r *Reader) { r.Ints(0, 4) },
		"bad bool":         func(r *Reader) { r.Bool() },
	}
	inputs := map[string][]byte{
		"short read": {1, 2, 3}, "huge float slice": huge.Bytes(), "string limit": long.Bytes(),
		"non-finite": nan.Bytes(), "int range": ints.Bytes(), "bad bool": {2},
	}
	for name, read := range cases {
		r := NewReader(inputs[name])
		read(r)
		if !errors.Is(r.Err(), ErrMalformed) {
			t.Errorf("%s: %v", name, r.Err())
		}
	}
	r := NewReader([]byte{1, 0})
	r.U8()
	if err := r.End(); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
}
