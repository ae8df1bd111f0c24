package dataset

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t testing.TB, in string, maxField int) ([][]string, error) {
	r := NewCSVReader(strings.NewReader(in))
	if maxField > 0 {
		r.MaxField = maxField
	}
	var out [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		row := make([]string, len(rec))
		for i, f := range rec {
			row[i] = string(f)
		}
		out = append(out, row)
	}
}

func TestCSVReader(t *testing.T) {
	cases := []struct {
		name, in string
		want     [][]string
		err      string // substring of the error; "" means success
	}{
		{"simple", "a,b\n1,2\n", [][]string{{"a", "b"}, {"1", "2"}}, ""},
		{"crlf", "a,b\r\n1,2\r\n", [][]string{{"a", "b"}, {"1", "2"}}, ""},
		{"no final newline", "a,b\n1,2", [][]string{{"a", "b"}, {"1", "2"}}, ""},
		{"empty fields", "a,b,c\n,,\n", [][]string{{"a", "b", "c"}, {"", "", ""}}, ""},
		{"trailing empty at eof", "a,b\n1,", [][]string{{"a", "b"}, {"1", ""}}, ""},
		{"quoted comma and newline", "a,b\n\"x,y\",\"l1\nl2\"\n", [][]string{{"a", "b"}, {"x,y", "l1\nl2"}}, ""},
		{"escaped quote", "a\n\"say \"\"hi\"\"\"\n", [][]string{{"a"}, {`say "hi"`}}, ""},
		{"blank lines skipped", "a\n\n1\n\r\n2\n", [][]string{{"a"}, {"1"}, {"2"}}, ""},
		{"utf8", "名前,é\nü,✓\n", [][]string{{"名前", "é"}, {"ü", "✓"}}, ""},
		{"quoted empty", "a,b\n\"\",x\n", [][]string{{"a", "b"}, {"", "x"}}, ""},
		{"bare quote", "a\nx\"y\n", nil, "row 1 (line 2), column 1: bare quote"},
		{"text after quote", "a\n\"x\"y\n", nil, "unexpected character after closing quote"},
		{"unterminated", "a\n\"abc", nil, "row 1 (line 2), column 1: unterminated quoted field"},
		{"invalid utf8", "a,b\n1,\xc3\x28\n", nil, "row 1 (line 2), column 2: invalid UTF-8"},
		{"nul", "a\n\x00\n", nil, "NUL byte"},
		{"line numbers after multi-line field", "a\n\"1\n2\n3\"\nbad\"\n", nil, "row 2 (line 5)"},
		{"field too large", "a\n" + strings.Repeat("x", 100) + "\n", nil, "field exceeds 64 bytes"},
		{"quoted field too large", "a\n\"" + strings.Repeat("x", 100) + "\"\n", nil, "field exceeds 64 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, tc.in, 64)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if strings.Join(got[i], "\x1f") != strings.Join(tc.want[i], "\x1f") {
					t.Fatalf("record %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestCSVReaderMatchesEncodingCSV checks the reader against the standard
// library on the shared datasets, reading one byte at a time so every
// buffer boundary is exercised.
func TestCSVReaderMatchesEncodingCSV(t *testing.T) {
	for _, f := range []string{"credit_data.csv", "breast_cancer.csv"} {
		b := mustRead(t, f)
		std, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		r := NewCSVReader(iotest.OneByteReader(bytes.NewReader(b)))
		for i := 0; ; i++ {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				if i != len(std) {
					t.Fatalf("%s: %d records, want %d", f, i, len(std))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for j := range rec {
				if string(rec[j]) != std[i][j] {
					t.Fatalf("%s record %d field %d: %q, want %q", f, i, j, rec[j], std[i][j])
				}
			}
		}
	}
}

func TestCSVWriterRoundTripAndEscape(t *testing.T) {
	rec := [][]byte{[]byte("plain"), []byte("a,b"), []byte(`q"uote`), []byte("l1\nl2"), []byte(" pad "), []byte("=1+1"), []byte("-2.5"), []byte("@x"), []byte("+x")}
	for _, esc := range []bool{false, true} {
		var buf bytes.Buffer
		w := NewCSVWriter(&buf)
		w.Escape = esc
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		got, err := csv.NewReader(&buf).Read()
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range rec {
			want := string(f)
			if esc && IsFormula(f) {
				want = "'" + want
			}
			if got[i] != want {
				t.Errorf("escape=%v field %d: %q, want %q", esc, i, got[i], want)
			}
		}
	}
}

func TestIsFormula(t *testing.T) {
	for in, want := range map[string]bool{"=SUM(A1)": true, "+cmd": true, "-cmd": true, "@SUM": true, "\tx": true,
		"-1": false, "+3.5": false, "-": true, "abc": false, "": false, "1e5": false, "-1e-3": false} {
		if got := IsFormula([]byte(in)); got != want {
			t.Errorf("IsFormula(%q) = %v", in, got)
		}
	}
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := readTestdata(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
