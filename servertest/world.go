package servertest

import (
	"fmt"
	"testing"

	"github.com/rampart-mlaas/rampart"
)

// World is a tenant with one principal of every tenant role, used by the
// generic cross-tenant sweep and the authorization matrix.
type World struct {
	Tenant rampart.Tenant
	Actors map[rampart.Role]*Actor
	// IDs of objects in this tenant by path/query parameter name, filled by
	// the Fixtures.
	IDs map[string][]string
}

// TenantRoles are the roles that live inside tenants.
var TenantRoles = []rampart.Role{rampart.RoleDataProvider, rampart.RoleModelDeveloper, rampart.RoleServiceUser, rampart.RoleAuditor}

// Fixture creates objects in a world and returns their IDs for one
// parameter name. Every path parameter of every route in /openapi.json must
// have a fixture, or the cross-tenant sweep fails: a new route cannot escape
// the sweep (TEN-1). Later capabilities add their own entries.
type Fixture func(t testing.TB, e *Env, w *World) []string

// Fixtures maps parameter names ("tenant_id", "dataset_id", …) to fixtures.
var Fixtures = map[string]Fixture{
	"tenant_id": func(t testing.TB, e *Env, w *World) []string { return []string{w.Tenant.ID} },
	"principal_id": func(t testing.TB, e *Env, w *World) []string {
		var ids []string
		for _, r := range TenantRoles {
			ids = append(ids, w.Actors[r].Principal.ID)
		}
		return ids
	},
	"key_id": func(t testing.TB, e *Env, w *World) []string {
		var ids []string
		for _, r := range TenantRoles {
			ids = append(ids, w.Actors[r].KeyID)
		}
		return ids
	},
}

// NewWorld creates a tenant with one principal per tenant role and runs
// every fixture in it.
func (e *Env) NewWorld(t testing.TB, name string) *World {
	t.Helper()
	w := &World{Tenant: e.Tenant(t, name), Actors: map[rampart.Role]*Actor{}, IDs: map[string][]string{}}
	for i, r := range TenantRoles {
		w.Actors[r] = e.Actor(t, w.Tenant, fmt.Sprintf("%s-%d", name, i), r)
	}
	for param, f := range Fixtures {
		w.IDs[param] = f(t, e, w)
	}
	return w
}
