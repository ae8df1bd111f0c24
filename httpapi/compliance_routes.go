package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/compliance"
)

// RegisterCompliance serves GET /v1/compliance: the deployment evaluated
// requirement by requirement, with evidence (operator and auditors).
func (a *API) RegisterCompliance(eval func(context.Context) (compliance.Evaluation, error)) {
	huma.Register(a.huma, op("compliance", http.MethodGet, "/v1/compliance", "Evaluate this deployment against every security requirement", "compliance"),
		wrap(a.deps.Log, func(ctx context.Context, _ *struct{}) (*struct{ Body compliance.Evaluation }, error) {
			if _, _, err := a.recorder().Guard(ctx, authz.ComplianceRead, authz.Resource{Kind: "platform", ID: "compliance"}, nil); err != nil {
				return nil, err
			}
			r, err := eval(ctx)
			if err != nil {
				return nil, err
			}
			return &struct{ Body compliance.Evaluation }{Body: r}, nil
		}))
}
