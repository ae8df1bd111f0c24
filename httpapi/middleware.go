package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authn"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	authFail *prometheus.CounterVec

	series sync.Map // routeCode → *routeSeries: looked up once per route and code
}

type routeCode struct {
	route string
	code  int
}

type routeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts a request of route answered with code and its duration.
func (m *httpMetrics) observe(route string, code int, d time.Duration) {
	k := routeCode{route, code}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &routeSeries{requests: m.requests.WithLabelValues(route, strconv.Itoa(code)),
			duration: m.duration.WithLabelValues(route)})
	}
	rs := v.(*routeSeries)
	rs.requests.Inc()
	rs.duration.Observe(d.Seconds())
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_http_requests_total",
			Help: "HTTP requests by route pattern and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rampart_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern.", Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18)}, []string{"route"}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rampart_authn_failures_total",
			Help: "Refused credentials by reason."}, []string{"reason"}),
	}
	reg.MustRegister(m.requests, m.duration, m.authFail)
	return m
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(c int) {
	if s.status == 0 {
		s.status = c
	}
	s.ResponseWriter.WriteHeader(c)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush keeps Server-Sent Events working through the wrapper.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// middleware is the outer chain: request ID, security headers, recovery,
// body limit, authentication, metrics.
func (a *API) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := rampart.NewID(rampart.PrefixRequest)
		ctx := rampart.WithRequestID(r.Context(), rid)
		// Header.Set of each, with one allocation for the six values (each
		// slice capped, so a later Add copies instead of overwriting).
		h := w.Header()
		hv := make([]string, 6)
		hv[0], hv[1], hv[2], hv[3], hv[4], hv[5] = rid, "nosniff", "no-store", "no-referrer", "DENY", "default-src 'none'; frame-ancestors 'none'"
		h["X-Request-Id"] = hv[0:1:1]
		h["X-Content-Type-Options"] = hv[1:2:2]
		h["Cache-Control"] = hv[2:3:3]
		h["Referrer-Policy"] = hv[3:4:4]
		h["X-Frame-Options"] = hv[4:5:5]
		h["Content-Security-Policy"] = hv[5:6:6]
		sw := &statusWriter{ResponseWriter: w}
		inner, fastRoute := r, ""
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.deps.Log.ErrorContext(ctx, "panic", "request_id", rid, "panic", v)
				if sw.status == 0 {
					writeProblem(sw, newProblem(rampart.CodeInternal, "an internal error occurred; quote the request ID to the operator", "", rid))
				}
			}
			// The mux sets the pattern on the request it was handed.
			route := inner.Pattern
			if fastRoute != "" {
				route = fastRoute
			}
			if route == "" {
				route = "unmatched"
			}
			a.metrics.observe(route, sw.status, time.Since(start))
		}()
		// Every body is bounded: JSON bodies by MaxJSONBody, registered
		// streaming routes (uploads) by their own limit.
		limit := a.bodyLimit(r)
		if r.ContentLength > limit {
			writeProblem(sw, newProblem(rampart.CodeTooLarge, "request body exceeds "+strconv.FormatInt(limit, 10)+" bytes", "", rid))
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		if public(r.URL.Path) {
			inner = r.WithContext(ctx)
			next.ServeHTTP(sw, inner)
			return
		}
		tok, ok := bearer(r)
		var p rampart.Principal
		var k rampart.APIKey
		var err error
		if !ok {
			err = &authn.Failure{Reason: "missing"}
		} else {
			p, k, err = a.deps.Authn.Authenticate(ctx, tok)
		}
		if err != nil {
			a.refuse(sw, r.WithContext(ctx), err)
			return
		}
		ctx = rampart.WithCaller(ctx, rampart.Caller{Principal: p, KeyID: k.ID, RequestID: rid})
		inner = r.WithContext(ctx)
		if a.fast != nil && !a.fastOff.Load() {
			if pat, ok := a.fast.serve(a.mux, sw, inner); ok {
				fastRoute = pat
				return
			}
		}
		next.ServeHTTP(sw, inner)
	})
}

// StreamingRoute lets requests to method + a path matching pattern (a
// ServeMux-style pattern, e.g. "/v1/datasets/{id}/versions") carry bodies up
// to max bytes. Call before serving.
func (a *API) StreamingRoute(method, pattern string, max int64) {
	m := http.NewServeMux()
	m.HandleFunc(method+" "+pattern, func(http.ResponseWriter, *http.Request) {})
	a.streaming = append(a.streaming, streamRoute{mux: m, max: max})
	// All routes in one mux too, so a request is matched once, not once per
	// route (issue 7: the prediction routes' per-request cost).
	if a.streamAll == nil {
		a.streamAll = &streamMux{mux: http.NewServeMux()}
	}
	a.streamAll.add(method+" "+pattern, max)
}

type streamRoute struct {
	mux *http.ServeMux
	max int64
}

// streamMux matches every streaming route at once. It stands in for the
// route-by-route loop only while that gives the same answers: patterns that
// could overlap (where the loop takes the first registered, the mux the most
// specific or panics) switch it off. A match is looked up by the pattern
// the mux reports, so its redirects (unclean paths) answer as the loop does.
type streamMux struct {
	mux    *http.ServeMux
	limits map[string]int64 // pattern → limit
	off    bool
}

func (m *streamMux) add(pattern string, max int64) {
	if m.limits == nil {
		m.limits = map[string]int64{}
	}
	for p := range m.limits {
		if overlap(p, pattern) {
			m.off = true
		}
	}
	m.limits[pattern] = max
	func() {
		defer func() {
			if recover() != nil {
				m.off = true
			}
		}()
		m.mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
	}()
}

// overlap reports whether two "METHOD /path" patterns could match one
// request: methods equal (or GET and HEAD) and, segment by segment, equal
// literals or a wildcard on either side (conservative: a "{x...}" or a
// trailing "/" overlaps everything after it).
func overlap(p, q string) bool {
	pm, pp, _ := strings.Cut(p, " ")
	qm, qp, _ := strings.Cut(q, " ")
	get := func(m string) bool { return m == http.MethodGet || m == http.MethodHead }
	if pm != qm && !(get(pm) && get(qm)) {
		return false
	}
	ps, qs := strings.Split(pp, "/"), strings.Split(qp, "/")
	for i := 0; i < len(ps) && i < len(qs); i++ {
		a, b := ps[i], qs[i]
		if strings.HasSuffix(a, "...}") || strings.HasSuffix(b, "...}") || a == "" && i == len(ps)-1 || b == "" && i == len(qs)-1 {
			return true
		}
		if a != b && !strings.HasPrefix(a, "{") && !strings.HasPrefix(b, "{") {
			return false
		}
	}
	return len(ps) == len(qs) || ps[len(ps)-1] == "" || qs[len(qs)-1] == ""
}

func (a *API) bodyLimit(r *http.Request) int64 {
	if m := a.streamAll; m != nil && !m.off {
		_, p := m.mux.Handler(r)
		if p == "" {
			return MaxJSONBody
		}
		if l, ok := m.limits[p]; ok {
			return l
		}
	}
	for _, s := range a.streaming {
		if _, p := s.mux.Handler(r); p != "" {
			return s.max
		}
	}
	return MaxJSONBody
}

// bearer extracts the credential, bounding it before any parsing.
func bearer(r *http.Request) (string, bool) {
	v := r.Header.Get("Authorization")
	if len(v) < 7 || len(v) > 7+authn.MaxTokenLen+16 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(v[7:]), true
}

// refuse answers 401 and records the failure (AUDIT-3) without the
// credential itself.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	rid := rampart.RequestID(ctx)
	var f *authn.Failure
	if !errors.As(err, &f) {
		writeProblem(w, problemFor(ctx, a.deps.Log, err))
		return
	}
	a.metrics.authFail.WithLabelValues(f.Reason).Inc()
	ev := rampart.AuditEvent{Time: a.deps.Now().UTC(), Action: "authn.failure", Resource: "key/" + f.KeyID,
		Allow: false, Reason: f.Reason, Outcome: string(rampart.CodeUnauthenticated), RequestID: rid,
		Details: map[string]string{"method": r.Method, "path": truncate(r.URL.Path, 200)}}
	if err := a.deps.Audit.Record(ctx, ev); err != nil {
		writeProblem(w, problemFor(ctx, a.deps.Log, &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable", Err: err}))
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
	writeProblem(w, newProblem(rampart.CodeUnauthenticated, "missing or invalid credential", "", rid))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
