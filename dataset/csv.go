package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"unicode/utf8"
)

// Limits on untrusted CSV input. A field longer than MaxFieldBytes is
// rejected as soon as the limit is crossed, so a 100 MB single field costs no
// more memory than a short one.
const (
	DefaultMaxFieldBytes = 1 << 20
	DefaultMaxColumns    = 10_000
	csvBufSize           = 256 << 10
)

// ParseError is malformed input at a known place. Row is the 1-based data
// row (0 is the header), Line the 1-based line of the file where the record
// starts, Column the 1-based column (0 when the whole record is at fault).
type ParseError struct {
	Row, Line, Column int
	ColumnName        string
	Msg               string
	TooLarge          bool
}

func (e *ParseError) Error() string {
	where := fmt.Sprintf("row %d (line %d)", e.Row, e.Line)
	if e.Row == 0 {
		where = fmt.Sprintf("header (line %d)", e.Line)
	}
	if e.Column > 0 {
		if e.ColumnName != "" {
			where += fmt.Sprintf(", column %d %q", e.Column, e.ColumnName)
		} else {
			where += fmt.Sprintf(", column %d", e.Column)
		}
	}
	return where + ": " + e.Msg
}

// CSVReader reads RFC 4180 CSV (comma-separated, double-quote quoting,
// CRLF or LF line ends) in bounded memory: one input buffer and one record.
// Every field must be valid UTF-8 without NUL bytes; a field may not exceed
// MaxField bytes; a record may not exceed MaxColumns fields; blank lines are
// skipped. Fields returned by Read are valid until the next call.
type CSVReader struct {
	r          io.Reader
	buf        []byte
	pos, end   int
	eof        bool
	rerr       error
	MaxField   int
	MaxColumns int

	arena  []byte
	ends   []int
	fields [][]byte
	// line of the last record when it was read by the fast path: the
	// fields are slices of it, separated by single commas.
	rawLine []byte
	row     int // records returned so far (header included)
	line    int // current line (1-based) of the reader position
	start   int // line where the current record starts
	// Offset counts the input bytes consumed.
	Offset int64
	// utf8OK: the whole buffer is the whole input and valid UTF-8, so
	// every field is (separators are ASCII, never inside a multi-byte
	// sequence).
	utf8OK bool
}

// NewCSVReader returns a reader with the default limits.
func NewCSVReader(r io.Reader) *CSVReader {
	return &CSVReader{r: r, buf: make([]byte, csvBufSize), MaxField: DefaultMaxFieldBytes,
		MaxColumns: DefaultMaxColumns, line: 1}
}

// newCSVBytes reads records from b, which is all the input there is.
func newCSVBytes(b []byte) *CSVReader {
	return &CSVReader{buf: b, end: len(b), eof: true, MaxField: DefaultMaxFieldBytes,
		MaxColumns: DefaultMaxColumns, line: 1, Offset: int64(len(b)), utf8OK: utf8.Valid(b)}
}

// Row is the index of the last record returned (0 = header).
func (c *CSVReader) Row() int { return c.row - 1 }

// Line is the line on which the last record returned started.
func (c *CSVReader) Line() int { return c.start }

func (c *CSVReader) fill() bool {
	if c.pos < c.end {
		return true
	}
	if c.eof {
		return false
	}
	for {
		n, err := c.r.Read(c.buf)
		c.pos, c.end = 0, n
		c.Offset += int64(n)
		if err != nil {
			c.eof = true
			if err != io.EOF {
				c.rerr = err
			}
		}
		if n > 0 {
			return true
		}
		if c.eof {
			return false
		}
	}
}

func (c *CSVReader) errf(col int, tooLarge bool, format string, args ...any) error {
	return &ParseError{Row: c.row, Line: c.start, Column: col, Msg: fmt.Sprintf(format, args...), TooLarge: tooLarge}
}

func (c *CSVReader) appendField(b []byte, fieldStart, col int) error {
	if len(c.arena)-fieldStart+len(b) > c.MaxField {
		return c.errf(col, true, "field exceeds %d bytes", c.MaxField)
	}
	c.arena = append(c.arena, b...)
	return nil
}

// Read returns the next record, or io.EOF after the last one.
func (c *CSVReader) Read() ([][]byte, error) {
	for {
		if !c.fill() {
			if c.rerr != nil {
				return nil, fmt.Errorf("read input: %w", c.rerr)
			}
			return nil, io.EOF
		}
		// Skip blank lines.
		if b := c.buf[c.pos]; b == '\n' {
			c.pos++
			c.line++
			continue
		} else if b == '\r' {
			c.pos++
			if c.fill() && c.buf[c.pos] == '\n' {
				c.pos++
			}
			c.line++
			continue
		}
		break
	}
	c.start = c.line
	if c.utf8OK {
		if rec := c.fastRecordUTF8(); rec != nil {
			return rec, nil
		}
	} else if rec := c.fastRecord(); rec != nil {
		return rec, nil
	}
	c.rawLine = nil
	c.arena = c.arena[:0]
	c.ends = c.ends[:0]
	for {
		col := len(c.ends) + 1
		if col > c.MaxColumns {
			return nil, c.errf(0, true, "more than %d columns", c.MaxColumns)
		}
		fieldStart := len(c.arena)
		end, err := c.readField(fieldStart, col)
		if err != nil {
			return nil, err
		}
		c.ends = append(c.ends, len(c.arena))
		f := c.arena[fieldStart:]
		if bytes.IndexByte(f, 0) >= 0 {
			return nil, c.errf(col, false, "NUL byte in field")
		}
		if !utf8.Valid(f) {
			return nil, c.errf(col, false, "invalid UTF-8")
		}
		if end {
			break
		}
	}
	c.row++
	c.fields = c.fields[:0]
	s := 0
	for _, e := range c.ends {
		c.fields = append(c.fields, c.arena[s:e:e])
		s = e
	}
	return c.fields, nil
}

// csvSpecial marks the bytes fastRecord must look at: separators, quotes,
// CR, NUL and non-ASCII (UTF-8 is then checked for the line).
var csvSpecial = func() (t [256]uint8) {
	t[','], t['\n'], t['"'], t['\r'], t[0] = 1, 2, 3, 3, 3
	for b := 0x80; b < 0x100; b++ {
		t[b] = 4
	}
	return t
}()

// fastRecord splits a record that lies wholly in the buffer, without
// copying, in one pass over the bytes (UTF-8 is validated only for lines
// with non-ASCII bytes). A quoted field is taken as the bytes between its
// quotes when it has no escaped quote and no line break. Anything else
// (escaped quotes, quoted line breaks, stray CR, NUL, a bare quote, a
// record cut by the end of the buffer) returns nil and the byte-wise
// reader takes over, and reports errors precisely.
func (c *CSVReader) fastRecord() [][]byte {
	chunk := c.buf[c.pos:c.end]
	fields := c.fields[:0]
	st, ascii, quoted := 0, true, false
	for j := 0; j < len(chunk); j++ {
		k := csvSpecial[chunk[j]]
		if k == 0 {
			continue
		}
		switch k {
		case 1:
			fields = append(fields, chunk[st:j:j])
			st = j + 1
			continue
		case 4:
			ascii = false
			continue
		case 3:
			if chunk[j] == '"' && j == st {
				// A quoted field: up to the closing quote.
				q := bytes.IndexByte(chunk[j+1:], '"')
				if q < 0 {
					break
				}
				e := j + 1 + q
				for _, b := range chunk[j+1 : e] {
					switch csvSpecial[b] {
					case 2, 3:
						c.fields = fields
						return nil
					case 4:
						ascii = false
					}
				}
				if e+1 >= len(chunk) {
					break
				}
				quoted = true
				switch chunk[e+1] {
				case ',':
					fields = append(fields, chunk[j+1:e:e])
					st = e + 2
					j = e + 1
					continue
				case '\n':
					fields = append(fields, chunk[j+1:e:e])
					return c.fastEnd(fields, chunk[:e+1], e+2, ascii, quoted)
				case '\r':
					if e+2 < len(chunk) && chunk[e+2] == '\n' {
						fields = append(fields, chunk[j+1:e:e])
						return c.fastEnd(fields, chunk[:e+1], e+3, ascii, quoted)
					}
				}
				break
			}
			// CRLF ends the line; any other CR, a bare quote or NUL: slow path.
			if chunk[j] != '\r' || j+1 >= len(chunk) || chunk[j+1] != '\n' {
				break
			}
			fields = append(fields, chunk[st:j:j])
			return c.fastEnd(fields, chunk[:j], j+2, ascii, quoted)
		case 2:
			fields = append(fields, chunk[st:j:j])
			return c.fastEnd(fields, chunk[:j], j+1, ascii, quoted)
		}
		break
	}
	c.fields = fields
	return nil
}

// skipOrdinary returns the index of the first byte at or after j that is
// at most ',' (or len(b)), eight bytes at a time: (x - 0x2D…) &^ x & 0x80…
// flags bytes below 0x2D; only bytes above a flagged one can be flagged
// falsely, so the lowest flag is exact. Bytes >= 0x80 are never flagged.
func skipOrdinary(b []byte, j int) int {
	for ; j+8 <= len(b); j += 8 {
		x := binary.LittleEndian.Uint64(b[j:])
		if m := (x - 0x2D2D2D2D2D2D2D2D) &^ x & 0x8080808080808080; m != 0 {
			return j + bits.TrailingZeros64(m)>>3
		}
	}
	for ; j < len(b); j++ {
		if b[j] <= ',' {
			return j
		}
	}
	return j
}

// fastRecordUTF8 is fastRecord for a buffer known to be valid UTF-8: one
// comparison per byte finds every byte it must look at (',', '\n', '\r',
// '"' and NUL are all at most ',').
func (c *CSVReader) fastRecordUTF8() [][]byte {
	chunk := c.buf[c.pos:c.end]
	fields := c.fields[:0]
	st, quoted := 0, false
	for j := 0; j < len(chunk); j++ {
		if j = skipOrdinary(chunk, j); j >= len(chunk) {
			break
		}
		switch chunk[j] {
		case ',':
			fields = append(fields, chunk[st:j:j])
			st = j + 1
			continue
		case '\n':
			fields = append(fields, chunk[st:j:j])
			return c.fastEnd(fields, chunk[:j], j+1, true, quoted)
		case '\r':
			if j+1 < len(chunk) && chunk[j+1] == '\n' {
				fields = append(fields, chunk[st:j:j])
				return c.fastEnd(fields, chunk[:j], j+2, true, quoted)
			}
		case '"':
			if j != st {
				break // a bare quote
			}
			q := bytes.IndexByte(chunk[j+1:], '"')
			if q < 0 {
				break
			}
			e := j + 1 + q
			for _, x := range chunk[j+1 : e] {
				if x <= '\r' && (x == '\n' || x == '\r' || x == 0) {
					c.fields = fields
					return nil
				}
			}
			if e+1 >= len(chunk) {
				break
			}
			quoted = true
			switch chunk[e+1] {
			case ',':
				fields = append(fields, chunk[j+1:e:e])
				st = e + 2
				j = e + 1
				continue
			case '\n':
				fields = append(fields, chunk[j+1:e:e])
				return c.fastEnd(fields, chunk[:e+1], e+2, true, quoted)
			case '\r':
				if e+2 < len(chunk) && chunk[e+2] == '\n' {
					fields = append(fields, chunk[j+1:e:e])
					return c.fastEnd(fields, chunk[:e+1], e+3, true, quoted)
				}
			}
		case 0:
		default:
			continue // space, '!', '#'…'+'
		}
		break
	}
	c.fields = fields
	return nil
}

func (c *CSVReader) fastEnd(fields [][]byte, line []byte, n int, ascii, quoted bool) [][]byte {
	c.fields = fields
	if len(fields) > c.MaxColumns || !ascii && !utf8.Valid(line) {
		return nil
	}
	if len(line) > c.MaxField {
		for _, f := range fields {
			if len(f) > c.MaxField {
				return nil
			}
		}
	}
	c.rawLine = line
	if quoted {
		c.rawLine = nil // fields are not simply separated by commas
	}
	c.pos += n
	c.line++
	c.row++
	return fields
}

// readField reads one field; end reports whether it ended the record.
func (c *CSVReader) readField(fieldStart, col int) (end bool, err error) {
	if !c.fill() {
		return true, c.rerrOr(nil)
	}
	if c.buf[c.pos] != '"' {
		for {
			chunk := c.buf[c.pos:c.end]
			i := indexSpecial(chunk)
			if i < 0 {
				if err := c.appendField(chunk, fieldStart, col); err != nil {
					return false, err
				}
				c.pos = c.end
				if !c.fill() {
					return true, c.rerrOr(nil)
				}
				continue
			}
			if err := c.appendField(chunk[:i], fieldStart, col); err != nil {
				return false, err
			}
			c.pos += i
			switch chunk[i] {
			case ',':
				c.pos++
				return false, nil
			case '"':
				return false, c.errf(col, false, "bare quote in unquoted field")
			default:
				return true, c.endLine()
			}
		}
	}
	// Quoted field.
	c.pos++
	for {
		if !c.fill() {
			return false, c.rerrOr(c.errf(col, false, "unterminated quoted field"))
		}
		chunk := c.buf[c.pos:c.end]
		i := bytes.IndexByte(chunk, '"')
		if i < 0 {
			c.line += bytes.Count(chunk, []byte{'\n'})
			if err := c.appendField(chunk, fieldStart, col); err != nil {
				return false, err
			}
			c.pos = c.end
			continue
		}
		c.line += bytes.Count(chunk[:i], []byte{'\n'})
		if err := c.appendField(chunk[:i], fieldStart, col); err != nil {
			return false, err
		}
		c.pos += i + 1
		if !c.fill() {
			return true, c.rerrOr(nil)
		}
		switch c.buf[c.pos] {
		case '"':
			if err := c.appendField([]byte{'"'}, fieldStart, col); err != nil {
				return false, err
			}
			c.pos++
		case ',':
			c.pos++
			return false, nil
		case '\n', '\r':
			return true, c.endLine()
		default:
			return false, c.errf(col, false, "unexpected character after closing quote")
		}
	}
}

func (c *CSVReader) rerrOr(err error) error {
	if c.rerr != nil {
		return fmt.Errorf("read input: %w", c.rerr)
	}
	return err
}

// endLine consumes "\n", "\r\n" or a lone "\r" at c.pos.
func (c *CSVReader) endLine() error {
	b := c.buf[c.pos]
	c.pos++
	c.line++
	if b == '\r' && c.fill() && c.buf[c.pos] == '\n' {
		c.pos++
	}
	return nil
}

// indexSpecial finds the first ',', '"', '\r' or '\n'.
func indexSpecial(b []byte) int {
	for i, x := range b {
		if x == ',' || x == '"' || x == '\n' || x == '\r' {
			return i
		}
	}
	return -1
}

// errTooLarge marks an input that exceeds a size limit.
var errTooLarge = errors.New("input too large")

// CSVWriter writes RFC 4180 CSV. With Escape set, cells that a spreadsheet
// would evaluate as a formula (leading '=', '+', '-', '@', tab or CR) and
// that are not plain numbers are prefixed with a single quote, so exports
// never carry formula injection unescaped.
type CSVWriter struct {
	w      io.Writer
	buf    []byte
	Escape bool
}

// NewCSVWriter returns a writer to w.
func NewCSVWriter(w io.Writer) *CSVWriter { return &CSVWriter{w: w, buf: make([]byte, 0, 64<<10)} }

// Write writes one record.
func (c *CSVWriter) Write(rec [][]byte) error {
	for i, f := range rec {
		if i > 0 {
			c.buf = append(c.buf, ',')
		}
		if c.Escape && IsFormula(f) {
			c.buf = append(c.buf, '"', '\'')
			c.buf = appendQuoted(c.buf, f)
			c.buf = append(c.buf, '"')
		} else if needsQuote(f) {
			c.buf = append(c.buf, '"')
			c.buf = appendQuoted(c.buf, f)
			c.buf = append(c.buf, '"')
		} else {
			c.buf = append(c.buf, f...)
		}
	}
	c.buf = append(c.buf, '\n')
	if len(c.buf) >= 32<<10 {
		return c.Flush()
	}
	return nil
}

// Flush writes buffered output.
func (c *CSVWriter) Flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.w.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

func needsQuote(f []byte) bool {
	if len(f) == 0 {
		return false
	}
	if f[0] == ' ' || f[len(f)-1] == ' ' {
		return true
	}
	return indexSpecial(f) >= 0
}

func appendQuoted(dst, f []byte) []byte {
	for {
		i := bytes.IndexByte(f, '"')
		if i < 0 {
			return append(dst, f...)
		}
		dst = append(dst, f[:i+1]...)
		dst = append(dst, '"')
		f = f[i+1:]
	}
}

// IsFormula reports whether a spreadsheet would treat the cell as a formula
// (CSV/formula injection): it starts with '=', '+', '-', '@', a tab or a CR
// and is not simply a number such as "-1.5" or "+3".
func IsFormula(f []byte) bool {
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case '=', '@', '\t', '\r':
		return true
	case '+', '-':
		_, ok := parseNumber(f)
		return !ok
	}
	return false
}
