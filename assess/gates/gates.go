// Package gates blocks promotion to production on the results of security
// assessments (MODEL-5): a registry gate that looks up the latest
// successful assessment of the version and checks it against the tenant's
// thresholds, naming the failing metric.
package gates

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/registry"
)

// Store is what the gate reads (a subset of record.Store).
type Store interface {
	// LatestAssessment returns the newest successful assessment of a
	// model version; ok is false when there is none.
	LatestAssessment(ctx context.Context, tenantID, modelID string, version int) (a record.Assessment, ok bool, err error)
	// AssessmentThresholds returns the tenant's thresholds (none: no
	// assessment is required).
	AssessmentThresholds(ctx context.Context, tenantID string) ([]rampart.GateSpec, error)
}

// Gate implements registry.Gate.
type Gate struct {
	Store Store
	// MaxAge, when > 0, refuses assessments older than that.
	MaxAge time.Duration
	Now    func() time.Time
}

var _ registry.Gate = Gate{}

// ErrNoAssessment is wrapped when thresholds exist but no successful
// assessment of the version does.
var ErrNoAssessment = errors.New("no successful security assessment of this version")

// Name implements registry.Gate.
func (Gate) Name() string { return "assessment" }

// Check implements registry.Gate (MODEL-5). With thresholds set for the
// tenant, the version needs a successful assessment whose every bounded
// metric is within bounds; the error names the first failing metric. The
// assessment's metrics are copied into card.Assessments, so the model's
// own gates (registry.MetricGate, checked after the platform's) can bound
// them too.
func (g Gate) Check(ctx context.Context, v rampart.ModelVersion, card *registry.Card) error {
	sum, ok, err := g.Store.LatestAssessment(ctx, v.TenantID, v.ModelID, v.Version)
	if err != nil {
		return fmt.Errorf("reading assessments: %w", err)
	}
	if ok {
		if card.Assessments == nil {
			card.Assessments = map[string]float64{}
		}
		for k, x := range sum.Metrics {
			card.Assessments[k] = x
		}
	}
	th, err := g.Store.AssessmentThresholds(ctx, v.TenantID)
	if err != nil {
		return fmt.Errorf("reading assessment thresholds: %w", err)
	}
	if len(th) == 0 {
		return nil
	}
	if !ok {
		return fmt.Errorf("%w (the tenant's gates bound %s)", ErrNoAssessment, names(th))
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	if g.MaxAge > 0 && (sum.FinishedAt == nil || now().Sub(*sum.FinishedAt) > g.MaxAge) {
		return fmt.Errorf("assessment %s is older than %v", sum.ID, g.MaxAge)
	}
	sort.Slice(th, func(a, b int) bool { return th[a].Metric < th[b].Metric })
	for _, t := range th {
		x, ok := sum.Metrics[t.Metric]
		switch {
		case !ok:
			return fmt.Errorf("assessment %s did not measure %s", sum.ID, t.Metric)
		case t.Min != nil && x < *t.Min:
			return fmt.Errorf("assessment %s: %s = %.4g is below %g", sum.ID, t.Metric, x, *t.Min)
		case t.Max != nil && x > *t.Max:
			return fmt.Errorf("assessment %s: %s = %.4g is above %g", sum.ID, t.Metric, x, *t.Max)
		}
	}
	return nil
}

func names(th []rampart.GateSpec) string {
	var s []string
	for _, t := range th {
		s = append(s, t.Metric)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
