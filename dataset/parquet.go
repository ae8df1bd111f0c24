package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/rampart-mlaas/rampart"
)

// parquetSource reads a flat Parquet file. Parquet keeps its index at the
// end of the file, so the upload is held in memory, bounded by
// Options.MaxParquetBytes; rows are then decoded one row group page at a
// time and re-emitted as canonical CSV for sealing.
type parquetSource struct {
	file    *parquet.File
	names   []string
	groups  []parquet.RowGroup
	g       int
	rows    parquet.Rows
	buf     []parquet.Row
	n, i    int
	row     int
	arena   []byte
	ends    []int
	fields  [][]byte
	out     *CSVWriter
	size    int64
	maxFld  int
	started bool
}

func openParquet(r io.Reader, max int64, maxCols, maxField int) (_ *parquetSource, err error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read upload: %w", err)
	}
	if int64(len(data)) > max {
		return nil, rampart.Errorf(rampart.CodeTooLarge, "Parquet uploads are limited to %d bytes; upload CSV for larger data", max)
	}
	defer recoverParquet(&err)
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, invalid("body", "not a readable Parquet file: %s", shortErr(err))
	}
	fields := f.Schema().Fields()
	if len(fields) == 0 {
		return nil, invalid("body", "the Parquet file has no columns")
	}
	if len(fields) > maxCols {
		return nil, rampart.Errorf(rampart.CodeTooLarge, "more than %d columns", maxCols)
	}
	s := &parquetSource{file: f, groups: f.RowGroups(), size: int64(len(data)), maxFld: maxField,
		buf: make([]parquet.Row, 256)}
	for i, fl := range fields {
		if !fl.Leaf() || fl.Repeated() {
			return nil, parseErr(&ParseError{Row: 0, Line: 1, Column: i + 1, ColumnName: fl.Name(),
				Msg: "nested or repeated Parquet columns are not supported"}, nil)
		}
		s.names = append(s.names, fl.Name())
	}
	if len(f.Schema().Columns()) != len(fields) {
		return nil, invalid("body", "nested Parquet columns are not supported")
	}
	return s, nil
}

// recoverParquet turns a panic inside the Parquet decoder on hostile input
// into an invalid-input error (fuzzed by FuzzParquet).
func recoverParquet(err *error) {
	if v := recover(); v != nil {
		*err = invalid("body", "malformed Parquet file")
	}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func (s *parquetSource) pos() (int, int) { return s.row, s.row + 1 }
func (s *parquetSource) raw() []byte     { return nil }

func (s *parquetSource) emit(rec [][]byte) ([][]byte, error) {
	if err := s.out.Write(rec); err != nil {
		return nil, fmt.Errorf("ingest: write: %w", err)
	}
	return rec, nil
}

func (s *parquetSource) next() (_ [][]byte, err error) {
	defer recoverParquet(&err)
	if !s.started {
		s.started = true
		s.arena, s.ends, s.fields = s.arena[:0], s.ends[:0], s.fields[:0]
		for _, n := range s.names {
			s.arena = append(s.arena, n...)
			s.ends = append(s.ends, len(s.arena))
		}
		s.split()
		return s.emit(s.fields)
	}
	for s.i >= s.n {
		if s.rows == nil {
			if s.g >= len(s.groups) {
				return nil, io.EOF
			}
			s.rows = s.groups[s.g].Rows()
			s.g++
		}
		n, err := s.rows.ReadRows(s.buf)
		s.n, s.i = n, 0
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, invalid("body", "row %d: malformed Parquet data: %s", s.row+1, shortErr(err))
		}
		if errors.Is(err, io.EOF) || n == 0 {
			s.rows.Close()
			s.rows = nil
		}
	}
	r := s.buf[s.i]
	s.i++
	s.row++
	s.arena, s.ends = s.arena[:0], s.ends[:0]
	if len(r) != len(s.names) {
		return nil, parseErr(&ParseError{Row: s.row, Line: s.row + 1, Msg: "row does not match the flat schema"}, s.names)
	}
	for ci, v := range r {
		start := len(s.arena)
		if !v.IsNull() {
			switch v.Kind() {
			case parquet.Boolean:
				s.arena = strconv.AppendBool(s.arena, v.Boolean())
			case parquet.Int32:
				s.arena = strconv.AppendInt(s.arena, int64(v.Int32()), 10)
			case parquet.Int64:
				s.arena = strconv.AppendInt(s.arena, v.Int64(), 10)
			case parquet.Float:
				s.arena = appendFloat(s.arena, float64(v.Float()), 32)
			case parquet.Double:
				s.arena = appendFloat(s.arena, v.Double(), 64)
			case parquet.ByteArray, parquet.FixedLenByteArray:
				b := v.ByteArray()
				if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
					return nil, parseErr(&ParseError{Row: s.row, Line: s.row + 1, Column: ci + 1, Msg: "binary value (not UTF-8 text)"}, s.names)
				}
				s.arena = append(s.arena, b...)
			default:
				s.arena = append(s.arena, v.String()...)
			}
		}
		if len(s.arena)-start > s.maxFld {
			return nil, parseErr(&ParseError{Row: s.row, Line: s.row + 1, Column: ci + 1, TooLarge: true,
				Msg: fmt.Sprintf("field exceeds %d bytes", s.maxFld)}, s.names)
		}
		s.ends = append(s.ends, len(s.arena))
	}
	s.split()
	return s.emit(s.fields)
}

func appendFloat(b []byte, v float64, bits int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "NaN"...) // not a number to the profiler: the column becomes text
	}
	return strconv.AppendFloat(b, v, 'g', -1, bits)
}

func (s *parquetSource) split() {
	s.fields = s.fields[:0]
	st := 0
	for _, e := range s.ends {
		s.fields = append(s.fields, s.arena[st:e:e])
		st = e
	}
}
