package httpapi

import (
	"context"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/serving"
)

// Prediction routes, which take bodies up to serving.MaxBody (the server
// registers them with StreamingRoute).
const (
	PredictPath       = "/v1/endpoints/{endpoint}/predict"
	InferPath         = "/v2/models/{endpoint}/infer"
	InferVersionsPath = "/v2/models/{endpoint}/versions/{version}/infer"
)

// CreateEndpointRequest creates an endpoint.
type CreateEndpointRequest struct {
	Name    string               `json:"name" maxLength:"63" doc:"Endpoint name, unique in the tenant."`
	Model   string               `json:"model" maxLength:"80" doc:"Model ID or name of the caller's tenant."`
	Version int                  `json:"model_version,omitempty" minimum:"0" maximum:"1000000000" doc:"0 = the production version, else the latest."`
	Policy  *rampart.GuardPolicy `json:"policy,omitempty" doc:"Guard policy; omitted fields take the defaults (every guard on)."`
}

// UpdateEndpointRequest switches the version (rollback, MODEL-6) and/or the policy.
type UpdateEndpointRequest struct {
	Version *int                 `json:"model_version,omitempty" minimum:"1" maximum:"1000000000"`
	Policy  *rampart.GuardPolicy `json:"policy,omitempty" doc:"Replaces the whole policy (omitted fields take the defaults)."`
}

// EndpointGrantRequest gives another tenant or one principal access.
type EndpointGrantRequest struct {
	TenantID    string `json:"tenant_id,omitempty" maxLength:"80" doc:"Grantee tenant (all its principals)."`
	PrincipalID string `json:"principal_id,omitempty" maxLength:"80" doc:"Grantee principal."`
}

type endpointPath struct {
	Endpoint string `path:"endpoint" maxLength:"80" doc:"Endpoint name (caller's tenant) or ID (also a granted endpoint of another tenant)."`
}

type predictIn struct {
	Endpoint string `path:"endpoint" maxLength:"80"`
	RawBody  []byte `contentType:"application/json"`
}

type inferVersionIn struct {
	Endpoint string `path:"endpoint" maxLength:"80"`
	Version  string `path:"version" maxLength:"20"`
	RawBody  []byte `contentType:"application/json"`
}

type predictOut struct {
	ContentType string `header:"Content-Type"`
	Digest      string `header:"X-Rampart-Model-Digest" doc:"sha256 of the model version that answered (INF-6)."`
	Version     int    `header:"X-Rampart-Model-Version"`
	Signature   string `header:"X-Rampart-Signature" doc:"Compact JWS (EdDSA) over request digest, response digest and model digest, when the endpoint signs (INF-6)."`
	Body        []byte
}

func toPredictOut(o *serving.PredictOutput) *predictOut {
	return &predictOut{ContentType: "application/json", Digest: o.ModelDigest, Version: o.ModelVersion, Signature: o.Signature, Body: o.Body}
}

type oipVersionPath struct {
	Endpoint string `path:"endpoint" maxLength:"80"`
	Version  string `path:"version" maxLength:"20"`
}

// ServerMetadata is the OIP server metadata response.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

type liveOut struct {
	Body struct {
		Live bool `json:"live"`
	}
}

type readyOut struct {
	Body struct {
		Ready bool `json:"ready"`
	}
}

// RouteServing registers the endpoint, prediction and Open Inference
// Protocol v2 routes.
func (a *API) RouteServing(s *serving.Service) {
	log := a.deps.Log
	tag := "endpoints"
	oip := "inference (Open Inference Protocol v2)"

	huma.Register(a.huma, created(op("create-endpoint", http.MethodPost, "/v1/endpoints", "Create an endpoint serving a model version behind the guard pipeline", tag)),
		wrap(log, func(ctx context.Context, in *struct{ Body CreateEndpointRequest }) (*struct{ Body rampart.Endpoint }, error) {
			ci := serving.CreateInput{Name: in.Body.Name, Model: in.Body.Model, Version: in.Body.Version}
			if in.Body.Policy != nil {
				ci.Policy = *in.Body.Policy
			}
			ep, err := s.Create(ctx, ci)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Endpoint }{Body: ep}, nil
		}))

	huma.Register(a.huma, op("list-endpoints", http.MethodGet, "/v1/endpoints", "List the tenant's endpoints", tag),
		wrap(log, func(ctx context.Context, in *struct{ PageQuery }) (*listOut[rampart.Endpoint], error) {
			eps, next, err := s.List(ctx, in.page())
			if err != nil {
				return nil, err
			}
			return newList(eps, next), nil
		}))

	huma.Register(a.huma, op("get-endpoint", http.MethodGet, "/v1/endpoints/{endpoint}", "Show an endpoint", tag),
		wrap(log, func(ctx context.Context, in *endpointPath) (*struct{ Body rampart.Endpoint }, error) {
			ep, err := s.Get(ctx, in.Endpoint)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Endpoint }{Body: ep}, nil
		}))

	huma.Register(a.huma, op("update-endpoint", http.MethodPatch, "/v1/endpoints/{endpoint}", "Switch the served version (rollback without failed requests) or change the policy", tag),
		wrap(log, func(ctx context.Context, in *struct {
			Endpoint string `path:"endpoint" maxLength:"80"`
			Body     UpdateEndpointRequest
		}) (*struct{ Body rampart.Endpoint }, error) {
			ep, err := s.Update(ctx, in.Endpoint, serving.UpdateInput{Version: in.Body.Version, Policy: in.Body.Policy})
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Endpoint }{Body: ep}, nil
		}))

	del := op("delete-endpoint", http.MethodDelete, "/v1/endpoints/{endpoint}", "Delete an endpoint and its grants", tag)
	del.DefaultStatus = http.StatusNoContent
	huma.Register(a.huma, del, wrap(log, func(ctx context.Context, in *endpointPath) (*struct{}, error) {
		return &struct{}{}, s.Delete(ctx, in.Endpoint)
	}))

	huma.Register(a.huma, created(op("grant-endpoint", http.MethodPost, "/v1/endpoints/{endpoint}/grants", "Let another tenant or a principal predict with the endpoint", tag)),
		wrap(log, func(ctx context.Context, in *struct {
			Endpoint string `path:"endpoint" maxLength:"80"`
			Body     EndpointGrantRequest
		}) (*struct{ Body rampart.EndpointGrant }, error) {
			g, err := s.Grant(ctx, in.Endpoint, in.Body.TenantID, in.Body.PrincipalID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.EndpointGrant }{Body: g}, nil
		}))

	huma.Register(a.huma, op("list-endpoint-grants", http.MethodGet, "/v1/endpoints/{endpoint}/grants", "List an endpoint's grants", tag),
		wrap(log, func(ctx context.Context, in *endpointPath) (*listOut[rampart.EndpointGrant], error) {
			gs, err := s.Grants(ctx, in.Endpoint)
			if err != nil {
				return nil, err
			}
			return newList(gs, ""), nil
		}))

	rev := op("revoke-endpoint-grant", http.MethodDelete, "/v1/endpoints/{endpoint}/grants/{endpoint_grant_id}", "Revoke a grant", tag)
	rev.DefaultStatus = http.StatusNoContent
	huma.Register(a.huma, rev, wrap(log, func(ctx context.Context, in *struct {
		Endpoint string `path:"endpoint" maxLength:"80"`
		GrantID  string `path:"endpoint_grant_id" maxLength:"80"`
	}) (*struct{}, error) {
		return &struct{}{}, s.Revoke(ctx, in.Endpoint, in.GrantID)
	}))

	huma.Register(a.huma, op("endpoint-stats", http.MethodGet, "/v1/endpoints/{endpoint}/stats", "Drift (PSI of inputs and predictions, INF-7) of an endpoint", tag),
		wrap(log, func(ctx context.Context, in *endpointPath) (*struct{ Body serving.Stats }, error) {
			st, err := s.Stats(ctx, in.Endpoint)
			if err != nil {
				return nil, err
			}
			return &struct{ Body serving.Stats }{Body: st}, nil
		}))

	huma.Register(a.huma, op("get-prediction-signing-key", http.MethodGet, "/v1/prediction-signing-key", "The public key that signs predictions (INF-6)", tag),
		wrap(log, func(ctx context.Context, _ *struct{}) (*struct{ Body PublicKeyResponse }, error) {
			pem, id, err := s.PublicKey(ctx)
			if err != nil {
				return nil, err
			}
			return &struct{ Body PublicKeyResponse }{Body: PublicKeyResponse{KeyID: id, PublicKeyPEM: string(pem), PayloadType: serving.JWSType}}, nil
		}))

	pr := op("predict", http.MethodPost, PredictPath,
		"Predict: {\"rows\": [{feature: value, …}, …]} through the guard pipeline; the response carries the model digest", tag)
	pr.MaxBodyBytes = serving.MaxBody
	pr.SkipValidateBody = true // parsed (strictly) by the serving codec, after authorization
	huma.Register(a.huma, pr, wrap(log, func(ctx context.Context, in *predictIn) (*predictOut, error) {
		o, err := s.Predict(ctx, serving.PredictInput{Ref: in.Endpoint, Protocol: serving.ProtocolRows, Body: in.RawBody})
		if err != nil {
			return nil, err
		}
		return toPredictOut(o), nil
	}))

	// Open Inference Protocol v2 (KServe V2) REST.
	huma.Register(a.huma, huma.Operation{OperationID: "oip-live", Method: http.MethodGet, Path: "/v2/health/live",
		Summary: "OIP server liveness", Tags: []string{oip}, Security: []map[string][]string{}},
		func(ctx context.Context, _ *struct{}) (*liveOut, error) {
			o := &liveOut{}
			o.Body.Live = true
			return o, nil
		})
	huma.Register(a.huma, huma.Operation{OperationID: "oip-ready", Method: http.MethodGet, Path: "/v2/health/ready",
		Summary: "OIP server readiness", Tags: []string{oip}, Security: []map[string][]string{}},
		func(ctx context.Context, _ *struct{}) (*readyOut, error) {
			o := &readyOut{}
			o.Body.Ready = a.deps.Ready == nil || a.deps.Ready(ctx) == nil
			if !o.Body.Ready {
				return nil, &Problem{Type: ProblemTypeBase + "unavailable", Title: "Service unavailable", Status: 503,
					Code: rampart.CodeUnavailable, Detail: "not ready", RequestID: rampart.RequestID(ctx)}
			}
			return o, nil
		})
	huma.Register(a.huma, op("oip-server-metadata", http.MethodGet, "/v2", "OIP server metadata", oip),
		wrap(log, func(ctx context.Context, _ *struct{}) (*struct{ Body ServerMetadata }, error) {
			return &struct{ Body ServerMetadata }{Body: ServerMetadata{Name: "rampart", Version: a.deps.Version, Extensions: []string{}}}, nil
		}))
	meta := func(ctx context.Context, ref, version string) (*struct{ Body serving.ModelMetadata }, error) {
		md, err := s.Metadata(ctx, ref, version)
		if err != nil {
			return nil, err
		}
		return &struct{ Body serving.ModelMetadata }{Body: md}, nil
	}
	huma.Register(a.huma, op("oip-model-metadata", http.MethodGet, "/v2/models/{endpoint}", "OIP model metadata (the endpoint's inputs and outputs)", oip),
		wrap(log, func(ctx context.Context, in *endpointPath) (*struct{ Body serving.ModelMetadata }, error) {
			return meta(ctx, in.Endpoint, "")
		}))
	huma.Register(a.huma, op("oip-model-version-metadata", http.MethodGet, "/v2/models/{endpoint}/versions/{version}", "OIP model metadata of a version", oip),
		wrap(log, func(ctx context.Context, in *oipVersionPath) (*struct{ Body serving.ModelMetadata }, error) {
			return meta(ctx, in.Endpoint, in.Version)
		}))
	ready := func(ctx context.Context, ref, version string) (*readyOut, error) {
		if err := s.Ready(ctx, ref, version); err != nil {
			return nil, err
		}
		o := &readyOut{}
		o.Body.Ready = true
		return o, nil
	}
	huma.Register(a.huma, op("oip-model-ready", http.MethodGet, "/v2/models/{endpoint}/ready", "OIP model readiness", oip),
		wrap(log, func(ctx context.Context, in *endpointPath) (*readyOut, error) { return ready(ctx, in.Endpoint, "") }))
	huma.Register(a.huma, op("oip-model-version-ready", http.MethodGet, "/v2/models/{endpoint}/versions/{version}/ready", "OIP model version readiness", oip),
		wrap(log, func(ctx context.Context, in *oipVersionPath) (*readyOut, error) {
			return ready(ctx, in.Endpoint, in.Version)
		}))

	inf := op("oip-infer", http.MethodPost, InferPath, "OIP inference: one [N, F] tensor or one [N] input per feature", oip)
	inf.MaxBodyBytes = serving.MaxBody
	inf.SkipValidateBody = true
	huma.Register(a.huma, inf, wrap(log, func(ctx context.Context, in *predictIn) (*predictOut, error) {
		o, err := s.Predict(ctx, serving.PredictInput{Ref: in.Endpoint, Protocol: serving.ProtocolOIP, Body: in.RawBody})
		if err != nil {
			return nil, err
		}
		return toPredictOut(o), nil
	}))
	infv := op("oip-infer-version", http.MethodPost, InferVersionsPath, "OIP inference on a version (must be the served one)", oip)
	infv.MaxBodyBytes = serving.MaxBody
	infv.SkipValidateBody = true
	huma.Register(a.huma, infv, wrap(log, func(ctx context.Context, in *inferVersionIn) (*predictOut, error) {
		o, err := s.Predict(ctx, serving.PredictInput{Ref: in.Endpoint, Version: in.Version, Protocol: serving.ProtocolOIP, Body: in.RawBody})
		if err != nil {
			return nil, err
		}
		return toPredictOut(o), nil
	}))
	a.enableFastPredict(s)
	a.describeBody(PredictPath, reflect.TypeOf(serving.PredictRequest{}))
	a.describeBody(InferPath, reflect.TypeOf(serving.OIPRequest{}))
	a.describeBody(InferVersionsPath, reflect.TypeOf(serving.OIPRequest{}))
}

// describeBody documents a raw-body route's JSON body in the OpenAPI
// description (huma describes raw bodies as binary strings).
func (a *API) describeBody(path string, t reflect.Type) {
	oa := a.huma.OpenAPI()
	pi := oa.Paths[path]
	if pi == nil || pi.Post == nil || pi.Post.RequestBody == nil {
		return
	}
	pi.Post.RequestBody.Content = map[string]*huma.MediaType{"application/json": {Schema: oa.Components.Schemas.Schema(t, true, "")}}
}
