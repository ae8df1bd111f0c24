package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart"
)

// ProblemTypeBase prefixes every problem type: the type of an error is
// ProblemTypeBase + its code, stable across releases (docs/errors.md).
const ProblemTypeBase = "urn:rampart:problem:"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Code      rampart.Code        `json:"code"`
	Field     string              `json:"field,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []*huma.ErrorDetail `json:"errors,omitempty"`
	headers   map[string]string   `json:"-"`
}

func (p *Problem) Error() string { return p.Detail }

// GetStatus implements huma.StatusError.
func (p *Problem) GetStatus() int { return p.Status }

// ContentType makes huma send application/problem+json.
func (p *Problem) ContentType(string) string { return "application/problem+json" }

// GetHeaders lets huma send extra headers (Retry-After).
func (p *Problem) GetHeaders() http.Header {
	h := http.Header{}
	for k, v := range p.headers {
		h.Set(k, v)
	}
	return h
}

var statusOf = map[rampart.Code]int{
	rampart.CodeInvalid:         http.StatusBadRequest,
	rampart.CodeUnauthenticated: http.StatusUnauthorized,
	rampart.CodeForbidden:       http.StatusForbidden,
	rampart.CodeNotFound:        http.StatusNotFound,
	rampart.CodeConflict:        http.StatusConflict,
	rampart.CodeRateLimited:     http.StatusTooManyRequests,
	rampart.CodeTooLarge:        http.StatusRequestEntityTooLarge,
	rampart.CodeUnavailable:     http.StatusServiceUnavailable,
	rampart.CodeInternal:        http.StatusInternalServerError,
}

var titleOf = map[rampart.Code]string{
	rampart.CodeInvalid:         "Invalid request",
	rampart.CodeUnauthenticated: "Authentication required",
	rampart.CodeForbidden:       "Forbidden",
	rampart.CodeNotFound:        "Not found",
	rampart.CodeConflict:        "Conflict",
	rampart.CodeRateLimited:     "Too many requests",
	rampart.CodeTooLarge:        "Request too large",
	rampart.CodeUnavailable:     "Service unavailable",
	rampart.CodeInternal:        "Internal error",
}

// StatusOf returns the HTTP status of an error code.
func StatusOf(c rampart.Code) int { return statusOf[c] }

func codeForStatus(status int) rampart.Code {
	for c, s := range statusOf {
		if s == status {
			return c
		}
	}
	switch {
	case status == http.StatusUnprocessableEntity, status == http.StatusUnsupportedMediaType,
		status == http.StatusMethodNotAllowed, status == http.StatusNotAcceptable:
		return rampart.CodeInvalid
	case status >= 500:
		return rampart.CodeInternal
	}
	return rampart.CodeInvalid
}

// problemFor is the one error → HTTP mapping. Unknown errors become
// "internal" and are logged with the request ID, never echoed.
func problemFor(ctx context.Context, log *slog.Logger, err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	rid := rampart.RequestID(ctx)
	var re *rampart.Error
	if !errors.As(err, &re) || re.Code == rampart.CodeInternal {
		log.ErrorContext(ctx, "internal error", "request_id", rid, "err", err)
		return newProblem(rampart.CodeInternal, "an internal error occurred; quote the request ID to the operator", "", rid)
	}
	if re.Code == rampart.CodeUnavailable && re.Err != nil {
		log.ErrorContext(ctx, "unavailable", "request_id", rid, "err", err)
	}
	msg := re.Message
	if msg == "" {
		msg = titleOf[re.Code]
	}
	pr := newProblem(re.Code, msg, re.Field, rid)
	if re.Code == rampart.CodeRateLimited {
		pr.headers = map[string]string{"Retry-After": "1"}
	}
	// A more specific problem (a guard's rejection, issue 7) keeps the
	// code's status and adds its own stable type and Retry-After.
	var sp specificProblem
	if errors.As(err, &sp) {
		if k := sp.ProblemKind(); validKind(k) {
			pr.Type = ProblemTypeBase + k
		}
		switch ra := sp.RetryAfter(); {
		case ra != "":
			pr.headers = map[string]string{"Retry-After": ra}
		case re.Code == rampart.CodeRateLimited:
			pr.headers = nil // nothing to wait for (e.g. a total budget)
		}
	}
	return pr
}

// specificProblem is an error that refines its *rampart.Error with a more
// specific problem type (urn:rampart:problem:<kind>, e.g. rate-limited,
// budget-exhausted, invalid-input, out-of-distribution,
// extraction-suspected) and, for 429s, a Retry-After in seconds ("" for
// none). The code, and so the status, stays the wrapped error's.
type specificProblem interface {
	error
	ProblemKind() string
	RetryAfter() string
}

// validKind accepts lower-case words joined by '-' (bounded), so a kind
// can never inject anything into the type URI.
func validKind(k string) bool {
	if k == "" || len(k) > 40 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

func newProblem(code rampart.Code, detail, field, rid string) *Problem {
	st, ok := statusOf[code]
	if !ok {
		code, st = rampart.CodeInternal, 500
	}
	return &Problem{Type: ProblemTypeBase + string(code), Title: titleOf[code], Status: st, Detail: detail,
		Code: code, Field: field, RequestID: rid}
}

// hookHumaErrors routes huma's own errors (validation, body size, content
// type) through the same problem format. huma exposes this only as a
// package-level hook, so it is set once, at the first New.
func hookHumaErrors() {
	huma.NewErrorWithContext = func(hctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		var ctx context.Context = context.Background()
		if hctx != nil {
			ctx = hctx.Context()
		}
		code := codeForStatus(status)
		if code == rampart.CodeInternal {
			// "unexpected error occurred": the handler returned an error we
			// did not map; never echo it.
			slog.Default().ErrorContext(ctx, "unmapped error", "request_id", rampart.RequestID(ctx), "errs", errs)
			return newProblem(code, "an internal error occurred; quote the request ID to the operator", "", rampart.RequestID(ctx))
		}
		p := newProblem(code, msg, "", rampart.RequestID(ctx))
		for _, e := range errs {
			var d huma.ErrorDetailer
			if errors.As(e, &d) {
				det := d.ErrorDetail()
				// Values are the caller's own input; drop them so a secret
				// sent by mistake is not reflected or logged.
				det.Value = nil
				p.Errors = append(p.Errors, det)
				if p.Field == "" {
					p.Field = strings.TrimPrefix(det.Location, "body.")
				}
			}
		}
		if p.Field != "" && len(p.Errors) > 0 {
			p.Detail = msg + ": " + p.Errors[0].Message + " (" + p.Errors[0].Location + ")"
		}
		return p
	}
}

// writeProblem writes p outside huma (middleware).
func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	for k, v := range p.headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
