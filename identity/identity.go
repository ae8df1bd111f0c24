// Package identity is the service that owns tenants, principals and API keys.
// Every method authorizes the caller against the concrete object it loaded
// (object-level checks, TEN-1) through authz and records the decision in the
// audit log before answering (AUDIT-3, fail closed).
package identity

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authn"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/enforce"
)

// Service implements the identity API.
type Service struct {
	store rampart.Store
	authn *authn.Authenticator
	audit rampart.Auditor
	now   func() time.Time

	tenants sync.Map // tenant ID → rampart.Tenant
}

// New returns the service. now may be nil.
func New(store rampart.Store, a *authn.Authenticator, audit rampart.Auditor, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, authn: a, audit: audit, now: now}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,62}$`)

// MaxKeyTTL bounds key lifetimes; 0 means the key does not expire.
const MaxKeyTTL = 5 * 365 * 24 * time.Hour

func checkName(field, s string) error {
	if !nameRE.MatchString(s) {
		return rampart.Invalid(field, "%s must be 1-63 characters of a-z, 0-9, '.', '_', '@' or '-', starting with a letter or digit", field)
	}
	return nil
}

// guard authorizes the caller for action on res and records the decision
// through enforce (AUDIT-3, fail closed). For allowed actions it returns a
// function that records a failed outcome.
func (s *Service) guard(ctx context.Context, action authz.Action, res authz.Resource, details map[string]string) (rampart.Caller, func(error) error, error) {
	c, o, err := (&enforce.Recorder{Audit: s.audit, Now: s.now}).Guard(ctx, action, res, details)
	if err != nil {
		return c, nil, err
	}
	return c, func(err error) error { return o.Done(ctx, err) }, nil
}

// missing is the answer for an absent object: the same 404 a foreign
// object gets (TEN-1).
func missing(kind string) error {
	return &rampart.Error{Code: rampart.CodeNotFound, Message: kind + " not found"}
}

// tenant returns a tenant through a small cache: tenants never change once
// created, so the cache needs no invalidation.
func (s *Service) tenant(ctx context.Context, id string) (rampart.Tenant, error) {
	if v, ok := s.tenants.Load(id); ok {
		return v.(rampart.Tenant), nil
	}
	t, err := s.store.GetTenant(ctx, id)
	if err != nil {
		return t, err
	}
	s.tenants.Store(id, t)
	return t, nil
}

// Whoami returns the caller, its tenant and the key it used.
func (s *Service) Whoami(ctx context.Context) (rampart.Principal, rampart.Tenant, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.Principal{}, rampart.Tenant{}, rampart.ErrUnauthenticated
	}
	d := authz.Decide(c.Principal, authz.Whoami, authz.Resource{Kind: "principal", ID: c.Principal.ID, TenantID: c.Principal.TenantID, PrincipalID: c.Principal.ID})
	if !d.Allow {
		return rampart.Principal{}, rampart.Tenant{}, d.Err("principal")
	}
	t, err := s.tenant(ctx, c.Principal.TenantID)
	if err != nil {
		return rampart.Principal{}, rampart.Tenant{}, err
	}
	return c.Principal, t, nil
}

// CreateTenant creates a tenant (operator only).
func (s *Service) CreateTenant(ctx context.Context, name string) (rampart.Tenant, error) {
	if err := checkName("name", name); err != nil {
		return rampart.Tenant{}, err
	}
	c, done, err := s.guard(ctx, authz.TenantCreate, authz.Resource{Kind: "tenant"}, map[string]string{"name": name})
	if err != nil {
		return rampart.Tenant{}, err
	}
	t := rampart.Tenant{ID: rampart.NewID(rampart.PrefixTenant), Name: name, CreatedAt: s.now().UTC(), CreatedBy: c.Principal.ID}
	return t, done(s.store.CreateTenant(ctx, t))
}

// ListTenants lists all tenants (operator only).
func (s *Service) ListTenants(ctx context.Context, p rampart.Page) ([]rampart.Tenant, string, error) {
	_, done, err := s.guard(ctx, authz.TenantList, authz.Resource{Kind: "tenant"}, nil)
	if err != nil {
		return nil, "", err
	}
	ts, next, err := s.store.ListTenants(ctx, p)
	return ts, next, done(err)
}

// GetTenant returns one tenant.
func (s *Service) GetTenant(ctx context.Context, id string) (rampart.Tenant, error) {
	if !rampart.ValidID(rampart.PrefixTenant, id) {
		return rampart.Tenant{}, missing("tenant")
	}
	t, err := s.store.GetTenant(ctx, id)
	if errors.Is(err, rampart.ErrNotFound) {
		return rampart.Tenant{}, missing("tenant")
	} else if err != nil {
		return rampart.Tenant{}, err
	}
	if _, _, err := s.guard(ctx, authz.TenantRead, authz.Resource{Kind: "tenant", ID: t.ID, TenantID: t.ID}, nil); err != nil {
		return rampart.Tenant{}, err
	}
	return t, nil
}

// CreatePrincipalInput is what a new principal needs.
type CreatePrincipalInput struct {
	TenantID string
	Name     string
	Kind     rampart.PrincipalKind
	Role     rampart.Role
	KeyTTL   time.Duration
}

// CreatePrincipal creates a principal and its first API key, whose token is
// returned once and never stored.
func (s *Service) CreatePrincipal(ctx context.Context, in CreatePrincipalInput) (rampart.Principal, rampart.APIKey, authn.Token, error) {
	var zero authn.Token
	if err := checkName("name", in.Name); err != nil {
		return rampart.Principal{}, rampart.APIKey{}, zero, err
	}
	if !in.Role.Valid() {
		return rampart.Principal{}, rampart.APIKey{}, zero, rampart.Invalid("role", "role must be one of operator, data-provider, model-developer, service-user, auditor")
	}
	if in.Kind == "" {
		in.Kind = rampart.PrincipalUser
	}
	if in.Kind != rampart.PrincipalUser && in.Kind != rampart.PrincipalService {
		return rampart.Principal{}, rampart.APIKey{}, zero, rampart.Invalid("kind", "kind must be user or service")
	}
	if in.KeyTTL < 0 || in.KeyTTL > MaxKeyTTL {
		return rampart.Principal{}, rampart.APIKey{}, zero, rampart.Invalid("key_ttl", "key TTL must be between 0 and %s", MaxKeyTTL)
	}
	c, _ := rampart.CallerFrom(ctx)
	if in.TenantID == "" {
		in.TenantID = c.Principal.TenantID
	}
	if !rampart.ValidID(rampart.PrefixTenant, in.TenantID) {
		return rampart.Principal{}, rampart.APIKey{}, zero, missing("tenant")
	}
	t, err := s.store.GetTenant(ctx, in.TenantID)
	if errors.Is(err, rampart.ErrNotFound) {
		return rampart.Principal{}, rampart.APIKey{}, zero, missing("tenant")
	} else if err != nil {
		return rampart.Principal{}, rampart.APIKey{}, zero, err
	}
	// Operators live only in the system tenant: a tenant-side operator
	// would be an administrator the tenant never agreed to.
	if in.Role == rampart.RoleOperator && t.Name != rampart.SystemTenantName {
		return rampart.Principal{}, rampart.APIKey{}, zero, rampart.Invalid("role", "operators exist only in the system tenant")
	}
	_, done, err := s.guard(ctx, authz.PrincipalCreate, authz.Resource{Kind: "principal", TenantID: t.ID},
		map[string]string{"name": in.Name, "role": string(in.Role), "tenant": t.ID})
	if err != nil {
		return rampart.Principal{}, rampart.APIKey{}, zero, err
	}
	p := rampart.Principal{ID: rampart.NewID(rampart.PrefixPrincipal), TenantID: t.ID, Name: in.Name, Kind: in.Kind,
		Role: in.Role, CreatedAt: s.now().UTC()}
	tok, k, err := s.authn.CreatePrincipal(ctx, p, "initial", in.KeyTTL)
	if err != nil {
		return rampart.Principal{}, rampart.APIKey{}, zero, done(err)
	}
	return p, k, tok, nil
}

// ListPrincipals lists a tenant's principals ("" = the caller's tenant).
func (s *Service) ListPrincipals(ctx context.Context, tenantID string, p rampart.Page) ([]rampart.Principal, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	if tenantID == "" {
		tenantID = c.Principal.TenantID
	}
	if !rampart.ValidID(rampart.PrefixTenant, tenantID) {
		return nil, "", missing("tenant")
	}
	if _, err := s.store.GetTenant(ctx, tenantID); errors.Is(err, rampart.ErrNotFound) {
		return nil, "", missing("tenant")
	} else if err != nil {
		return nil, "", err
	}
	_, done, err := s.guard(ctx, authz.PrincipalList, authz.Resource{Kind: "tenant", ID: tenantID, TenantID: tenantID}, nil)
	if err != nil {
		return nil, "", err
	}
	ps, next, err := s.store.ListPrincipals(ctx, tenantID, p)
	return ps, next, done(err)
}

func (s *Service) loadPrincipal(ctx context.Context, id string) (rampart.Principal, error) {
	if !rampart.ValidID(rampart.PrefixPrincipal, id) {
		return rampart.Principal{}, missing("principal")
	}
	p, err := s.store.GetPrincipal(ctx, id)
	if errors.Is(err, rampart.ErrNotFound) {
		return rampart.Principal{}, missing("principal")
	}
	return p, err
}

func principalRes(p rampart.Principal) authz.Resource {
	return authz.Resource{Kind: "principal", ID: p.ID, TenantID: p.TenantID, PrincipalID: p.ID}
}

// GetPrincipal returns one principal.
func (s *Service) GetPrincipal(ctx context.Context, id string) (rampart.Principal, error) {
	p, err := s.loadPrincipal(ctx, id)
	if err != nil {
		return rampart.Principal{}, err
	}
	if _, _, err := s.guard(ctx, authz.PrincipalRead, principalRes(p), nil); err != nil {
		return rampart.Principal{}, err
	}
	return p, nil
}

// SetPrincipalDisabled disables or re-enables a principal; a disabled
// principal's keys fail on their next request.
func (s *Service) SetPrincipalDisabled(ctx context.Context, id string, disabled bool) (rampart.Principal, error) {
	p, err := s.loadPrincipal(ctx, id)
	if err != nil {
		return rampart.Principal{}, err
	}
	c, done, err := s.guard(ctx, authz.PrincipalDisable, principalRes(p), map[string]string{"disabled": fmt.Sprint(disabled)})
	if err != nil {
		return rampart.Principal{}, err
	}
	if c.Principal.ID == p.ID && disabled {
		return rampart.Principal{}, done(rampart.Invalid("id", "a principal cannot disable itself"))
	}
	if err := s.store.SetPrincipalDisabled(ctx, id, disabled); err != nil {
		return rampart.Principal{}, done(err)
	}
	s.authn.InvalidatePrincipal(id)
	p.Disabled = disabled
	return p, nil
}

// CreateKey issues a new API key for the caller itself.
func (s *Service) CreateKey(ctx context.Context, name string, ttl time.Duration) (rampart.APIKey, authn.Token, error) {
	if err := checkName("name", name); err != nil {
		return rampart.APIKey{}, authn.Token{}, err
	}
	if ttl < 0 || ttl > MaxKeyTTL {
		return rampart.APIKey{}, authn.Token{}, rampart.Invalid("ttl", "key TTL must be between 0 and %s", MaxKeyTTL)
	}
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return rampart.APIKey{}, authn.Token{}, rampart.ErrUnauthenticated
	}
	_, done, err := s.guard(ctx, authz.KeyCreate, principalRes(c.Principal), map[string]string{"name": name})
	if err != nil {
		return rampart.APIKey{}, authn.Token{}, err
	}
	tok, k, err := s.authn.Issue(ctx, c.Principal, name, ttl)
	if err != nil {
		return rampart.APIKey{}, authn.Token{}, done(err)
	}
	return k, tok, nil
}

// ListKeys lists a principal's keys ("" = the caller's). Hashes never leave.
func (s *Service) ListKeys(ctx context.Context, principalID string, pg rampart.Page) ([]rampart.APIKey, string, error) {
	c, ok := rampart.CallerFrom(ctx)
	if !ok {
		return nil, "", rampart.ErrUnauthenticated
	}
	if principalID == "" {
		principalID = c.Principal.ID
	}
	p, err := s.loadPrincipal(ctx, principalID)
	if err != nil {
		return nil, "", err
	}
	_, done, err := s.guard(ctx, authz.KeyList, principalRes(p), nil)
	if err != nil {
		return nil, "", err
	}
	ks, next, err := s.store.ListAPIKeys(ctx, p.ID, pg)
	for i := range ks {
		ks[i].Hash = nil
	}
	return ks, next, done(err)
}

// RevokeKey revokes an API key; it fails on its next use.
func (s *Service) RevokeKey(ctx context.Context, keyID string) (rampart.APIKey, error) {
	if !rampart.ValidID(rampart.PrefixKey, keyID) {
		return rampart.APIKey{}, missing("key")
	}
	k, err := s.store.GetAPIKey(ctx, keyID)
	if errors.Is(err, rampart.ErrNotFound) {
		return rampart.APIKey{}, missing("key")
	} else if err != nil {
		return rampart.APIKey{}, err
	}
	_, done, err := s.guard(ctx, authz.KeyRevoke, authz.Resource{Kind: "key", ID: k.ID, TenantID: k.TenantID, PrincipalID: k.PrincipalID}, nil)
	if err != nil {
		return rampart.APIKey{}, err
	}
	now := s.now().UTC()
	if err := s.store.RevokeAPIKey(ctx, keyID, now); err != nil {
		return rampart.APIKey{}, done(err)
	}
	s.authn.InvalidateKey(keyID) // IAM-1: fails on its next request
	k, err = s.store.GetAPIKey(ctx, keyID)
	k.Hash = nil
	return k, done(err)
}
