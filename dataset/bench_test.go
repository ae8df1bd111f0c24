package dataset

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// BenchmarkIngest measures one core's parse+validate+profile+PII rate on an
// in-memory credit-like CSV (the HTTP and encryption path is in
// bench/datasets).
func BenchmarkIngest(b *testing.B) {
	var buf bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	buf.WriteString("id,amount,rate,income,age,grade,home,note,label\n")
	for i := 0; buf.Len() < 32<<20; i++ {
		fmt.Fprintf(&buf, "%d,%.2f,%.3f,%d,%d,%c,%s,%s,%s\n", i, float64(r.IntN(4000000))/100, 5+r.Float64()*20,
			20000+r.IntN(200000), 18+r.IntN(60), 'A'+r.IntN(7), []string{"rent", "own", "mortgage"}[r.IntN(3)],
			[]string{"", "first loan", "=SUM(A1)", "renewal"}[r.IntN(4)], []string{"good", "bad"}[r.IntN(2)])
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := Ingest(context.Background(), bytes.NewReader(data), Options{Label: "label"}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
