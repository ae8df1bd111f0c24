package dataset

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
)

// GrantInput is a new grant (DATA-7).
type GrantInput struct {
	// To is a principal ID (pr_…) or a tenant ID (tn_…).
	To        string
	Purpose   authz.Purpose
	ExpiresIn time.Duration // 0: no expiry
	Terms     Terms
}

// MaxGrantTTL bounds grant lifetimes.
const MaxGrantTTL = 5 * 365 * 24 * time.Hour

// GrantPurposes are the purposes a dataset grant may name.
var GrantPurposes = []authz.Purpose{authz.PurposeTrain, authz.PurposeEvaluate, authz.PurposeRead}

// Grant lets a principal or a tenant use the dataset for one purpose:
// train (never readable by the grantee), evaluate or read (DATA-7).
func (s *Service) Grant(ctx context.Context, id string, in GrantInput) (Grant, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetGrant, map[string]string{"purpose": string(in.Purpose)})
	if err != nil {
		return Grant{}, err
	}
	g, err := s.newGrant(ctx, d, in)
	if err != nil {
		return Grant{}, ev.finish(ctx, err)
	}
	ev.ev.Details["grant"] = g.ID
	ev.ev.Details["grantee_tenant"] = g.GranteeTenantID
	if g.GranteePrincipalID != "" {
		ev.ev.Details["grantee_principal"] = g.GranteePrincipalID
	}
	return g, ev.finish(ctx, s.store.CreateGrant(ctx, g))
}

func (s *Service) newGrant(ctx context.Context, d Dataset, in GrantInput) (Grant, error) {
	ok := false
	for _, p := range GrantPurposes {
		ok = ok || p == in.Purpose
	}
	if !ok {
		return Grant{}, rampart.Invalid("purpose", "purpose must be train, evaluate or read")
	}
	if in.ExpiresIn < 0 || in.ExpiresIn > MaxGrantTTL {
		return Grant{}, rampart.Invalid("expires_in_seconds", "expiry must be between 0 and %s", MaxGrantTTL)
	}
	if e := in.Terms.MaxEpsilon; e != nil && (math.IsNaN(*e) || *e <= 0 || *e > 100) {
		return Grant{}, rampart.Invalid("max_epsilon", "max_epsilon must be in (0, 100]")
	}
	if in.Terms.MaxEpsilon != nil && in.Purpose != authz.PurposeTrain {
		return Grant{}, rampart.Invalid("max_epsilon", "privacy terms apply to train grants")
	}
	if in.Terms.RequireDP && in.Purpose != authz.PurposeTrain {
		return Grant{}, rampart.Invalid("require_dp", "privacy terms apply to train grants")
	}
	c, _ := rampart.CallerFrom(ctx)
	g := Grant{ID: rampart.NewID(PrefixGrant), TenantID: d.TenantID, DatasetID: d.ID, Purpose: in.Purpose,
		Terms: in.Terms, CreatedAt: s.now().UTC(), CreatedBy: c.Principal.ID}
	if in.ExpiresIn > 0 {
		t := g.CreatedAt.Add(in.ExpiresIn)
		g.ExpiresAt = &t
	}
	// The grantee is named by an unguessable ID the grantor was given; a
	// wrong ID is "not found" whichever tenant it may belong to.
	switch {
	case rampart.ValidID(rampart.PrefixPrincipal, in.To):
		p, err := s.store.GetPrincipal(ctx, in.To)
		if errors.Is(err, rampart.ErrNotFound) {
			return Grant{}, rampart.Invalid("to", "grantee not found")
		} else if err != nil {
			return Grant{}, err
		}
		g.GranteeTenantID, g.GranteePrincipalID = p.TenantID, p.ID
	case rampart.ValidID(rampart.PrefixTenant, in.To):
		t, err := s.store.GetTenant(ctx, in.To)
		if errors.Is(err, rampart.ErrNotFound) {
			return Grant{}, rampart.Invalid("to", "grantee not found")
		} else if err != nil {
			return Grant{}, err
		}
		g.GranteeTenantID = t.ID
	default:
		return Grant{}, rampart.Invalid("to", "to must be a principal ID (pr_…) or a tenant ID (tn_…)")
	}
	if g.GranteeTenantID == d.TenantID {
		return Grant{}, rampart.Invalid("to", "grants are for other tenants; your own tenant's model developers already use its datasets")
	}
	return g, nil
}

// ListGrants lists a dataset's grants, revoked and expired ones included.
func (s *Service) ListGrants(ctx context.Context, id string, p rampart.Page) ([]Grant, string, error) {
	d, _, _, ev, err := s.authorize(ctx, id, authz.DatasetGrant, nil)
	if err != nil {
		return nil, "", err
	}
	gs, next, err := s.store.ListGrants(ctx, d.ID, p)
	return gs, next, ev.finish(ctx, err)
}

// GrantsToMe lists grants that name the caller or its tenant: how a
// grantee discovers what it may use.
func (s *Service) GrantsToMe(ctx context.Context, p rampart.Page) ([]Grant, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	gs, next, err := s.store.ListGrantsTo(ctx, c.Principal.ID, c.Principal.TenantID, p)
	if err != nil {
		return nil, "", err
	}
	out := gs[:0]
	for _, g := range gs {
		// Only principals whose role may use grants see them.
		if authz.Decide(c.Principal, authz.DatasetRead, authz.Resource{Kind: "dataset", ID: g.DatasetID, TenantID: g.TenantID,
			Grants: []authz.Purpose{g.Purpose}}).Allow {
			out = append(out, g)
		}
	}
	err = s.audit.Record(ctx, rampart.AuditEvent{Time: s.now().UTC(), TenantID: c.Principal.TenantID, Principal: c.Principal.ID,
		Role: c.Principal.Role, Action: "dataset.grants_received", Resource: "principal/" + c.Principal.ID, Allow: true,
		Reason: "own grants", Outcome: "ok", RequestID: c.RequestID})
	if err != nil {
		return nil, "", unavailable(err)
	}
	return out, next, nil
}

// Revoke revokes a grant; it stops working on the grantee's next request.
func (s *Service) Revoke(ctx context.Context, grantID string) (Grant, error) {
	if !rampart.ValidID(PrefixGrant, grantID) {
		return Grant{}, missing("grant")
	}
	g, err := s.store.GetGrant(ctx, grantID)
	if errors.Is(err, rampart.ErrNotFound) {
		return Grant{}, missing("grant")
	} else if err != nil {
		return Grant{}, err
	}
	d, err := s.store.GetDataset(ctx, g.DatasetID)
	if err != nil {
		return Grant{}, missing("grant")
	}
	// Authorized as a grant on the dataset; a foreign caller gets 404.
	_, ev, err := s.guard(ctx, authz.DatasetGrant, authz.Resource{Kind: "grant", ID: g.ID, TenantID: d.TenantID},
		map[string]string{"dataset": d.ID, "grant": g.ID})
	if err != nil {
		return Grant{}, err
	}
	if g.RevokedAt == nil {
		now := s.now().UTC()
		if err := s.store.RevokeGrant(ctx, g.ID, now); err != nil {
			return Grant{}, ev.finish(ctx, err)
		}
		g.RevokedAt = &now
	}
	return g, ev.finish(ctx, nil)
}
