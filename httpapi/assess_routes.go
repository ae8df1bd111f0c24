package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/rampart-mlaas/rampart"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/assess/service"
)

// CreateAssessmentRequest starts a security assessment of a model version
// (issue 8, PRIV-1..3).
type CreateAssessmentRequest struct {
	ModelID        string   `json:"model_id,omitempty" maxLength:"80" doc:"Model to assess (the caller must be able to read it); with endpoint, defaults to the served model."`
	Endpoint       string   `json:"endpoint,omitempty" maxLength:"80" doc:"Also attack this endpoint through its API as fresh service-user principals, so its guards are measured."`
	ModelVersion   int      `json:"model_version,omitempty" minimum:"0" maximum:"1000000000" doc:"0 = the latest version."`
	Attacks        []string `json:"attacks,omitempty" maxItems:"4" doc:"membership, extraction, evasion, poisoning; default: the first three."`
	Queries        int      `json:"queries,omitempty" minimum:"0" maximum:"100000" doc:"Extraction budget (100 to 100,000; 0 = 2,000)."`
	Seed           uint64   `json:"seed,omitempty"`
	HoldoutID      string   `json:"holdout_dataset_id,omitempty" maxLength:"80" doc:"Dataset of rows the model was not trained on (needed for membership inference)."`
	HoldoutVersion int      `json:"holdout_dataset_version,omitempty" minimum:"0" maximum:"1000000000"`
}

type assessmentPath struct {
	AssessmentID string `path:"assessment_id" maxLength:"80"`
}

// AssessmentPath is the route of one assessment.
const AssessmentPath = "/v1/assessments/{assessment_id}"

// ThresholdsBody is the tenant's assessment thresholds (MODEL-5).
type ThresholdsBody struct {
	Thresholds []rampart.GateSpec `json:"thresholds" maxItems:"32" doc:"Each names an assessment metric (e.g. membership.tpr_at_1pct_fpr) with min and/or max; promotion to production needs a successful assessment passing all."`
}

// RouteAssess adds the assessment routes.
func (a *API) RouteAssess(s *service.Service) {
	log, tag := a.deps.Log, "assessments"
	huma.Register(a.huma, op("get-assessment-thresholds", http.MethodGet, "/v1/assessment-thresholds", "The tenant's assessment thresholds gating promotion (MODEL-5)", tag),
		wrap(log, func(ctx context.Context, _ *struct{}) (*struct{ Body ThresholdsBody }, error) {
			th, err := s.Thresholds(ctx)
			if err != nil {
				return nil, err
			}
			return &struct{ Body ThresholdsBody }{Body: ThresholdsBody{Thresholds: th}}, nil
		}))
	huma.Register(a.huma, op("set-assessment-thresholds", http.MethodPut, "/v1/assessment-thresholds", "Replace the tenant's assessment thresholds (model developer)", tag),
		wrap(log, func(ctx context.Context, in *struct{ Body ThresholdsBody }) (*struct{ Body ThresholdsBody }, error) {
			th, err := s.SetThresholds(ctx, in.Body.Thresholds)
			if err != nil {
				return nil, err
			}
			return &struct{ Body ThresholdsBody }{Body: ThresholdsBody{Thresholds: th}}, nil
		}))
	huma.Register(a.huma, created(op("create-assessment", http.MethodPost, "/v1/assessments",
		"Start a security assessment (membership inference, extraction, evasion, poisoning drill) of a model version", tag)),
		wrap(log, func(ctx context.Context, in *struct{ Body CreateAssessmentRequest }) (*struct{ Body record.Assessment }, error) {
			as, err := s.Create(ctx, service.CreateInput{Model: in.Body.ModelID, Version: in.Body.ModelVersion, Attacks: in.Body.Attacks,
				Queries: in.Body.Queries, Seed: in.Body.Seed, HoldoutID: in.Body.HoldoutID, HoldoutVersion: in.Body.HoldoutVersion,
				Endpoint: in.Body.Endpoint})
			if err != nil {
				return nil, err
			}
			return &struct{ Body record.Assessment }{Body: as}, nil
		}))

	huma.Register(a.huma, op("get-assessment", http.MethodGet, AssessmentPath, "Show an assessment: status, reason, headline metrics", tag),
		wrap(log, func(ctx context.Context, in *assessmentPath) (*struct{ Body record.Assessment }, error) {
			as, err := s.Get(ctx, in.AssessmentID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body record.Assessment }{Body: as}, nil
		}))

	huma.Register(a.huma, op("list-model-assessments", http.MethodGet, "/v1/models/{model_id}/assessments", "List a model's assessments, newest first", tag),
		wrap(log, func(ctx context.Context, in *struct {
			ModelID string `path:"model_id" maxLength:"80"`
			Version int    `query:"version" minimum:"0" maximum:"1000000000" doc:"Only this version (0: every version)."`
		}) (*listOut[record.Assessment], error) {
			l, err := s.List(ctx, in.ModelID, in.Version)
			if err != nil {
				return nil, err
			}
			return newList(l, ""), nil
		}))

	huma.Register(a.huma, op("get-assessment-report", http.MethodGet, AssessmentPath+"/report",
		"The report of a succeeded assessment: JSON, or with format=html a self-contained HTML page with plots", tag),
		wrap(log, func(ctx context.Context, in *struct {
			AssessmentID string `path:"assessment_id" maxLength:"80"`
			Format       string `query:"format" enum:"json,html" doc:"json (default) or html"`
		}) (*struct {
			ContentType string `header:"Content-Type"`
			CSP         string `header:"Content-Security-Policy"`
			Body        []byte
		}, error) {
			r, err := s.Report(ctx, in.AssessmentID)
			if err != nil {
				return nil, err
			}
			out := &struct {
				ContentType string `header:"Content-Type"`
				CSP         string `header:"Content-Security-Policy"`
				Body        []byte
			}{ContentType: "application/json", CSP: "default-src 'none'"}
			if in.Format == "html" {
				var b bytes.Buffer
				if err := r.WriteHTML(&b); err != nil {
					return nil, err
				}
				out.ContentType, out.CSP, out.Body = "text/html; charset=utf-8", "default-src 'none'; style-src 'unsafe-inline'", b.Bytes()
				return out, nil
			}
			if out.Body, err = json.Marshal(r); err != nil {
				return nil, err
			}
			return out, nil
		}))

	ev := op("assessment-events", http.MethodGet, AssessmentPath+"/events", "Stream an assessment's progress (Server-Sent Events)", tag)
	ev.Description = "Progress messages of a running assessment; the last has done=true. Events live in the serving process."
	huma.Register(a.huma, ev, wrap(log, func(ctx context.Context, in *struct {
		AssessmentID string `path:"assessment_id" maxLength:"80"`
		After        int64  `query:"after" minimum:"0"`
	}) (*huma.StreamResponse, error) {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		ch, err := s.Stream(sctx, in.AssessmentID, in.After)
		if err != nil {
			cancel()
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			defer cancel()
			hc.SetHeader("Content-Type", "text/event-stream")
			hc.SetHeader("Cache-Control", "no-store")
			hc.SetStatus(http.StatusOK)
			w := hc.BodyWriter()
			rc := (*http.ResponseController)(nil)
			if rw, ok := w.(http.ResponseWriter); ok {
				rc = http.NewResponseController(rw)
			}
			flush := func() {
				if rc != nil {
					_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
					_ = rc.Flush()
				}
			}
			for {
				select {
				case e, ok := <-ch:
					if !ok {
						return
					}
					b, _ := json.Marshal(e)
					if _, err := fmt.Fprintf(w, "id: %s\nevent: progress\ndata: %s\n\n", strconv.FormatInt(e.Seq, 10), b); err != nil {
						return
					}
					flush()
				case <-hc.Context().Done():
					return
				}
			}
		}}, nil
	}))
}
