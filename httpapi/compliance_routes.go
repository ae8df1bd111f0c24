package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/compliance"
)

// RegisterCompliance serves GET /v1/compliance: the deployment evaluated
// requirement by requirement, with evidence (operator and auditors).
func (a *API) RegisterCompliance(eval func(context.Context) (compliance.Evaluation, error)) {
	huma.Register(a.huma, op("compliance", http.MethodGet, "/v1/compliance", "Evaluate this deployment against every security requirement", "compliance"),
		wrap(a.deps.Log, func(ctx context.Context, _ *struct{}) (*struct{ Body compliance.Evaluation }, error) {
			c, ok := rampart.CallerFrom(ctx)
			if !ok {
				return nil, rampart.ErrUnauthenticated
			}
			d := authz.Decide(c.Principal, authz.ComplianceRead, authz.Resource{Kind: "platform"})
			if err := a.deps.Audit.Record(ctx, rampart.AuditEvent{Time: time.Now().UTC(), TenantID: c.Principal.TenantID,
				Principal: c.Principal.ID, Role: c.Principal.Role, Action: string(authz.ComplianceRead), Resource: "platform/compliance",
				Allow: d.Allow, Reason: d.Reason, Outcome: outcome(d), RequestID: c.RequestID}); err != nil {
				return nil, &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable; action refused", Err: err}
			}
			if !d.Allow {
				return nil, d.Err("compliance")
			}
			r, err := eval(ctx)
			if err != nil {
				return nil, err
			}
			return &struct{ Body compliance.Evaluation }{Body: r}, nil
		}))
}
