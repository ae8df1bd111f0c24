package dataset

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/rampart-mlaas/rampart"
)

// Format is an upload's file format.
type Format string

// Supported formats.
const (
	FormatCSV     Format = "csv"
	FormatParquet Format = "parquet"
)

// Options steer one ingestion.
type Options struct {
	Format Format
	Schema *Schema // declared; nil means infer
	Label  string  // label column, "" for none
	// Previous is the last version's report, for drift (PSI).
	Previous *Report
	// Limits; zero means the defaults.
	MaxFieldBytes   int
	MaxColumns      int
	MaxRows         int64
	MaxParquetBytes int64
	// MaxViolations bounds the schema violations listed (all are counted).
	MaxViolations int
	// ScreenRows is how many rows are kept for label screening.
	ScreenRows int
	Seed       uint64
}

// Defaults for Options.
const (
	DefaultMaxRows         = 1 << 31
	DefaultMaxParquetBytes = 64 << 20
	DefaultMaxViolations   = 10_000
	DefaultScreenRows      = 20_000
	maxSampleBytes         = 48 << 20
)

// Result is what an ingestion learned.
type Result struct {
	Report *Report
	// Sample holds rows kept for label screening (all rows when the data
	// has at most ScreenRows rows).
	Sample *Sample
}

// Sample is a set of rows with their 1-based data row numbers.
type Sample struct {
	Header []string
	RowNum []int64
	Rows   [][]string
	Total  int64
}

// source yields records. raw returns the current record either as its
// line, fields separated by single commas (ends nil), or as the fields'
// bytes concatenated with their end offsets.
type source interface {
	next() ([][]byte, error)
	raw() ([]byte, []int)
	pos() (row, line int)
}

type csvSource struct{ r *CSVReader }

func (s csvSource) next() ([][]byte, error) { return s.r.Read() }
func (s csvSource) raw() ([]byte, []int) {
	if s.r.rawLine != nil {
		return s.r.rawLine, nil
	}
	return s.r.arena, s.r.ends
}
func (s csvSource) pos() (int, int) { return s.r.Row(), s.r.Line() }

// Ingest reads an upload in one streaming pass: parse, validate against the
// declared schema, profile, screen for PII and formula injection, and copy
// the bytes to be sealed into sink (the exact upload for CSV; canonical CSV
// for Parquet). Memory is bounded whatever the input size (DATA-4). Any
// error means the upload must be discarded: the caller shreds what sink got.
func Ingest(ctx context.Context, r io.Reader, opt Options, sink io.Writer) (*Result, error) {
	if opt.MaxFieldBytes <= 0 {
		opt.MaxFieldBytes = DefaultMaxFieldBytes
	}
	if opt.MaxColumns <= 0 {
		opt.MaxColumns = DefaultMaxColumns
	}
	if opt.MaxRows <= 0 {
		opt.MaxRows = DefaultMaxRows
	}
	if opt.MaxParquetBytes <= 0 {
		opt.MaxParquetBytes = DefaultMaxParquetBytes
	}
	if opt.MaxViolations <= 0 {
		opt.MaxViolations = DefaultMaxViolations
	}
	if opt.ScreenRows <= 0 {
		opt.ScreenRows = DefaultScreenRows
	}
	var src source
	var flush func() error
	var size func() int64
	switch opt.Format {
	case FormatCSV, "":
		opt.Format = FormatCSV
		cr := NewCSVReader(io.TeeReader(r, sink))
		cr.MaxField, cr.MaxColumns = opt.MaxFieldBytes, opt.MaxColumns
		src = csvSource{cr}
		size = func() int64 { return cr.Offset }
	case FormatParquet:
		ps, err := openParquet(r, opt.MaxParquetBytes, opt.MaxColumns, opt.MaxFieldBytes)
		if err != nil {
			return nil, err
		}
		w := NewCSVWriter(sink)
		ps.out = w
		src = ps
		flush = w.Flush
		size = func() int64 { return ps.size }
	default:
		return nil, invalid("format", "format must be csv or parquet")
	}
	hdr, err := src.next()
	if errors.Is(err, io.EOF) {
		return nil, invalid("body", "the file is empty: a header row is required")
	}
	if err != nil {
		return nil, parseErr(err, nil)
	}
	header := make([]string, len(hdr))
	seen := map[string]int{}
	for i, h := range hdr {
		header[i] = string(h)
		if len(h) == 0 {
			return nil, parseErr(&ParseError{Row: 0, Line: 1, Column: i + 1, Msg: "empty column name"}, nil)
		}
		if j, dup := seen[header[i]]; dup {
			return nil, parseErr(&ParseError{Row: 0, Line: 1, Column: i + 1, ColumnName: header[i],
				Msg: fmt.Sprintf("duplicate column name (also column %d)", j+1)}, nil)
		}
		seen[header[i]] = i
	}
	label := -1
	if opt.Label != "" {
		i, ok := seen[opt.Label]
		if !ok {
			return nil, invalid("label", "label column %q does not exist in the header", opt.Label)
		}
		label = i
	}
	checks := make([]*checker, len(header))
	declared := make([]*Column, len(header))
	if opt.Schema != nil {
		for i := range opt.Schema.Columns {
			c := &opt.Schema.Columns[i]
			j, ok := seen[c.Name]
			if !ok {
				return nil, invalid("schema", "declared column %q is not in the header", c.Name)
			}
			checks[j], declared[j] = newChecker(*c), c
		}
		for i, h := range header {
			if checks[i] == nil {
				return nil, parseErr(&ParseError{Row: 0, Line: 1, Column: i + 1, ColumnName: h, Msg: "column is not in the declared schema"}, nil)
			}
		}
	}
	p := newProfiler(header, label, opt.Seed)
	seed := maphash.MakeSeed()
	rng := rand.New(rand.NewPCG(opt.Seed, 42))
	var sample *Sample
	var sampleBytes int64
	if label >= 0 {
		sample = &Sample{Header: header}
	}
	var viol []Violation
	var nviol int64
	// Parsing (and the copy to sink) runs in its own goroutine, a batch of
	// rows ahead of profiling: the two overlap on separate cores, with at
	// most readAhead batches (a few MiB) in flight.
	stop := make(chan struct{})
	defer close(stop)
	batches := readBatches(ctx, src, header, label, seed, opt.MaxRows, stop)
	rec := make([][]byte, len(header))
	for b := range batches {
		for r := range b.rows {
			row, line := int64(b.rows[r]), int64(b.lines[r])
			off := r * len(header)
			st := 0
			if off > 0 {
				st = b.ends[off-1]
			}
			for i := range rec {
				e := b.ends[off+i]
				rec[i] = b.data[st:e:e]
				st = e
			}
			for i, f := range rec {
				if checks[i] != nil {
					if why := checks[i].check(f); why != "" {
						nviol++
						if len(viol) < opt.MaxViolations {
							viol = append(viol, Violation{Row: row, Line: line, Column: header[i], Reason: why})
						}
					}
				}
				p.add(i, f, row)
			}
			p.addRow(rec, b.fh[r], b.lh[r])
			if sample != nil {
				keepRow(sample, rec, row, opt.ScreenRows, &sampleBytes, rng)
			}
		}
		if b.err != nil {
			return nil, b.err
		}
		b.recycle()
	}
	if flush != nil {
		if err := flush(); err != nil {
			return nil, fmt.Errorf("ingest: write: %w", err)
		}
	}
	if p.rows == 0 {
		return nil, invalid("body", "the file has a header but no data rows")
	}
	if nviol > 0 {
		return nil, &RejectError{Err: &rampart.Error{Code: rampart.CodeInvalid, Field: "body",
			Message: fmt.Sprintf("%d field(s) violate the declared schema; first: %s", nviol, viol[0])},
			Violations: viol, Total: nviol}
	}
	rep := &Report{Format: string(opt.Format), Rows: p.rows, Bytes: size(), Label: opt.Label,
		Duplicate: DuplicateStats{Rows: p.dupRows, ConflictingLabels: p.conflict, Exact: !p.dupFull}}
	for i, c := range p.cols {
		rep.Columns = append(rep.Columns, c.profile(declared[i], p.rows))
		if c.formula > 0 {
			rep.Formula.Cells += c.formula
			rep.Formula.Columns = append(rep.Formula.Columns, c.name)
		}
	}
	if opt.Previous != nil {
		drift(rep.Columns, p.cols, opt.Previous)
	}
	if label >= 0 {
		for k, v := range p.classes {
			rep.Classes = append(rep.Classes, Count{Value: k, Count: v})
		}
		slices.SortFunc(rep.Classes, func(a, b Count) int {
			if a.Count != b.Count {
				return int(b.Count - a.Count)
			}
			if a.Value < b.Value {
				return -1
			}
			return 1
		})
		rep.ClassOther = p.clsOther
	}
	pii := &PIIReport{}
	for _, c := range p.cols {
		if piiHint(c.name) {
			pii.Hints = append(pii.Hints, c.name)
		}
		kinds := map[string]int64{}
		for k, n := range c.pii.n {
			if n > 0 {
				kinds[PIIKinds[k]] = n
			}
		}
		if len(kinds) > 0 {
			pii.Columns = append(pii.Columns, PIIColumn{Column: c.name, Kinds: kinds, Rows: c.pii.rows})
		}
	}
	rep.PII = pii
	if sample != nil {
		sample.Total = p.rows
	}
	return &Result{Report: rep, Sample: sample}, nil
}

// keepRow keeps a uniform sample of at most n rows within maxSampleBytes.
func keepRow(s *Sample, rec [][]byte, row int64, n int, used *int64, rng *rand.Rand) {
	var sz int64
	for _, f := range rec {
		sz += int64(len(f)) + 16
	}
	slot := -1
	if len(s.Rows) < n && *used+sz <= maxSampleBytes {
		slot = len(s.Rows)
		s.Rows = append(s.Rows, nil)
		s.RowNum = append(s.RowNum, 0)
	} else if j := rng.Int64N(row); j < int64(len(s.Rows)) {
		slot = int(j)
		for _, f := range s.Rows[slot] {
			*used -= int64(len(f)) + 16
		}
	}
	if slot < 0 {
		return
	}
	// One allocation per kept row: the fields are substrings of one string.
	total := 0
	for _, f := range rec {
		total += len(f)
	}
	var sb strings.Builder
	sb.Grow(total)
	for _, f := range rec {
		sb.Write(f)
	}
	all := sb.String()
	out := make([]string, len(rec))
	o := 0
	for i, f := range rec {
		out[i] = all[o : o+len(f)]
		o += len(f)
	}
	*used += sz
	s.Rows[slot], s.RowNum[slot] = out, row
}

// parseErr turns a reader error into the caller's error: invalid (400) or
// too_large (413), with row and column in the message.
func parseErr(err error, header []string) error {
	var pe *ParseError
	if !errors.As(err, &pe) {
		return err
	}
	if pe.ColumnName == "" && pe.Column > 0 && pe.Column <= len(header) {
		pe.ColumnName = header[pe.Column-1]
	}
	code := rampart.CodeInvalid
	if pe.TooLarge {
		code = rampart.CodeTooLarge
	}
	return &rampart.Error{Code: code, Field: "body", Message: pe.Error(), Err: pe}
}

// rowHash hashes a record's features (all fields but the label) and its
// label, for duplicate and conflicting-label detection.
func rowHash(seed maphash.Seed, src source, rec [][]byte, label int) (fh, lh uint64) {
	buf, ends := src.raw()
	if ends == nil {
		// A line: separators are in the bytes.
		if label < 0 {
			return maphash.Bytes(seed, buf), 0
		}
		ls := label
		for _, f := range rec[:label] {
			ls += len(f)
		}
		le := ls + len(rec[label])
		return maphash.Bytes(seed, buf[:ls]) ^ (maphash.Bytes(seed, buf[le:]) * 0x9e3779b97f4a7c15), maphash.Bytes(seed, buf[ls:le]) | 1
	}
	if label >= 0 {
		ls := 0
		if label > 0 {
			ls = ends[label-1]
		}
		lh = maphash.Bytes(seed, buf[ls:ends[label]]) | 1
		fh = maphash.Bytes(seed, buf[:ls]) ^ (maphash.Bytes(seed, buf[ends[label]:]) * 0x9e3779b97f4a7c15)
	} else {
		fh = maphash.Bytes(seed, buf)
	}
	for _, e := range ends {
		fh = (fh ^ uint64(e)) * 0x100000001b3
	}
	return fh, lh
}

// batch is a run of parsed rows handed from the parsing goroutine to the
// profiling one: field bytes, field end offsets, row and line numbers and
// row hashes; err ends the stream after the batch's rows.
type batch struct {
	data        []byte
	ends        []int
	rows, lines []int
	fh, lh      []uint64
	err         error
	free        chan *batch
}

func (b *batch) recycle() {
	b.data, b.ends, b.rows, b.lines, b.fh, b.lh, b.err = b.data[:0], b.ends[:0], b.rows[:0], b.lines[:0], b.fh[:0], b.lh[:0], nil
	select {
	case b.free <- b:
	default:
	}
}

const (
	batchBytes = 256 << 10
	batchRows  = 4096
	readAhead  = 3
)

// readBatches parses src in a goroutine. It stops at the first error
// (sent as the last batch's err), at EOF, or when stop closes.
func readBatches(ctx context.Context, src source, header []string, label int, seed maphash.Seed, maxRows int64, stop <-chan struct{}) <-chan *batch {
	out := make(chan *batch, readAhead)
	free := make(chan *batch, readAhead+2)
	for range readAhead + 2 {
		free <- &batch{free: free}
	}
	go func() {
		defer close(out)
		var b *batch
		get := func() bool {
			select {
			case b = <-free:
				return true
			case <-stop:
				return false
			}
		}
		send := func() bool {
			select {
			case out <- b:
				b = nil
				return true
			case <-stop:
				return false
			}
		}
		if !get() {
			return
		}
		for {
			rec, err := src.next()
			if errors.Is(err, io.EOF) {
				send()
				return
			}
			row, line := src.pos()
			switch {
			case err != nil:
				b.err = parseErr(err, header)
			case len(rec) != len(header):
				b.err = parseErr(&ParseError{Row: row, Line: line, Column: min(len(rec), len(header)) + 1,
					Msg: fmt.Sprintf("row has %d fields, the header has %d", len(rec), len(header))}, header)
			case int64(row) > maxRows:
				b.err = rampart.Errorf(rampart.CodeTooLarge, "more than %d rows", maxRows)
			case row&4095 == 0 && ctx.Err() != nil:
				b.err = fmt.Errorf("ingest: %w", ctx.Err())
			}
			if b.err != nil {
				send()
				return
			}
			fh, lh := rowHash(seed, src, rec, label)
			for _, f := range rec {
				b.data = append(b.data, f...)
				b.ends = append(b.ends, len(b.data))
			}
			b.rows, b.lines, b.fh, b.lh = append(b.rows, row), append(b.lines, line), append(b.fh, fh), append(b.lh, lh)
			if len(b.data) >= batchBytes || len(b.rows) >= batchRows {
				if !send() || !get() {
					return
				}
			}
		}
	}()
	return out
}
