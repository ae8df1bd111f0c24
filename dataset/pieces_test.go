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
	"math/rand/v2"
	"strconv"
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
	checkBatched(t, in, maxField, maxCols)
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

// readPositions reads every record with its row and line, by Read alone
// or, with a batch, by scanBatch wherever it takes the records (ncol
// fields) and Read for the others, as runPiece does.
func readPositions(r *CSVReader, b *fieldBatch) (recs []string, err error) {
	for range 100_000 {
		if b != nil {
			if n := r.scanBatch(b); n > 0 {
				row0 := r.row - n
				for k := range n {
					f := make([]string, b.ncol)
					for i := range f {
						f[i] = string(b.field(r.buf, k, i))
					}
					recs = append(recs, fmt.Sprintf("%d:%d:%q", row0+k, b.line[k], f))
				}
				if r.Row() != row0+n-1 || r.Line() != b.line[n-1] {
					return recs, fmt.Errorf("reader at row %d line %d after a batch ending at row %d line %d", r.Row(), r.Line(), row0+n-1, b.line[n-1])
				}
				continue
			}
		}
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		f := make([]string, len(rec))
		for i := range rec {
			f[i] = string(rec[i])
		}
		recs = append(recs, fmt.Sprintf("%d:%d:%q", r.Row(), r.Line(), f))
	}
	return recs, nil
}

// checkBatched: scanning in batches (with the field count of the first
// record, and of the first plus one) reads the same records at the same
// rows and lines, and ends with the same error, as Read alone.
func checkBatched(t *testing.T, in []byte, maxField, maxCols int) {
	t.Helper()
	ref := newCSVBytes(in)
	ref.MaxField, ref.MaxColumns = maxField, maxCols
	want, werr := readPositions(ref, nil)
	first, _ := newCSVBytes(in).Read()
	for _, ncol := range []int{len(first), len(first) + 1} {
		for _, size := range []int{1, 3, batchRows} {
			r := newCSVBytes(in)
			r.MaxField, r.MaxColumns = maxField, maxCols
			got, gerr := readPositions(r, newFieldBatch(ncol, size))
			if errString(gerr) != errString(werr) || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("batches of %d records of %d fields differ on %q:\nRead   %q %v\nbatch  %q %v", size, ncol, in, want, werr, got, gerr)
			}
		}
	}
}

var scannerSeeds = []string{
	"a,b\n1,2\n", "a\n\"x\"\"y\"\n", "a\n\"\n", "\xff", "a,b\r\n\"1\r\n2\",3", ",,,\n\n\r\r\n", "\"a\"b",
	"a,b\n\"q, r\",2\n\"\",\"\"\n", "a,b\n\"q\"\r\n\"x\",\"y\"\r\n", "a\n\"\xc3\xa9\"\n", "a\n\"x\n", "a,b\n\"x\",\n",
	"a\n\"x\"\"\"\n", "a,b\n1,\"2\"3\n", "a\n\"x\x00\"\n", "a\n\"unterminated", "a,b\n\"x\",\"y\"",
	"a,b\n1,2\n\n3,4\r\n5,\"6\"\r\n\"7\",8\n9,10,11\n12\n", "id,x,y\n1,  a b ,c!#$%&'()*+\n2,\"p,q\",\"\"\n3,x,y",
	"a,b\n" + strings.Repeat("x", 40) + ",1\n1," + strings.Repeat("y", 33) + "\n", "a,b\n1,2\r3,4\n", "a,b\n\r\n1,2\n",
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
	useBatch = false
	rec, err3 := Ingest(context.Background(), bytes.NewReader(in), opt, io.Discard)
	useBatch = true
	if c := summary(t, rec, err3); c != a {
		t.Fatalf("batches change the result on %q:\nbatches: %s\none record at a time: %s", in, a, c)
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

// TestBatchProfilesExact: profiling in batches, a column at a time (with
// the numeric loop past the probe rows), gives exactly the report of one
// record at a time: moments to the last bit, samples, sketches, PII rows,
// formula cells, duplicates, errors. The data has numeric columns that
// turn text, decimals and integers, card numbers and phone numbers inside
// numbers, quoted fields, blank lines and CRLF.
func TestBatchProfilesExact(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,amount,num2text,card,phone,note,cat,flag,longcat,label\n")
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 30_000 {
		n2t := strconv.Itoa(r.IntN(1000))
		if i == 17_000 {
			n2t = "oops"
		}
		card := strconv.Itoa(r.IntN(1_000_000))
		if i%997 == 0 {
			card = "4111111111111111"
		}
		phone := strconv.Itoa(r.IntN(90))
		if i%1201 == 0 {
			phone = "+442079460958"
		}
		note := []string{"", "\"x, y\"", "=1+2", "-3", "a@b.io x", "plain"}[r.IntN(6)]
		amount := strconv.FormatFloat(float64(r.IntN(1_000_000))/100, 'f', -1, 64)
		if i%500 == 0 {
			amount = ""
		}
		flag := []string{"yes", "no", "TRUE", ""}[r.IntN(4)]
		if i == 25_000 {
			flag = "maybe"
		}
		longcat := []string{"a rather long category value", "short", "x@example.com"}[r.IntN(3)]
		fmt.Fprintf(&b, "%d,%s,%s,%s,%s,%s,%c,%s,%s,%d", i%20_000, amount, n2t, card, phone, note, 'a'+r.IntN(30), flag, longcat, r.IntN(2))
		switch i % 50 {
		case 0:
			b.WriteString("\r\n")
		case 1:
			b.WriteString("\n\n")
		default:
			b.WriteString("\n")
		}
	}
	in := []byte(b.String())
	// One piece: which worker takes which piece would change the order of
	// floating-point additions between runs.
	old := blockSize
	blockSize = 4 << 20
	defer func() { blockSize = old }()
	for _, opt := range []Options{{}, {Label: "label"}, {Label: "label", ScreenRows: 100}} {
		run := func(batch bool) string {
			useBatch = batch
			defer func() { useBatch = true }()
			res, err := Ingest(context.Background(), bytes.NewReader(in), opt, io.Discard)
			if err != nil {
				return "error: " + err.Error()
			}
			rb, _ := json.Marshal(res.Report)
			sb, _ := json.Marshal(res.Sample)
			return string(rb) + string(sb)
		}
		if a, b := run(true), run(false); a != b {
			i := 0
			for i < min(len(a), len(b)) && a[i] == b[i] {
				i++
			}
			t.Fatalf("batches change the report (label %q) at byte %d:\n%s\n%s", opt.Label, i, a[max(0, i-200):min(len(a), i+200)], b[max(0, i-200):min(len(b), i+200)])
		}
	}
	// The same with a ragged row, an invalid byte and a schema violation late in the file.
	for _, bad := range []string{"1,2\n", "1,2,3,4,5,6,7,8,9,10\n", "\x00,1,1,1,1,1,a,1,1,1\n"} {
		sfx := append(append([]byte{}, in...), bad...)
		sfx = append(sfx, "5,6,7,8,9,10,a,1,1,1\n"...)
		useBatch = false
		_, e1 := Ingest(context.Background(), bytes.NewReader(sfx), Options{}, io.Discard)
		useBatch = true
		_, e2 := Ingest(context.Background(), bytes.NewReader(sfx), Options{}, io.Discard)
		if errString(e1) != errString(e2) || (e2 == nil) != (bad == "1,2,3,4,5,6,7,8,9,10\n") {
			t.Fatalf("errors for %q: one record at a time %v, batches %v", bad, e1, e2)
		}
	}
	// The batch path is the one taken on this data.
	cr := newCSVBytes(in)
	if _, err := cr.Read(); err != nil {
		t.Fatal(err)
	}
	if n := cr.scanBatch(newFieldBatch(10, batchRows)); n != batchRows {
		t.Fatalf("scanBatch took %d records, want %d", n, batchRows)
	}
}

// FuzzParseNumber8: the eight-digits-at-a-time parser, where it takes a
// field, agrees with parseNumber to the bit, whatever follows the field.
func FuzzParseNumber8(f *testing.F) {
	for _, s := range []string{"12345678", "1234.567", "0.5,x", ".5", "5.", ".", "1..2", "-1.5", "+3", "1e5",
		"99999999", "00000001", "1.234567", "12\xc3\xa9", "1_000", "3,14", "0000.000", "\x00\x00\x00\x00\x00\x00\x00\x00"} {
		f.Add([]byte(s + "........"))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for n := 0; n <= min(len(in), 9); n++ {
			v, ok := parseNumber8(in, 0, n)
			if !ok {
				if n >= 1 && n <= 8 && len(in) >= 8 && ok8(in[:n]) {
					t.Fatalf("%q not taken", in[:n])
				}
				continue
			}
			w, wok := parseNumber(in[:n])
			if !wok || math.Float64bits(v) != math.Float64bits(w) {
				t.Fatalf("%q: %v %v, parseNumber %v %v", in[:n], v, ok, w, wok)
			}
		}
	})
}

// ok8 is the set parseNumber8 must take: digits with at most one '.' and at
// least one digit.
func ok8(f []byte) bool {
	dots, digits := 0, 0
	for _, b := range f {
		switch {
		case b == '.':
			dots++
		case b >= '0' && b <= '9':
			digits++
		default:
			return false
		}
	}
	return dots <= 1 && digits > 0
}

func TestParseNumber8(t *testing.T) {
	buf := []byte("12345678,1234.567,0.5,x.5,5.,.,1..2,-1.5,1e5,99999999,00000001,1.234567,7,00000.00,pad.pad.")
	for _, f := range bytes.Split(buf[:len(buf)-8], []byte(",")) {
		s := bytes.Index(buf, f)
		v, ok := parseNumber8(buf, s, s+len(f))
		w, wok := parseNumber(f)
		if ok != ok8(f) || ok && (!wok || v != w) {
			t.Errorf("%q: %v %v, parseNumber %v %v", f, v, ok, w, wok)
		}
	}
	if v, ok := parseNumber8([]byte("1234.567........"), 0, 8); !ok || v != 1234.567 {
		t.Fatalf("1234.567: %v %v", v, ok)
	}
}
