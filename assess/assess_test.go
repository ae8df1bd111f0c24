package assess

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart/ml"
)

func loadFrame(t testing.TB, name string) *ml.Frame {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := ml.ReadCSV(f, ml.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

// split returns train and held-out frames (stratified).
func split(t testing.TB, f *ml.Frame, label string, test float64, seed uint64) (*ml.Frame, *ml.Frame) {
	t.Helper()
	c, ok := f.Column(label)
	if !ok {
		t.Fatalf("no column %q", label)
	}
	tr, te := ml.StratifiedSplit(c.Labels(), test, seed)
	return f.Take(tr), f.Take(te)
}

func train(t testing.TB, f *ml.Frame, spec ml.TrainSpec) *ml.Model {
	t.Helper()
	start := time.Now()
	m, err := ml.Train(context.Background(), f, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trained %s on %d rows in %v", spec.Algorithm, f.NumRows(), time.Since(start).Round(time.Millisecond))
	return m
}

var overfitGBDT = map[string]string{"n_estimators": "200", "max_depth": "8", "learning_rate": "0.3", "min_child_weight": "0.01", "reg_lambda": "0.1"}
