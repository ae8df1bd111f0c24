package dataset

import (
	"bytes"
	"context"
	"fmt"
	"github.com/rampart-mlaas/rampart/dataset/loancsv"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// BenchmarkIngest measures one core's parse+validate+profile+PII rate on an
// in-memory credit-like CSV (the HTTP and encryption path is in
// bench/datasets).
func BenchmarkIngest(b *testing.B) { benchIngest(b, benchCSV(), Options{Label: "label"}) }

// benchIngest ingests data b.N times, reporting MB per CPU-second.
func benchIngest(b *testing.B, data []byte, opts Options) {
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cpu0 := cpuSeconds()
	defer func() {
		b.ReportMetric(float64(len(data))*float64(b.N)/1e6/(cpuSeconds()-cpu0), "MB/cpu-s")
	}()
	for range b.N {
		if _, err := Ingest(context.Background(), bytes.NewReader(data), opts, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse measures the CSV scanner alone on the same data.
func BenchmarkParse(b *testing.B) {
	data := benchCSV()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		r := newCSVBytes(data)
		for {
			_, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// cpuSeconds is the process's user+system CPU time: on a shared machine
// MB per CPU-second is steadier than wall-clock MB/s.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func benchCSV() []byte {
	var buf bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	buf.WriteString("id,amount,rate,income,age,grade,home,note,label\n")
	size := 32 << 20
	if mb, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_MB")); err == nil && mb > 0 {
		size = mb << 20 // smaller for instruction counting under valgrind
	}
	for i := 0; buf.Len() < size; i++ {
		fmt.Fprintf(&buf, "%d,%.2f,%.3f,%d,%d,%c,%s,%s,%s\n", i, float64(r.IntN(4000000))/100, 5+r.Float64()*20,
			20000+r.IntN(200000), 18+r.IntN(60), 'A'+r.IntN(7), []string{"rent", "own", "mortgage"}[r.IntN(3)],
			[]string{"", "first loan", "=SUM(A1)", "renewal"}[r.IntN(4)], []string{"good", "bad"}[r.IntN(2)])
	}
	return buf.Bytes()
}

// BenchmarkIngest12 ingests bench/datasets' 12-column credit table (no
// label) from memory: the parse+validate+profile+PII part of that
// benchmark, without HTTP and sealing. RAMPART_BENCH_MB sets the size.
func BenchmarkIngest12(b *testing.B) { benchIngest(b, benchCSV12(), Options{}) }

// benchCSV12 is bench/datasets' generator (same columns, values and seed).
func benchCSV12() []byte {
	size := 32 << 20
	if mb, err := strconv.Atoi(os.Getenv("RAMPART_BENCH_MB")); err == nil && mb > 0 {
		size = mb << 20
	}
	buf := make([]byte, 0, size+256)
	buf = append(buf, loancsv.Header...)
	r := loancsv.NewRand()
	for n := int64(0); len(buf) < size; n++ {
		buf = loancsv.AppendRow(buf, r, n)
	}
	return buf
}
