// Package enforce applies an authorization decision the one way every
// service must: decide with authz against the concrete object, record the
// decision in the audit log before acting (AUDIT-3; the log fails closed, so
// an unrecordable action is refused with 503), and record the outcome of an
// allowed action that then fails. Services used to carry copies of this.
package enforce

import (
	"context"
	"errors"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
)

// Recorder decides and records.
type Recorder struct {
	Audit rampart.Auditor
	Now   func() time.Time
}

// Outcome is an allowed, recorded action; Done records its failure.
type Outcome struct {
	r     *Recorder
	Event rampart.AuditEvent
}

// Unavailable is the error of an action refused because its audit record
// could not be written.
func Unavailable(err error) error {
	return &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable; action refused", Err: err}
}

func (r *Recorder) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// Decide authorizes p for action on res and records the decision. A denial
// returns the decision's error (404 for foreign objects, TEN-1; 403 inside
// the tenant) after recording it.
func (r *Recorder) Decide(ctx context.Context, p rampart.Principal, requestID string, action authz.Action, res authz.Resource, details map[string]string) (*Outcome, error) {
	d := authz.Decide(p, action, res)
	ev := rampart.AuditEvent{Time: r.now().UTC(), TenantID: p.TenantID, Principal: p.ID, Role: p.Role,
		Action: string(action), Resource: res.Kind + "/" + res.ID, Allow: d.Allow, Reason: d.Reason,
		RequestID: requestID, Details: details, Outcome: "ok"}
	if !d.Allow {
		ev.Outcome = string(rampart.ErrorCode(d.Err(res.Kind)))
	}
	if err := r.Audit.Record(ctx, ev); err != nil {
		return nil, Unavailable(err)
	}
	if !d.Allow {
		return nil, d.Err(res.Kind)
	}
	return &Outcome{r: r, Event: ev}, nil
}

// Guard is Decide for the caller in ctx.
func (r *Recorder) Guard(ctx context.Context, action authz.Action, res authz.Resource, details map[string]string) (rampart.Caller, *Outcome, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return c, nil, rampart.ErrUnauthenticated
	}
	o, err := r.Decide(ctx, c.Principal, c.RequestID, action, res, details)
	return c, o, err
}

// Done records err as the outcome of the allowed action and returns it (nil
// records nothing: success was recorded with the decision).
func (o *Outcome) Done(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	o.Event.Outcome = string(rampart.ErrorCode(err))
	o.Event.Time = o.r.now().UTC()
	if aerr := o.r.Audit.Record(ctx, o.Event); aerr != nil {
		return errors.Join(err, Unavailable(aerr))
	}
	return err
}
