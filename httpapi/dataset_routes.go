package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/dataset"
)

// UploadPath is the streamed upload route; the server gives it a large
// body limit with StreamingRoute.
const UploadPath = "/v1/datasets/{dataset_id}/versions"

// UploadTimeout bounds how long one upload (body and screening) may take.
const UploadTimeout = time.Hour

// CreateDatasetRequest creates a dataset.
type CreateDatasetRequest struct {
	Name   string          `json:"name" minLength:"1" maxLength:"63" doc:"Unique name in the tenant (a-z, 0-9, . _ -)."`
	Label  string          `json:"label,omitempty" maxLength:"256" doc:"Label column: enables class balance, conflicting-duplicate and label-flip screening."`
	Schema *dataset.Schema `json:"schema,omitempty" doc:"Declared schema; uploads that violate it are refused with every violating row and column."`
}

// UploadResponse is a new version with its data audit report.
type UploadResponse struct {
	Version dataset.Version `json:"version"`
	Report  *dataset.Report `json:"report"`
}

// GrantRequest grants use of a dataset (DATA-7).
type GrantRequest struct {
	To               string        `json:"to" maxLength:"80" doc:"Grantee: a principal ID (pr_…) or a tenant ID (tn_…) of another tenant."`
	Purpose          authz.Purpose `json:"purpose" enum:"read,evaluate,train" doc:"train: the grantee may train on the data but never read rows; evaluate; read."`
	ExpiresInSeconds int64         `json:"expires_in_seconds,omitempty" minimum:"0" maximum:"157680000" doc:"0 = no expiry."`
	RequireDP        bool          `json:"require_dp,omitempty" doc:"Training must be differentially private (train grants)."`
	MaxEpsilon       *float64      `json:"max_epsilon,omitempty" doc:"Largest total ε the grantee may spend (train grants)."`
}

// PolicyRequest sets the tenant's screening policy.
type PolicyRequest struct {
	PII   string `json:"pii" enum:"warn,block,require-declaration" doc:"What to do with direct identifiers found at upload (DATA-6)."`
	Label string `json:"label" enum:"warn,quarantine" doc:"What to do with rows flagged by label screening (DATA-5)."`
}

type datasetPath struct {
	DatasetID string `path:"dataset_id" maxLength:"80"`
}

type versionPath struct {
	DatasetID string `path:"dataset_id" maxLength:"80"`
	Version   int    `path:"version" minimum:"1" maximum:"1000000000"`
}

type grantPath struct {
	GrantID string `path:"grant_id" maxLength:"80"`
}

type uploadInput struct {
	DatasetID  string `path:"dataset_id" maxLength:"80"`
	Format     string `query:"format" enum:"csv,parquet" doc:"Defaults from Content-Type (application/vnd.apache.parquet), else csv."`
	DeclarePII string `query:"declare_pii" maxLength:"200" doc:"Comma-separated identifier kinds the upload is declared to contain (policy require-declaration)."`
}

type uploadBodyKey struct{}

// RouteDatasets registers the dataset routes (issue 5).
func (a *API) RouteDatasets(s *dataset.Service) {
	log := a.deps.Log
	one := func(d dataset.Dataset, err error) (*struct{ Body dataset.Dataset }, error) {
		if err != nil {
			return nil, err
		}
		return &struct{ Body dataset.Dataset }{Body: d}, nil
	}
	huma.Register(a.huma, created(op("create-dataset", http.MethodPost, "/v1/datasets", "Create a dataset", "datasets")),
		wrap(log, func(ctx context.Context, in *struct{ Body CreateDatasetRequest }) (*struct{ Body dataset.Dataset }, error) {
			return one(s.Create(ctx, dataset.CreateInput{Name: in.Body.Name, Label: in.Body.Label, Schema: in.Body.Schema}))
		}))
	huma.Register(a.huma, op("list-datasets", http.MethodGet, "/v1/datasets", "List the tenant's datasets", "datasets"),
		wrap(log, func(ctx context.Context, in *PageQuery) (*listOut[dataset.Dataset], error) {
			ds, next, err := s.List(ctx, in.page())
			if err != nil {
				return nil, err
			}
			return newList(ds, next), nil
		}))
	huma.Register(a.huma, op("get-dataset", http.MethodGet, "/v1/datasets/{dataset_id}", "Show a dataset", "datasets"),
		wrap(log, func(ctx context.Context, in *datasetPath) (*struct{ Body dataset.Dataset }, error) {
			return one(s.Get(ctx, in.DatasetID))
		}))
	huma.Register(a.huma, op("delete-dataset", http.MethodDelete, "/v1/datasets/{dataset_id}", "Delete a dataset: crypto-shred every version (DATA-8)", "datasets"),
		wrap(log, func(ctx context.Context, in *datasetPath) (*struct{ Body dataset.Deletion }, error) {
			d, err := s.Delete(ctx, in.DatasetID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body dataset.Deletion }{Body: d}, nil
		}))

	up := created(op("upload-dataset-version", http.MethodPost, UploadPath, "Upload a new version (streamed CSV or Parquet body)", "datasets"))
	up.MaxBodyBytes = -1 // the middleware's per-route limit applies
	up.RequestBody = &huma.RequestBody{Required: true, Description: "The file: CSV (RFC 4180, UTF-8, header row) or Parquet.",
		Content: map[string]*huma.MediaType{
			"text/csv":                       {Schema: &huma.Schema{Type: "string", Format: "binary"}},
			"application/vnd.apache.parquet": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
			"application/octet-stream":       {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		}}
	up.Middlewares = huma.Middlewares{func(hctx huma.Context, next func(huma.Context)) {
		// Uploads stream: extend the connection deadlines for this request
		// only, and hand the body to the handler unread.
		deadline := time.Now().Add(UploadTimeout)
		_ = hctx.SetReadDeadline(deadline)
		if _, w := humago.Unwrap(hctx); w != nil {
			_ = http.NewResponseController(w).SetWriteDeadline(deadline)
		}
		ct := hctx.Header("Content-Type")
		next(huma.WithValue(hctx, uploadBodyKey{}, uploadBody{r: hctx.BodyReader(), contentType: ct}))
	}}
	huma.Register(a.huma, up, func(ctx context.Context, in *uploadInput) (*struct{ Body UploadResponse }, error) {
		b, _ := ctx.Value(uploadBodyKey{}).(uploadBody)
		if b.r == nil {
			b.r = strings.NewReader("")
		}
		f := dataset.Format(in.Format)
		if f == "" {
			f = dataset.FormatCSV
			if ct := strings.ToLower(b.contentType); strings.Contains(ct, "parquet") {
				f = dataset.FormatParquet
			}
		}
		var decl []string
		if in.DeclarePII != "" {
			decl = strings.Split(in.DeclarePII, ",")
		}
		v, rep, err := s.Upload(ctx, in.DatasetID, b.r, dataset.UploadInput{Format: f, DeclaredPII: decl})
		if err != nil {
			return nil, datasetProblem(ctx, a, err)
		}
		return &struct{ Body UploadResponse }{Body: UploadResponse{Version: v, Report: rep}}, nil
	})

	huma.Register(a.huma, op("list-dataset-versions", http.MethodGet, "/v1/datasets/{dataset_id}/versions", "List a dataset's versions", "datasets"),
		wrap(log, func(ctx context.Context, in *struct {
			DatasetID string `path:"dataset_id" maxLength:"80"`
			PageQuery
		}) (*listOut[dataset.Version], error) {
			vs, next, err := s.ListVersions(ctx, in.DatasetID, in.page())
			if err != nil {
				return nil, err
			}
			return newList(vs, next), nil
		}))
	huma.Register(a.huma, op("get-dataset-version", http.MethodGet, "/v1/datasets/{dataset_id}/versions/{version}", "Show a version", "datasets"),
		wrap(log, func(ctx context.Context, in *versionPath) (*struct{ Body dataset.Version }, error) {
			v, err := s.GetVersion(ctx, in.DatasetID, in.Version)
			if err != nil {
				return nil, err
			}
			return &struct{ Body dataset.Version }{Body: v}, nil
		}))
	huma.Register(a.huma, op("get-dataset-report", http.MethodGet, "/v1/datasets/{dataset_id}/versions/{version}/report",
		"A version's data audit report (DATA-4); without row-level detail for callers who may not read rows", "datasets"),
		wrap(log, func(ctx context.Context, in *versionPath) (*struct{ Body *dataset.Report }, error) {
			r, err := s.Report(ctx, in.DatasetID, in.Version)
			if err != nil {
				return nil, err
			}
			return &struct{ Body *dataset.Report }{Body: r}, nil
		}))
	huma.Register(a.huma, op("read-dataset-rows", http.MethodGet, "/v1/datasets/{dataset_id}/versions/{version}/data",
		"Download a version's rows as CSV (data providers of the tenant and read grantees; formulas escaped)", "datasets"),
		func(ctx context.Context, in *versionPath) (*huma.StreamResponse, error) {
			rc, v, err := s.ReadRows(ctx, in.DatasetID, in.Version)
			if err != nil {
				return nil, problemFor(ctx, log, err)
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				defer rc.Close()
				hctx.SetHeader("Content-Type", "text/csv; charset=utf-8")
				hctx.SetHeader("X-Rampart-Digest", "sha256:"+v.Digest)
				hctx.SetStatus(http.StatusOK)
				if _, err := io.Copy(hctx.BodyWriter(), rc); err != nil {
					log.ErrorContext(ctx, "stream dataset rows", "err", err)
					panic(http.ErrAbortHandler) // cut the response: never a silently truncated file
				}
			}}, nil
		})
	huma.Register(a.huma, op("delete-dataset-version", http.MethodDelete, "/v1/datasets/{dataset_id}/versions/{version}",
		"Delete a version: crypto-shred its data (DATA-8)", "datasets"),
		wrap(log, func(ctx context.Context, in *versionPath) (*struct{ Body dataset.Deletion }, error) {
			d, err := s.DeleteVersion(ctx, in.DatasetID, in.Version)
			if err != nil {
				return nil, err
			}
			return &struct{ Body dataset.Deletion }{Body: d}, nil
		}))

	for _, st := range []struct {
		name string
		q    bool
	}{{"quarantine", true}, {"release", false}} {
		huma.Register(a.huma, op(st.name+"-dataset-version", http.MethodPost, "/v1/datasets/{dataset_id}/versions/{version}/"+st.name,
			"Withhold (quarantine) or release the rows label screening flagged (DATA-5)", "datasets"),
			wrap(log, func(ctx context.Context, in *versionPath) (*struct{ Body dataset.Version }, error) {
				v, err := s.SetQuarantine(ctx, in.DatasetID, in.Version, st.q)
				if err != nil {
					return nil, err
				}
				return &struct{ Body dataset.Version }{Body: v}, nil
			}))
	}
	huma.Register(a.huma, created(op("create-dataset-grant", http.MethodPost, "/v1/datasets/{dataset_id}/grants", "Grant use of a dataset for a purpose (DATA-7)", "grants")),
		wrap(log, func(ctx context.Context, in *struct {
			DatasetID string `path:"dataset_id" maxLength:"80"`
			Body      GrantRequest
		}) (*struct{ Body dataset.Grant }, error) {
			b := in.Body
			g, err := s.Grant(ctx, in.DatasetID, dataset.GrantInput{To: b.To, Purpose: b.Purpose,
				ExpiresIn: time.Duration(b.ExpiresInSeconds) * time.Second, Terms: dataset.Terms{RequireDP: b.RequireDP, MaxEpsilon: b.MaxEpsilon}})
			if err != nil {
				return nil, err
			}
			return &struct{ Body dataset.Grant }{Body: g}, nil
		}))
	huma.Register(a.huma, op("list-dataset-grants", http.MethodGet, "/v1/datasets/{dataset_id}/grants", "List a dataset's grants", "grants"),
		wrap(log, func(ctx context.Context, in *struct {
			DatasetID string `path:"dataset_id" maxLength:"80"`
			PageQuery
		}) (*listOut[dataset.Grant], error) {
			gs, next, err := s.ListGrants(ctx, in.DatasetID, in.page())
			if err != nil {
				return nil, err
			}
			return newList(gs, next), nil
		}))
	huma.Register(a.huma, op("list-received-grants", http.MethodGet, "/v1/grants", "List grants given to the caller or its tenant", "grants"),
		wrap(log, func(ctx context.Context, in *PageQuery) (*listOut[dataset.Grant], error) {
			gs, next, err := s.GrantsToMe(ctx, in.page())
			if err != nil {
				return nil, err
			}
			return newList(gs, next), nil
		}))
	huma.Register(a.huma, op("revoke-dataset-grant", http.MethodDelete, "/v1/grants/{grant_id}", "Revoke a grant; it stops working on the next request", "grants"),
		wrap(log, func(ctx context.Context, in *grantPath) (*struct{ Body dataset.Grant }, error) {
			g, err := s.Revoke(ctx, in.GrantID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body dataset.Grant }{Body: g}, nil
		}))
	huma.Register(a.huma, op("list-dataset-lineage", http.MethodGet, "/v1/datasets/{dataset_id}/lineage",
		"What was derived from the dataset (deleted datasets included)", "datasets"),
		wrap(log, func(ctx context.Context, in *datasetPath) (*struct{ Body []dataset.Lineage }, error) {
			ls, err := s.Lineage(ctx, in.DatasetID)
			if err != nil {
				return nil, err
			}
			if ls == nil {
				ls = []dataset.Lineage{}
			}
			return &struct{ Body []dataset.Lineage }{Body: ls}, nil
		}))
	huma.Register(a.huma, op("get-dataset-policy", http.MethodGet, "/v1/dataset-policy", "The tenant's screening policy", "datasets"),
		wrap(log, func(ctx context.Context, _ *struct{}) (*struct{ Body dataset.Policy }, error) {
			p, err := s.Policy(ctx)
			if err != nil {
				return nil, err
			}
			return &struct{ Body dataset.Policy }{Body: p}, nil
		}))
	huma.Register(a.huma, op("set-dataset-policy", http.MethodPut, "/v1/dataset-policy", "Set the tenant's screening policy (data provider)", "datasets"),
		wrap(log, func(ctx context.Context, in *struct{ Body PolicyRequest }) (*struct{ Body dataset.Policy }, error) {
			p, err := s.SetPolicy(ctx, in.Body.PII, in.Body.Label)
			if err != nil {
				return nil, err
			}
			return &struct{ Body dataset.Policy }{Body: p}, nil
		}))
}

type uploadBody struct {
	r           io.Reader
	contentType string
}

// datasetProblem maps an upload error, listing each schema violation or
// the parse error's place in the problem's errors (DATA-4).
func datasetProblem(ctx context.Context, a *API, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = rampart.Errorf(rampart.CodeTooLarge, "upload exceeds %d bytes", mbe.Limit)
	}
	p := problemFor(ctx, a.deps.Log, err)
	var rej *dataset.RejectError
	var pe *dataset.ParseError
	switch {
	case errors.As(err, &rej):
		for _, v := range rej.Violations {
			p.Errors = append(p.Errors, &huma.ErrorDetail{Message: v.String(),
				Location: fmt.Sprintf("body.rows[%d].%s", v.Row, v.Column)})
		}
	case errors.As(err, &pe):
		p.Errors = append(p.Errors, &huma.ErrorDetail{Message: pe.Error(),
			Location: fmt.Sprintf("body.rows[%d].%s", pe.Row, pe.ColumnName)})
	}
	return p
}
