package fuzz

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/registry"
)

func addSeeds(f *testing.F, globs ...string) {
	for _, g := range globs {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", g))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// scoreSome predicts a few rows (zeros, NaN, large values) to prove an
// accepted model is safe to score, not only to parse.
func scoreSome(t *testing.T, m registry.External) {
	x := make([]float64, m.NumInputs())
	out := make([]float64, m.NumOutputs())
	for _, v := range []float64{0, math.NaN(), 1e30, -1e30} {
		for i := range x {
			x[i] = v
		}
		if err := m.Predict(x, out); err != nil {
			t.Fatal(err)
		}
	}
}

// bounded runs f and fails if it takes longer than a few seconds: a hang
// on hostile input is a denial of service.
func bounded(t *testing.T, b []byte, f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("input of %d bytes took over 5 s", len(b))
	}
}

// FuzzXGBoostJSON: hostile XGBoost documents never panic or hang, in
// parsing or in scoring (MODEL-2).
func FuzzXGBoostJSON(f *testing.F) {
	addSeeds(f, "xgboost/*.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		bounded(t, b, func() {
			m, err := registry.ParseXGBoostJSON(b)
			if err != nil || m.NumInputs() > 1<<12 {
				return
			}
			scoreSome(t, m)
		})
	})
}

// FuzzLightGBMText: hostile LightGBM text never panics or hangs in our
// validation, in leaves, or in scoring (MODEL-2).
func FuzzLightGBMText(f *testing.F) {
	addSeeds(f, "lightgbm/*.model")
	f.Add([]byte("tree\nversion=v3\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=0\nobjective=regression\ntree_sizes=1\n\nTree=0\nnum_leaves=1\nnum_cat=0\nleaf_value=1\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		bounded(t, b, func() {
			m, err := registry.ParseLightGBMText(b)
			if err != nil || m.NumInputs() > 1<<12 {
				return
			}
			scoreSome(t, m)
		})
	})
}

// FuzzSniff: format detection of arbitrary bytes never panics, and what it
// accepts is only ever one of the allow-listed formats.
func FuzzSniff(f *testing.F) {
	addSeeds(f, "unsafe/*", "xgboost/*.json", "lightgbm/*.model")
	f.Fuzz(func(t *testing.T, b []byte) {
		d := registry.Sniff(b)
		switch d.Format {
		case "":
			if d.Reason == "" {
				t.Fatal("rejection without a reason")
			}
		case "rampart-ml/v1", "xgboost-json", "lightgbm-text":
		default:
			t.Fatalf("unknown format %q", d.Format)
		}
	})
}
