package auditlog

import (
	"context"
	"strings"

	"github.com/rampart-mlaas/rampart"
)

var _ rampart.Auditor = (*Log)(nil)

// Record implements rampart.Auditor: it appends the event and returns once it
// is durable. An error means the action must be refused (AUDIT-3: the log
// fails closed; rampart.ErrUnavailable maps to HTTP 503).
func (l *Log) Record(ctx context.Context, ev rampart.AuditEvent) error {
	_, err := l.Append(ctx, FromAuditEvent(ev))
	return err
}

// FromAuditEvent converts the services' event to the log's.
func FromAuditEvent(ev rampart.AuditEvent) Event {
	d := Deny
	if ev.Allow {
		d = Allow
	}
	out := Event{
		Time: ev.Time, Tenant: ev.TenantID, Principal: ev.Principal, Role: ev.Role, Action: ev.Action,
		Resource: ev.Resource, Decision: d, Reason: ev.Reason, Outcome: ev.Outcome, RequestID: ev.RequestID,
		Digest: normDigest(ev.Digest), Details: ev.Details, AckOnWrite: ev.AckOnWrite,
	}
	if len(ev.Sensitive) > 0 {
		out.Sensitive = make(map[string][]byte, len(ev.Sensitive))
		for k, v := range ev.Sensitive {
			out.Sensitive[k] = []byte(v)
		}
	}
	return out
}

// normDigest accepts a bare 64-hex SHA-256 (what the barrier reports) as
// well as the canonical "sha256:<hex>" form.
func normDigest(d string) string {
	if len(d) == 64 && !strings.Contains(d, ":") {
		return digestPrefix + strings.ToLower(d)
	}
	return d
}
