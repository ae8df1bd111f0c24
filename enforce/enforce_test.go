package enforce

import (
	"context"
	"errors"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
)

// memAudit records events in memory; fail makes Record fail.
type memAudit struct {
	evs  []rampart.AuditEvent
	fail bool
}

func (m *memAudit) Record(_ context.Context, ev rampart.AuditEvent) error {
	if m.fail {
		return errors.New("disk full")
	}
	m.evs = append(m.evs, ev)
	return nil
}

func TestRecorder(t *testing.T) {
	dp := rampart.Principal{ID: "pr_a", TenantID: "tn_a", Role: rampart.RoleDataProvider}
	ctx := rampart.WithCaller(context.Background(), rampart.Caller{Principal: dp, RequestID: "req_1"})
	own := authz.Resource{Kind: "dataset", ID: "ds_1", TenantID: "tn_a"}
	foreign := authz.Resource{Kind: "dataset", ID: "ds_2", TenantID: "tn_b"}
	m := &memAudit{}
	r := &Recorder{Audit: m}

	_, o, err := r.Guard(ctx, authz.DatasetCreate, own, nil)
	if err != nil || o == nil || len(m.evs) != 1 || !m.evs[0].Allow || m.evs[0].RequestID != "req_1" {
		t.Fatalf("allowed: %v %+v", err, m.evs)
	}
	if got := o.Done(ctx, rampart.Errorf(rampart.CodeConflict, "exists")); rampart.ErrorCode(got) != rampart.CodeConflict || m.evs[1].Outcome != "conflict" {
		t.Fatalf("outcome: %v %+v", got, m.evs)
	}
	if _, _, err := r.Guard(ctx, authz.DatasetCreate, foreign, nil); rampart.ErrorCode(err) != rampart.CodeNotFound || m.evs[2].Allow {
		t.Fatalf("foreign: %v %+v", err, m.evs)
	}
	if _, _, err := r.Guard(ctx, authz.JobCreate, own, nil); rampart.ErrorCode(err) != rampart.CodeForbidden {
		t.Fatalf("own denied: %v", err)
	}
	m.fail = true // fail closed
	if _, _, err := r.Guard(ctx, authz.DatasetCreate, own, nil); rampart.ErrorCode(err) != rampart.CodeUnavailable {
		t.Fatalf("audit down: %v", err)
	}
	if _, _, err := r.Guard(context.Background(), authz.DatasetCreate, own, nil); !errors.Is(err, rampart.ErrUnauthenticated) {
		t.Fatalf("anonymous: %v", err)
	}
}
