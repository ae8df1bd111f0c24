package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/authz"
)

// AuditKey is the log's public verifier key.
type AuditKey struct {
	Key    string `json:"key" doc:"Signed-note verifier key (name+hash+Ed25519 public key)."`
	Origin string `json:"origin"`
}

// AuditCheckpoint is a signed checkpoint (C2SP tlog-checkpoint).
type AuditCheckpoint struct {
	Note      string `json:"note" doc:"The signed note: origin, size, base64 root hash, blank line, signatures."`
	Size      uint64 `json:"size"`
	Root      []byte `json:"root"`
	Timestamp []byte `json:"timestamp,omitempty" doc:"RFC 3161 TimeStampToken (DER) over SHA-256 of the checkpoint body, when a TSA is configured (AUDIT-2)."`
}

// AuditProof is a Merkle inclusion or consistency proof (RFC 6962).
type AuditProof struct {
	Index uint64   `json:"index,omitempty"`
	From  uint64   `json:"from,omitempty"`
	Size  uint64   `json:"size"`
	Proof [][]byte `json:"proof"`
}

// AuditRecord is one stored event: its decoded form and the exact bytes
// hashed into the tree.
type AuditRecord struct {
	Index uint64         `json:"index"`
	Event auditlog.Event `json:"event"`
	Raw   []byte         `json:"raw" doc:"The canonical event bytes (the Merkle leaf)."`
}

// auditAccess decides which tenant's events the caller may read and
// records the read (AUDIT-3). tenantID "" means the caller's own tenant, or
// the whole log for an operator.
func auditAccess(ctx context.Context, audit rampart.Auditor, now func() time.Time, tenantID string) (string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return "", rampart.ErrUnauthenticated
	}
	res := authz.Resource{Kind: "audit", TenantID: tenantID, ID: tenantID}
	if tenantID == "" && c.Principal.Role != rampart.RoleOperator {
		res.TenantID, res.ID = c.Principal.TenantID, c.Principal.TenantID
	}
	d := authz.Decide(c.Principal, authz.AuditRead, res)
	if err := audit.Record(ctx, rampart.AuditEvent{Time: now().UTC(), TenantID: c.Principal.TenantID, Principal: c.Principal.ID,
		Role: c.Principal.Role, Action: string(authz.AuditRead), Resource: "audit/" + res.TenantID, Allow: d.Allow,
		Reason: d.Reason, Outcome: outcome(d), RequestID: c.RequestID}); err != nil {
		return "", &rampart.Error{Code: rampart.CodeUnavailable, Message: "audit log unavailable; action refused", Err: err}
	}
	if !d.Allow {
		return "", d.Err("audit")
	}
	return res.TenantID, nil
}

// proofAccess guards the hash-only routes (key, checkpoints, proofs).
func proofAccess(ctx context.Context) error {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.ErrUnauthenticated
	}
	return authz.Decide(c.Principal, authz.AuditProof, authz.Resource{Kind: "audit"}).Err("audit")
}

// RegisterAudit adds the audit log's routes (AUDIT-1..4).
func (a *API) RegisterAudit(l *auditlog.Log) {
	log, now, audit := a.deps.Log, a.deps.Now, a.deps.Audit
	api := a.huma

	huma.Register(api, op("audit-key", http.MethodGet, "/v1/audit/key", "The audit log's public verifier key", "audit"),
		wrap(log, func(ctx context.Context, _ *struct{}) (*struct{ Body AuditKey }, error) {
			if err := proofAccess(ctx); err != nil {
				return nil, err
			}
			return &struct{ Body AuditKey }{Body: AuditKey{Key: l.VerifierKey(), Origin: l.Origin()}}, nil
		}))

	huma.Register(api, op("audit-checkpoint", http.MethodGet, "/v1/audit/checkpoint", "The latest signed checkpoint (or the one of a given size)", "audit"),
		wrap(log, func(ctx context.Context, in *struct {
			Size uint64 `query:"size" doc:"A past checkpoint's tree size; default: the latest (published now if the log grew)."`
		}) (*struct{ Body AuditCheckpoint }, error) {
			if err := proofAccess(ctx); err != nil {
				return nil, err
			}
			var cp auditlog.Checkpoint
			var err error
			if in.Size == 0 {
				cp, err = l.Publish(ctx)
			} else {
				cp, err = l.CheckpointAt(ctx, in.Size)
			}
			if err != nil {
				return nil, err
			}
			return &struct{ Body AuditCheckpoint }{Body: AuditCheckpoint{Note: string(cp.Note), Size: cp.Size, Root: cp.Root, Timestamp: cp.Timestamp}}, nil
		}))

	huma.Register(api, op("audit-inclusion-proof", http.MethodGet, "/v1/audit/proofs/inclusion", "Inclusion proof of one event in a tree size", "audit"),
		wrap(log, func(ctx context.Context, in *struct {
			Index uint64 `query:"index" required:"true"`
			Size  uint64 `query:"size" required:"true"`
		}) (*struct{ Body AuditProof }, error) {
			if err := proofAccess(ctx); err != nil {
				return nil, err
			}
			p, err := l.InclusionProof(ctx, in.Index, in.Size)
			if err != nil {
				return nil, err
			}
			return &struct{ Body AuditProof }{Body: AuditProof{Index: in.Index, Size: in.Size, Proof: nonNil(p)}}, nil
		}))

	huma.Register(api, op("audit-consistency-proof", http.MethodGet, "/v1/audit/proofs/consistency", "Consistency proof between two tree sizes", "audit"),
		wrap(log, func(ctx context.Context, in *struct {
			From uint64 `query:"from" required:"true"`
			To   uint64 `query:"to" required:"true"`
		}) (*struct{ Body AuditProof }, error) {
			if err := proofAccess(ctx); err != nil {
				return nil, err
			}
			p, err := l.ConsistencyProof(ctx, in.From, in.To)
			if err != nil {
				return nil, err
			}
			return &struct{ Body AuditProof }{Body: AuditProof{From: in.From, Size: in.To, Proof: nonNil(p)}}, nil
		}))

	huma.Register(api, op("audit-events", http.MethodGet, "/v1/audit/events", "Audit events (a tenant's principals see only their tenant)", "audit"),
		wrap(log, func(ctx context.Context, in *struct {
			PageQuery
			TenantID  string    `query:"tenant_id" maxLength:"80" doc:"Operators: filter by tenant (default: all). Others: only their own."`
			Principal string    `query:"principal" maxLength:"80"`
			Action    string    `query:"action" maxLength:"80"`
			Resource  string    `query:"resource" maxLength:"300"`
			Since     time.Time `query:"since" doc:"RFC 3339, inclusive."`
			Until     time.Time `query:"until" doc:"RFC 3339, exclusive."`
		}) (*listOut[AuditRecord], error) {
			tenant, err := auditAccess(ctx, audit, now, in.TenantID)
			if err != nil {
				return nil, err
			}
			recs, next, err := l.Events(ctx, auditlog.Query{Tenant: tenant, Principal: in.Principal, Action: in.Action,
				Resource: in.Resource, Since: in.Since, Until: in.Until, Page: in.page()})
			if err != nil {
				return nil, err
			}
			out := make([]AuditRecord, len(recs))
			for i, r := range recs {
				out[i] = AuditRecord{Index: r.Index, Event: r.Event, Raw: r.Raw}
			}
			return newList(out, next), nil
		}))

	huma.Register(api, op("audit-export", http.MethodGet, "/v1/audit/export", "A tenant's events with inclusion proofs and a signed checkpoint, as JSON lines (AUDIT-4)", "audit"),
		func(ctx context.Context, in *struct {
			TenantID string `query:"tenant_id" maxLength:"80"`
		}) (*huma.StreamResponse, error) {
			tenant, err := auditAccess(ctx, audit, now, in.TenantID)
			if err != nil {
				return nil, problemFor(ctx, log, err)
			}
			return &huma.StreamResponse{Body: func(hctx huma.Context) {
				hctx.SetHeader("Content-Type", "application/x-ndjson")
				hctx.SetStatus(http.StatusOK)
				if _, err := l.Export(ctx, hctx.BodyWriter(), tenant); err != nil {
					// Headers are gone: the signed end line is missing, so the
					// export fails verification rather than passing truncated.
					log.ErrorContext(ctx, "audit export", "request_id", rampart.RequestID(ctx), "err", err)
				}
			}}, nil
		})
}

func nonNil(p [][]byte) [][]byte {
	if p == nil {
		return [][]byte{}
	}
	return p
}
