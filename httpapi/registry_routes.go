package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/registry"
)

// ImportPath is the model import route; the server gives it a body limit
// of registry.MaxImportSize with StreamingRoute.
const ImportPath = "/v1/models/import"

// ModelDetail is a model with its latest version.
type ModelDetail struct {
	rampart.Model
	Latest *rampart.ModelVersion `json:"latest,omitempty"`
}

// PromoteRequest moves a version one stage on.
type PromoteRequest struct {
	Stage rampart.Stage `json:"stage" enum:"staging,production" doc:"candidate → staging → production (MODEL-5)."`
}

// RollbackRequest restores an earlier production version.
type RollbackRequest struct {
	ToVersion int `json:"to_version,omitempty" minimum:"0" maximum:"1000000000" doc:"Version to restore; 0 = the previous production version."`
}

// ExportGrantRequest grants another principal export of a model (MODEL-4).
type ExportGrantRequest struct {
	PrincipalID string `json:"principal_id" maxLength:"80" doc:"Grantee, a principal of the same tenant other than the caller."`
	TTLSeconds  int64  `json:"ttl_seconds,omitempty" minimum:"0" maximum:"31536000" doc:"0 = no expiry."`
}

// GatesRequest sets a model's own promotion gates (MODEL-5).
type GatesRequest struct {
	Gates []rampart.GateSpec `json:"gates" maxItems:"16" doc:"Each bounds a card metric or assessment result; a missing metric fails the gate. Empty: no model gates."`
}

// PublicKeyResponse is the platform's model-signing key.
type PublicKeyResponse struct {
	KeyID         string `json:"key_id"`
	PublicKeyPEM  string `json:"public_key_pem"`
	PayloadType   string `json:"payload_type"`
	PredicateType string `json:"predicate_type"`
}

type modelPath struct {
	ModelID string `path:"model_id" maxLength:"80"`
}

type modelVersionPath struct {
	ModelID string `path:"model_id" maxLength:"80"`
	Version int    `path:"version" minimum:"1" maximum:"1000000000"`
}

type importInput struct {
	Name        string   `query:"name" required:"true" minLength:"1" maxLength:"63" doc:"Model name (created on first import)."`
	Digest      string   `query:"digest" required:"true" maxLength:"80" doc:"Expected sha256:<hex> of the body; a mismatch refuses the import (SUP-3)."`
	Format      string   `query:"format" enum:"xgboost-json,lightgbm-text,rampart-ml/v1" doc:"Optional: asserted format; must match the content."`
	IntendedUse string   `query:"intended_use" maxLength:"2048"`
	Limitations []string `query:"limitation" maxItems:"32" doc:"Known limitations for the model card (repeatable)."`
	Source      string   `query:"source" maxLength:"512" doc:"Where the model came from (recorded in the attestation)."`
	RawBody     []byte   `contentType:"application/octet-stream"`
}

type rawDoc struct {
	Body json.RawMessage
}

type exportOut struct {
	ContentType string `header:"Content-Type"`
	Digest      string `header:"X-Rampart-Digest"`
	Version     int    `header:"X-Rampart-Model-Version"`
	Body        []byte
}

// RouteRegistry registers the model registry's routes.
func (a *API) RouteRegistry(s *registry.Service) {
	log := a.deps.Log
	tag := "models"

	huma.Register(a.huma, op("get-signing-key", http.MethodGet, "/v1/signing-key", "The platform's model-signing public key, for offline verification", tag),
		wrap(log, func(ctx context.Context, _ *struct{}) (*struct{ Body PublicKeyResponse }, error) {
			pem, id, err := s.PublicKey(ctx)
			if err != nil {
				return nil, err
			}
			return &struct{ Body PublicKeyResponse }{Body: PublicKeyResponse{KeyID: id, PublicKeyPEM: string(pem),
				PayloadType: "application/vnd.in-toto+json", PredicateType: "https://slsa.dev/provenance/v1"}}, nil
		}))

	huma.Register(a.huma, op("list-models", http.MethodGet, "/v1/models", "List the tenant's models", tag),
		wrap(log, func(ctx context.Context, in *struct {
			Name string `query:"name" maxLength:"63" doc:"Only the model with this name."`
			PageQuery
		}) (*listOut[rampart.Model], error) {
			ms, next, err := s.ListModels(ctx, in.Name, in.page())
			if err != nil {
				return nil, err
			}
			return newList(ms, next), nil
		}))

	imp := created(op("import-model", http.MethodPost, ImportPath,
		"Import an XGBoost JSON or LightGBM text model by pinned digest (MODEL-2, SUP-3); pickle and other code-carrying formats are refused", tag))
	imp.MaxBodyBytes = registry.MaxImportSize
	huma.Register(a.huma, imp, wrap(log, func(ctx context.Context, in *importInput) (*struct{ Body rampart.ModelVersion }, error) {
		v, err := s.Import(ctx, registry.ImportInput{Name: in.Name, ExpectedDigest: in.Digest, Format: in.Format, Data: in.RawBody,
			IntendedUse: in.IntendedUse, Limitations: in.Limitations, Source: in.Source})
		if err != nil {
			return nil, err
		}
		return &struct{ Body rampart.ModelVersion }{Body: v}, nil
	}))

	huma.Register(a.huma, op("get-model", http.MethodGet, "/v1/models/{model_id}", "Show a model and its latest version", tag),
		wrap(log, func(ctx context.Context, in *modelPath) (*struct{ Body ModelDetail }, error) {
			m, err := s.GetModel(ctx, in.ModelID)
			if err != nil {
				return nil, err
			}
			d := ModelDetail{Model: m}
			if m.LatestVersion > 0 {
				v, err := s.GetVersion(ctx, m.ID, m.LatestVersion)
				if err != nil {
					return nil, err
				}
				d.Latest = &v.ModelVersion
			}
			return &struct{ Body ModelDetail }{Body: d}, nil
		}))

	huma.Register(a.huma, op("list-model-versions", http.MethodGet, "/v1/models/{model_id}/versions", "List a model's versions, newest first", tag),
		wrap(log, func(ctx context.Context, in *struct {
			ModelID string `path:"model_id" maxLength:"80"`
			PageQuery
		}) (*listOut[rampart.ModelVersion], error) {
			vs, next, err := s.ListVersions(ctx, in.ModelID, in.page())
			if err != nil {
				return nil, err
			}
			return newList(vs, next), nil
		}))

	huma.Register(a.huma, op("get-model-version", http.MethodGet, "/v1/models/{model_id}/versions/{version}", "Show a version: digest, metrics, stage, approvals", tag),
		wrap(log, func(ctx context.Context, in *modelVersionPath) (*struct{ Body registry.VersionDetail }, error) {
			v, err := s.GetVersion(ctx, in.ModelID, in.Version)
			if err != nil {
				return nil, err
			}
			return &struct{ Body registry.VersionDetail }{Body: v}, nil
		}))

	for _, d := range []struct {
		doc     registry.Document
		summary string
	}{
		{registry.DocCard, "A version's model card (MODEL-3)"},
		{registry.DocBOM, "A version's CycloneDX ML-BOM (SUP-1)"},
		{registry.DocAttestation, "A version's DSSE envelope: in-toto Statement v1 with SLSA Provenance v1, signed by the platform (TRAIN-1)"},
	} {
		huma.Register(a.huma, op("get-model-"+string(d.doc), http.MethodGet, "/v1/models/{model_id}/versions/{version}/"+string(d.doc), d.summary, tag),
			wrap(log, func(ctx context.Context, in *modelVersionPath) (*rawDoc, error) {
				b, _, err := s.GetDocument(ctx, in.ModelID, in.Version, d.doc)
				if err != nil {
					return nil, err
				}
				return &rawDoc{Body: b}, nil
			}))
	}

	huma.Register(a.huma, op("verify-model-version", http.MethodPost, "/v1/models/{model_id}/versions/{version}/verify",
		"Verify a version as a load does: binding, signature, attested digest, artifact digest (MODEL-1)", tag),
		wrap(log, func(ctx context.Context, in *modelVersionPath) (*struct{ Body registry.VerifyResult }, error) {
			r, err := s.Verify(ctx, in.ModelID, in.Version)
			if err != nil {
				return nil, err
			}
			return &struct{ Body registry.VerifyResult }{Body: r}, nil
		}))

	huma.Register(a.huma, op("promote-model-version", http.MethodPost, "/v1/models/{model_id}/versions/{version}/promote",
		"Promote a version one stage; production needs a second principal's approval and passing gates (MODEL-5)", tag),
		wrap(log, func(ctx context.Context, in *struct {
			ModelID string `path:"model_id" maxLength:"80"`
			Version int    `path:"version" minimum:"1" maximum:"1000000000"`
			Body    PromoteRequest
		}) (*struct{ Body rampart.ModelVersion }, error) {
			v, err := s.Promote(ctx, in.ModelID, in.Version, in.Body.Stage)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.ModelVersion }{Body: v}, nil
		}))

	huma.Register(a.huma, op("approve-model-version", http.MethodPost, "/v1/models/{model_id}/versions/{version}/approve",
		"Approve a version for production; the registrant cannot approve its own version (MODEL-5)", tag),
		wrap(log, func(ctx context.Context, in *modelVersionPath) (*struct{ Body rampart.ModelApproval }, error) {
			ap, err := s.Approve(ctx, in.ModelID, in.Version)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.ModelApproval }{Body: ap}, nil
		}))

	huma.Register(a.huma, op("set-model-gates", http.MethodPut, "/v1/models/{model_id}/gates",
		"Set the model's own promotion gates, checked with the platform's (MODEL-5)", tag),
		wrap(log, func(ctx context.Context, in *struct {
			ModelID string `path:"model_id" maxLength:"80"`
			Body    GatesRequest
		}) (*struct{ Body rampart.Model }, error) {
			m, err := s.SetGates(ctx, in.ModelID, in.Body.Gates)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Model }{Body: m}, nil
		}))

	huma.Register(a.huma, op("rollback-model", http.MethodPost, "/v1/models/{model_id}/rollback",
		"Restore an earlier production version (MODEL-6)", tag),
		wrap(log, func(ctx context.Context, in *struct {
			ModelID string `path:"model_id" maxLength:"80"`
			Body    RollbackRequest
		}) (*struct{ Body rampart.ModelVersion }, error) {
			v, err := s.Rollback(ctx, in.ModelID, in.Body.ToVersion)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.ModelVersion }{Body: v}, nil
		}))

	huma.Register(a.huma, op("export-model-version", http.MethodPost, "/v1/models/{model_id}/versions/{version}/export",
		"Download a version's weights; needs an explicit export grant, audited (MODEL-4)", tag),
		wrap(log, func(ctx context.Context, in *modelVersionPath) (*exportOut, error) {
			x, err := s.Export(ctx, in.ModelID, in.Version)
			if err != nil {
				return nil, err
			}
			return &exportOut{ContentType: "application/octet-stream", Digest: x.Version.Digest, Version: x.Version.Version, Body: x.Artifact}, nil
		}))

	huma.Register(a.huma, created(op("create-export-grant", http.MethodPost, "/v1/models/{model_id}/export-grants",
		"Let another principal export this model's weights (MODEL-4)", tag)),
		wrap(log, func(ctx context.Context, in *struct {
			ModelID string `path:"model_id" maxLength:"80"`
			Body    ExportGrantRequest
		}) (*struct{ Body rampart.ExportGrant }, error) {
			g, err := s.GrantExport(ctx, in.ModelID, in.Body.PrincipalID, time.Duration(in.Body.TTLSeconds)*time.Second)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.ExportGrant }{Body: g}, nil
		}))

	huma.Register(a.huma, op("list-export-grants", http.MethodGet, "/v1/models/{model_id}/export-grants", "List a model's export grants", tag),
		wrap(log, func(ctx context.Context, in *modelPath) (*listOut[rampart.ExportGrant], error) {
			gs, err := s.ListExportGrants(ctx, in.ModelID)
			if err != nil {
				return nil, err
			}
			return newList(gs, ""), nil
		}))

	huma.Register(a.huma, op("revoke-export-grant", http.MethodDelete, "/v1/models/{model_id}/export-grants/{export_grant_id}", "Revoke an export grant", tag),
		wrap(log, func(ctx context.Context, in *struct {
			ModelID       string `path:"model_id" maxLength:"80"`
			ExportGrantID string `path:"export_grant_id" maxLength:"80"`
		}) (*struct{}, error) {
			return nil, s.RevokeExportGrant(ctx, in.ModelID, in.ExportGrantID)
		}))
}

// ImportModel uploads model bytes to the import route (the CLI's `model
// import`); q carries name, digest and the optional card fields.
func (c *Client) ImportModel(ctx context.Context, q url.Values, model []byte) (rampart.ModelVersion, error) {
	var v rampart.ModelVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+ImportPath+"?"+q.Encode(), bytes.NewReader(model))
	if err != nil {
		return v, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	return v, decode(resp, &v)
}

// ExportModel downloads a version's weights (needs an export grant) and
// returns them with the digest the server reports.
func (c *Client) ExportModel(ctx context.Context, modelID string, version int) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/models/%s/versions/%d/export", c.BaseURL, url.PathEscape(modelID), version), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil, "", decode(resp, nil)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, registry.MaxImportSize+1))
	if err != nil {
		return nil, "", err
	}
	return b, resp.Header.Get("X-Rampart-Digest"), nil
}
