package guard_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/ml"
)

// victim is a model trained on a dataset's training split, scoring rows
// the way an endpoint does.
type victim struct {
	s     *split
	model *ml.Model
}

func (v *victim) score(r *guard.Rows) (cls []int, pmax []float64) {
	cols := make([]*ml.Column, len(v.s.features))
	for j, f := range v.s.schema.Features {
		if f.Categorical {
			cols[j] = ml.CategoricalColumn(f.Name, r.Cat[j])
		} else {
			cols[j] = ml.NumericColumn(f.Name, r.Num[j])
		}
	}
	fr, err := ml.NewFrame(cols...)
	if err != nil {
		panic(err)
	}
	p, err := v.model.Scores(fr)
	if err != nil {
		panic(err)
	}
	k := v.model.OutputWidth()
	for i := range r.N {
		best := 0
		for c := 1; c < k; c++ {
			if p[i*k+c] > p[i*k+best] {
				best = c
			}
		}
		cls, pmax = append(cls, best), append(pmax, p[i*k+best])
	}
	return cls, pmax
}

// observe feeds rows to the monitor one request of one row at a time, as an
// attacker or a client making single predictions does; it returns the
// 1-based query at which the stream was first flagged (0: never).
func observe(m *guard.Monitor, key string, v *victim, r *guard.Rows, offset int, t0 time.Time) int {
	cls, pmax := v.score(r)
	for i := range r.N {
		x := v.s.schema.Normalise(r, i, nil)
		q := guard.Query{X: x, Class: cls[i], PMax: pmax[i], OOD: v.s.schema.Score(r, i), Z2: v.s.schema.Plausibility(x)}
		if verdict := m.ObserveRows(key, v.s.schema, oneRow(r, i), []guard.Query{q}, t0); verdict.Suspected {
			return offset + i + 1
		}
	}
	return 0
}

// synthetic draws n rows uniform (or Gaussian, clipped) within the training
// ranges; categorical features uniform over the training categories.
func synthetic(s *split, n int, gaussian bool, rng *rand.Rand) *guard.Rows {
	r := &guard.Rows{N: n, Num: make([][]float64, len(s.features)), Cat: make([][]string, len(s.features))}
	for j, f := range s.schema.Features {
		if f.Categorical {
			var cats []string
			for c := range f.Freq {
				cats = append(cats, c)
			}
			sortStrings(cats)
			r.Cat[j] = make([]string, n)
			for i := range n {
				r.Cat[j][i] = cats[rng.IntN(len(cats))]
			}
			continue
		}
		lo, hi := f.Quantiles[0], f.Quantiles[len(f.Quantiles)-1]
		r.Num[j] = make([]float64, n)
		for i := range n {
			if gaussian {
				r.Num[j][i] = math.Min(hi, math.Max(lo, f.Mean+f.Std*rng.NormFloat64()))
			} else {
				r.Num[j][i] = lo + (hi-lo)*rng.Float64()
			}
		}
	}
	return r
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// attack is a scripted extraction attacker (Tramèr et al. 2016 style): 100
// synthetic queries, then boundary-seeking line searches between queried
// points of different labels (each probe is a query), up to budget queries.
// It returns the query at which the monitor flagged it (0: never).
func attack(m *guard.Monitor, key string, v *victim, gaussian bool, budget int, rng *rand.Rand) int {
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	seed := synthetic(v.s, 100, gaussian, rng)
	if at := observe(m, key, v, seed, 0, t0); at > 0 {
		return at
	}
	labels, _ := v.score(seed)
	pool := seed
	n := 100
	for n < budget {
		// two seed points of different labels; bisect between them
		a, b := rng.IntN(pool.N), rng.IntN(pool.N)
		for tries := 0; labels[a] == labels[b] && tries < 50; tries++ {
			b = rng.IntN(pool.N)
		}
		lo, hi := 0.0, 1.0
		for step := 0; step < 6 && n < budget; step++ {
			mid := (lo + hi) / 2
			probe := &guard.Rows{N: 1, Num: make([][]float64, len(pool.Num)), Cat: make([][]string, len(pool.Cat))}
			for j := range pool.Num {
				if pool.Num[j] != nil {
					probe.Num[j] = []float64{pool.Num[j][a] + mid*(pool.Num[j][b]-pool.Num[j][a])}
				} else {
					c := pool.Cat[j][a]
					if mid > 0.5 {
						c = pool.Cat[j][b]
					}
					probe.Cat[j] = []string{c}
				}
			}
			if at := observe(m, key, v, probe, n, t0); at > 0 {
				return at
			}
			n++
			cls, _ := v.score(probe)
			if cls[0] == labels[a] {
				lo = mid
			} else {
				hi = mid
			}
		}
	}
	return 0
}

// TestExtractionMonitor is INF-3 on the shared datasets: a scripted
// surrogate attacker (uniform or Gaussian synthetic queries within the
// feature ranges, then boundary-seeking) is flagged within 500 queries,
// while 100 benign clients, each replaying up to 500 rows of the test split
// in its own order, are flagged at most once (≤ 1 %).
func TestExtractionMonitor(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model per dataset")
	}
	for _, d := range datasets {
		t.Run(d.name, func(t *testing.T) {
			s := load(t, d.name, d.path, d.target)
			model, err := ml.Train(context.Background(), s.train, ml.TrainSpec{Algorithm: ml.LogReg, Target: d.target, Seed: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			v := &victim{s: s, model: model}
			m := guard.NewMonitor(guard.MonitorConfig{})
			rng := rand.New(rand.NewPCG(11, 12))
			for _, g := range []bool{false, true} {
				at := attack(m, "attacker-"+map[bool]string{false: "uniform", true: "gaussian"}[g], v, g, 500, rng)
				name := map[bool]string{false: "uniform", true: "gaussian"}[g]
				_, reason := m.Flagged("attacker-" + name)
				t.Logf("%s: %s attacker flagged at query %d (%s)", d.name, name, at, reason)
				if at == 0 {
					t.Errorf("%s attacker not flagged within 500 queries", name)
				}
			}
			flagged := 0
			t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
			for c := range 100 {
				perm := rng.Perm(s.test.NumRows())
				if len(perm) > 500 {
					perm = perm[:500]
				}
				key := "benign-" + string(rune('A'+c%26)) + string(rune('0'+c/26))
				if at := observe(m, key, v, rows(s, s.test, perm), 0, t0); at > 0 {
					flagged++
					_, reason := m.Flagged(key)
					t.Logf("%s: benign client %d flagged at %d: %s", d.name, c, at, reason)
				}
			}
			t.Logf("%s: %d of 100 benign clients flagged", d.name, flagged)
			if flagged > 1 {
				t.Errorf("%d %% of benign clients flagged > 1 %%", flagged)
			}
		})
	}
}

func oneRow(r *guard.Rows, i int) *guard.Rows {
	one := &guard.Rows{N: 1, Num: make([][]float64, len(r.Num)), Cat: make([][]string, len(r.Cat))}
	for j := range r.Num {
		if r.Num[j] != nil {
			one.Num[j] = r.Num[j][i : i+1]
		}
		if r.Cat[j] != nil {
			one.Cat[j] = r.Cat[j][i : i+1]
		}
	}
	return one
}
