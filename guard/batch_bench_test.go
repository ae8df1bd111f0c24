package guard_test

import (
	"testing"

	"github.com/rampart-mlaas/rampart/guard"
)

// batchRows is a 10,000-row batch of breast_cancer's test rows (as
// bench/serving sends), with its schema.
func batchRows(b *testing.B) (*guard.Schema, *guard.Rows) {
	s := load(b, datasets[0].name, datasets[0].path, datasets[0].target)
	idx := make([]int, 10_000)
	for i := range idx {
		idx[i] = i % s.test.NumRows()
	}
	return s.schema, rows(s, s.test, idx)
}

// The batch guards' per-row work on a 10,000-row request (issue 7's batch
// target): OOD and monitor scores, drift counting.
func BenchmarkScoreRows10k(b *testing.B) {
	sc, r := batchRows(b)
	x, ood := make([]float64, r.N*len(sc.Features)), make([]float64, r.N)
	b.ReportAllocs()
	for b.Loop() {
		sc.ScoreRows(r, x, ood)
	}
	b.ReportMetric(float64(r.N)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkDriftObserve10k(b *testing.B) {
	sc, r := batchRows(b)
	d := guard.NewDrift(sc, 2, 0)
	cls := make([]int, r.N)
	b.ReportAllocs()
	for b.Loop() {
		d.Observe(r, cls)
	}
	b.ReportMetric(float64(r.N)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
