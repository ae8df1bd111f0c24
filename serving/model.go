package serving

import (
	"context"
	"fmt"
	"sync"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/guard"
	"github.com/rampart-mlaas/rampart/ml"
	"github.com/rampart-mlaas/rampart/registry"
)

// servedModel is a verified model version ready to score, with its schema.
type servedModel struct {
	version    rampart.ModelVersion
	native     *ml.Model
	ext        registry.External
	classes    []string
	regression bool
	width      int // scores per row
	names      []string
	// schemas by range margin (policies may differ between updates)
	mu      sync.Mutex
	schemas map[float64]*guard.Schema
}

// load returns the verified model of ep's version, loading it through the
// registry — which checks the binding, DSSE signature and artifact digest
// (MODEL-1) — when it is not cached. The cache is per endpoint and version;
// a (re)load always verifies.
func (s *Service) load(ctx context.Context, ep rampart.Endpoint) (*servedModel, error) {
	s.mu.Lock()
	sm := s.served[ep.ID]
	s.mu.Unlock()
	if sm != nil && sm.version.Version == ep.ModelVersion && sm.version.ModelID == ep.ModelID {
		return sm, nil
	}
	lmu, _ := s.loadMu.LoadOrStore(ep.ID, &sync.Mutex{})
	lmu.(*sync.Mutex).Lock()
	defer lmu.(*sync.Mutex).Unlock()
	s.mu.Lock()
	sm = s.served[ep.ID]
	s.mu.Unlock()
	if sm != nil && sm.version.Version == ep.ModelVersion && sm.version.ModelID == ep.ModelID {
		return sm, nil
	}
	lm, err := s.registry.Load(ctx, ep.TenantID, ep.ModelID, ep.ModelVersion)
	if err != nil {
		return nil, err
	}
	if ep.ModelDigest != "" && lm.Version.Digest != ep.ModelDigest {
		return nil, &rampart.Error{Code: rampart.CodeInternal, Message: "model version failed verification and was not loaded",
			Err: fmt.Errorf("endpoint %s pins digest %s, registry has %s", ep.ID, ep.ModelDigest, lm.Version.Digest)}
	}
	sm, err = newServed(lm)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	// Keep the newest loaded version: a concurrent rollback may race a
	// request that still holds the old endpoint row, and the row decides.
	s.served[ep.ID] = sm
	s.mu.Unlock()
	s.metrics.loads.Inc()
	return sm, nil
}

func newServed(lm *registry.LoadedModel) (*servedModel, error) {
	sm := &servedModel{version: lm.Version, schemas: map[float64]*guard.Schema{}}
	switch {
	case lm.Native != nil:
		m := lm.Native
		sm.native = m
		sm.regression = m.Task == ml.Regression
		sm.classes = m.Classes
		sm.width = m.OutputWidth()
		for _, f := range m.Schema() {
			sm.names = append(sm.names, f.Name)
		}
	case lm.External != nil:
		e := lm.External
		sm.ext = e
		if x, ok := e.(*registry.XGBoostModel); ok && x.Objective == "multi:softmax" {
			return nil, rampart.Invalid("model", "multi:softmax models return class indices only; export the model with multi:softprob to serve it")
		}
		for i := range e.NumInputs() {
			sm.names = append(sm.names, fmt.Sprintf("f%d", i))
		}
		switch {
		case lm.Version.Task != "classification":
			sm.regression, sm.width = true, 1
		case e.NumOutputs() == 1:
			sm.classes, sm.width = []string{"0", "1"}, 2
		default:
			sm.width = e.NumOutputs()
			for c := range sm.width {
				sm.classes = append(sm.classes, fmt.Sprint(c))
			}
		}
	default:
		return nil, fmt.Errorf("serving: loaded model has no scorer")
	}
	if !sm.regression && len(sm.classes) == 0 {
		return nil, fmt.Errorf("serving: classifier without classes")
	}
	return sm, nil
}

// schema returns the model's input schema for a range margin.
func (sm *servedModel) schema(margin float64) *guard.Schema {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if s, ok := sm.schemas[margin]; ok {
		return s
	}
	var s *guard.Schema
	if sm.native != nil {
		s = guard.SchemaFromML(sm.native.Schema(), margin)
	} else {
		s = guard.SchemaNumeric(sm.names)
	}
	sm.schemas[margin] = s
	return s
}

// scores runs the model on validated rows: n × width values, class
// probabilities in classes order or one regression value per row.
func (sm *servedModel) scores(r *guard.Rows, s *guard.Schema) ([]float64, error) {
	if sm.native != nil {
		// The schema is the model's (SchemaFromML keeps its order), so the
		// decoded columns go to the model as they are, without a Frame.
		// Anything but complete columns takes the Frame path, whose errors
		// are unchanged.
		for j, f := range s.Features {
			if f.Categorical && (j >= len(r.Cat) || len(r.Cat[j]) != r.N) || !f.Categorical && (j >= len(r.Num) || len(r.Num[j]) != r.N) {
				return sm.scoresFrame(r, s)
			}
		}
		return sm.native.ScoresColumns(r.Num, r.Cat, r.N)
	}
	nin, nout := sm.ext.NumInputs(), sm.ext.NumOutputs()
	out := make([]float64, r.N*sm.width)
	x := make([]float64, nin)
	o := make([]float64, nout)
	for i := range r.N {
		for j := range nin {
			x[j] = r.Num[j][i]
		}
		if err := sm.ext.Predict(x, o); err != nil {
			return nil, err
		}
		if !sm.regression && nout == 1 {
			out[i*2], out[i*2+1] = 1-o[0], o[0]
		} else {
			copy(out[i*sm.width:(i+1)*sm.width], o)
		}
	}
	return out, nil
}

// scoresFrame scores through a Frame (the general path).
func (sm *servedModel) scoresFrame(r *guard.Rows, s *guard.Schema) ([]float64, error) {
	cols := make([]*ml.Column, len(s.Features))
	for j, f := range s.Features {
		if f.Categorical {
			cols[j] = ml.CategoricalColumn(f.Name, r.Cat[j])
		} else {
			cols[j] = ml.NumericColumn(f.Name, r.Num[j])
		}
	}
	fr, err := ml.NewFrame(cols...)
	if err != nil {
		return nil, err
	}
	return sm.native.Scores(fr)
}
