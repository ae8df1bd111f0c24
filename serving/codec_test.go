package serving

import (
	"errors"
	"math"
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
