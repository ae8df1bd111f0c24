package dataset

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/rampart-mlaas/rampart"
)

// FuzzCSVReader: arbitrary bytes never panic; every error is a ParseError
// or input too large, fields never exceed the cap, and accepted records are
// valid UTF-8 without NUL.
func FuzzCSVReader(f *testing.F) {
	for _, s := range []string{"a,b\n1,2\n", "a\n\"x\"\"y\"\n", "a\n\"\n", "\xff", "a,b\r\n\"1\r\n2\",3", ",,,\n\n\r\r\n", "\"a\"b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewCSVReader(bytes.NewReader(in))
		r.MaxField, r.MaxColumns = 32, 16
		for range 10_000 {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				return
			}
			var pe *ParseError
			if err != nil {
				if !errors.As(err, &pe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if len(rec) > 16 {
				t.Fatalf("%d fields", len(rec))
			}
			for _, fl := range rec {
				if len(fl) > 32 || bytes.IndexByte(fl, 0) >= 0 {
					t.Fatalf("field %q escaped the checks", fl)
				}
			}
		}
	})
}

// FuzzIngestCSV runs the whole pipeline (parse, validate, profile, PII):
// no panic, and an error is always a rampart.Error the API can map to 4xx.
func FuzzIngestCSV(f *testing.F) {
	f.Add([]byte("a,b,y\n1,x@y.com,0\n2,+44 20 7946 0958,1\n"), true)
	f.Add([]byte("a\n=1\n-2\n"), false)
	f.Fuzz(func(t *testing.T, in []byte, label bool) {
		opt := Options{MaxFieldBytes: 64, MaxColumns: 32, ScreenRows: 50}
		if label {
			opt.Label = "y"
		}
		_, err := Ingest(context.Background(), bytes.NewReader(in), opt, io.Discard)
		var re *rampart.Error
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("error is not a rampart.Error: %T %v", err, err)
		}
		if err != nil && re.Code != rampart.CodeInvalid && re.Code != rampart.CodeTooLarge {
			t.Fatalf("code %s: %v", re.Code, err)
		}
	})
}

// FuzzParquet: hostile Parquet bytes never panic the ingestion (the
// decoder's panics are recovered) and fail as invalid or too large.
func FuzzParquet(f *testing.F) {
	type row struct {
		A int64   `parquet:"a"`
		B string  `parquet:"b"`
		C float64 `parquet:"c,optional"`
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, []row{{1, "x", 2.5}, {2, "y", 0}}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := Ingest(context.Background(), bytes.NewReader(in), Options{Format: FormatParquet, MaxParquetBytes: 1 << 20,
			MaxFieldBytes: 1 << 10}, io.Discard)
		var re *rampart.Error
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("error is not a rampart.Error: %T %v", err, err)
		}
	})
}

// FuzzParseSchema: no panic; an accepted schema validates and checks fields
// without panicking.
func FuzzParseSchema(f *testing.F) {
	f.Add([]byte(`{"columns":[{"name":"a","type":"integer","min":0,"max":9},{"name":"b","type":"categorical","values":["x"]}]}`), []byte("5"))
	f.Add([]byte(`{"columns":[{"name":"a","type":"numeric","nullable":true}]}`), []byte(""))
	f.Fuzz(func(t *testing.T, in, field []byte) {
		s, err := ParseSchema(in)
		if err != nil {
			if !errors.Is(err, rampart.ErrInvalid) {
				t.Fatalf("error is not invalid: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed schema does not validate: %v", err)
		}
		for _, c := range s.Columns {
			newChecker(c).check(field)
		}
	})
}
