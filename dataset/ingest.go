package dataset

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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

// source yields records. raw returns the current record's line when its
// fields are exactly the line's bytes separated by single commas, else
// nil. pos is the record's row and
// line, relative to the start of the source's piece.
type source interface {
	next() ([][]byte, error)
	raw() []byte
	pos() (row, line int)
}

type csvSource struct{ r *CSVReader }

func (s csvSource) next() ([][]byte, error) { return s.r.Read() }
func (s csvSource) raw() []byte             { return s.r.rawLine }
func (s csvSource) pos() (int, int)         { return s.r.Row(), s.r.Line() }

// Ingest reads an upload in one streaming pass: parse, validate against the
// declared schema, profile, screen for PII and formula injection, and copy
// the bytes to be sealed into sink (the exact upload for CSV; canonical CSV
// for Parquet). Memory is bounded whatever the input size (DATA-4). Any
// error means the upload must be discarded: the caller shreds what sink got.
//
// CSV is split into pieces of about a MiB at record boundaries (a newline
// outside quotes) and the pieces are parsed and profiled by one worker per
// CPU, each into its own statistics shard; the shards are merged at the
// end. Everything that depends on order — row and line numbers in errors,
// violations and PII rows, duplicate detection, the first error — is done
// by a merger that takes the pieces' results in file order, so reports and
// errors are those of a sequential pass. A piece boundary is only trusted
// while every earlier piece parsed cleanly, which makes it a true record
// boundary; a record that does not end within a MiB switches the rest of
// the upload to one streaming reader (bounded memory for a 100 MB field).
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
	in := newIngestion(ctx, opt)
	defer in.close()
	var flush func() error
	switch opt.Format {
	case FormatCSV, "":
		opt.Format = FormatCSV
		in.opt.Format = FormatCSV
		in.start(runtime.GOMAXPROCS(0))
		go in.produce(r, sink)
	case FormatParquet:
		ps, err := openParquet(r, opt.MaxParquetBytes, opt.MaxColumns, opt.MaxFieldBytes)
		if err != nil {
			return nil, err
		}
		w := NewCSVWriter(sink)
		ps.out = w
		flush = w.Flush
		in.size = ps.size
		in.start(1)
		pc := &piece{first: true, src: ps, out: make(chan *pieceOut, 4), info: &pieceInfo{}}
		in.work <- pc
		in.order <- pc
		close(in.work)
		close(in.order)
	default:
		return nil, invalid("format", "format must be csv or parquet")
	}
	res, err := in.merge()
	if err != nil {
		return nil, err
	}
	if flush != nil {
		if err := flush(); err != nil {
			return nil, fmt.Errorf("ingest: write: %w", err)
		}
	}
	return res, nil
}

// setup is what the header row fixes; workers share it read-only.
type setup struct {
	header   []string
	label    int
	checks   []*checker
	declared []*Column
	seed     maphash.Seed
}

func newSetup(hdr [][]byte, opt Options) (*setup, error) {
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
	st := &setup{header: header, label: -1, seed: maphash.MakeSeed(),
		checks: make([]*checker, len(header)), declared: make([]*Column, len(header))}
	if opt.Label != "" {
		i, ok := seen[opt.Label]
		if !ok {
			return nil, invalid("label", "label column %q does not exist in the header", opt.Label)
		}
		st.label = i
	}
	if opt.Schema != nil {
		for i := range opt.Schema.Columns {
			c := &opt.Schema.Columns[i]
			j, ok := seen[c.Name]
			if !ok {
				return nil, invalid("schema", "declared column %q is not in the header", c.Name)
			}
			st.checks[j], st.declared[j] = newChecker(*c), c
		}
		for i, h := range header {
			if st.checks[i] == nil {
				return nil, parseErr(&ParseError{Row: 0, Line: 1, Column: i + 1, ColumnName: h, Msg: "column is not in the declared schema"}, nil)
			}
		}
	}
	return st, nil
}

// blockSize is the bytes read per piece (a variable for tests).
var blockSize = 1 << 20

// useBatch: in-memory pieces are scanned in batches and profiled a column
// at a time (off in tests, to compare with one record at a time).
var useBatch = true

const streamBatchRows = 4096 // rows per result batch of a streamed piece

// ingestion is one Ingest run: a producer reading and splitting the
// upload, workers parsing and profiling pieces, and the merger (Ingest's
// goroutine) consuming the pieces' results in order.
type ingestion struct {
	ctx     context.Context
	opt     Options
	stop    chan struct{} // closed when Ingest returns
	stopped atomic.Bool
	sinkMu  sync.Mutex
	work    chan *piece // to the workers
	order   chan *piece // to the merger, in file order
	wg      sync.WaitGroup
	shards  []*shard

	hdrReady chan struct{} // closed once st is set or the header failed
	st       *setup

	size int64 // bytes read; final when order is closed

	block int // bytes read per piece
	free  chan *block
	// hashBufs recycles the pieces' row hash slices: the merger returns
	// them once it has consumed them.
	hashBufs chan []uint64
	nblocks  int
	maxBlks  int
}

func newIngestion(ctx context.Context, opt Options) *ingestion {
	return &ingestion{ctx: ctx, opt: opt, stop: make(chan struct{}), hdrReady: make(chan struct{}), block: blockSize}
}

func (in *ingestion) start(workers int) {
	workers = max(1, min(workers, 16))
	in.maxBlks = 2*workers + 2
	in.free = make(chan *block, in.maxBlks)
	in.hashBufs = make(chan []uint64, 4*in.maxBlks)
	in.work = make(chan *piece, in.maxBlks)
	in.order = make(chan *piece, in.maxBlks+1)
	for range workers {
		sh := &shard{}
		in.shards = append(in.shards, sh)
		in.wg.Add(1)
		go in.worker(sh)
	}
}

func (in *ingestion) close() {
	in.sinkMu.Lock()
	in.stopped.Store(true)
	in.sinkMu.Unlock()
	close(in.stop)
}

// block is a read buffer shared by the piece parsed from it, the sink
// write and the carried-over tail; the last release recycles it.
type block struct {
	buf  []byte
	refs atomic.Int32
	in   *ingestion
}

func (b *block) release() {
	if b.refs.Add(-1) == 0 {
		select {
		case b.in.free <- b:
		default:
		}
	}
}

func (in *ingestion) getBlock() *block {
	select {
	case b := <-in.free:
		return b
	default:
	}
	if in.nblocks < in.maxBlks {
		in.nblocks++
		return &block{buf: make([]byte, 2*in.block), in: in}
	}
	select {
	case b := <-in.free:
		return b
	case <-in.stop:
		return nil
	}
}

// piece is a run of whole records (data, from blk), or a streamed source
// (src) that runs to the end of the upload.
type piece struct {
	idx   uint64
	data  []byte
	blk   *block
	src   source
	first bool // starts with the header row
	out   chan *pieceOut
	info  *pieceInfo
}

// pieceInfo is where a piece's rows start, set by the merger when it
// reaches the piece (read only after all pieces are merged).
type pieceInfo struct{ rowOff int64 }

// pieceOut is a batch of a piece's results; row and line numbers in it are
// relative to the piece.
type pieceOut struct {
	rows   int64 // data rows parsed cleanly
	lines  int64 // lines consumed (last batch of a piece)
	fh, lh []uint64
	viol   []Violation
	nviol  int64
	pii    []piiRow
	err    error
	last   bool
}

type piiRow struct {
	col int32
	row int64
}

// send hands p to the workers and the merger.
func (in *ingestion) send(p *piece) bool {
	select {
	case in.order <- p:
	case <-in.stop:
		return false
	}
	if p.src == nil && p.data == nil && p.blk == nil {
		return true // a result-only piece (an error)
	}
	select {
	case in.work <- p:
		return true
	case <-in.stop:
		return false
	}
}

// fail ends the upload with err after everything read before.
func (in *ingestion) fail(idx uint64, err error) {
	out := make(chan *pieceOut, 1)
	out <- &pieceOut{err: err, last: true}
	in.send(&piece{idx: idx, out: out, info: &pieceInfo{}})
}

// lastCut returns the length of the longest prefix of data that ends with
// a newline outside quotes, or 0. Quote parity is counted from the start
// of data, which starts at a record boundary: in RFC 4180 text a newline
// is inside a quoted field exactly when an odd number of quotes precede it
// (an escaped quote is two). Malformed text can make the parity wrong, but
// it then fails to parse in this piece, before the cut, and nothing after
// it is used.
func lastCut(data []byte) int {
	q := bytes.Count(data, []byte{'"'})
	end := len(data)
	for {
		i := bytes.LastIndexByte(data[:end], '\n')
		if i < 0 {
			return 0
		}
		q -= bytes.Count(data[i+1:end], []byte{'"'})
		if q%2 == 0 {
			return i + 1
		}
		end = i
	}
}

// produce reads the upload in blocks, copies them to sink and cuts them
// into pieces at record boundaries.
func (in *ingestion) produce(r io.Reader, sink io.Writer) {
	defer close(in.work)
	defer close(in.order)
	var carry []byte
	var carryBlk *block
	first := true
	for idx := uint64(0); ; idx++ {
		b := in.getBlock()
		if b == nil {
			return
		}
		n := copy(b.buf, carry) // at most in.block
		if carryBlk != nil {
			carryBlk.release()
			carryBlk, carry = nil, nil
		}
		m, err := io.ReadFull(r, b.buf[n:n+in.block])
		in.size += int64(m)
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			in.fail(idx, fmt.Errorf("read input: %w", err))
			return
		}
		data, fresh := b.buf[:n+m], b.buf[n:n+m]
		cut := len(data)
		if !eof {
			cut = lastCut(data)
			if first && len(bytes.Trim(data[:cut], "\r\n")) == 0 {
				cut = 0 // the first piece must hold the header, not just blank lines
			}
		}
		if cut == 0 && !eof {
			b.refs.Store(2) // the sink write, the carry or the stream
			if !in.write(sink, fresh, idx) {
				return
			}
			b.release()
			if n == 0 {
				carry, carryBlk = data, b
				continue
			}
			// No record ends within more than a block: stream the rest.
			in.stream(r, sink, b, data, idx, first)
			return
		}
		b.refs.Store(3) // the piece, the sink write, the carry
		if cut > 0 || first {
			p := &piece{idx: idx, data: data[:cut], blk: b, first: first, out: make(chan *pieceOut, 1), info: &pieceInfo{}}
			first = false
			if !in.send(p) {
				return
			}
		} else {
			b.release()
		}
		if !in.write(sink, fresh, idx) {
			return
		}
		b.release()
		rest := data[cut:]
		switch {
		case len(rest) > in.block:
			in.stream(r, sink, b, rest, idx+1, false)
			return
		case len(rest) > 0:
			carry, carryBlk = rest, b
		default:
			b.release()
		}
		if eof {
			return
		}
	}
}

// write copies p to the sink unless the ingestion has ended. The lock
// makes close wait for a write in progress, so that nothing is written
// once Ingest has returned.
func (in *ingestion) write(sink io.Writer, p []byte, idx uint64) bool {
	if len(p) == 0 {
		return true
	}
	in.sinkMu.Lock()
	if in.stopped.Load() {
		in.sinkMu.Unlock()
		return false
	}
	_, err := sink.Write(p)
	in.sinkMu.Unlock()
	if err != nil {
		in.fail(idx, fmt.Errorf("ingest: write: %w", err))
		return false
	}
	return true
}

// stream hands the rest of the upload, starting with data (held in b by one
// reference, already written to the sink), to one streaming reader: the
// fallback for a record longer than a block.
func (in *ingestion) stream(r io.Reader, sink io.Writer, b *block, data []byte, idx uint64, first bool) {
	cr := &chanReader{ch: make(chan chunk, 2), in: in}
	rd := NewCSVReader(cr)
	rd.MaxField, rd.MaxColumns = in.opt.MaxFieldBytes, in.opt.MaxColumns
	if !first {
		rd.row = 1 // the header is in an earlier piece
	}
	p := &piece{idx: idx, src: csvSource{rd}, first: first, out: make(chan *pieceOut, 4), info: &pieceInfo{}}
	if !in.send(p) {
		return
	}
	defer close(cr.ch)
	for {
		select {
		case cr.ch <- chunk{data, b}:
		case <-in.stop:
			return
		}
		if b = in.getBlock(); b == nil {
			return
		}
		m, err := io.ReadFull(r, b.buf[:in.block])
		in.size += int64(m)
		data = b.buf[:m]
		b.refs.Store(2) // the sink write, the reader
		if !in.write(sink, data, idx) {
			return
		}
		b.release()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				select {
				case cr.ch <- chunk{data, b}:
				case <-in.stop:
				}
				return
			}
			cr.err = fmt.Errorf("read input: %w", err) // seen once the channel closes
			return
		}
	}
}

type chunk struct {
	data []byte
	b    *block
}

// chanReader reads the chunks a producer sends, releasing each block once
// read.
type chanReader struct {
	ch  chan chunk
	cur chunk
	err error
	in  *ingestion
}

func (c *chanReader) Read(p []byte) (int, error) {
	for len(c.cur.data) == 0 {
		if c.cur.b != nil {
			c.cur.b.release()
			c.cur.b = nil
		}
		select {
		case ck, ok := <-c.ch:
			if !ok {
				if c.err != nil {
					return 0, c.err
				}
				return 0, io.EOF
			}
			c.cur = ck
		case <-c.in.stop:
			return 0, errStopped
		}
	}
	k := copy(p, c.cur.data)
	c.cur.data = c.cur.data[k:]
	return k, nil
}

var errStopped = errors.New("ingest: stopped")

// shard is one worker's statistics.
type shard struct {
	p     *profiler
	smp   *rowSample
	batch *fieldBatch
	rec   [][]byte
}

func (in *ingestion) worker(sh *shard) {
	defer in.wg.Done()
	for p := range in.work {
		if in.stopped.Load() {
			if p.blk != nil {
				p.blk.release()
			}
			continue
		}
		in.runPiece(sh, p)
		if p.blk != nil {
			p.blk.release()
		}
	}
}

func (in *ingestion) emit(p *piece, o *pieceOut) bool {
	select {
	case p.out <- o:
		return true
	case <-in.stop:
		return false
	}
}

// runPiece parses and profiles one piece into sh.
func (in *ingestion) runPiece(sh *shard, p *piece) {
	src := p.src
	var cr *CSVReader
	if src == nil {
		cr = newCSVBytes(p.data)
		cr.MaxField, cr.MaxColumns = in.opt.MaxFieldBytes, in.opt.MaxColumns
		if !p.first {
			cr.row = 1
		}
		src = csvSource{cr}
	}
	if p.first {
		hdr, err := src.next()
		var st *setup
		switch {
		case errors.Is(err, io.EOF):
			err = invalid("body", "the file is empty: a header row is required")
		case err != nil:
			err = parseErr(err, nil)
		default:
			st, err = newSetup(hdr, in.opt)
		}
		in.st = st
		close(in.hdrReady)
		if err != nil {
			in.emit(p, &pieceOut{err: err, last: true})
			return
		}
	} else {
		select {
		case <-in.hdrReady:
		case <-in.stop:
			return
		}
		if in.st == nil {
			in.emit(p, &pieceOut{last: true})
			return
		}
	}
	st := in.st
	if sh.p == nil {
		sh.p = newProfiler(st.header, st.label)
		if st.label >= 0 {
			sh.smp = &rowSample{n: in.opt.ScreenRows, budget: maxSampleBytes / int64(len(in.shards)), thresh: math.MaxUint64}
		}
	}
	prof := sh.p
	cols := prof.cols
	ncol := len(st.header)
	checks, label := st.checks, st.label
	hasChecks := in.opt.Schema != nil
	piiSeen := make([]uint8, ncol) // PII rows recorded per column in this piece
	pieceKey := splitmix(in.opt.Seed ^ splitmix(p.idx+0x51ed27))
	o := &pieceOut{fh: in.hashBuf(), lh: in.hashBuf()}
	var scratch []byte
	var fbat *fieldBatch
	var keys []uint64
	if cr != nil && cr.utf8OK && useBatch {
		if sh.batch == nil || sh.batch.ncol != ncol {
			sh.batch = newFieldBatch(ncol, batchRows)
		}
		fbat, keys = sh.batch, make([]uint64, batchRows)
	}
	for {
		if fbat != nil {
			if n := cr.scanBatch(fbat); n > 0 {
				if in.stopped.Load() {
					o.err = errStopped
					break
				}
				if err := in.ctx.Err(); err != nil {
					o.err = fmt.Errorf("ingest: %w", err)
					break
				}
				in.profileBatch(sh, p, o, cr.buf, fbat, cr.row-n, pieceKey, keys[:n], piiSeen, &scratch)
				continue
			}
		}
		rec, err := src.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				o.err = err
			}
			break
		}
		row, line := src.pos()
		if len(rec) != ncol {
			o.err = &ParseError{Row: row, Line: line, Column: min(len(rec), ncol) + 1,
				Msg: fmt.Sprintf("row has %d fields, the header has %d", len(rec), ncol)}
			break
		}
		if row&4095 == 0 {
			if in.stopped.Load() {
				o.err = errStopped
				break
			}
			if err := in.ctx.Err(); err != nil {
				o.err = fmt.Errorf("ingest: %w", err)
				break
			}
		}
		key := splitmix(pieceKey + uint64(row))
		for i, f := range rec {
			if hasChecks {
				if why := checks[i].check(f); why != "" {
					o.nviol++
					if len(o.viol) < in.opt.MaxViolations {
						o.viol = append(o.viol, Violation{Row: int64(row), Line: int64(line), Column: st.header[i], Reason: why})
					}
				}
			}
			if bits := cols[i].add(f, key); bits != 0 && piiSeen[i] < maxPIIRows {
				piiSeen[i]++
				o.pii = append(o.pii, piiRow{col: int32(i), row: int64(row)})
			}
		}
		fh, lh := rowHash(st.seed, src.raw(), rec, label, &scratch)
		o.fh, o.lh = append(o.fh, fh), append(o.lh, lh)
		o.rows++
		if label >= 0 {
			prof.addLabel(rec[label])
			sh.smp.keep(rec, key, p.info, int64(row))
		}
		if p.src != nil && o.rows >= streamBatchRows {
			if !in.emit(p, o) {
				return
			}
			o = &pieceOut{fh: in.hashBuf(), lh: in.hashBuf()}
			clear(piiSeen)
		}
	}
	if cr != nil {
		o.lines = int64(cr.line - 1)
	}
	o.last = true
	in.emit(p, o)
}

// hashBuf returns an empty slice for row hashes, recycled if one is free.
func (in *ingestion) hashBuf() []uint64 {
	select {
	case b := <-in.hashBufs:
		return b[:0]
	default:
		return nil
	}
}

// putHashBuf hands a consumed row hash slice back for reuse.
func (in *ingestion) putHashBuf(b []uint64) {
	if cap(b) == 0 {
		return
	}
	select {
	case in.hashBufs <- b:
	default:
	}
}

// splitmix is SplitMix64's finalizer: a bijective 64-bit mix.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// merge consumes the pieces' results in order, then merges the shards and
// builds the report.
func (in *ingestion) merge() (*Result, error) {
	opt := in.opt
	var header []string
	var viol []Violation
	var nviol int64
	var rows, lineOff int64
	dup := newHashSet()
	var dupFull bool
	var dupRows, conflict int64
	var piiRows [][]int64
	for p := range in.order {
		base := rows
		p.info.rowOff = base
		for {
			var o *pieceOut
			select {
			case o = <-p.out:
			case <-in.ctx.Done():
				return nil, fmt.Errorf("ingest: %w", in.ctx.Err())
			}
			if header == nil && in.st != nil {
				header = in.st.header
				piiRows = make([][]int64, len(header))
			}
			if rows+o.rows > opt.MaxRows {
				return nil, rampart.Errorf(rampart.CodeTooLarge, "more than %d rows", opt.MaxRows)
			}
			for i, fh := range o.fh {
				lh := o.lh[i]
				if prev, ok := dup.get(fh); ok {
					if prev == lh {
						dupRows++
					} else {
						conflict++
					}
				} else if !dup.put(fh, lh) {
					dupFull = true
				}
			}
			in.putHashBuf(o.fh)
			in.putHashBuf(o.lh)
			o.fh, o.lh = nil, nil
			nviol += o.nviol
			for _, v := range o.viol {
				if len(viol) >= opt.MaxViolations {
					break
				}
				v.Row += base
				v.Line += lineOff
				viol = append(viol, v)
			}
			for _, pr := range o.pii {
				if rs := piiRows[pr.col]; len(rs) < maxPIIRows && (len(rs) == 0 || rs[len(rs)-1] != base+pr.row) {
					piiRows[pr.col] = append(rs, base+pr.row)
				}
			}
			if o.err != nil {
				if pe, ok := o.err.(*ParseError); ok {
					pe.Row += int(base)
					pe.Line += int(lineOff)
				}
				return nil, parseErr(o.err, header)
			}
			rows += o.rows
			if o.last {
				lineOff += o.lines
				break
			}
		}
	}
	in.wg.Wait()
	if header == nil {
		return nil, invalid("body", "the file is empty: a header row is required")
	}
	if rows == 0 {
		return nil, invalid("body", "the file has a header but no data rows")
	}
	if nviol > 0 {
		return nil, &RejectError{Err: &rampart.Error{Code: rampart.CodeInvalid, Field: "body",
			Message: fmt.Sprintf("%d field(s) violate the declared schema; first: %s", nviol, viol[0])},
			Violations: viol, Total: nviol}
	}
	// Merge the shards.
	var p *profiler
	var smp []*rowSample
	for _, sh := range in.shards {
		if sh.p == nil {
			continue
		}
		if p == nil {
			p = sh.p
		} else {
			p.merge(sh.p)
		}
		if sh.smp != nil {
			smp = append(smp, sh.smp)
		}
	}
	st := in.st
	rep := &Report{Format: string(opt.Format), Rows: rows, Bytes: in.size, Label: opt.Label,
		Duplicate: DuplicateStats{Rows: dupRows, ConflictingLabels: conflict, Exact: !dupFull}}
	for i, c := range p.cols {
		c.finish()
		c.pii.rows = piiRows[i]
		rep.Columns = append(rep.Columns, c.profile(st.declared[i], rows))
		if c.formula > 0 {
			rep.Formula.Cells += c.formula
			rep.Formula.Columns = append(rep.Formula.Columns, c.name)
		}
	}
	if opt.Previous != nil {
		drift(rep.Columns, p.cols, opt.Previous)
	}
	if st.label >= 0 {
		p.classes.each(func(k []byte, n int64, _ uint8) {
			rep.Classes = append(rep.Classes, Count{Value: string(k), Count: n})
		})
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
	var sample *Sample
	if st.label >= 0 {
		sample = mergeSamples(st.header, smp, opt.ScreenRows)
		sample.Total = rows
	}
	return &Result{Report: rep, Sample: sample}, nil
}

// rowSample keeps the rows with the smallest row keys (bottom-k), at most
// n rows and budget bytes: a uniform sample that merges across shards.
// Candidates below thresh are appended; at 2n rows or budget bytes they
// are sorted and cut back to n rows and half the budget.
type rowSample struct {
	ents   []sampleEnt
	thresh uint64
	used   int64
	n      int
	budget int64
}

type sampleEnt struct {
	key  uint64
	info *pieceInfo
	row  int64
	vals []string
	size int64
}

func (s *rowSample) keep(rec [][]byte, key uint64, info *pieceInfo, row int64) {
	if key >= s.thresh {
		return
	}
	var sz int64
	for _, f := range rec {
		sz += int64(len(f)) + 16
	}
	if sz > s.budget/2 {
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
	s.ents = append(s.ents, sampleEnt{key: key, info: info, row: row, vals: out, size: sz})
	s.used += sz
	if len(s.ents) >= 2*s.n || s.used > s.budget {
		s.cut()
	}
}

// cut keeps the smallest keys within n rows and half the budget.
func (s *rowSample) cut() {
	if len(s.ents) > s.n {
		keys := make([]uint64, len(s.ents))
		for i := range s.ents {
			keys[i] = s.ents[i].key
		}
		s.thresh = kthKey(keys, s.n)
		s.filter()
	}
	for s.used > s.budget/2 {
		// Rows are large: drop the largest keys until half the budget.
		slices.SortFunc(s.ents, func(a, b sampleEnt) int { return cmp.Compare(a.key, b.key) })
		var used int64
		k := 0
		for k < len(s.ents) && used+s.ents[k].size <= s.budget/2 {
			used += s.ents[k].size
			k++
		}
		s.thresh = s.ents[k].key
		s.filter()
	}
}

// filter drops the rows at or above thresh.
func (s *rowSample) filter() {
	n := 0
	s.used = 0
	for i := range s.ents {
		if s.ents[i].key < s.thresh {
			s.ents[n] = s.ents[i]
			s.used += s.ents[i].size
			n++
		}
	}
	clear(s.ents[n:])
	s.ents = s.ents[:n]
}

// mergeSamples takes the n smallest keys over the shards within
// maxSampleBytes, in row order.
func mergeSamples(header []string, shards []*rowSample, n int) *Sample {
	var all []sampleEnt
	for _, s := range shards {
		all = append(all, s.ents...)
	}
	slices.SortFunc(all, func(a, b sampleEnt) int { return cmp.Compare(a.key, b.key) })
	var used int64
	k := 0
	for k < len(all) && k < n && used+all[k].size <= maxSampleBytes {
		used += all[k].size
		k++
	}
	all = all[:k]
	slices.SortFunc(all, func(a, b sampleEnt) int {
		return cmp.Compare(a.info.rowOff+a.row, b.info.rowOff+b.row)
	})
	s := &Sample{Header: header, RowNum: make([]int64, len(all)), Rows: make([][]string, len(all))}
	for i, e := range all {
		s.RowNum[i], s.Rows[i] = e.info.rowOff+e.row, e.vals
	}
	return s
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
// label, for duplicate and conflicting-label detection. The hash is of the
// fields joined by commas (the line itself when the reader has it), with
// the field lengths mixed in when a field holds a comma, so a record hashes
// the same however it was quoted or parsed.
func rowHash(seed maphash.Seed, line []byte, rec [][]byte, label int, scratch *[]byte) (fh, lh uint64) {
	amb := false
	if line == nil {
		b := (*scratch)[:0]
		for i, f := range rec {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, f...)
			amb = amb || bytes.IndexByte(f, ',') >= 0
		}
		*scratch, line = b, b
	}
	if label < 0 {
		fh = maphash.Bytes(seed, line)
	} else {
		ls := label
		for _, f := range rec[:label] {
			ls += len(f)
		}
		le := ls + len(rec[label])
		fh = maphash.Bytes(seed, line[:ls]) ^ (maphash.Bytes(seed, line[le:]) * 0x9e3779b97f4a7c15)
		lh = maphash.Bytes(seed, line[ls:le]) | 1
	}
	if amb {
		for _, f := range rec {
			fh = (fh ^ uint64(len(f))) * 0x100000001b3
		}
	}
	return fh, lh
}
