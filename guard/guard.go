// Package guard holds the defences of the inference path (issue 7): token
// bucket rate limits and persisted query budgets (INF-1), input validation
// against the model's training schema (INF-4), out-of-distribution scoring
// against the training profile (INF-5), output minimisation (INF-2), the
// per-principal extraction monitor (INF-3) and input/prediction drift
// (INF-7). Each guard is a small value with no I/O except the budget's
// store; the serving package runs them in order.
package guard

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rampart-mlaas/rampart"
)

// Problem kinds: each guard rejection has its own stable problem type
// (urn:rampart:problem:<kind>), metric label and audit outcome.
const (
	KindRateLimited         = "rate-limited"
	KindBudgetExhausted     = "budget-exhausted"
	KindInvalidInput        = "invalid-input"
	KindOutOfDistribution   = "out-of-distribution"
	KindExtractionSuspected = "extraction-suspected"
	KindOverloaded          = "overloaded"
)

// Rejection is a guard's refusal. It wraps a *rampart.Error (which fixes
// the HTTP status) and adds the specific problem kind and, for 429s, when
// to retry. Messages never carry model internals or other callers' data.
type Rejection struct {
	Kind  string
	Err   *rampart.Error
	Retry time.Duration // 0: no Retry-After
}

func (r *Rejection) Error() string { return r.Kind + ": " + r.Err.Error() }

// Unwrap exposes the *rampart.Error to errors.As/Is.
func (r *Rejection) Unwrap() error { return r.Err }

// ProblemKind is the specific problem type suffix (httpapi).
func (r *Rejection) ProblemKind() string { return r.Kind }

// RetryAfter is the Retry-After value in whole seconds (≥ 1), or "".
func (r *Rejection) RetryAfter() string {
	if r.Retry <= 0 {
		return ""
	}
	s := int64((r.Retry + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

func reject(kind string, code rampart.Code, field string, retry time.Duration, format string, args ...any) *Rejection {
	return &Rejection{Kind: kind, Retry: retry, Err: &rampart.Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}}
}

// Invalid is an input-validation rejection (400, invalid-input).
func Invalid(field, format string, args ...any) *Rejection {
	return reject(KindInvalidInput, rampart.CodeInvalid, field, 0, format, args...)
}
