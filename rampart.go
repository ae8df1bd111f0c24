// Package rampart holds Rampart's domain types, its one error type and the
// service interfaces that the adapters (sqlite, httpapi, …) implement or consume.
//
// Rampart is a secure, self-hostable machine-learning-as-a-service platform
// built to the security requirements in REQUIREMENTS.md (X.sr-mlaas on the
// Y.3531 MLaaS model).
package rampart

import (
	"context"
	"time"
)

// Role is a Y.3531 MLaaS role (REQUIREMENTS.md "Roles").
type Role string

// The roles. Each principal has exactly one.
const (
	RoleOperator       Role = "operator"        // CSP:MLSP
	RoleDataProvider   Role = "data-provider"   // CSN:MLDP
	RoleModelDeveloper Role = "model-developer" // CSN:MLMD
	RoleServiceUser    Role = "service-user"    // CSC:MLSU
	RoleAuditor        Role = "auditor"
)

// Roles lists every role, in a stable order (used by docs and exhaustive tests).
var Roles = []Role{RoleOperator, RoleDataProvider, RoleModelDeveloper, RoleServiceUser, RoleAuditor}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if x == r {
			return true
		}
	}
	return false
}

// SystemTenantName is the tenant that holds the platform operators.
const SystemTenantName = "system"

// Tenant is an isolation boundary: every stored object belongs to exactly one.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// PrincipalKind tells a human user from a service account.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalUser    PrincipalKind = "user"
	PrincipalService PrincipalKind = "service"
)

// Principal is an authenticated identity inside one tenant with one role.
type Principal struct {
	ID        string        `json:"id"`
	TenantID  string        `json:"tenant_id"`
	Name      string        `json:"name"`
	Kind      PrincipalKind `json:"kind"`
	Role      Role          `json:"role"`
	CreatedAt time.Time     `json:"created_at"`
	Disabled  bool          `json:"disabled"`
}

// APIKey is the stored form of an API key: the secret itself is never kept,
// only a keyed hash of it (IAM-1).
type APIKey struct {
	ID          string     `json:"id"`
	PrincipalID string     `json:"principal_id"`
	TenantID    string     `json:"tenant_id"`
	Name        string     `json:"name"`
	Hash        []byte     `json:"-"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
}

// Active reports whether the key may authenticate at time now.
func (k APIKey) Active(now time.Time) bool {
	if k.RevokedAt != nil {
		return false
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return false
	}
	return true
}

// Page asks for one page of a list. Cursor is opaque to callers.
type Page struct {
	Cursor string
	Limit  int
}

// Limits for list pages.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Norm returns the page with its limit clamped to [1, MaxPageSize].
func (p Page) Norm() Page {
	if p.Limit <= 0 {
		p.Limit = DefaultPageSize
	}
	if p.Limit > MaxPageSize {
		p.Limit = MaxPageSize
	}
	return p
}

// Store is the metadata store behind the services: SQLite by default,
// PostgreSQL later, both proven by the same conformance suite (storetest).
// Methods return errors matching ErrNotFound and ErrConflict.
type Store interface {
	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id string) (Tenant, error)
	GetTenantByName(ctx context.Context, name string) (Tenant, error)
	ListTenants(ctx context.Context, p Page) ([]Tenant, string, error)

	CreatePrincipal(ctx context.Context, p Principal) error
	GetPrincipal(ctx context.Context, id string) (Principal, error)
	ListPrincipals(ctx context.Context, tenantID string, p Page) ([]Principal, string, error)
	SetPrincipalDisabled(ctx context.Context, id string, disabled bool) error

	// CreatePrincipalWithKey stores a principal and its first key atomically,
	// so a crash never leaves a principal nobody can log in as.
	CreatePrincipalWithKey(ctx context.Context, p Principal, k APIKey) error
	CreateAPIKey(ctx context.Context, k APIKey) error
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	ListAPIKeys(ctx context.Context, principalID string, p Page) ([]APIKey, string, error)
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// TouchAPIKeys records last-used times in one batch.
	TouchAPIKeys(ctx context.Context, used map[string]time.Time) error

	Close() error
}
