package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-mlaas/rampart"
)

// TestUnsafeCorpus is the MODEL-2 acceptance: every file of the unsafe
// corpus (pickles of protocols 0-5, joblib plain and compressed, PyTorch
// zip and legacy checkpoints, TorchScript, NumPy object arrays and .npz,
// Keras HDF5, jsonpickle, scripts — several named .json or .txt) is
// recognised by content and rejected with an explanation, through the
// whole import path, and nothing is stored.
func TestUnsafeCorpus(t *testing.T) {
	e := newEnv(t)
	files, err := filepath.Glob(filepath.Join("testdata", "unsafe", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".py") {
			continue
		}
		n++
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		d := Sniff(b)
		if d.Format != "" || d.Reason == "" {
			t.Errorf("%s: sniffed as %+v", name, d)
			continue
		}
		codeCarrying := !strings.HasPrefix(name, "python_source") && !strings.HasPrefix(name, "shell")
		if codeCarrying && !strings.Contains(d.Reason, "executable code") {
			t.Errorf("%s: reason does not explain the danger: %s", name, d.Reason)
		}
		_, err = e.svc.Import(as(e.dev), ImportInput{Name: "unsafe", ExpectedDigest: digestOf(b), Data: b})
		var re *rampart.Error
		if !errors.As(err, &re) || re.Code != rampart.CodeInvalid || re.Field != "model" || re.Message != d.Reason {
			t.Errorf("%s: import answered %v", name, err)
		}
		t.Logf("%-28s %s", name, d.Kind)
	}
	if n < 25 {
		t.Fatalf("corpus has only %d files", n)
	}
	if _, err := e.db.GetModelByName(context.Background(), e.tenant.ID, "unsafe"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatalf("a rejected import left a model: %v", err)
	}
	// Each attempt: the authorization, then the rejection with its reason.
	refused := 0
	for _, ev := range e.audit.find("model.import", true) {
		if ev.Outcome == string(rampart.CodeInvalid) && strings.HasPrefix(ev.Reason, "MODEL-2: rejected") && ev.Details["detected"] != "" {
			refused++
		}
	}
	if refused != n {
		t.Fatalf("%d rejections recorded for %d attempts", refused, n)
	}
}

// TestImport: valid XGBoost and LightGBM models import as signed candidate
// versions that score like the originals; a wrong pinned digest refuses
// the import (SUP-3); a format assertion must match the content.
func TestImport(t *testing.T) {
	e := newEnv(t)
	xgb := mustRead("testdata/xgboost/binary_logistic.json")
	lgb := mustRead("testdata/lightgbm/lg_rf_iris.model")
	bad := digestOf([]byte("something else"))
	if _, err := e.svc.Import(as(e.dev), ImportInput{Name: "x", ExpectedDigest: bad, Data: xgb}); !errors.Is(err, rampart.ErrInvalid) || !strings.Contains(err.Error(), "SUP-3") {
		t.Fatalf("digest mismatch: %v", err)
	}
	if _, err := e.svc.Import(as(e.dev), ImportInput{Name: "x", Data: xgb}); !errors.Is(err, rampart.ErrInvalid) {
		t.Fatalf("no digest: %v", err)
	}
	if _, err := e.svc.Import(as(e.dev), ImportInput{Name: "x", ExpectedDigest: digestOf(xgb), Format: rampart.FormatLightGBM, Data: xgb}); !errors.Is(err, rampart.ErrInvalid) {
		t.Fatalf("format mismatch: %v", err)
	}
	if _, err := e.svc.Import(as(e.user), ImportInput{Name: "x", ExpectedDigest: digestOf(xgb), Data: xgb}); !errors.Is(err, rampart.ErrForbidden) {
		t.Fatalf("service user import: %v", err)
	}
	if _, err := e.db.GetModelByName(context.Background(), e.tenant.ID, "x"); !errors.Is(err, rampart.ErrNotFound) {
		t.Fatal("refused imports stored a model")
	}
	for _, c := range []struct {
		name   string
		data   []byte
		format string
		x      []float64
	}{
		{"xgb", xgb, rampart.FormatXGBoost, mustRow(t, "testdata/xgboost/binary_logistic_features.csv")},
		{"lgb", lgb, rampart.FormatLightGBM, []float64{5.8, 2.8, 5.1, 2.4}},
	} {
		v, err := e.svc.Import(as(e.dev), ImportInput{Name: c.name, ExpectedDigest: digestOf(c.data), Data: c.data, Source: "testdata"})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if v.Format != c.format || v.Provenance != rampart.ProvenanceImported || v.Stage != rampart.StageCandidate || v.Digest != digestOf(c.data) {
			t.Fatalf("%s: %+v", c.name, v)
		}
		lm, err := e.svc.Load(context.Background(), e.tenant.ID, v.ModelID, v.Version)
		if err != nil {
			t.Fatalf("%s: load: %v", c.name, err)
		}
		if lm.External == nil || lm.Native != nil {
			t.Fatalf("%s: loaded %+v", c.name, lm)
		}
		out := make([]float64, lm.External.NumOutputs())
		if err := lm.External.Predict(c.x, out); err != nil {
			t.Fatal(err)
		}
		if out[0] <= 0 || out[0] >= 1 {
			t.Fatalf("%s: prediction %v", c.name, out)
		}
		st := lm.Statement.Predicate.BuildDefinition
		if st.BuildType != "https://github.com/rampart-mlaas/rampart/buildtypes/import/v1" || st.ExternalParameters["expected_digest"] != digestOf(c.data) {
			t.Fatalf("%s: attestation %+v", c.name, st)
		}
	}
}

func mustRow(t *testing.T, p string) []float64 {
	return readFloats(t, p, ',')[0]
}
