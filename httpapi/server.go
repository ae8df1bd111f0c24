// Package httpapi is Rampart's HTTP API: routes, the JSON codec, the one
// error → HTTP mapping (RFC 9457 problem+json), middleware (request IDs,
// authentication, limits, metrics) and the Client the CLI uses.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authn"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/enforce"
	"github.com/rampart-mlaas/rampart/identity"
)

// MaxJSONBody bounds every JSON request body; larger bodies get 413.
const MaxJSONBody = 64 << 10

// Deps are what the API serves.
type Deps struct {
	Identity *identity.Service
	Authn    *authn.Authenticator
	Audit    rampart.Auditor
	Log      *slog.Logger
	// Ready reports whether the server can take traffic (/readyz).
	Ready func(context.Context) error
	// Checks adds non-fatal component states to /readyz (e.g. the TSA
	// backlog): reported, never a reason to stop taking traffic.
	Checks  func(context.Context) map[string]string
	Version string
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// API is the assembled HTTP API.
type API struct {
	deps    Deps
	mux     *http.ServeMux
	huma    huma.API
	reg     *prometheus.Registry
	metrics *httpMetrics
	handler http.Handler
	// streaming lists routes allowed larger (streamed) bodies; streamAll
	// matches them all at once.
	streaming []streamRoute
	streamAll *streamMux
	// fast serves the prediction routes (predict_fast.go) unless fastOff.
	fast    *fastPredict
	fastOff atomic.Bool
	// Register adds later capabilities' routes to the same API.
	Register func(func(api huma.API))
}

var hookOnce sync.Once

// New assembles the API.
func New(d Deps) *API {
	hookOnce.Do(hookHumaErrors)
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Version == "" {
		d.Version = "dev"
	}
	mux := http.NewServeMux()
	cfg := huma.DefaultConfig("Rampart", d.Version)
	cfg.Info.Description = "Secure machine-learning-as-a-service. Every route but the health probes needs `Authorization: Bearer <API key>`."
	cfg.OpenAPIPath = "/openapi" // serves /openapi.json (and .yaml)
	cfg.DocsPath = ""            // the docs renderer loads scripts from a CDN
	cfg.SchemasPath = ""
	cfg.CreateHooks = nil // no $schema links in bodies
	cfg.RejectUnknownQueryParameters = true
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "API key rmp_<id>_<secret>"},
	}
	cfg.Security = []map[string][]string{{"bearer": {}}}
	hapi := humago.New(mux, cfg)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &API{deps: d, mux: mux, huma: hapi, reg: reg, metrics: newHTTPMetrics(reg)}
	a.Register = func(f func(huma.API)) { f(hapi) }

	a.routeHealth()
	a.routeIdentity()
	mux.Handle("GET /metrics", a.requireAction(authz.MetricsRead, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	// Anything unrouted is a problem+json 404 (after authentication, so
	// unauthenticated callers cannot map the API).
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, newProblem(rampart.CodeNotFound, "no such route: "+r.Method+" "+truncate(r.URL.Path, 200), "", rampart.RequestID(r.Context())))
	})
	a.handler = a.middleware(mux)
	return a
}

// Huma exposes the huma API so later capabilities add their operations.
func (a *API) Huma() huma.API { return a.huma }

// Metrics is the registry later capabilities add their metrics to.
func (a *API) Metrics() *prometheus.Registry { return a.reg }

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.handler.ServeHTTP(w, r) }

// Unauthenticated paths: liveness and readiness only (IAM-1).
func public(path string) bool {
	return path == "/healthz" || path == "/readyz" || strings.HasPrefix(path, "/v2/health/")
}

// requireAction guards a plain (non-huma) handler with a platform action.
func (a *API) requireAction(act authz.Action, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := a.recorder().Guard(r.Context(), act, authz.Resource{Kind: "platform"}, nil); err != nil {
			writeProblem(w, problemFor(r.Context(), a.deps.Log, err))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// recorder applies decisions through enforce (audited, fail closed).
func (a *API) recorder() *enforce.Recorder {
	return &enforce.Recorder{Audit: a.deps.Audit, Now: a.deps.Now}
}

func outcome(d authz.Decision) string {
	if d.Allow {
		return "ok"
	}
	return string(rampart.ErrorCode(d.Err("x")))
}

type healthOut struct {
	Body struct {
		Status string            `json:"status" example:"ok"`
		Checks map[string]string `json:"checks,omitempty"`
	}
}

func (a *API) routeHealth() {
	huma.Register(a.huma, huma.Operation{OperationID: "healthz", Method: http.MethodGet, Path: "/healthz",
		Summary: "Liveness probe", Tags: []string{"health"}, Security: []map[string][]string{}},
		func(ctx context.Context, _ *struct{}) (*healthOut, error) {
			o := &healthOut{}
			o.Body.Status = "ok"
			return o, nil
		})
	huma.Register(a.huma, huma.Operation{OperationID: "readyz", Method: http.MethodGet, Path: "/readyz",
		Summary: "Readiness probe", Tags: []string{"health"}, Security: []map[string][]string{}},
		func(ctx context.Context, _ *struct{}) (*healthOut, error) {
			if a.deps.Ready != nil {
				if err := a.deps.Ready(ctx); err != nil {
					a.deps.Log.WarnContext(ctx, "not ready", "err", err)
					return nil, &rampart.Error{Code: rampart.CodeUnavailable, Message: "not ready"}
				}
			}
			o := &healthOut{}
			o.Body.Status = "ready"
			if a.deps.Checks != nil {
				o.Body.Checks = a.deps.Checks(ctx)
			}
			return o, nil
		})
}

// wrap maps a handler's errors through the one error mapping.
func wrap[I, O any](log *slog.Logger, f func(context.Context, *I) (*O, error)) func(context.Context, *I) (*O, error) {
	return func(ctx context.Context, in *I) (*O, error) {
		out, err := f(ctx, in)
		if err != nil {
			return nil, problemFor(ctx, log, err)
		}
		return out, nil
	}
}
