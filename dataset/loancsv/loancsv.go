// Package loancsv generates the synthetic 12-column loan table that the
// ingestion benchmarks upload (bench/datasets) and profile in process
// (dataset's BenchmarkIngest12): numbers, integers with missing values,
// categories, booleans, quoted text with commas and a formula-like cell.
package loancsv

import (
	"math/rand/v2"
	"strconv"
)

// Header is the table's header line, with its newline.
const Header = "id,amount,rate,income,age,term,grade,home,purpose,verified,note,label\n"

var (
	grades   = []string{"A", "B", "C", "D", "E", "F", "G"}
	homes    = []string{"rent", "own", "mortgage", "other"}
	purposes = []string{"car", "credit_card", "debt_consolidation", "home_improvement", "medical", "small_business"}
	notes    = []string{"", "first loan", "renewal after review", "\"quoted, with comma\"", "=SUM(A1:A9)", "long-time customer with stable income"}
	terms    = []int64{36, 60}
	labels   = []string{"good", "bad"}
)

// NewRand is the generator's source (fixed seed: every run the same rows).
func NewRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// AppendRow appends row n, with its newline, drawing from r.
func AppendRow(buf []byte, r *rand.Rand, n int64) []byte {
	buf = strconv.AppendInt(buf, n, 10)
	buf = append(buf, ',')
	buf = strconv.AppendFloat(buf, float64(r.IntN(4000000))/100, 'f', 2, 64)
	buf = append(buf, ',')
	buf = strconv.AppendFloat(buf, 5+r.Float64()*20, 'f', 3, 64)
	buf = append(buf, ',')
	if r.IntN(50) != 0 {
		buf = strconv.AppendInt(buf, int64(20000+r.IntN(200000)), 10)
	}
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, int64(18+r.IntN(60)), 10)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, terms[r.IntN(2)], 10)
	buf = append(buf, ',')
	buf = append(buf, grades[r.IntN(len(grades))]...)
	buf = append(buf, ',')
	buf = append(buf, homes[r.IntN(len(homes))]...)
	buf = append(buf, ',')
	buf = append(buf, purposes[r.IntN(len(purposes))]...)
	buf = append(buf, ',')
	buf = strconv.AppendBool(buf, r.IntN(2) == 0)
	buf = append(buf, ',')
	buf = append(buf, notes[r.IntN(len(notes))]...)
	buf = append(buf, ',')
	buf = append(buf, labels[r.IntN(2)]...)
	return append(buf, '\n')
}
