// Command mlbench measures Rampart's ML engine on the shared datasets and on
// a generated 1,000,000 × 20 table, and writes the data splits so that
// peers.py can run scikit-learn and XGBoost on exactly the same rows.
//
//	go run ./bench/ml -data ../shared/datasets -out /tmp/mlbench
//
// Results go to <out>/rampart.json; splits to <out>/splits/<dataset>.json;
// the synthetic table to <out>/synth.{x,y}.f64 (little-endian float64).
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/ml/synth"
)

// Dataset is one shared dataset and its label column.
type Dataset struct {
	File, Target string
}

var datasets = []Dataset{
	{"breast_cancer.csv", "diagnosis"},
	{"credit_data.csv", "Status"},
	{"digits.csv", "digit"},
	{"hr_attrition.csv", "Attrition"},
	{"lending_club.csv", "Class"},
	{"spambase.csv", "type"},
}

// GBDTParams are the acceptance settings: 100 trees, depth 6, learning rate 0.1.
var gbdtParams = map[string]string{"n_estimators": "100", "max_depth": "6", "learning_rate": "0.1", "max_bin": "256"}

// Result is one measured (dataset, learner) pair.
type Result struct {
	Dataset, Learner string
	AUC, Accuracy    float64
	TrainSeconds     float64 // median over repeats
	TrainRuns        []float64
	PredictRowsPerS  float64 `json:",omitempty"`
	// CPU-time figures (user+sys of the whole process): on a shared,
	// oversubscribed machine wall time depends on other tenants' load, CPU
	// time much less so. Rows per CPU-second × 2 estimates an idle 2-core box.
	TrainCPUSeconds         float64 `json:",omitempty"`
	PredictRowsPerCPUSecond float64 `json:",omitempty"`
	Epsilon, Delta          float64 `json:",omitempty"`
	NoiseMultiplier         float64 `json:",omitempty"`
	Note                    string  `json:",omitempty"`
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(v []float64) float64 {
	s := append([]float64{}, v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	data := flag.String("data", "../shared/datasets", "directory of the shared datasets")
	out := flag.String("out", "/tmp/mlbench", "output directory")
	repeats := flag.Int("repeats", 3, "training repeats per measurement (median reported)")
	synthRows := flag.Int("synth-rows", 1_000_000, "rows of the generated table (0 skips it)")
	only := flag.String("only", "", "run only this part: datasets, synth, dp")
	tag := flag.String("tag", "", "suffix for the result file, so interleaved runs do not overwrite each other")
	flag.Parse()
	if err := os.MkdirAll(filepath.Join(*out, "splits"), 0o755); err != nil {
		log.Fatal(err)
	}
	var results []Result
	if *only == "" || *only == "datasets" {
		results = append(results, runDatasets(*data, *out, *repeats)...)
	}
	if *only == "" || *only == "dp" {
		results = append(results, runDP(*data, *repeats)...)
	}
	if (*only == "" || *only == "synth") && *synthRows > 0 {
		results = append(results, runSynth(*out, *synthRows, *repeats)...)
	}
	b, _ := json.MarshalIndent(map[string]any{"gomaxprocs": runtime.GOMAXPROCS(0), "results": results}, "", "  ")
	name := "rampart"
	for _, part := range []string{*only, *tag} {
		if part != "" {
			name += "-" + part
		}
	}
	name += ".json"
	if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
		log.Fatal(err)
	}
}

func load(dir string, ds Dataset) *ml.Frame {
	fh, err := os.Open(filepath.Join(dir, ds.File))
	if err != nil {
		log.Fatal(err)
	}
	defer fh.Close()
	f, err := ml.ReadCSV(fh, ml.CSVOptions{})
	if err != nil {
		log.Fatalf("%s: %v", ds.File, err)
	}
	return f
}

// train runs spec `repeats` times and returns the last model, the wall
// times and the mean CPU time per run.
func train(f *ml.Frame, spec ml.TrainSpec, repeats int) (*ml.Model, []float64, float64) {
	var m *ml.Model
	var times []float64
	var cpu float64
	for range repeats {
		runtime.GC()
		start, c0 := time.Now(), cpuSeconds()
		var err error
		m, err = ml.Train(context.Background(), f, spec, nil)
		if err != nil {
			log.Fatalf("%s: %v", spec.Algorithm, err)
		}
		times = append(times, time.Since(start).Seconds())
		cpu += cpuSeconds() - c0
	}
	return m, times, cpu / float64(repeats)
}

func runDatasets(dir, out string, repeats int) []Result {
	var results []Result
	for _, ds := range datasets {
		f := load(dir, ds)
		c, _ := f.Column(ds.Target)
		trainIdx, testIdx := ml.StratifiedSplit(c.Labels(), 0.25, 2026)
		b, _ := json.Marshal(map[string]any{"file": ds.File, "target": ds.Target, "train": trainIdx, "test": testIdx})
		if err := os.WriteFile(filepath.Join(out, "splits", ds.File+".json"), b, 0o644); err != nil {
			log.Fatal(err)
		}
		tr, te := f.Take(trainIdx), f.Take(testIdx)
		learners := []struct {
			name string
			spec ml.TrainSpec
		}{
			{"logreg", ml.TrainSpec{Algorithm: ml.LogReg, Target: ds.Target, Seed: 1}},
			{"gbdt", ml.TrainSpec{Algorithm: ml.GBDT, Target: ds.Target, Seed: 1, Params: gbdtParams}},
		}
		switch ds.File {
		case "digits.csv":
			learners = append(learners, struct {
				name string
				spec ml.TrainSpec
			}{"mlp", ml.TrainSpec{Algorithm: ml.MLP, Target: ds.Target, Seed: 1}})
		case "credit_data.csv":
			// The non-private counterpart of the DP MLP below (same architecture).
			learners = append(learners, struct {
				name string
				spec ml.TrainSpec
			}{"mlp", ml.TrainSpec{Algorithm: ml.MLP, Target: ds.Target, Seed: 1, Params: map[string]string{"hidden_layer_sizes": "32"}}})
		}
		for _, l := range learners {
			m, times, cpu := train(tr, l.spec, repeats)
			ev, err := m.Evaluate(te)
			if err != nil {
				log.Fatal(err)
			}
			r := Result{Dataset: ds.File, Learner: l.name, AUC: ev.AUC, Accuracy: ev.Accuracy, TrainSeconds: median(times), TrainRuns: times,
				TrainCPUSeconds: cpu}
			log.Printf("%-18s %-7s AUC %.4f acc %.4f train %.3fs", ds.File, l.name, r.AUC, r.Accuracy, r.TrainSeconds)
			results = append(results, r)
		}
	}
	return results
}

// runDP trains logistic regression on credit_data without and with DP at
// ε = 1, δ = 1e-5 (production-mode secure noise), reporting the test AUC of each.
func runDP(dir string, repeats int) []Result {
	ds := Dataset{"credit_data.csv", "Status"}
	f := load(dir, ds)
	c, _ := f.Column(ds.Target)
	trainIdx, testIdx := ml.StratifiedSplit(c.Labels(), 0.25, 2026)
	tr, te := f.Take(trainIdx), f.Take(testIdx)
	var results []Result
	for _, alg := range []string{ml.LogReg, ml.MLP} {
		var aucs, times []float64
		var m *ml.Model
		for range repeats {
			start := time.Now()
			var err error
			params := map[string]string{"epochs": "20", "batch_size": "256"}
			if alg == ml.MLP {
				params["hidden_layer_sizes"] = "32"
			}
			m, err = ml.Train(context.Background(), tr, ml.TrainSpec{Algorithm: alg, Target: ds.Target,
				DP: &ml.DPSpec{Epsilon: 1, Delta: 1e-5}, Params: params}, nil)
			if err != nil {
				log.Fatal(err)
			}
			times = append(times, time.Since(start).Seconds())
			ev, err := m.Evaluate(te)
			if err != nil {
				log.Fatal(err)
			}
			aucs = append(aucs, ev.AUC)
		}
		r := Result{Dataset: ds.File, Learner: alg + "-dp", AUC: median(aucs), TrainSeconds: median(times), TrainRuns: times,
			Epsilon: m.DP.Epsilon, Delta: m.DP.Delta, NoiseMultiplier: m.DP.NoiseMultiplier,
			Note: fmt.Sprintf("secure noise; AUCs over runs %v", aucs)}
		log.Printf("DP %s: AUC %.4f (runs %v), ε=%.4f σ=%.3f", alg, r.AUC, aucs, r.Epsilon, r.NoiseMultiplier)
		results = append(results, r)
	}
	return results
}

func writeF64(path string, v []float64) {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

func synthFrame(x, y []float64, n int) *ml.Frame {
	const d = 20
	cols := make([]*ml.Column, 0, d+1)
	for j := range d {
		c := make([]float64, n)
		for i := range n {
			c[i] = x[i*d+j]
		}
		cols = append(cols, ml.NumericColumn("f"+strconv.Itoa(j), c))
	}
	if y != nil {
		lab := make([]string, n)
		for i := range n {
			lab[i] = []string{"0", "1"}[int(y[i])]
		}
		cols = append(cols, ml.CategoricalColumn("y", lab))
	}
	f, err := ml.NewFrame(cols...)
	if err != nil {
		log.Fatal(err)
	}
	return f
}

// runSynth times GBDT and logistic regression on the generated table (first
// 75 % train, last 25 % test; rows are i.i.d. so this is a random split).
func runSynth(out string, n, repeats int) []Result {
	x, y := synth.Table(n)
	if _, err := os.Stat(filepath.Join(out, "synth.y.f64")); err != nil {
		writeF64(filepath.Join(out, "synth.x.f64"), x)
		writeF64(filepath.Join(out, "synth.y.f64"), y)
	}
	nTrain := n * 3 / 4
	f := synthFrame(x, y, n)
	tr, te := f.Take(seqInts(0, nTrain)), f.Take(seqInts(nTrain, n))
	var results []Result
	for _, l := range []struct {
		name string
		spec ml.TrainSpec
	}{
		{"gbdt", ml.TrainSpec{Algorithm: ml.GBDT, Target: "y", Seed: 1, Params: gbdtParams}},
		{"logreg", ml.TrainSpec{Algorithm: ml.LogReg, Target: "y", Seed: 1}},
	} {
		m, times, trainCPU := train(tr, l.spec, repeats)
		ev, err := m.Evaluate(te)
		if err != nil {
			log.Fatal(err)
		}
		// Batch prediction throughput on the full table (features only).
		feat := synthFrame(x, nil, n)
		var rates, cpuRates []float64
		for range 3 {
			start, c0 := time.Now(), cpuSeconds()
			if _, err := m.PredictProba(feat); err != nil {
				log.Fatal(err)
			}
			rates = append(rates, float64(n)/time.Since(start).Seconds())
			cpuRates = append(cpuRates, float64(n)/(cpuSeconds()-c0))
		}
		r := Result{Dataset: fmt.Sprintf("synth %d×20", n), Learner: l.name, AUC: ev.AUC, Accuracy: ev.Accuracy,
			TrainSeconds: median(times), TrainRuns: times, PredictRowsPerS: median(rates),
			TrainCPUSeconds: trainCPU, PredictRowsPerCPUSecond: median(cpuRates)}
		log.Printf("synth %-7s AUC %.4f train %.2fs (%.2f CPU-s) predict %.2f M rows/s (%.2f M rows per CPU-s)",
			l.name, r.AUC, r.TrainSeconds, r.TrainCPUSeconds, r.PredictRowsPerS/1e6, r.PredictRowsPerCPUSecond/1e6)
		results = append(results, r)
	}
	return results
}

func seqInts(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}
