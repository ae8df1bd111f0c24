package gates

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/registry"
)

type memStore struct {
	sums map[string]record.Assessment
	th   map[string][]rampart.GateSpec
}

func (m memStore) LatestAssessment(_ context.Context, tenant, model string, version int) (record.Assessment, bool, error) {
	s, ok := m.sums[tenant+"/"+model]
	return s, ok, nil
}

func (m memStore) AssessmentThresholds(_ context.Context, tenant string) ([]rampart.GateSpec, error) {
	return m.th[tenant], nil
}

func ptr(v float64) *float64 { return &v }

func TestGate(t *testing.T) {
	now := time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)
	hourAgo := now.Add(-time.Hour)
	st := memStore{
		sums: map[string]record.Assessment{
			"t1/leaky": {ID: "asm_1", FinishedAt: &hourAgo, Metrics: map[string]float64{"membership.tpr_at_1pct_fpr": 0.15, "extraction.fidelity": 0.7}},
			"t1/good":  {ID: "asm_2", FinishedAt: &hourAgo, Metrics: map[string]float64{"membership.tpr_at_1pct_fpr": 0.01, "extraction.fidelity": 0.7}},
			"t2/any":   {ID: "asm_3", FinishedAt: &hourAgo, Metrics: map[string]float64{"membership.auc": 0.9}},
		},
		th: map[string][]rampart.GateSpec{"t1": {
			{Metric: "membership.tpr_at_1pct_fpr", Max: ptr(0.02)},
			{Metric: "extraction.fidelity", Max: ptr(0.8)},
		}},
	}
	g := Gate{Store: st, Now: func() time.Time { return now }}
	for _, tc := range []struct {
		tenant, model string
		want          string // "" passes
	}{
		{"t1", "leaky", "membership.tpr_at_1pct_fpr = 0.15 is above 0.02"},
		{"t1", "good", ""},
		{"t1", "never-assessed", "no successful security assessment"},
		{"t2", "any", ""},            // no thresholds in t2
		{"t2", "never-assessed", ""}, // nothing required
	} {
		card := &registry.Card{}
		err := g.Check(context.Background(), rampart.ModelVersion{TenantID: tc.tenant, ModelID: tc.model, Version: 1}, card)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s/%s: %v", tc.tenant, tc.model, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s/%s: error %v, want %q", tc.tenant, tc.model, err, tc.want)
		}
		if tc.model == "leaky" && card.Assessments["extraction.fidelity"] != 0.7 {
			t.Errorf("card assessments not filled: %v", card.Assessments)
		}
	}
	// A model's own gate sees the assessment through the card.
	card := &registry.Card{}
	v := rampart.ModelVersion{TenantID: "t2", ModelID: "any", Version: 1}
	if err := g.Check(context.Background(), v, card); err != nil {
		t.Fatal(err)
	}
	mg := registry.MetricGate{Metric: "membership.auc", Max: ptr(0.6)}
	if err := mg.Check(context.Background(), v, card); err == nil || !strings.Contains(err.Error(), "membership.auc") {
		t.Errorf("model gate on the assessment: %v", err)
	}
	// Stale assessments do not count.
	g.MaxAge = time.Minute
	if err := g.Check(context.Background(), rampart.ModelVersion{TenantID: "t1", ModelID: "good", Version: 1}, &registry.Card{}); err == nil {
		t.Error("stale assessment accepted")
	}
	if err := g.Check(context.Background(), rampart.ModelVersion{TenantID: "t1", ModelID: "x"}, &registry.Card{}); !errors.Is(err, ErrNoAssessment) {
		t.Errorf("want ErrNoAssessment, got %v", err)
	}
}
