package dataset

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

// readRecords reads every record of r as strings, and the error that ended
// the reading (nil at EOF).
func readRecords(r *CSVReader) ([][]string, error) {
	var out [][]string
	for range 100_000 {
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
	return out, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// checkScanners compares the three ways of reading CSV: from memory (the
// one-pass fast path wherever it applies), streamed from a reader, and one
// byte at a time (the byte-wise path only). Records and errors must be
// identical; where encoding/csv accepts the input and the reader does
// too, records must match the standard library's.
func checkScanners(t *testing.T, in []byte, maxField, maxCols int) {
	t.Helper()
	mem := newCSVBytes(in)
	stream := NewCSVReader(bytes.NewReader(in))
	slow := NewCSVReader(iotest.OneByteReader(bytes.NewReader(in)))
	for _, r := range []*CSVReader{mem, stream, slow} {
		r.MaxField, r.MaxColumns = maxField, maxCols
	}
	a, aerr := readRecords(mem)
	b, berr := readRecords(stream)
	c, cerr := readRecords(slow)
	if errString(aerr) != errString(cerr) || errString(berr) != errString(cerr) {
		t.Fatalf("errors differ on %q:\nmemory %v\nstream %v\nbytewise %v", in, aerr, berr, cerr)
	}
	if fmt.Sprint(a) != fmt.Sprint(c) || fmt.Sprint(b) != fmt.Sprint(c) {
		t.Fatalf("records differ on %q:\nmemory %q\nstream %q\nbytewise %q", in, a, b, c)
	}
	if cerr != nil || bytes.IndexByte(in, '\r') >= 0 {
		return // encoding/csv folds CRLF inside quotes and checks nothing of UTF-8
	}
	std := csv.NewReader(bytes.NewReader(in))
	std.FieldsPerRecord = -1
	want, err := std.ReadAll()
	if err != nil {
		t.Fatalf("accepted %q, encoding/csv: %v", in, err)
	}
	if fmt.Sprint(want) != fmt.Sprint(c) && !(len(want) == 0 && len(c) == 0) {
		t.Fatalf("records differ from encoding/csv on %q:\nours %q\nstd  %q", in, c, want)
	}
}

var scannerSeeds = []string{
	"a,b\n1,2\n", "a\n\"x\"\"y\"\n", "a\n\"\n", "\xff", "a,b\r\n\"1\r\n2\",3", ",,,\n\n\r\r\n", "\"a\"b",
	"a,b\n\"q, r\",2\n\"\",\"\"\n", "a,b\n\"q\"\r\n\"x\",\"y\"\r\n", "a\n\"\xc3\xa9\"\n", "a\n\"x\n", "a,b\n\"x\",\n",
	"a\n\"x\"\"\"\n", "a,b\n1,\"2\"3\n", "a\n\"x\x00\"\n", "a\n\"unterminated", "a,b\n\"x\",\"y\"",
}

func TestScannersAgree(t *testing.T) {
	for _, s := range scannerSeeds {
		checkScanners(t, []byte(s), 32, 16)
	}
}

// FuzzCSVScanners is the differential fuzz target for the one-pass scanner
// (fastRecord, quoted fields included) against the byte-wise reader and
// encoding/csv.
func FuzzCSVScanners(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkScanners(t, in, 32, 16)
	})
}

// summary is what must not depend on how the upload was cut into pieces.
func summary(t *testing.T, res *Result, err error) string {
	t.Helper()
	if err != nil {
		return "error: " + err.Error()
	}
	r := *res.Report
	cols := make([]ColumnProfile, len(r.Columns))
	for i, c := range r.Columns {
		// Floating-point sums depend on the order of addition.
		for _, p := range []*float64{c.Mean, c.Std} {
			if p != nil {
				*p = math.Round(*p*1e6) / 1e6
			}
		}
		cols[i] = c
	}
	r.Columns = cols
	b, _ := json.Marshal(r)
	s, _ := json.Marshal(res.Sample)
	return string(b) + string(s)
}

// checkPieces ingests in with tiny pieces (many boundaries, the streaming
// fallback for longer records) and in one piece: reports, samples and
// errors must be the same.
func checkPieces(t *testing.T, in []byte, opt Options) {
	t.Helper()
	one, err1 := Ingest(context.Background(), bytes.NewReader(in), opt, io.Discard)
	var got bytes.Buffer
	old := blockSize
	blockSize = 16
	many, err2 := Ingest(context.Background(), iotest.HalfReader(bytes.NewReader(in)), opt, &got)
	blockSize = old
	a, b := summary(t, one, err1), summary(t, many, err2)
	if a != b {
		t.Fatalf("pieces change the result on %q:\none piece: %s\n16-byte pieces: %s", in, a, b)
	}
	if err2 == nil && !bytes.Equal(got.Bytes(), in) {
		t.Fatalf("sink got %q, want %q", got.Bytes(), in)
	}
}

func TestIngestPieces(t *testing.T) {
	var long strings.Builder
	long.WriteString("id,text,y\n")
	for i := range 300 {
		fmt.Fprintf(&long, "%d,\"line %d\nnext, \"\"quoted\"\"\",%d\n", i, i, i%2)
		if i%7 == 0 {
			fmt.Fprintf(&long, "%d,%s,%d\r\n", i, strings.Repeat("x", i), i%3)
		}
		if i%11 == 0 {
			long.WriteString("\n\n")
		}
	}
	base := long.String()
	opt := Options{Label: "y", MaxFieldBytes: 200}
	for _, in := range []string{
		base,
		base + "1,2\n",           // ragged at the end
		base + "1,\"x\x00\",1\n", // NUL in the last piece
		base[:len(base)/2] + "\xff" + base[len(base)/2:],    // invalid UTF-8 in the middle
		base + "1,\"" + strings.Repeat("y", 300) + "\",1\n", // field over the cap
		base + "9,\"open", // unterminated
		"a,b\r1,2\r3,4\r", // CR-only line ends
		"a,b\n",           // header only
		"",
	} {
		checkPieces(t, []byte(in), opt)
	}
}

// FuzzIngestPieces: cutting the upload into pieces never changes the
// result (errors with their row, line and column, reports, samples).
func FuzzIngestPieces(f *testing.F) {
	f.Add([]byte("a,b,y\n1,\"x\ny\",0\n2,\"p,q\",1\n\n3,,1\n"))
	f.Add([]byte("a,y\n\"" + strings.Repeat("z", 40) + "\",1\n2,0\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkPieces(t, in, Options{Label: "y", MaxFieldBytes: 64, MaxColumns: 32, ScreenRows: 50})
	})
}
