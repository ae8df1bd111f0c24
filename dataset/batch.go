package dataset

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
)

// fieldBatch holds up to max records of ncol fields scanned by scanBatch,
// column-major: field i of record r is buf[s:e] with s, e the low and high
// halves of fb[i*max+r], so a column's fields are contiguous for the
// per-column profiling loops.
type fieldBatch struct {
	ncol, max, n int
	fb           []uint64
	line         []int    // line on which each record starts
	ls, le       []uint32 // each record's line (without its line end)
	quoted       []bool   // the record has a quoted field: its line is not its fields joined by commas
}

func newFieldBatch(ncol, max int) *fieldBatch {
	return &fieldBatch{ncol: ncol, max: max, fb: make([]uint64, ncol*max), line: make([]int, max),
		ls: make([]uint32, max), le: make([]uint32, max), quoted: make([]bool, max)}
}

// field returns field i of record r.
func (b *fieldBatch) field(buf []byte, r, i int) []byte {
	return span(buf, b.fb[i*b.max+r])
}

// span returns the bytes of buf between the bounds packed in x.
func span(buf []byte, x uint64) []byte {
	s, e := uint32(x), uint32(x>>32)
	return buf[s:e:e]
}

func bounds(s, e int) uint64 { return uint64(uint32(s)) | uint64(e)<<32 }

// col returns column i's bounds for the batch's records.
func (b *fieldBatch) col(i int) []uint64 {
	k := i * b.max
	return b.fb[k : k+b.n]
}

// lowBytes flags (0x80 in the byte) exactly the bytes of x below 0x2D: the
// separators ',' and '\n', and '"', '\r' and NUL, which all need a look
// (and space, '!' and '#'…'+', which do not). No carry crosses bytes:
// (b&0x7F)+0x53 ≤ 0xD2.
func lowBytes(x uint64) uint64 {
	return ^(((x & 0x7F7F7F7F7F7F7F7F) + 0x5353535353535353) | x) & 0x8080808080808080
}

// scanBatch scans up to b.max records of exactly b.ncol fields each from
// an in-memory buffer known to be valid UTF-8 (utf8OK), recording their
// field bounds instead of slices, eight bytes at a time. It takes only the
// records fastRecordUTF8 takes (unquoted fields and quoted fields without
// escaped quotes, line breaks or NUL), and only with the header's field
// count and fields within MaxField; it stops before any other record, and
// before a record not ended by a line end within the buffer, so that Read
// takes that record (and reports its errors exactly). Blank lines are
// skipped as Read skips them, except a CR at a record's start. Row and
// line counting is Read's: after scanBatch, Read continues where it
// stopped. It returns the number of records scanned (b.n).
func (c *CSVReader) scanBatch(b *fieldBatch) int {
	buf := c.buf[:c.end]
	ncol, stride := b.ncol, b.max
	fb := b.fb[:ncol*b.max]
	maxField := c.MaxField
	n, pos, line := 0, c.pos, c.line
	if !c.utf8OK || len(buf) > math.MaxUint32 || ncol == 0 {
		b.n = 0
		return 0
	}
records:
	for n < b.max && pos < len(buf) {
		if buf[pos] == '\n' {
			pos++
			line++
			continue
		}
		if buf[pos] == '\r' {
			break
		}
		// i indexes the current field's bounds, last those of the
		// record's last field.
		st, i, last := pos, n, n+(ncol-1)*stride
		quoted := false
		lineEnd, next := 0, 0
		j := pos
	scan:
		for {
			var m uint64
			if j+8 <= len(buf) {
				m = lowBytes(binary.LittleEndian.Uint64(buf[j:]))
			} else {
				if j >= len(buf) {
					break records // no line end: Read takes the last record
				}
				for k := j; k < len(buf); k++ {
					if buf[k] < 0x2D {
						m |= 0x80 << (8 * (k - j))
					}
				}
			}
			base := j
			j += 8
			for m != 0 {
				k := base + bits.TrailingZeros64(m)>>3
				m &= m - 1
				x := buf[k]
				if x == ',' {
					if i == last {
						break records
					}
					fb[i] = bounds(st, k)
					i += stride
					st = k + 1
					continue
				}
				switch x {
				case '\n', '\r':
					end := k + 1
					if buf[k] == '\r' {
						if k+1 >= len(buf) || buf[k+1] != '\n' {
							break records
						}
						end = k + 2
					}
					if i != last {
						break records
					}
					fb[i] = bounds(st, k)
					lineEnd, next = k, end
					break scan
				case '"':
					if k != st {
						break records // a bare quote
					}
					q := bytes.IndexByte(buf[k+1:], '"')
					if q < 0 {
						break records
					}
					e := k + 1 + q
					for _, x := range buf[k+1 : e] {
						if x <= '\r' && (x == '\n' || x == '\r' || x == 0) {
							break records
						}
					}
					if e+1 >= len(buf) {
						break records
					}
					switch buf[e+1] {
					case ',':
						if i == last {
							break records
						}
						fb[i] = bounds(k+1, e)
						i += stride
						st = e + 2
						quoted = true
						j = e + 2
						continue scan
					case '\n':
						if i != last {
							break records
						}
						fb[i] = bounds(k+1, e)
						lineEnd, next = e+1, e+2
						quoted = true
						break scan
					case '\r':
						if i != last || e+2 >= len(buf) || buf[e+2] != '\n' {
							break records
						}
						fb[i] = bounds(k+1, e)
						lineEnd, next = e+1, e+3
						quoted = true
						break scan
					}
					break records
				case 0:
					break records
				}
			}
		}
		if lineEnd-pos > maxField {
			// A field may exceed MaxField: Read reports it.
			for f := n; f <= last; f += stride {
				if x := fb[f]; int(x>>32)-int(uint32(x)) > maxField {
					break records
				}
			}
		}
		b.line[n] = line
		b.ls[n], b.le[n] = uint32(pos), uint32(lineEnd)
		b.quoted[n] = quoted
		n++
		line++
		pos = next
	}
	b.n = n
	if n > 0 {
		c.start = b.line[n-1]
		c.row += n
		c.rawLine = nil
	}
	c.pos, c.line = pos, line
	return n
}

// batchRows is the records per batch: the bounds of a batch of 12 columns
// take 24 KiB, within the L1 data cache.
const batchRows = 256

// piiSink records a piece's first PII rows of one column.
type piiSink struct {
	out  *[]piiRow
	seen *uint8
	col  int32
	row0 int
}

func (p *piiSink) hit(r int) {
	if *p.seen < maxPIIRows {
		*p.seen++
		*p.out = append(*p.out, piiRow{col: p.col, row: int64(p.row0 + r)})
	}
}

// addCol profiles column c's fields of a batch (bounds into buf, the rows'
// sampling keys) exactly as add would one field at a time, in row order.
// While the column's type evidence allows, runs of fields take loops
// specialised for it (numRun, catRun), which stop before any field they
// do not handle exactly as add would; add takes that field.
func (c *colStats) addCol(buf []byte, bnds []uint64, keys []uint64, ps *piiSink) {
	n := len(keys)
	bnds = bnds[:n]
	for r := 0; r < n; {
		switch {
		case c.nonNum == 0 && c.nonBool != 0 && c.count >= catProbeRows:
			r = c.numRun(buf, bnds, keys, r)
		case c.nonNum != 0 && !c.sketchOff:
			r = c.catRun(buf, bnds, r, ps)
		}
		if r < n {
			if bits := c.add(span(buf, bnds[r]), keys[r]); bits != 0 {
				ps.hit(r)
			}
			r++
		}
	}
}

// numRun is add for a numeric column past the probe rows (no category
// sketch, no boolean test: add skips both): missing values and plain
// numbers shorter than the nine bytes from which PII detection looks at
// numbers. It returns the index of the first field it did not take.
func (c *colStats) numRun(buf []byte, bnds, keys []uint64, r int) int {
	for ; r < len(bnds); r++ {
		x := bnds[r]
		fs, fe := int(uint32(x)), int(x>>32)
		if fs == fe {
			c.missing++
			continue
		}
		if fe-fs >= 9 {
			return r
		}
		f := buf[fs:fe:fe]
		v, ok := parseNumber8(buf, fs, fe)
		if !ok {
			if v, ok = parseNumber(f); !ok {
				return r
			}
		}
		c.count++
		c.sumLen += int64(len(f))
		if len(f) > c.maxLen {
			c.maxLen = len(f)
		}
		c.addNumber(v, keys[r])
		if c.nonInt == 0 && v != math.Trunc(v) {
			c.nonInt++
		}
	}
	return r
}

// catRun is add for a column that is not numeric and whose sketch counts:
// missing values and values of up to maxCatKey bytes already in the
// sketch (their PII bits are cached there). It returns the index of the first
// field it did not take.
func (c *colStats) catRun(buf []byte, bnds []uint64, r int, ps *piiSink) int {
	for ; r < len(bnds); r++ {
		f := span(buf, bnds[r])
		if len(f) == 0 {
			c.missing++
			continue
		}
		var e *catEntry
		if len(f) <= 16 {
			w0, w1 := keyWords(f)
			hi, lo := bits.Mul64(w0^catK0, w1^catK1^uint64(len(f))) // hashKey
			e = c.sketch.findShort(hi^lo, w0, w1, len(f))
		} else if len(f) <= maxCatKey {
			e = c.sketch.findLong(maphash.Bytes(catSeed, f), f) // hashKey
		}
		if e == nil {
			return r
		}
		c.count++
		c.sumLen += int64(len(f))
		if len(f) > c.maxLen {
			c.maxLen = len(f)
		}
		if c.nonBool == 0 {
			if _, ok := parseBool(f); !ok {
				c.nonBool++
			}
		}
		e.n++
		if formulaLead[f[0]] && IsFormula(f) {
			c.formula++
		}
		if e.pii != 0 {
			c.pii.count(e.pii)
			ps.hit(r)
		}
	}
	return r
}

// profileBatch does runPiece's per-record work for a scanned batch whose
// first record is row row0: schema checks in row order (violations are
// listed in file order), then one loop per column, then row hashes, label
// counts and the label sample in row order. Each column's statistics see
// its fields in row order, as with one record at a time, so the results
// are the same.
func (in *ingestion) profileBatch(sh *shard, p *piece, o *pieceOut, buf []byte, b *fieldBatch, row0 int, pieceKey uint64,
	keys []uint64, piiSeen []uint8, scratch *[]byte) {
	st := in.st
	n, ncol := b.n, b.ncol
	for r := range keys {
		keys[r] = splitmix(pieceKey + uint64(row0+r))
	}
	if in.opt.Schema != nil {
		for r := range n {
			for i, ck := range st.checks {
				if why := ck.check(b.field(buf, r, i)); why != "" {
					o.nviol++
					if len(o.viol) < in.opt.MaxViolations {
						o.viol = append(o.viol, Violation{Row: int64(row0 + r), Line: int64(b.line[r]), Column: st.header[i], Reason: why})
					}
				}
			}
		}
	}
	cols := sh.p.cols
	for i := range ncol {
		cols[i].addCol(buf, b.col(i), keys, &piiSink{out: &o.pii, seen: &piiSeen[i], col: int32(i), row0: row0})
	}
	label := st.label
	h0 := len(o.fh)
	o.fh, o.lh = slices.Grow(o.fh, n)[:h0+n], slices.Grow(o.lh, n)[:h0+n]
	fhs, lhs := o.fh[h0:h0+n], o.lh[h0:h0+n]
	for r := range n {
		if !b.quoted[r] {
			fhs[r], lhs[r] = rowHashLine(st.seed, buf, b, r, label)
		} else {
			fhs[r], lhs[r] = rowHash(st.seed, nil, sh.record(buf, b, r), label, scratch)
		}
	}
	o.rows += int64(n)
	if label >= 0 {
		lb := b.col(label)
		for r := range n {
			sh.p.addLabel(span(buf, lb[r]))
			if keys[r] < sh.smp.thresh {
				sh.smp.keep(sh.record(buf, b, r), keys[r], p.info, int64(row0+r))
			}
		}
	}
}

// record returns record r of a batch as fields (valid until the next call).
func (sh *shard) record(buf []byte, b *fieldBatch, r int) [][]byte {
	rec := sh.rec[:0]
	for i := range b.ncol {
		rec = append(rec, b.field(buf, r, i))
	}
	sh.rec = rec
	return rec
}

// rowHashLine is rowHash for an unquoted record of a batch: its line is
// its fields joined by single commas, and no field holds a comma.
func rowHashLine(seed maphash.Seed, buf []byte, b *fieldBatch, r, label int) (fh, lh uint64) {
	ls := b.ls[r]
	line := buf[ls:b.le[r]]
	if label < 0 {
		return maphash.Bytes(seed, line), 0
	}
	x := b.fb[label*b.max+r]
	s, e := uint32(x)-ls, uint32(x>>32)-ls
	fh = maphash.Bytes(seed, line[:s]) ^ (maphash.Bytes(seed, line[e:]) * 0x9e3779b97f4a7c15)
	lh = maphash.Bytes(seed, line[s:e]) | 1
	return fh, lh
}

// parseNumber8 is parseNumber for the field buf[s:e] when it is one to
// eight bytes of digits with at most one '.' and eight bytes of buf can be
// loaded at s: the digits are converted eight at a time (one load, a few
// multiplies) into the same integer parseNumber's digit loop computes, and
// scaled by the same power of ten, so the value is the same to the bit.
// handled is false for any other field (a sign, an exponent, a second
// '.', no digit, …): parseNumber decides those.
func parseNumber8(buf []byte, s, e int) (v float64, handled bool) {
	n := e - s
	if n <= 0 || n > 8 || s < 0 || s+8 > len(buf) {
		return 0, false
	}
	x := binary.LittleEndian.Uint64(buf[s : s+8])
	valid := ^uint64(0) >> ((64 - 8*uint(n)) & 63) // the field's bytes
	const lo7, hi = 0x7F7F7F7F7F7F7F7F, 0x8080808080808080
	t := (x ^ 0x3030303030303030) & valid // digits become 0…9
	// Bytes of t above 9 (0x76 + b&0x7F carries into the high bit from
	// 10 on; no carry leaves a byte), and the '.' bytes, exactly.
	bad := (((t & lo7) + 0x7676767676767676) | t) & hi & valid
	y := x ^ 0x2E2E2E2E2E2E2E2E
	dots := ^(((y & lo7) + lo7) | y) & hi & valid
	if bad != dots || dots&(dots-1) != 0 {
		return 0, false
	}
	digits, frac := n, 0
	if dots != 0 {
		p := uint(bits.TrailingZeros64(dots) >> 3)
		below := uint64(1)<<(8*p&63) - 1
		t = t&below | (t>>8)&^below // drop the '.'
		digits--
		frac = digits - int(p)
		if digits == 0 {
			return 0, false
		}
	}
	t <<= 8 * uint(8-digits) & 63 // leading zeros: the last digit in the top byte
	t = t*10 + t>>8
	m := ((t&0x000000FF000000FF)*0x000F424000000064 + ((t>>16)&0x000000FF000000FF)*0x0000271000000001) >> 32
	v = float64(m)
	if frac > 0 {
		v /= pow10[frac]
	}
	return v, true
}
