package serving

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/guard"
)

func testSchema() *guard.Schema {
	// Two numeric features and one categorical, as SchemaFromML builds them.
	s := guard.SchemaNumeric([]string{"a", "b", "c"})
	s.Features[2].Categorical = true
	return s
}

func numericSchema() *guard.Schema { return guard.SchemaNumeric([]string{"a", "b"}) }

func TestDecodeOIP(t *testing.T) {
	cases := []struct {
		name   string
		schema *guard.Schema
		body   string
		n      int    // rows on success
		field  string // on failure
	}{
		{"tensor nested", numericSchema(), `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}`, 2, ""},
		{"tensor flat", numericSchema(), `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[1,2,3,4]}]}`, 2, ""},
		{"per feature", testSchema(), `{"id":"q","inputs":[{"name":"a","shape":[1],"datatype":"INT64","data":[1]},{"name":"b","shape":[1,1],"datatype":"FP32","data":[2.5]},{"name":"c","shape":[1],"datatype":"BYTES","data":["x"]}]}`, 1, ""},
		{"outputs requested", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],"outputs":[{"name":"label"}]}`, 1, ""},
		{"null is missing", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[null,2]}]}`, 1, ""},
		{"wrong width", numericSchema(), `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`, 0, "inputs"},
		{"short data", numericSchema(), `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}`, 0, "data"},
		{"long data", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2,3]}]}`, 0, "data"},
		{"string in numeric", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":["1",2]}]}`, 0, "data"},
		{"NaN token", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[NaN,2]}]}`, 0, "body"},
		{"overflow", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1e999,2]}]}`, 0, "data"},
		{"fp32 overflow", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1e39,2]}]}`, 0, "data"},
		{"int not integral", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"INT32","data":[1.5,2]}]}`, 0, "data"},
		{"uint negative", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"UINT8","data":[-1,2]}]}`, 0, "data"},
		{"bad json number", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[01,2]}]}`, 0, "body"},
		{"deep", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[[[[1,2]]]]]}]}`, 0, "data"},
		{"unknown field", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],"evil":1}`, 0, "body"},
		{"unknown input field", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2],"evil":1}]}`, 0, "body"},
		{"unknown input", testSchema(), `{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]},{"name":"b","shape":[1],"datatype":"FP32","data":[1]},{"name":"zz","shape":[1],"datatype":"BYTES","data":["x"]}]}`, 0, "inputs"},
		{"duplicate input", testSchema(), `{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]},{"name":"a","shape":[1],"datatype":"FP32","data":[1]},{"name":"c","shape":[1],"datatype":"BYTES","data":["x"]}]}`, 0, "inputs"},
		{"categorical needs BYTES", testSchema(), `{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":[1]},{"name":"b","shape":[1],"datatype":"FP32","data":[1]},{"name":"c","shape":[1],"datatype":"FP32","data":[1]}]}`, 0, "c"},
		{"tensor on categorical model", testSchema(), `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`, 0, "inputs"},
		{"row mismatch", testSchema(), `{"inputs":[{"name":"a","shape":[2],"datatype":"FP32","data":[1,2]},{"name":"b","shape":[1],"datatype":"FP32","data":[1]},{"name":"c","shape":[1],"datatype":"BYTES","data":["x"]}]}`, 0, "b"},
		{"huge shape", numericSchema(), `{"inputs":[{"name":"x","shape":[1000000000000,2],"datatype":"FP32","data":[1,2]}]}`, 0, "shape"},
		{"zero rows", numericSchema(), `{"inputs":[{"name":"x","shape":[0,2],"datatype":"FP32","data":[]}]}`, 0, "shape"},
		{"negative shape", numericSchema(), `{"inputs":[{"name":"x","shape":[-1,2],"datatype":"FP32","data":[1,2]}]}`, 0, "shape"},
		{"no inputs", numericSchema(), `{"inputs":[]}`, 0, "inputs"},
		{"binary extension", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}`, 0, "parameters"},
		{"not json", numericSchema(), `hello`, 0, "body"},
		{"trailing", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]} {}`, 0, "body"},
		{"bool datatype", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"BOOL","data":[true,false]}]}`, 1, ""},
		{"unknown datatype", numericSchema(), `{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP128","data":[1,2]}]}`, 0, "inputs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _, err := DecodeOIP([]byte(c.body), c.schema)
			checkDecode(t, r, err, c.n, c.field)
		})
	}
}

func checkDecode(t *testing.T, r *guard.Rows, err error, n int, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatal(err)
		}
		if r.N != n {
			t.Fatalf("%d rows, want %d", r.N, n)
		}
		return
	}
	var re *rampart.Error
	var rj *guard.Rejection
	if !errors.As(err, &re) || !errors.As(err, &rj) || re.Code != rampart.CodeInvalid || rj.Kind != guard.KindInvalidInput {
		t.Fatalf("err %v, want invalid-input", err)
	}
	if re.Field != field {
		t.Fatalf("field %q (%v), want %q", re.Field, err, field)
	}
}

func TestDecodeRows(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		n     int
		field string
	}{
		{"ok", `{"rows":[{"a":1,"b":2.5,"c":"x"},{"a":null,"b":0,"c":null}]}`, 2, ""},
		{"number for categorical", `{"rows":[{"a":1,"b":2,"c":7}]}`, 1, ""},
		{"unknown feature", `{"rows":[{"a":1,"b":2,"c":"x","d":1}]}`, 0, "rows"},
		{"missing feature", `{"rows":[{"a":1,"b":2}]}`, 0, "rows"},
		{"string for numeric", `{"rows":[{"a":"1","b":2,"c":"x"}]}`, 0, "a"},
		{"object for numeric", `{"rows":[{"a":{},"b":2,"c":"x"}]}`, 0, "a"},
		{"bool for categorical", `{"rows":[{"a":1,"b":2,"c":true}]}`, 0, "c"},
		{"overflow", `{"rows":[{"a":1e400,"b":2,"c":"x"}]}`, 0, "a"},
		{"empty", `{"rows":[]}`, 0, "rows"},
		{"unknown top field", `{"rows":[],"x":1}`, 0, "body"},
		{"rows not array", `{"rows":{}}`, 0, "rows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := DecodeRows([]byte(c.body), testSchema(), 10)
			checkDecode(t, r, err, c.n, c.field)
		})
	}
	if r, err := DecodeRows([]byte(`{"rows":[{"a":null,"b":1,"c":"x"}]}`), testSchema(), 1); err != nil || !math.IsNaN(r.Num[0][0]) {
		t.Fatalf("null numeric: %v", err)
	}
	big := `{"rows":[` + strings.Repeat(`{"a":1,"b":2,"c":"x"},`, 11) + `{"a":1,"b":2,"c":"x"}]}`
	if _, err := DecodeRows([]byte(big), testSchema(), 10); err == nil {
		t.Fatal("max rows not enforced")
	}
}

// checkRows asserts a decoded batch is well formed: every column has N
// values of the right kind and numbers are finite or NaN (missing).
func checkRows(t *testing.T, s *guard.Schema, r *guard.Rows) {
	if r.N < 1 {
		t.Fatalf("decoded %d rows", r.N)
	}
	for j, f := range s.Features {
		if f.Categorical {
			if len(r.Cat[j]) != r.N {
				t.Fatalf("categorical column %d has %d values for %d rows", j, len(r.Cat[j]), r.N)
			}
			continue
		}
		if len(r.Num[j]) != r.N {
			t.Fatalf("numeric column %d has %d values for %d rows", j, len(r.Num[j]), r.N)
		}
		for _, v := range r.Num[j] {
			if math.IsInf(v, 0) {
				t.Fatal("infinite value decoded")
			}
		}
	}
}

func fuzzErr(t *testing.T, err error) {
	var rj *guard.Rejection
	if !errors.As(err, &rj) || rj.Kind != guard.KindInvalidInput || rampart.ErrorCode(err) != rampart.CodeInvalid {
		t.Fatalf("decoder error is not an invalid-input rejection: %v", err)
	}
}

// FuzzDecodeOIP: the OIP request parser (INF-4) never panics, refuses
// everything it cannot decode with an invalid-input rejection, and decodes
// only well-formed batches.
func FuzzDecodeOIP(f *testing.F) {
	for _, s := range []string{
		`{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}`,
		`{"inputs":[{"name":"a","shape":[1],"datatype":"INT64","data":[1]},{"name":"b","shape":[1],"datatype":"FP32","data":[2.5]},{"name":"c","shape":[1],"datatype":"BYTES","data":["x"]}]}`,
		`{"id":"1","parameters":{"k":1},"inputs":[{"name":"x","shape":[1,2],"datatype":"BOOL","data":[true,null]}],"outputs":[{"name":"label"}]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[[[1]]],2]}]}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, mixed bool) {
		s := numericSchema()
		if mixed {
			s = testSchema()
		}
		r, _, err := DecodeOIP(body, s)
		if err != nil {
			fuzzErr(t, err)
			return
		}
		checkRows(t, s, r)
	})
}

// FuzzDecodeRows: the same for the /v1 rows parser.
func FuzzDecodeRows(f *testing.F) {
	f.Add([]byte(`{"rows":[{"a":1,"b":2.5,"c":"x"},{"a":null,"b":0,"c":null}]}`))
	f.Add([]byte(`{"rows":[{"a":1,"b":2,"c":7}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := testSchema()
		r, err := DecodeRows(body, s, 100)
		if err != nil {
			fuzzErr(t, err)
			return
		}
		checkRows(t, s, r)
	})
}

// FuzzDecodeOIPDifferential: whatever the single-pass reader accepts
// (codec_fast.go), encoding/json reads into the same request and the same
// rows, ID and outputs; everything else goes through encoding/json anyway.
func FuzzDecodeOIPDifferential(f *testing.F) {
	for _, s := range []string{
		`{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}`,
		`{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP64","data":[1.5e-7,-0,0.1184,17.99e2]}]}`,
		`{"inputs":[{"name":"a","shape":[1],"datatype":"INT64","data":[1]},{"name":"b","shape":[1],"datatype":"FP32","data":[2.5]},{"name":"c","shape":[1],"datatype":"BYTES","data":["x"]}]}`,
		`{"id":"1","parameters":{"k":1,"z":{"q":[true,null,"\u00e9"]}},"inputs":[{"name":"x","shape":[1,2],"datatype":"BOOL","data":[true,null]}],"outputs":[{"name":"label","parameters":{}}]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[[[1]]],2]}]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"UINT8","data":[255,0]}]} `,
		` {"Inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1,2]}]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[1,2]}],"inputs":[]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP64","data":[123456789012345678901234,2e-400]}]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP16","data":[70000,1]}]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"INT8","data":[true,1]}]}`,
		`{"inputs":[{"name":"x","shape":[1,2],"datatype":"BOOL","data":[2,false]}]}`,
		`{"inputs":[{"datatype":"UINT16","data":[[65535],[null]],"shape":[1,2],"name":"x"}]}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, mixed bool) {
		s := numericSchema()
		if mixed {
			s = testSchema()
		}
		var fast OIPRequest
		pre := preParsed{input: -1}
		if !fastOIPRequest(body, &fast, &pre) {
			return
		}
		r1, err := oipRowsPre(&fast, s, &pre)
		if err != nil {
			return // decodeOIP answers with decodeOIPJSON's refusal
		}
		var ref OIPRequest
		if err := strictUnmarshal(body, &ref); err != nil {
			t.Fatalf("fast reader accepted what encoding/json refuses (%v): %q", err, body)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast reader read %+v, encoding/json %+v: %q", fast, ref, body)
		}
		r2, id, outs, err := decodeOIPJSON(body, s)
		if err != nil {
			t.Fatalf("fast path decoded what the encoding/json path refuses (%v): %q", err, body)
		}
		if id != fast.ID || !reflect.DeepEqual(outs, outputNames(fast.Outputs)) {
			t.Fatalf("id/outputs differ: %q %v vs %q %v", fast.ID, outputNames(fast.Outputs), id, outs)
		}
		sameRows(t, r1, r2)
	})
}

func sameRows(t *testing.T, a, b *guard.Rows) {
	t.Helper()
	if a.N != b.N || len(a.Num) != len(b.Num) || len(a.Cat) != len(b.Cat) {
		t.Fatalf("rows differ: %d vs %d", a.N, b.N)
	}
	for j := range a.Num {
		if len(a.Num[j]) != len(b.Num[j]) || len(a.Cat) > 0 && !reflect.DeepEqual(a.Cat[j], b.Cat[j]) {
			t.Fatalf("column %d differs", j)
		}
		for i := range a.Num[j] {
			if math.Float64bits(a.Num[j][i]) != math.Float64bits(b.Num[j][i]) {
				t.Fatalf("value [%d][%d]: %v vs %v", j, i, a.Num[j][i], b.Num[j][i])
			}
		}
	}
}

// FuzzReadNumber: readNumber accepts exactly the JSON numbers of at most
// 64 bytes that strconv.ParseFloat reads as finite (the previous reader),
// with bit-identical values.
func FuzzReadNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1", "17.99", "0.0001184", "1.095e-05", "1e22", "1e23", "9007199254740993",
		"123456789012345678901", "-2.2250738585072014e-308", "0.000000001234567891234", "12345678.12345678e3", "1234567890123.0000000012345", "1e999", "01", "1.", ".5", "+1", "1e", "0.1e-400", "4.9e-324"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, i, ok := readNumber(b, 0)
		ok = ok && i == len(b)
		ref, err := strconv.ParseFloat(string(b), 64)
		refOK := len(b) <= 64 && validJSONNumber(b) && err == nil && !math.IsInf(ref, 0) && !math.IsNaN(ref)
		if ok != refOK {
			t.Fatalf("%q: readNumber ok=%v, reference ok=%v", b, ok, refOK)
		}
		if ok && math.Float64bits(v) != math.Float64bits(ref) {
			t.Fatalf("%q: %v (%x), want %v (%x)", b, v, math.Float64bits(v), ref, math.Float64bits(ref))
		}
		// The same bytes inside a tensor (bytes after them that end a
		// number, so the eight-at-a-time digit reader runs): the same
		// value, end and verdict as at the end of the input.
		v0, i0, ok0 := readNumber(b, 0)
		for _, tail := range []string{",", "]", "],[1.5,2]]", ",0123456789]", " 9999999999"} {
			bt := append(append([]byte(nil), b...), tail...)
			vt, it, okt := readNumber(bt, 0)
			if okt != ok0 || it != i0 || math.Float64bits(vt) != math.Float64bits(v0) {
				t.Fatalf("%q+%q: %v, end %d, ok=%v; alone %v, end %d, ok=%v", b, tail, vt, it, okt, v0, i0, ok0)
			}
		}
	})
}

func benchTensor(n, f int) []byte {
	b := []byte(`{"inputs":[{"name":"input-0","shape":[` + strconv.Itoa(n) + `,` + strconv.Itoa(f) + `],"datatype":"FP64","data":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j := range f {
			if j > 0 {
				b = append(b, ',')
			}
			// Four significant digits, like the shared datasets' measurements.
			b = strconv.AppendFloat(b, float64((i*31+j*7)%9973+27)*math.Pow(10, float64(j%5-5)), 'g', 4, 64)
		}
		b = append(b, ']')
	}
	return append(b, "]}]}"...)
}

func benchDecode(b *testing.B, n int, dec func([]byte, *guard.Schema) (*guard.Rows, string, []string, error)) {
	names := make([]string, 30)
	for j := range names {
		names[j] = "f" + strconv.Itoa(j)
	}
	s := guard.SchemaNumeric(names)
	body := benchTensor(n, 30)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := dec(body, s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkDecodeOIP10k(b *testing.B)     { benchDecode(b, 10_000, decodeOIP) }
func BenchmarkDecodeOIP10kJSON(b *testing.B) { benchDecode(b, 10_000, decodeOIPJSON) }
func BenchmarkDecodeOIP1(b *testing.B)       { benchDecode(b, 1, decodeOIP) }
func BenchmarkDecodeOIP1JSON(b *testing.B)   { benchDecode(b, 1, decodeOIPJSON) }

func TestFastReaderTakesCommonRequests(t *testing.T) {
	var req OIPRequest
	pre := preParsed{input: -1}
	if !fastOIPRequest(benchTensor(3, 30), &req, &pre) || len(req.Inputs) != 1 || req.Inputs[0].Shape[0] != 3 || pre.input != 0 || len(pre.vals) != 90 {
		t.Fatalf("fast reader declined a plain tensor request: %+v", req)
	}
}
