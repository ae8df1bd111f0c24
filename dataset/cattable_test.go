package dataset

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCatTable checks the table against a map under random inserts,
// lookups and removals of keys of every length around the 16-byte split.
func TestCatTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tab := newCatTable(4)
	ref := map[string]int64{}
	key := func() string {
		n := rng.IntN(24)
		b := make([]byte, n)
		for i := range b {
			b[i] = "ab\x00,\xff"[rng.IntN(5)]
		}
		return string(b)
	}
	for i := range 200_000 {
		k := key()
		h := hashBytes([]byte(k))
		e := tab.find(h, []byte(k))
		n, ok := ref[k]
		if (e != nil) != ok || e != nil && e.n != n {
			t.Fatalf("op %d: key %q: table %v, map %d %v", i, k, e, n, ok)
		}
		switch {
		case e != nil:
			e.n++
			ref[k]++
		case tab.len() < 300:
			n := int64(1 + rng.IntN(3)) // as a merge inserts
			tab.insert(h, []byte(k), n, 0)
			ref[k] = n
		default:
			want := int64(math.MaxInt64)
			for _, rn := range ref {
				want = min(want, rn)
			}
			mn := tab.removeMin()
			if mn != want {
				t.Fatalf("op %d: removeMin removed count %d, the minimum is %d", i, mn, want)
			}
			var gone string
			found := false
			for rk, rn := range ref {
				if rn == mn {
					if tab.find(hashBytes([]byte(rk)), []byte(rk)) == nil {
						gone, found = rk, true
						break
					}
				}
			}
			if !found {
				t.Fatalf("op %d: removeMin %d removed no key with that count", i, mn)
			}
			delete(ref, gone)
		}
		if tab.len() != len(ref) {
			t.Fatalf("op %d: %d entries, map %d", i, tab.len(), len(ref))
		}
	}
	tab.each(func(k []byte, n int64, _ uint8) {
		if ref[string(k)] != n {
			t.Fatalf("each: %q = %d, map %d", k, n, ref[string(k)])
		}
	})
}

func TestParseBool(t *testing.T) {
	for _, s := range []string{"true", "TRUE", "True", "yes", "YeS", "no", "No", "false", "FALSE", "t", "1", "nO ", "tru", "falsy", "ye", "n\x00", "ſes"} {
		v, ok := parseBool([]byte(s))
		var wv, wok bool
		switch strings.ToLower(s) {
		case "true", "yes":
			wv, wok = true, true
		case "false", "no":
			wv, wok = false, true
		}
		if v != wv || ok != wok {
			t.Errorf("parseBool(%q) = %v %v, want %v %v", s, v, ok, wv, wok)
		}
	}
}

func TestKthKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 500 {
		n := 1 + rng.IntN(300)
		keys := make([]uint64, n)
		for i := range keys {
			keys[i] = rng.Uint64N(uint64(1 + rng.IntN(50))) // with ties
		}
		sorted := slices.Clone(keys)
		slices.Sort(sorted)
		k := rng.IntN(n)
		if got := kthKey(keys, k); got != sorted[k] {
			t.Fatalf("kthKey(%v, %d) = %d, want %d", sorted, k, got, sorted[k])
		}
	}
}

// TestParseNumberExact: the fast path gives strconv's correctly rounded
// value, and accepts and rejects what it did before.
func TestParseNumberExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200_000 {
		n := 1 + rng.IntN(18)
		b := make([]byte, n)
		for i := range b {
			b[i] = "0123456789012345678.-+e"[rng.IntN(23)]
		}
		v, ok := parseNumber(b)
		w, err := strconv.ParseFloat(string(b), 64)
		wok := err == nil && !math.IsInf(w, 0) && (b[0] >= '0' && b[0] <= '9' || b[0] == '.' || (b[0] == '-' || b[0] == '+') && len(b) > 1 && (b[1] >= '0' && b[1] <= '9' || b[1] == '.'))
		if ok != wok || ok && v != w {
			t.Fatalf("parseNumber(%q) = %v %v, strconv %v %v", b, v, ok, w, err)
		}
	}
}
