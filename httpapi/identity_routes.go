package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/identity"
)

// PageQuery is the opaque-cursor pagination every list takes.
type PageQuery struct {
	Cursor string `query:"cursor" maxLength:"200" doc:"Opaque cursor from the previous page's next_cursor."`
	Limit  int    `query:"limit" minimum:"0" maximum:"500" doc:"Page size (default 50, at most 500)."`
}

func (q PageQuery) page() rampart.Page { return rampart.Page{Cursor: q.Cursor, Limit: q.Limit} }

// List is one page of items.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page."`
}

type listOut[T any] struct{ Body List[T] }

func newList[T any](items []T, next string) *listOut[T] {
	if items == nil {
		items = []T{}
	}
	return &listOut[T]{Body: List[T]{Items: items, NextCursor: next}}
}

// WhoamiResponse says who the caller is.
type WhoamiResponse struct {
	Principal rampart.Principal `json:"principal"`
	Tenant    rampart.Tenant    `json:"tenant"`
	KeyID     string            `json:"key_id"`
}

// CreateTenantRequest creates a tenant.
type CreateTenantRequest struct {
	Name string `json:"name" minLength:"1" maxLength:"63" doc:"Unique tenant name (a-z, 0-9, . _ @ -)."`
}

// CreatePrincipalRequest creates a principal with its first API key.
type CreatePrincipalRequest struct {
	TenantID      string                `json:"tenant_id,omitempty" maxLength:"80" doc:"Tenant; defaults to the caller's."`
	Name          string                `json:"name" minLength:"1" maxLength:"63"`
	Role          rampart.Role          `json:"role" enum:"operator,data-provider,model-developer,service-user,auditor"`
	Kind          rampart.PrincipalKind `json:"kind,omitempty" enum:"user,service"`
	KeyTTLSeconds int64                 `json:"key_ttl_seconds,omitempty" minimum:"0" maximum:"157680000" doc:"Lifetime of the first key; 0 = no expiry."`
}

// IssuedKey is a new key with its token, shown once.
type IssuedKey struct {
	Key   rampart.APIKey `json:"key"`
	Token string         `json:"token" doc:"The credential. Shown once; store it now."`
}

// CreatePrincipalResponse is the new principal and its first key.
type CreatePrincipalResponse struct {
	Principal rampart.Principal `json:"principal"`
	IssuedKey
}

// CreateKeyRequest issues a key for the caller.
type CreateKeyRequest struct {
	Name       string `json:"name" minLength:"1" maxLength:"63"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty" minimum:"0" maximum:"157680000" doc:"0 = no expiry."`
}

type tenantPath struct {
	TenantID string `path:"tenant_id" maxLength:"80"`
}

type principalPath struct {
	PrincipalID string `path:"principal_id" maxLength:"80"`
}

type keyPath struct {
	KeyID string `path:"key_id" maxLength:"80"`
}

func op(id, method, path, summary, tag string) huma.Operation {
	o := huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary, Tags: []string{tag},
		MaxBodyBytes: MaxJSONBody}
	if method == http.MethodPost {
		o.DefaultStatus = http.StatusOK
	}
	return o
}

func created(o huma.Operation) huma.Operation { o.DefaultStatus = http.StatusCreated; return o }

func (a *API) routeIdentity() {
	s, log := a.deps.Identity, a.deps.Log

	huma.Register(a.huma, op("whoami", http.MethodGet, "/v1/whoami", "Who am I", "identity"),
		wrap(log, func(ctx context.Context, _ *struct{}) (*struct{ Body WhoamiResponse }, error) {
			p, t, err := s.Whoami(ctx)
			if err != nil {
				return nil, err
			}
			c, _ := rampart.CallerFrom(ctx)
			return &struct{ Body WhoamiResponse }{Body: WhoamiResponse{Principal: p, Tenant: t, KeyID: c.KeyID}}, nil
		}))

	huma.Register(a.huma, created(op("create-tenant", http.MethodPost, "/v1/tenants", "Create a tenant", "tenants")),
		wrap(log, func(ctx context.Context, in *struct{ Body CreateTenantRequest }) (*struct{ Body rampart.Tenant }, error) {
			t, err := s.CreateTenant(ctx, in.Body.Name)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Tenant }{Body: t}, nil
		}))
	huma.Register(a.huma, op("list-tenants", http.MethodGet, "/v1/tenants", "List tenants", "tenants"),
		wrap(log, func(ctx context.Context, in *PageQuery) (*listOut[rampart.Tenant], error) {
			ts, next, err := s.ListTenants(ctx, in.page())
			if err != nil {
				return nil, err
			}
			return newList(ts, next), nil
		}))
	huma.Register(a.huma, op("get-tenant", http.MethodGet, "/v1/tenants/{tenant_id}", "Show a tenant", "tenants"),
		wrap(log, func(ctx context.Context, in *tenantPath) (*struct{ Body rampart.Tenant }, error) {
			t, err := s.GetTenant(ctx, in.TenantID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Tenant }{Body: t}, nil
		}))

	huma.Register(a.huma, created(op("create-principal", http.MethodPost, "/v1/principals", "Create a principal and its first API key", "principals")),
		wrap(log, func(ctx context.Context, in *struct{ Body CreatePrincipalRequest }) (*struct{ Body CreatePrincipalResponse }, error) {
			b := in.Body
			p, k, tok, err := s.CreatePrincipal(ctx, identity.CreatePrincipalInput{TenantID: b.TenantID, Name: b.Name,
				Kind: b.Kind, Role: b.Role, KeyTTL: time.Duration(b.KeyTTLSeconds) * time.Second})
			if err != nil {
				return nil, err
			}
			return &struct{ Body CreatePrincipalResponse }{Body: CreatePrincipalResponse{Principal: p, IssuedKey: IssuedKey{Key: k, Token: tok.Reveal()}}}, nil
		}))
	huma.Register(a.huma, op("list-principals", http.MethodGet, "/v1/principals", "List a tenant's principals", "principals"),
		wrap(log, func(ctx context.Context, in *struct {
			PageQuery
			TenantID string `query:"tenant_id" maxLength:"80" doc:"Defaults to the caller's tenant."`
		}) (*listOut[rampart.Principal], error) {
			ps, next, err := s.ListPrincipals(ctx, in.TenantID, in.page())
			if err != nil {
				return nil, err
			}
			return newList(ps, next), nil
		}))
	huma.Register(a.huma, op("get-principal", http.MethodGet, "/v1/principals/{principal_id}", "Show a principal", "principals"),
		wrap(log, func(ctx context.Context, in *principalPath) (*struct{ Body rampart.Principal }, error) {
			p, err := s.GetPrincipal(ctx, in.PrincipalID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.Principal }{Body: p}, nil
		}))
	for _, st := range []struct {
		name string
		dis  bool
	}{{"disable", true}, {"enable", false}} {
		huma.Register(a.huma, op(st.name+"-principal", http.MethodPost, "/v1/principals/{principal_id}/"+st.name, "Disable or enable a principal", "principals"),
			wrap(log, func(ctx context.Context, in *principalPath) (*struct{ Body rampart.Principal }, error) {
				p, err := s.SetPrincipalDisabled(ctx, in.PrincipalID, st.dis)
				if err != nil {
					return nil, err
				}
				return &struct{ Body rampart.Principal }{Body: p}, nil
			}))
	}

	huma.Register(a.huma, created(op("create-key", http.MethodPost, "/v1/keys", "Issue an API key for the caller", "keys")),
		wrap(log, func(ctx context.Context, in *struct{ Body CreateKeyRequest }) (*struct{ Body IssuedKey }, error) {
			k, tok, err := s.CreateKey(ctx, in.Body.Name, time.Duration(in.Body.TTLSeconds)*time.Second)
			if err != nil {
				return nil, err
			}
			return &struct{ Body IssuedKey }{Body: IssuedKey{Key: k, Token: tok.Reveal()}}, nil
		}))
	huma.Register(a.huma, op("list-keys", http.MethodGet, "/v1/keys", "List API keys (metadata only)", "keys"),
		wrap(log, func(ctx context.Context, in *struct {
			PageQuery
			PrincipalID string `query:"principal_id" maxLength:"80" doc:"Defaults to the caller."`
		}) (*listOut[rampart.APIKey], error) {
			ks, next, err := s.ListKeys(ctx, in.PrincipalID, in.page())
			if err != nil {
				return nil, err
			}
			return newList(ks, next), nil
		}))
	huma.Register(a.huma, op("revoke-key", http.MethodPost, "/v1/keys/{key_id}/revoke", "Revoke an API key", "keys"),
		wrap(log, func(ctx context.Context, in *keyPath) (*struct{ Body rampart.APIKey }, error) {
			k, err := s.RevokeKey(ctx, in.KeyID)
			if err != nil {
				return nil, err
			}
			return &struct{ Body rampart.APIKey }{Body: k}, nil
		}))
}
