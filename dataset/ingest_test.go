package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/rampart-mlaas/rampart"
)

func readTestdata(name string) ([]byte, error) { return os.ReadFile("testdata/" + name) }

func ingest(t testing.TB, in string, opt Options) (*Result, []byte, error) {
	t.Helper()
	var sink bytes.Buffer
	res, err := Ingest(context.Background(), strings.NewReader(in), opt, &sink)
	return res, sink.Bytes(), err
}

func col(r *Report, name string) ColumnProfile {
	for _, c := range r.Columns {
		if c.Name == name {
			return c
		}
	}
	return ColumnProfile{}
}

// TestIngestProfile checks the data audit report (DATA-4) on a table whose
// statistics are known exactly.
func TestIngestProfile(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("n,f,b,c,t,y\n")
	for i := 1; i <= 1000; i++ {
		c := []string{"red", "green", "blue"}[i%3]
		f := fmt.Sprintf("%g", float64(i)/4)
		if i%10 == 0 {
			f = "" // 10 % missing
		}
		fmt.Fprintf(&sb, "%d,%s,%v,%s,free text number %d,%s\n", i, f, i%2 == 0, c, i, []string{"a", "b"}[i%2])
	}
	sb.WriteString("1,0.25,false,green,free text number 1,b\n") // duplicate of row 1
	sb.WriteString("1,0.25,false,green,free text number 1,a\n") // conflicting label
	in := sb.String()
	res, sink, err := ingest(t, in, Options{Label: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if string(sink) != in {
		t.Fatalf("sink did not receive the exact upload")
	}
	r := res.Report
	if r.Rows != 1002 || len(r.Columns) != 6 || r.Bytes != int64(len(in)) {
		t.Fatalf("rows %d cols %d bytes %d", r.Rows, len(r.Columns), r.Bytes)
	}
	n := col(r, "n")
	if n.Type != TypeInteger || *n.Min != 1 || *n.Max != 1000 || math.Abs(*n.Mean-(500500+2)/1002.0) > 1e-9 {
		t.Errorf("n: %+v", n)
	}
	med := n.Quantiles[5]
	if med.Q != 0.5 || math.Abs(med.Value-500) > 2 {
		t.Errorf("median %+v", med)
	}
	f := col(r, "f")
	if f.Type != TypeNumeric || f.Missing != 100 || math.Abs(f.MissPct-100.0/1002) > 1e-9 {
		t.Errorf("f: %+v", f)
	}
	if b := col(r, "b"); b.Type != TypeBoolean {
		t.Errorf("b: %+v", b)
	}
	c := col(r, "c")
	if c.Type != TypeCategorical || c.Distinct != 3 || len(c.Top) != 3 || c.Top[0].Value != "green" || c.Top[0].Count != 336 {
		t.Errorf("c: %+v", c)
	}
	if tt := col(r, "t"); tt.Type != TypeText {
		t.Errorf("t: %+v", tt)
	}
	if r.Duplicate.Rows != 1 || r.Duplicate.ConflictingLabels != 1 || !r.Duplicate.Exact {
		t.Errorf("duplicates: %+v", r.Duplicate)
	}
	if len(r.Classes) != 2 || r.Classes[0].Value != "a" || r.Classes[0].Count != 501 {
		t.Errorf("classes: %+v", r.Classes)
	}
	if res.Sample == nil || len(res.Sample.Rows) != 1002 {
		t.Errorf("sample: %d rows", len(res.Sample.Rows))
	}
}

// TestIngestDrift: PSI is ~0 against an identical version and large
// against a shifted one.
func TestIngestDrift(t *testing.T) {
	gen := func(shift float64, cats []string) string {
		rng := rand.New(rand.NewPCG(1, 2))
		var sb strings.Builder
		sb.WriteString("x,c\n")
		for range 5000 {
			fmt.Fprintf(&sb, "%.4f,%s\n", rng.NormFloat64()+shift, cats[rng.IntN(len(cats))])
		}
		return sb.String()
	}
	base, _, err := ingest(t, gen(0, []string{"a", "b"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	same, _, _ := ingest(t, gen(0, []string{"a", "b"}), Options{Previous: base.Report})
	shifted, _, _ := ingest(t, gen(1, []string{"a", "b", "c", "d"}), Options{Previous: base.Report})
	for _, tc := range []struct {
		r        *Report
		col      string
		min, max float64
	}{{same.Report, "x", 0, 0.02}, {same.Report, "c", 0, 0.02}, {shifted.Report, "x", 0.25, 100}, {shifted.Report, "c", 0.25, 100}} {
		p := col(tc.r, tc.col).PSI
		if p == nil || *p < tc.min || *p > tc.max {
			t.Errorf("PSI %s = %v, want in [%g, %g]", tc.col, p, tc.min, tc.max)
		}
	}
}

// TestIngestSchema: every violation is listed with row and column.
func TestIngestSchema(t *testing.T) {
	lo := 0.0
	s := &Schema{Columns: []Column{{Name: "a", Type: TypeInteger, Min: &lo}, {Name: "b", Type: TypeCategorical, Values: []string{"x"}, Nullable: true}}}
	cases := []struct {
		name, in string
		viol     []string
		err      string
	}{
		{"ok", "a,b\n1,x\n2,\n", nil, ""},
		{"violations", "a,b\n-1,x\n1.5,y\n,x\n", []string{`row 1 (line 2), column "a": below the declared minimum`,
			`row 2 (line 3), column "a": not an integer`, `row 2 (line 3), column "b": not one of the declared values`,
			`row 3 (line 4), column "a": missing value in a non-nullable column`}, ""},
		{"undeclared column", "a,b,c\n1,x,2\n", nil, `column 3 "c": column is not in the declared schema`},
		{"missing column", "a\n1\n", nil, `declared column "b" is not in the header`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ingest(t, tc.in, Options{Schema: s})
			var rej *RejectError
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
			case tc.viol == nil:
				if err != nil {
					t.Fatal(err)
				}
			case errors.As(err, &rej):
				if !errors.Is(err, rampart.ErrInvalid) || int(rej.Total) != len(tc.viol) {
					t.Fatalf("reject %v total %d", err, rej.Total)
				}
				for i, v := range rej.Violations {
					if v.String() != tc.viol[i] {
						t.Errorf("violation %d: %s, want %s", i, v, tc.viol[i])
					}
				}
			default:
				t.Fatalf("err %v, want a RejectError", err)
			}
		})
	}
}

func TestParseSchema(t *testing.T) {
	cases := []struct{ in, err string }{
		{`{"columns":[{"name":"a","type":"integer","min":0,"max":9},{"name":"b","type":"categorical","values":["x"]}]}`, ""},
		{`{"columns":[]}`, "declares no columns"},
		{`{"columns":[{"name":"a","type":"float"}]}`, "type must be one of"},
		{`{"columns":[{"name":"a","type":"text"},{"name":"a","type":"text"}]}`, "declared twice"},
		{`{"columns":[{"name":"","type":"text"}]}`, "name must be"},
		{`{"columns":[{"name":"a","type":"integer","min":5,"max":1}]}`, "min exceeds max"},
		{`{"columns":[{"name":"a","type":"text","min":1}]}`, "min/max apply only"},
		{`{"columns":[{"name":"a","type":"numeric","values":["1"]}]}`, "values apply only"},
		{`{"columns":[{"name":"a","type":"text"}],"extra":1}`, "unknown field"},
		{`{"columns":[{"name":"a","type":"text"}]} {}`, "trailing data"},
		{`[`, "not valid JSON"},
	}
	for _, tc := range cases {
		_, err := ParseSchema([]byte(tc.in))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseSchema(%s) = %v, want %q", tc.in, err, tc.err)
		}
	}
}

// TestIngestParquet writes a Parquet file with parquet-go and checks that
// it is profiled like the equivalent CSV and re-emitted as canonical CSV.
func TestIngestParquet(t *testing.T) {
	type row struct {
		ID    int64   `parquet:"id"`
		Score float64 `parquet:"score"`
		Name  string  `parquet:"name"`
		OK    bool    `parquet:"ok"`
		Opt   *int32  `parquet:"opt,optional"`
	}
	var rows []row
	for i := range 300 {
		r := row{ID: int64(i), Score: float64(i) / 2, Name: []string{"a,b", `q"x`, "=1"}[i%3], OK: i%2 == 0}
		if i%5 != 0 {
			v := int32(i)
			r.Opt = &v
		}
		rows = append(rows, r)
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows, parquet.MaxRowsPerRowGroup(100)); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	var sink bytes.Buffer
	res, err := Ingest(context.Background(), bytes.NewReader(data), Options{Format: FormatParquet, Label: "ok"}, &sink)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	if r.Rows != 300 || r.Format != "parquet" || col(r, "id").Type != TypeInteger || col(r, "score").Type != TypeNumeric ||
		col(r, "ok").Type != TypeBoolean || col(r, "opt").Missing != 60 || r.Formula.Cells != 100 {
		t.Fatalf("report: %+v", r)
	}
	// The canonical CSV parses back to the same table.
	back, _, err := ingest(t, sink.String(), Options{Label: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if back.Report.Rows != 300 || col(back.Report, "name").Top[0].Count != 100 || col(back.Report, "opt").Missing != 60 {
		t.Fatalf("round trip: %+v", back.Report)
	}
	// Too large, and nested columns, are refused.
	if _, err := Ingest(context.Background(), bytes.NewReader(data), Options{Format: FormatParquet, MaxParquetBytes: 100}, io.Discard); !errors.Is(err, rampart.ErrTooLarge) {
		t.Errorf("oversized parquet: %v", err)
	}
}

// TestIngestBoundedMemory streams a 100 MB single field and a many-row
// file and checks that the heap stays small (the field cap rejects the
// field as soon as it is crossed).
func TestIngestBoundedMemory(t *testing.T) {
	big := io.MultiReader(strings.NewReader("a,b\n1,"), &repeat{b: 'x', n: 100 << 20}, strings.NewReader("\n"))
	h := sha256.New()
	_, err := Ingest(context.Background(), big, Options{}, h)
	if !errors.Is(err, rampart.ErrTooLarge) || !strings.Contains(err.Error(), `row 1 (line 2), column 2 "b": field exceeds`) {
		t.Fatalf("100 MB field: %v", err)
	}
}

type repeat struct {
	b byte
	n int
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = r.b
	}
	r.n -= k
	return k, nil
}
