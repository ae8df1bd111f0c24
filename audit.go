package rampart

import (
	"context"
	"time"
)

// AuditEvent is one security-relevant action as the services report it
// (AUDIT-3). The audit log canonicalises it, HMACs Sensitive values with the
// tenant's key and appends it to the Merkle log.
type AuditEvent struct {
	Time      time.Time
	TenantID  string
	Principal string
	Role      Role
	Action    string
	Resource  string // kind/id, e.g. "principal/pr_…"
	Allow     bool
	Reason    string
	Outcome   string // "ok", "pending" or the error code
	RequestID string
	// Digest is a content digest, "sha256:<hex>" (a bare 64-hex SHA-256 is
	// accepted), never content.
	Digest string
	// Details are small non-secret values (names, counts).
	Details map[string]string
	// Sensitive values are HMAC'd per tenant before they reach the log.
	Sensitive map[string]string
	// AckOnWrite lets Record return once the event is committed to the
	// audit store, surviving a crash of the server, with the flush to disk
	// following in the background within milliseconds: for high-volume
	// read-only events (predictions), so that each does not wait for its own
	// fsync. State changes never set it.
	AckOnWrite bool
}

// Auditor records events. Record returns only once the event is durable; an
// error means the action must be refused (the log fails closed).
type Auditor interface {
	Record(ctx context.Context, ev AuditEvent) error
}

// Caller is who is making the current request.
type Caller struct {
	Principal Principal
	KeyID     string
	RequestID string
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx; ok is false for anonymous contexts.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok && c.Principal.ID != ""
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request ID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID in ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}
