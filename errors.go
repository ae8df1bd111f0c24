package rampart

import (
	"errors"
	"fmt"
	"strings"
)

// Code is the closed set of error codes; each maps to one HTTP status and
// one stable problem type URI in httpapi.
type Code string

// The error codes (DESIGN.md "Errors, config, logs").
const (
	CodeInvalid         Code = "invalid"
	CodeUnauthenticated Code = "unauthenticated"
	CodeForbidden       Code = "forbidden"
	CodeNotFound        Code = "not_found"
	CodeConflict        Code = "conflict"
	CodeRateLimited     Code = "rate_limited"
	CodeTooLarge        Code = "too_large"
	CodeUnavailable     Code = "unavailable"
	CodeInternal        Code = "internal"
)

// Codes lists every code in a stable order.
var Codes = []Code{CodeInvalid, CodeUnauthenticated, CodeForbidden, CodeNotFound, CodeConflict,
	CodeRateLimited, CodeTooLarge, CodeUnavailable, CodeInternal}

// Error is Rampart's one error type. Message is safe to show to the caller;
// internals belong in a wrapped error (Err), which is logged, never echoed.
type Error struct {
	Code    Code
	Message string
	Field   string // the request field at fault, when there is one
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		// A message made from the wrapped error already says it: once is enough.
		if es := e.Err.Error(); e.Message != "" && strings.Contains(e.Message, es) {
			return fmt.Sprintf("%s: %s", e.Code, e.Message)
		} else if e.Message == "" {
			return fmt.Sprintf("%s: %s", e.Code, es)
		}
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches any *Error with the same code, so errors.Is(err, ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == "" && t.Err == nil
}

// Sentinels for errors.Is matching by code.
var (
	ErrInvalid         = &Error{Code: CodeInvalid}
	ErrUnauthenticated = &Error{Code: CodeUnauthenticated}
	ErrForbidden       = &Error{Code: CodeForbidden}
	ErrNotFound        = &Error{Code: CodeNotFound}
	ErrConflict        = &Error{Code: CodeConflict}
	ErrRateLimited     = &Error{Code: CodeRateLimited}
	ErrTooLarge        = &Error{Code: CodeTooLarge}
	ErrUnavailable     = &Error{Code: CodeUnavailable}
	ErrInternal        = &Error{Code: CodeInternal}
)

// Errorf builds an *Error with a formatted, caller-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid builds an invalid-input error naming the field at fault.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, CodeInternal for anything unknown.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
