package ml

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSelectOrder: the selected order statistics are the sorted array's, on
// random data, heavy duplicates and inputs that defeat a naive pivot.
func TestSelectOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	var cases [][]float64
	for _, n := range []int{1, 2, 3, 10, 33, 100, 1000, 100_000} {
		a := make([]float64, n)
		b := make([]float64, n)
		c := make([]float64, n)
		for i := range n {
			a[i] = rng.NormFloat64()
			b[i] = float64(rng.IntN(3))
			c[i] = float64(min(i, n-i)) // organ pipe
		}
		sorted := slices.Sorted(slices.Values(a))
		reversed := slices.Clone(sorted)
		slices.Reverse(reversed)
		cases = append(cases, a, b, c, sorted, reversed)
	}
	for ci, a := range cases {
		want := slices.Sorted(slices.Values(a))
		pos := make([]int, 11)
		for q := range pos {
			pos[q] = q * (len(a) - 1) / 10
		}
		got := slices.Clone(a)
		selectOrder(got, pos, 0)
		for _, k := range pos {
			if got[k] != want[k] {
				t.Fatalf("case %d (n=%d): a[%d] = %v, want %v", ci, len(a), k, got[k], want[k])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("case %d: selection lost or duplicated values", ci)
		}
	}
}
