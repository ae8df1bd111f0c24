package guard

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCountBinsMatchesBin: the branch-free search counts every value in
// the bin the scan (bin) gives, for 0-15 edges, values on, between and
// beyond the edges, repeated edges, missing and infinite values.
func TestCountBinsMatchesBin(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for ne := 0; ne <= 15; ne++ {
		for trial := range 50 {
			edges := make([]float64, ne)
			for k := range edges {
				edges[k] = math.Round(rng.NormFloat64()*10) / 2
			}
			slices.Sort(edges) // odd trials keep repeated edges
			if trial%2 == 0 {
				edges = slices.Compact(edges) // strictly increasing, as NewDrift builds them
			}
			pad := padEdges(edges)
			col := make([]float64, 2000)
			for i := range col {
				switch rng.IntN(8) {
				case 0:
					if len(edges) > 0 {
						col[i] = edges[rng.IntN(len(edges))]
					}
				case 1:
					col[i] = math.NaN()
				case 2:
					col[i] = []float64{math.Inf(1), math.Inf(-1), -1e300, 1e300, math.Copysign(0, -1), 0}[rng.IntN(6)]
				default:
					col[i] = rng.NormFloat64() * 8
				}
			}
			got := make([]float64, len(edges)+1)
			countBins(pad, col, got)
			want := make([]float64, len(edges)+1)
			d := &Drift{schema: &Schema{Features: []Feature{{Name: "x"}}}, edges: [][]float64{edges}}
			r := &Rows{N: len(col), Num: [][]float64{col}}
			for i := range col {
				if b := d.bin(0, r, i); b >= 0 {
					want[b]++
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%d edges %v: counts %v, want %v", len(edges), edges, got, want)
			}
		}
	}
}
