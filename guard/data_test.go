package guard_test

import (
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/ml"
)

// The shared datasets, read from the dataset package's copies (provenance
// in dataset/testdata/PROVENANCE.md), each with its label column.
var datasets = []struct{ name, path, target string }{
	{"breast_cancer", "../dataset/testdata/breast_cancer.csv", "diagnosis"},
	{"credit_data", "../dataset/testdata/credit_data.csv", "Status"},
	{"hr_attrition", "../dataset/testdata/hr_attrition.csv", "Attrition"},
	{"spambase", "../dataset/testdata/spambase.csv", "type"},
	{"lending_club", "../dataset/testdata/lending_club.csv", "Class"},
	{"digits", "../dataset/testdata/digits.csv", "digit"},
}

type split struct {
	train, test *ml.Frame
	features    []string
	schema      *guard.Schema
	prep        *ml.Preprocessor
}

var (
	splitMu sync.Mutex
	splits  = map[string]*split{}
)

// load reads a dataset and splits it 70/30 (seeded); the schema is the
// training profile the guards see.
func load(t testing.TB, name, path, target string) *split {
	t.Helper()
	splitMu.Lock()
	defer splitMu.Unlock()
	if s, ok := splits[name]; ok {
		return s
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := ml.ReadCSV(f, ml.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	perm := rand.New(rand.NewPCG(42, 7)).Perm(fr.NumRows())
	cut := fr.NumRows() * 7 / 10
	s := &split{train: fr.Take(perm[:cut]), test: fr.Take(perm[cut:])}
	for _, n := range fr.Names() {
		if n != target {
			s.features = append(s.features, n)
		}
	}
	s.prep, _, err = ml.FitPreprocessor(s.train, s.features, true, true)
	if err != nil {
		t.Fatal(err)
	}
	s.schema = guard.SchemaFromML(s.prep.Features, 0.5)
	splits[name] = s
	return s
}

// rows converts frame rows into guard.Rows in schema order.
func rows(s *split, f *ml.Frame, idx []int) *guard.Rows {
	r := &guard.Rows{N: len(idx), Num: make([][]float64, len(s.features)), Cat: make([][]string, len(s.features))}
	for j, name := range s.features {
		c, _ := f.Column(name)
		if c.Kind == ml.Categorical {
			r.Cat[j] = make([]string, len(idx))
			for k, i := range idx {
				r.Cat[j][k] = c.Cat[i]
			}
		} else {
			r.Num[j] = make([]float64, len(idx))
			for k, i := range idx {
				r.Num[j][k] = c.Num[i]
			}
		}
	}
	return r
}

// auroc is the probability that a random positive scores above a random
// negative (ties count half).
func auroc(pos, neg []float64) float64 {
	type sv struct {
		v   float64
		pos bool
	}
	all := make([]sv, 0, len(pos)+len(neg))
	for _, v := range pos {
		all = append(all, sv{v, true})
	}
	for _, v := range neg {
		all = append(all, sv{v, false})
	}
	sort.Slice(all, func(a, b int) bool { return all[a].v < all[b].v })
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		r := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if all[k].pos {
				rankSum += r
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rankSum - np*(np+1)/2) / (np * nn)
}

func numericIdx(s *split) []int {
	var out []int
	for j, f := range s.schema.Features {
		if !f.Categorical {
			out = append(out, j)
		}
	}
	return out
}

func cloneRows(r *guard.Rows) *guard.Rows {
	c := &guard.Rows{N: r.N, Num: make([][]float64, len(r.Num)), Cat: make([][]string, len(r.Cat))}
	for j := range r.Num {
		c.Num[j] = slices.Clone(r.Num[j])
		c.Cat[j] = slices.Clone(r.Cat[j])
	}
	return c
}
