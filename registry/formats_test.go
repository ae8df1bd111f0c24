package registry

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
)

func readFloats(t *testing.T, path string, sep rune) [][]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = sep
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float64
	for _, rec := range recs {
		var row []float64
		for _, s := range rec {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			row = append(row, v)
		}
		out = append(out, row)
	}
	return out
}

// TestXGBoostParity is the MODEL-2 acceptance for XGBoost: models written
// by Python's xgboost 1.7.4 score here as in Python, max |diff| ≤ 1e-6
// (with NaN inputs taking the learned default directions).
func TestXGBoostParity(t *testing.T) {
	for _, name := range []string{"binary_logistic", "reg_squarederror", "multi_softprob", "count_poisson"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "xgboost")
			b, err := os.ReadFile(filepath.Join(dir, name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			if d := Sniff(b); d.Format != rampart.FormatXGBoost {
				t.Fatalf("sniffed %+v", d)
			}
			m, err := ParseXGBoostJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			x := readFloats(t, filepath.Join(dir, name+"_features.csv"), ',')
			want := readFloats(t, filepath.Join(dir, name+"_predictions.csv"), ',')
			if len(x) != len(want) || len(x) == 0 {
				t.Fatalf("%d rows, %d predictions", len(x), len(want))
			}
			nan, worst := 0, 0.0
			for i := range x {
				for _, v := range x[i] {
					if math.IsNaN(v) {
						nan++
					}
				}
				out := make([]float64, m.NumOutputs())
				if err := m.Predict(x[i], out); err != nil {
					t.Fatal(err)
				}
				if len(out) != len(want[i]) {
					t.Fatalf("row %d: %d outputs, want %d", i, len(out), len(want[i]))
				}
				for j := range out {
					worst = max(worst, math.Abs(out[j]-want[i][j]))
				}
			}
			if nan == 0 {
				t.Fatal("test rows have no missing values")
			}
			if worst > 1e-6 {
				t.Fatalf("max abs diff %g > 1e-6", worst)
			}
			t.Logf("%d rows (%d NaN inputs): max abs diff %g", len(x), nan, worst)
		})
	}
}

func readLibSVM(t *testing.T, path string, nfeat int) [][]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		row := make([]float64, nfeat)
		for _, tok := range strings.Fields(sc.Text())[1:] {
			k, v, _ := strings.Cut(tok, ":")
			i, _ := strconv.Atoi(k)
			row[i], _ = strconv.ParseFloat(v, 64)
		}
		out = append(out, row)
	}
	return out
}

// TestLightGBMParity: LightGBM text models (from the leaves module's
// testdata, produced by LightGBM) score as LightGBM did, max |diff| ≤ 1e-6.
func TestLightGBMParity(t *testing.T) {
	dir := filepath.Join("testdata", "lightgbm")
	cases := []struct {
		model, preds string
		rows         func(n int) [][]float64
	}{
		{"lg_dart_breast_cancer.model", "lg_dart_breast_cancer_true_predictions.txt",
			func(int) [][]float64 { return readFloats(t, filepath.Join(dir, "breast_cancer_test.tsv"), '\t') }},
		{"lg_rf_iris.model", "lg_rf_iris_true_predictions.txt",
			func(n int) [][]float64 { return readLibSVM(t, filepath.Join(dir, "iris_test.libsvm"), n) }},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, c.model))
			if err != nil {
				t.Fatal(err)
			}
			if d := Sniff(b); d.Format != rampart.FormatLightGBM {
				t.Fatalf("sniffed %+v", d)
			}
			m, err := ParseLightGBMText(b)
			if err != nil {
				t.Fatal(err)
			}
			x := c.rows(m.NumInputs())
			want := readFloats(t, filepath.Join(dir, c.preds), ' ')
			if len(x) != len(want) {
				t.Fatalf("%d rows, %d predictions", len(x), len(want))
			}
			worst := 0.0
			for i := range x {
				out := make([]float64, m.NumOutputs())
				if err := m.Predict(x[i], out); err != nil {
					t.Fatal(err)
				}
				worst = max(worst, math.Abs(out[0]-want[i][0]))
			}
			if worst > 1e-6 {
				t.Fatalf("max abs diff %g > 1e-6", worst)
			}
			t.Logf("%d rows: max abs diff %g", len(x), worst)
		})
	}
}

// TestLightGBMHostile: structures that make leaves panic or loop forever
// are rejected before they reach it.
func TestLightGBMHostile(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "lightgbm", "lg_rf_iris.model"))
	if err != nil {
		t.Fatal(err)
	}
	mut := []struct{ name, from, to string }{
		{"short leaf values", "leaf_value=0.11920292202211766 0.88079707797788231\n", "leaf_value=0.1\n"},
		{"leaf out of range", "left_child=-1\nright_child=-2\n", "left_child=-1\nright_child=-9\n"},
		{"cycle to root", "left_child=-1\nright_child=-2\n", "left_child=0\nright_child=-2\n"},
		{"feature out of range", "split_feature=2\n", "split_feature=99\n"},
		{"categorical", "decision_type=2\n", "decision_type=3\n"},
		{"bad missing type", "decision_type=2\n", "decision_type=12\n"},
		{"non-finite threshold", "threshold=2.3500000000000005\n", "threshold=inf\n"},
		{"huge leaves", "num_leaves=2\n", "num_leaves=99999999\n"},
		{"tree count", "tree_sizes=255 ", "tree_sizes=255 255 "},
		{"version", "version=v2", "version=v9"},
	}
	for _, m := range mut {
		b := bytes.Replace(base, []byte(m.from), []byte(m.to), 1)
		if bytes.Equal(b, base) {
			t.Fatalf("%s: mutation did not apply", m.name)
		}
		if _, err := ParseLightGBMText(b); err == nil {
			t.Errorf("%s: accepted", m.name)
		}
	}
}

// TestXGBoostHostile: malformed XGBoost documents are refused, not scored.
func TestXGBoostHostile(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "xgboost", "binary_logistic.json"))
	if err != nil {
		t.Fatal(err)
	}
	mut := []struct{ name, from, to string }{
		{"child cycle", `"left_children":[1,3,5`, `"left_children":[0,3,5`},
		{"feature out of range", `"split_indices":[7,`, `"split_indices":[700,`},
		{"booster", `"name":"gbtree"`, `"name":"gblinear"`},
		{"objective", `"name":"binary:logistic"`, `"name":"custom:evil"`},
		{"tree count", `"num_trees":"12"`, `"num_trees":"13"`},
		{"categorical", `"split_type":[0,`, `"split_type":[1,`},
		{"base score", `"base_score":"5E-1"`, `"base_score":"2"`},
		{"default_left", `"default_left":[1,`, `"default_left":[7,`},
	}
	for _, m := range mut {
		b := bytes.Replace(base, []byte(m.from), []byte(m.to), 1)
		if bytes.Equal(b, base) {
			t.Fatalf("%s: mutation did not apply", m.name)
		}
		if _, err := ParseXGBoostJSON(b); err == nil {
			t.Errorf("%s: accepted", m.name)
		}
	}
}

func TestTaskOf(t *testing.T) {
	for obj, want := range map[string]string{
		"binary:logistic": "classification", "binary:logitraw": "regression", "multi:softprob": "classification",
		"reg:squarederror": "regression", "count:poisson": "regression", "binary sigmoid:1": "classification",
		"multiclass num_class:5": "classification", "regression": "regression", "lambdarank": "regression",
	} {
		if got := taskOf(obj); got != want {
			t.Errorf("taskOf(%q) = %s, want %s", obj, got, want)
		}
	}
}
