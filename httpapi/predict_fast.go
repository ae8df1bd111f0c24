package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/rampart-mlaas/rampart/serving"
)

// fastPredict serves the three prediction routes without huma's
// reflection-driven request and response handling (issue 7: ~20 µs and ~30
// allocations per request), doing exactly what huma does for these
// operations (huma v2 Register: input predictIn / inferVersionIn — path
// parameters, raw body — and output predictOut), in the same order and
// with the same answers. Requests it cannot vouch for — any query string,
// escaped or unusual path segments, over-long parameters, anything the mux
// does not route to these operations — go through huma as before.
type fastPredict struct {
	api     huma.API
	svc     *serving.Service
	log     func(ctx context.Context, err error) *Problem
	routes  map[string]fastRoute // mux pattern → route
	bufPool sync.Pool
}

type fastRoute struct {
	op       *huma.Operation
	protocol serving.Protocol
	version  bool // /versions/{version}/
}

// enableFastPredict turns the fast path on for the routes RouteServing
// registered (by the mux patterns huma registers them under).
func (a *API) enableFastPredict(s *serving.Service) {
	oa := a.huma.OpenAPI()
	fp := &fastPredict{api: a.huma, svc: s, routes: map[string]fastRoute{},
		log: func(ctx context.Context, err error) *Problem { return problemFor(ctx, a.deps.Log, err) }}
	for path, r := range map[string]fastRoute{
		PredictPath:       {protocol: serving.ProtocolRows},
		InferPath:         {protocol: serving.ProtocolOIP},
		InferVersionsPath: {protocol: serving.ProtocolOIP, version: true},
	} {
		pi := oa.Paths[path]
		if pi == nil || pi.Post == nil {
			return // not registered as expected: huma serves everything
		}
		r.op = pi.Post
		fp.routes[http.MethodPost+" "+path] = r
	}
	a.fast = fp
}

// SetFastPredict switches the prediction routes' fast path (on by default)
// on or off; off, huma serves them. For tests that compare the two.
func (a *API) SetFastPredict(on bool) { a.fastOff.Store(!on) }

// serve answers r if it is a prediction request it can vouch for and
// reports whether it did; otherwise the caller routes r as usual. pattern
// is set to the route's pattern when it answers.
func (fp *fastPredict) serve(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) (pattern string, ok bool) {
	if r.Method != http.MethodPost || r.URL.RawQuery != "" || r.URL.ForceQuery || r.URL.RawPath != "" {
		return "", false
	}
	// Clean, plain segments only: then the mux matches this very path (no
	// redirect) and each wildcard's value is the segment as written.
	segs, ok := plainSegments(r.URL.Path)
	if !ok {
		return "", false
	}
	_, pat := mux.Handler(r)
	rt, ok := fp.routes[pat]
	if !ok {
		return "", false
	}
	var endpoint, version string
	switch {
	case rt.version && len(segs) == 6: // v2 models {endpoint} versions {version} infer
		endpoint, version = segs[2], segs[4]
	case !rt.version && len(segs) == 4: // v1 endpoints {endpoint} predict | v2 models {endpoint} infer
		endpoint = segs[2]
	default:
		return "", false
	}
	// The parameters' schemas (maxLength 80 and 20): anything longer gets
	// huma's validation error.
	if len(endpoint) > 80 || len(version) > 20 {
		return "", false
	}
	fp.handle(w, r, rt, endpoint, version)
	return pat, true
}

// plainSegments splits a clean absolute path of non-empty segments made of
// letters, digits, '-', '_', '.' and '~' (not "." or "..").
func plainSegments(p string) ([]string, bool) {
	if len(p) < 2 || p[0] != '/' || len(p) > 256 {
		return nil, false
	}
	var segs [8]string
	n, start := 0, 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
				return nil, false
			}
			continue
		}
		s := p[start:i]
		if s == "" || s == "." || s == ".." || n == len(segs) {
			return nil, false
		}
		segs[n] = s
		n++
		start = i + 1
	}
	return segs[:n], true
}

// handle is huma's operation handler for predictIn / inferVersionIn →
// predictOut, step by step.
func (fp *fastPredict) handle(w http.ResponseWriter, r *http.Request, rt fastRoute, endpoint, version string) {
	// huma's context, for its error answers only.
	hctx := func() huma.Context { return humago.NewContext(rt.op, r, w) }
	// Body: huma's read deadline (its context's SetReadDeadline) and
	// readBody (LimitReader at MaxBodyBytes; reaching the limit is 413).
	if rt.op.BodyReadTimeout > 0 {
		huma.SetReadDeadline(w, time.Now().Add(rt.op.BodyReadTimeout))
	} else if rt.op.BodyReadTimeout < 0 {
		huma.SetReadDeadline(w, time.Time{})
	}
	buf, _ := fp.bufPool.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			fp.bufPool.Put(buf)
		}
	}()
	if status, msg, errs := readBody(buf, r, rt.op.MaxBodyBytes); status != 0 {
		huma.WriteErr(fp.api, hctx(), status, msg, errs...)
		return
	}
	body := buf.Bytes()
	if len(body) == 0 && rt.op.RequestBody != nil && rt.op.RequestBody.Required {
		huma.WriteErr(fp.api, hctx(), http.StatusBadRequest, "request body is required")
		return
	}
	o, err := fp.svc.Predict(r.Context(), serving.PredictInput{Ref: endpoint, Version: version, Protocol: rt.protocol, Body: body})
	if err != nil {
		p := fp.log(r.Context(), err) // wrap's mapping
		hctx := hctx()
		var he huma.HeadersError
		if errors.As(error(p), &he) {
			for k, values := range he.GetHeaders() {
				for _, v := range values {
					hctx.AppendHeader(k, v)
				}
			}
		}
		writeResponse(fp.api, hctx, p.GetStatus(), p)
		return
	}
	// predictOut's headers in field order (huma skips empty strings), then
	// the status and the raw body.
	hv := make([]string, 4)
	h := w.Header()
	hv[0] = "application/json"
	h["Content-Type"] = hv[0:1:1]
	if o.ModelDigest != "" {
		hv[1] = o.ModelDigest
		h["X-Rampart-Model-Digest"] = hv[1:2:2]
	}
	hv[2] = strconv.FormatInt(int64(o.ModelVersion), 10)
	h["X-Rampart-Model-Version"] = hv[2:3:3]
	if o.Signature != "" {
		hv[3] = o.Signature
		h["X-Rampart-Signature"] = hv[3:4:4]
	}
	w.WriteHeader(rt.op.DefaultStatus)
	w.Write(o.Body)
}

// readBody is huma's readBody: status 0 when the body was read.
func readBody(buf *bytes.Buffer, r *http.Request, maxBytes int64) (int, string, []error) {
	var reader io.Reader = r.Body
	if r.Body == nil {
		reader = bytes.NewReader(nil)
	}
	if closer, ok := reader.(io.Closer); ok {
		defer closer.Close()
	}
	if maxBytes > 0 {
		reader = io.LimitReader(reader, maxBytes)
	}
	// Size the buffer from Content-Length (below the route's limit):
	// growing by doubling re-copied a 5.7 MB batch body, ~7 % of its CPU.
	// Beyond the first MiB the room is made only once that MiB has
	// arrived, so a client claiming a large body and sending none cannot
	// make the server hold the memory.
	var count int64
	var err error
	if n := r.ContentLength; n > 1<<20 && (maxBytes <= 0 || n < maxBytes) {
		buf.Grow(1<<20 + bytes.MinRead)
		count, err = io.Copy(buf, io.LimitReader(reader, 1<<20))
		if err == nil && count == 1<<20 {
			buf.Grow(int(n-count) + bytes.MinRead)
			var more int64
			more, err = io.Copy(buf, reader)
			count += more
		}
	} else {
		if n > 0 && n <= 1<<20 {
			buf.Grow(int(n) + bytes.MinRead)
		}
		count, err = io.Copy(buf, reader)
	}
	if maxBytes > 0 && count == maxBytes {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is too large limit=%d bytes", maxBytes), nil
	}
	if err != nil {
		var nErr net.Error
		if errors.As(err, &nErr) && nErr.Timeout() {
			return http.StatusRequestTimeout, "request body read timeout", nil
		}
		return http.StatusInternalServerError, "cannot read request body", []error{err}
	}
	return 0, "", nil
}

// writeResponse is huma's writeResponse with no content type given:
// negotiated from Accept, refined by the body's ContentTypeFilter; a 406
// when nothing fits. Like huma (writeResponseWithPanic), a failure to
// write panics (the middleware's recovery answers it).
func writeResponse(api huma.API, ctx huma.Context, status int, body any) {
	ct, err := api.Negotiate(ctx.Header("Accept"))
	if err != nil {
		notAccept := huma.NewErrorWithContext(ctx, http.StatusNotAcceptable, "unable to marshal response", err)
		ct = "application/json"
		if ctf, ok := notAccept.(huma.ContentTypeFilter); ok {
			ct = ctf.ContentType(ct)
		}
		ctx.SetHeader("Content-Type", ct)
		if e := transformAndWrite(api, ctx, http.StatusNotAcceptable, "application/json", notAccept); e != nil {
			panic(e)
		}
		panic(err)
	}
	if ctf, ok := body.(huma.ContentTypeFilter); ok {
		ct = ctf.ContentType(ct)
	}
	ctx.SetHeader("Content-Type", ct)
	if err := transformAndWrite(api, ctx, status, ct, body); err != nil {
		panic(err)
	}
}

// transformAndWrite is huma's.
func transformAndWrite(api huma.API, ctx huma.Context, status int, ct string, body any) error {
	statusStr := strconv.Itoa(status)
	tVal, tErr := api.Transform(ctx, statusStr, body)
	if tErr != nil {
		ctx.BodyWriter().Write([]byte("error transforming response"))
		return fmt.Errorf("error transforming response for %s %s %d: %w", ctx.Operation().Method, ctx.Operation().Path, status, tErr)
	}
	ctx.SetStatus(status)
	if status != http.StatusNoContent && status != http.StatusNotModified {
		if mErr := api.Marshal(ctx.BodyWriter(), ct, tVal); mErr != nil {
			if errors.Is(ctx.Context().Err(), context.Canceled) {
				ctx.SetStatus(499)
				return nil
			}
			ctx.BodyWriter().Write([]byte("error marshaling response"))
			return fmt.Errorf("error marshaling response for %s %s %d: %w", ctx.Operation().Method, ctx.Operation().Path, status, mErr)
		}
	}
	return nil
}
