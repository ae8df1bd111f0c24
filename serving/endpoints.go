package serving

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
)

// CreateInput is a new endpoint.
type CreateInput struct {
	Name string
	// Model is a model ID or name of the caller's tenant.
	Model string
	// Version to serve; 0 means the production version, else the latest.
	Version int
	Policy  rampart.GuardPolicy
}

// UpdateInput changes an endpoint: a version switch (rollback, MODEL-6)
// and/or a new policy. Nil fields stay.
type UpdateInput struct {
	Version *int
	Policy  *rampart.GuardPolicy
}

func (s *Service) modelOf(ctx context.Context, tenantID, ref string) (rampart.Model, error) {
	var m rampart.Model
	var err error
	if rampart.ValidID(rampart.PrefixModel, ref) {
		m, err = s.models.GetModel(ctx, tenantID, ref)
	} else {
		m, err = s.models.GetModelByName(ctx, tenantID, ref)
	}
	if errors.Is(err, rampart.ErrNotFound) {
		return m, &rampart.Error{Code: rampart.CodeNotFound, Message: "model not found"}
	}
	return m, err
}

// Create creates an endpoint on a model version of the caller's tenant. The
// version is loaded and verified (MODEL-1) before the endpoint exists.
func (s *Service) Create(ctx context.Context, in CreateInput) (rampart.Endpoint, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.Endpoint{}, rampart.ErrUnauthenticated
	}
	if len(in.Model) > 80 {
		return rampart.Endpoint{}, rampart.Invalid("model", "model must be a model ID or name")
	}
	m, err := s.modelOf(ctx, c.Principal.TenantID, in.Model)
	if err != nil {
		return rampart.Endpoint{}, err
	}
	res := authz.Resource{Kind: "endpoint", TenantID: c.Principal.TenantID}
	_, a, err := s.decide(ctx, authz.EndpointCreate, res, map[string]string{"name": truncate(in.Name, 63), "model": m.ID})
	if err != nil {
		return rampart.Endpoint{}, err
	}
	if err := CheckName(in.Name); err != nil {
		return rampart.Endpoint{}, a.Done(ctx, err)
	}
	pol, err := normPolicy(in.Policy)
	if err != nil {
		return rampart.Endpoint{}, a.Done(ctx, err)
	}
	v := in.Version
	switch {
	case v < 0:
		return rampart.Endpoint{}, a.Done(ctx, rampart.Invalid("version", "version must be ≥ 0"))
	case v == 0 && m.ProductionVersion > 0:
		v = m.ProductionVersion
	case v == 0:
		v = m.LatestVersion
	}
	if v == 0 {
		return rampart.Endpoint{}, a.Done(ctx, rampart.Invalid("model", "the model has no version"))
	}
	now := s.now().UTC()
	ep := rampart.Endpoint{ID: rampart.NewID(rampart.PrefixEndpoint), TenantID: c.Principal.TenantID, Name: in.Name, ModelID: m.ID,
		ModelName: m.Name, ModelVersion: v, Policy: pol, CreatedBy: c.Principal.ID, CreatedAt: now, UpdatedAt: now, Generation: 1}
	sm, err := s.load(ctx, ep)
	if err != nil {
		return rampart.Endpoint{}, a.Done(ctx, err)
	}
	ep.ModelDigest = sm.version.Digest
	if err := s.store.CreateEndpoint(ctx, ep); err != nil {
		return rampart.Endpoint{}, a.Done(ctx, err)
	}
	s.invalidate()
	return ep, s.record(ctx, c, "endpoint.created", ep, map[string]string{"version": strconv.Itoa(v)})
}

// record writes a follow-up event of a completed change (AUDIT-5: the
// deployment link model version → endpoint carries the model digest).
func (s *Service) record(ctx context.Context, c rampart.Caller, action string, ep rampart.Endpoint, details map[string]string) error {
	if details == nil {
		details = map[string]string{}
	}
	details["model"] = ep.ModelID
	details["name"] = ep.Name
	ev := rampart.AuditEvent{Time: s.now().UTC(), TenantID: ep.TenantID, Principal: c.Principal.ID, Role: c.Principal.Role,
		Action: action, Resource: "endpoint/" + ep.ID, Allow: true, Outcome: "ok", RequestID: c.RequestID,
		Digest: ep.ModelDigest, Details: details}
	if err := s.audit.Record(ctx, ev); err != nil {
		return unavailable(err)
	}
	return nil
}

// authorized loads an endpoint for action.
func (s *Service) authorized(ctx context.Context, ref string, action authz.Action, details map[string]string) (rampart.Endpoint, rampart.Caller, *audited, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.Endpoint{}, c, nil, rampart.ErrUnauthenticated
	}
	ep, granted, err := s.lookup(ctx, c, ref)
	if err != nil {
		return ep, c, nil, err
	}
	_, a, err := s.decide(ctx, action, resourceOf(ep, granted), details)
	return ep, c, a, err
}

// Get returns an endpoint (own, or granted to the caller).
func (s *Service) Get(ctx context.Context, ref string) (rampart.Endpoint, error) {
	ep, _, _, err := s.authorized(ctx, ref, authz.EndpointRead, nil)
	return ep, err
}

// List lists the caller's tenant's endpoints.
func (s *Service) List(ctx context.Context, p rampart.Page) ([]rampart.Endpoint, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	_, a, err := s.decide(ctx, authz.EndpointRead, authz.Resource{Kind: "endpoint", TenantID: c.Principal.TenantID}, map[string]string{"list": "true"})
	if err != nil {
		return nil, "", err
	}
	eps, next, err := s.store.ListEndpoints(ctx, c.Principal.TenantID, p)
	return eps, next, a.Done(ctx, err)
}

// Update switches the served version and/or the policy. A new version is
// loaded and verified before the switch, and requests in flight finish on
// the version they started with, so a switch under load fails no request
// (MODEL-6).
func (s *Service) Update(ctx context.Context, ref string, in UpdateInput) (rampart.Endpoint, error) {
	details := map[string]string{}
	if in.Version != nil {
		details["version"] = strconv.Itoa(*in.Version)
	}
	ep, c, a, err := s.authorized(ctx, ref, authz.EndpointUpdate, details)
	if err != nil {
		return ep, err
	}
	next := ep
	if in.Policy != nil {
		if next.Policy, err = normPolicy(*in.Policy); err != nil {
			return ep, a.Done(ctx, err)
		}
	}
	if in.Version != nil && *in.Version != ep.ModelVersion {
		m, err := s.modelOf(ctx, ep.TenantID, ep.ModelID)
		if err != nil {
			return ep, a.Done(ctx, err)
		}
		if *in.Version < 1 || *in.Version > m.LatestVersion {
			return ep, a.Done(ctx, rampart.Invalid("version", "version must be 1..%d", m.LatestVersion))
		}
		next.ModelVersion, next.ModelDigest = *in.Version, ""
		sm, err := s.load(ctx, next)
		if err != nil {
			return ep, a.Done(ctx, err)
		}
		next.ModelDigest = sm.version.Digest
	}
	next.Generation++
	next.UpdatedAt = s.now().UTC()
	if err := s.store.UpdateEndpoint(ctx, next); err != nil {
		return ep, a.Done(ctx, err)
	}
	s.invalidate()
	return next, s.record(ctx, c, "endpoint.updated", next, map[string]string{"version": strconv.Itoa(next.ModelVersion),
		"from_version": strconv.Itoa(ep.ModelVersion)})
}

// Delete removes an endpoint and its grants.
func (s *Service) Delete(ctx context.Context, ref string) error {
	ep, _, a, err := s.authorized(ctx, ref, authz.EndpointDelete, nil)
	if err != nil {
		return err
	}
	if err := s.store.DeleteEndpoint(ctx, ep.TenantID, ep.ID); err != nil {
		return a.Done(ctx, err)
	}
	s.invalidate()
	s.mu.Lock()
	delete(s.served, ep.ID)
	delete(s.drift, ep.ID)
	s.mu.Unlock()
	return nil
}

// Grant gives another tenant (toTenant) or one principal (toPrincipal)
// access to predict with the endpoint.
func (s *Service) Grant(ctx context.Context, ref, toTenant, toPrincipal string) (rampart.EndpointGrant, error) {
	ep, c, a, err := s.authorized(ctx, ref, authz.EndpointGrant, map[string]string{"to_tenant": truncate(toTenant, 80), "to_principal": truncate(toPrincipal, 80)})
	if err != nil {
		return rampart.EndpointGrant{}, err
	}
	switch {
	case (toTenant == "") == (toPrincipal == ""):
		return rampart.EndpointGrant{}, a.Done(ctx, rampart.Invalid("to", "give exactly one of tenant_id and principal_id"))
	case toTenant != "" && !rampart.ValidID(rampart.PrefixTenant, toTenant):
		return rampart.EndpointGrant{}, a.Done(ctx, rampart.Invalid("tenant_id", "not a tenant ID"))
	case toPrincipal != "" && !rampart.ValidID(rampart.PrefixPrincipal, toPrincipal):
		return rampart.EndpointGrant{}, a.Done(ctx, rampart.Invalid("principal_id", "not a principal ID"))
	case toTenant == ep.TenantID:
		return rampart.EndpointGrant{}, a.Done(ctx, rampart.Invalid("tenant_id", "the endpoint's own tenant needs no grant"))
	}
	g := rampart.EndpointGrant{ID: rampart.NewID(rampart.PrefixEndpointGrant), TenantID: ep.TenantID, EndpointID: ep.ID,
		ToTenant: toTenant, ToPrincipal: toPrincipal, GrantedBy: c.Principal.ID, CreatedAt: s.now().UTC()}
	if err := s.store.CreateEndpointGrant(ctx, g); err != nil {
		return g, a.Done(ctx, err)
	}
	s.invalidate()
	return g, nil
}

// Grants lists an endpoint's grants.
func (s *Service) Grants(ctx context.Context, ref string) ([]rampart.EndpointGrant, error) {
	ep, _, a, err := s.authorized(ctx, ref, authz.EndpointGrant, map[string]string{"list": "true"})
	if err != nil {
		return nil, err
	}
	gs, err := s.store.ListEndpointGrants(ctx, ep.TenantID, ep.ID)
	return gs, a.Done(ctx, err)
}

// Revoke revokes a grant of the endpoint.
func (s *Service) Revoke(ctx context.Context, ref, grantID string) error {
	ep, _, a, err := s.authorized(ctx, ref, authz.EndpointGrant, map[string]string{"revoke": truncate(grantID, 80)})
	if err != nil {
		return err
	}
	gs, err := s.store.ListEndpointGrants(ctx, ep.TenantID, ep.ID)
	if err != nil {
		return a.Done(ctx, err)
	}
	for _, g := range gs {
		if g.ID == grantID {
			err := s.store.RevokeEndpointGrant(ctx, ep.TenantID, grantID, s.now().UTC())
			s.invalidate()
			return a.Done(ctx, err)
		}
	}
	return a.Done(ctx, &rampart.Error{Code: rampart.CodeNotFound, Message: "grant not found"})
}

var _ = fmt.Sprint
