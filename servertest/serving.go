package servertest

import (
	"context"
	"testing"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// worldEndpoint returns the fixture endpoint of world w (on the world's
// fixture model), creating it once. Endpoint names are per tenant, so each
// world's name is distinct: a foreign name must be 404 like a missing one.
func worldEndpoint(t testing.TB, w *World) rampart.Endpoint {
	t.Helper()
	md := w.Actors[rampart.RoleModelDeveloper]
	name := "ep-" + w.Tenant.Name
	var ep rampart.Endpoint
	err := md.C.Do(context.Background(), "GET", "/v1/endpoints/"+name, nil, nil, &ep)
	if err == nil {
		return ep
	}
	m := worldModel(t, w)
	if err := md.C.Do(context.Background(), "POST", "/v1/endpoints", nil,
		httpapi.CreateEndpointRequest{Name: name, Model: m.ID}, &ep); err != nil {
		t.Fatalf("create endpoint %s: %v", name, err)
	}
	return ep
}

// servingFixtures cover the serving routes in the cross-tenant sweep
// (TEN-1): the endpoint by name and by ID, and a grant on it.
var servingFixtures = map[string]Fixture{
	"endpoint": func(t testing.TB, e *Env, w *World) []string {
		ep := worldEndpoint(t, w)
		return []string{ep.Name, ep.ID}
	},
	"endpoint_grant_id": func(t testing.TB, e *Env, w *World) []string {
		ep := worldEndpoint(t, w)
		var g rampart.EndpointGrant
		if err := w.Actors[rampart.RoleModelDeveloper].C.Do(context.Background(), "POST", "/v1/endpoints/"+ep.ID+"/grants", nil,
			httpapi.EndpointGrantRequest{PrincipalID: w.Actors[rampart.RoleServiceUser].Principal.ID}, &g); err != nil {
			t.Fatalf("grant endpoint: %v", err)
		}
		return []string{g.ID}
	},
}

var _ = func() bool {
	for k, f := range servingFixtures {
		if _, ok := Fixtures[k]; !ok {
			Fixtures[k] = f
		}
	}
	return true
}()
