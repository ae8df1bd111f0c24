package service

import (
	"context"
	"fmt"
	"math"
	"regexp"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/enforce"
)

// MaxThresholds bounds a tenant's assessment thresholds.
const MaxThresholds = 32

var metricRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_@%]+)*$`)

// SetThresholds replaces the caller's tenant's assessment thresholds, which
// gate promotion to production (MODEL-5): a version is promotable only with
// a successful assessment whose metrics pass every threshold.
func (s *Service) SetThresholds(ctx context.Context, th []rampart.GateSpec) ([]rampart.GateSpec, error) {
	if len(th) > MaxThresholds {
		return nil, rampart.Invalid("thresholds", "at most %d thresholds", MaxThresholds)
	}
	seen := map[string]bool{}
	for i, g := range th {
		field := fmt.Sprintf("thresholds[%d]", i)
		if !metricRE.MatchString(g.Metric) || len(g.Metric) > 64 {
			return nil, rampart.Invalid(field+".metric", "metric names are like membership.auc or extraction.fidelity")
		}
		if seen[g.Metric] {
			return nil, rampart.Invalid(field+".metric", "metric %s appears twice", g.Metric)
		}
		seen[g.Metric] = true
		if g.Min == nil && g.Max == nil {
			return nil, rampart.Invalid(field, "a threshold needs min or max")
		}
		for _, b := range []*float64{g.Min, g.Max} {
			if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
				return nil, rampart.Invalid(field, "bounds must be finite numbers")
			}
		}
		if g.Min != nil && g.Max != nil && *g.Min > *g.Max {
			return nil, rampart.Invalid(field, "min is above max")
		}
	}
	c, err := s.policyGuard(ctx, authz.AssessmentThresholds, map[string]string{"thresholds": fmt.Sprint(len(th))})
	if err != nil {
		return nil, err
	}
	if th == nil {
		th = []rampart.GateSpec{}
	}
	if err := s.store.SetAssessmentThresholds(ctx, c.Principal.TenantID, th); err != nil {
		return nil, err
	}
	return th, nil
}

// Thresholds returns the caller's tenant's assessment thresholds.
func (s *Service) Thresholds(ctx context.Context) ([]rampart.GateSpec, error) {
	c, err := s.policyGuard(ctx, authz.AssessmentRead, nil)
	if err != nil {
		return nil, err
	}
	th, err := s.store.AssessmentThresholds(ctx, c.Principal.TenantID)
	if th == nil {
		th = []rampart.GateSpec{}
	}
	return th, err
}

// policyGuard authorizes a tenant-policy action and records it (AUDIT-3).
func (s *Service) policyGuard(ctx context.Context, a authz.Action, details map[string]string) (rampart.Caller, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return c, rampart.ErrUnauthenticated
	}
	res := authz.Resource{Kind: "assessment-thresholds", ID: c.Principal.TenantID, TenantID: c.Principal.TenantID}
	c, _, err := (&enforce.Recorder{Audit: s.audit, Now: s.now}).Guard(ctx, a, res, details)
	return c, err
}
