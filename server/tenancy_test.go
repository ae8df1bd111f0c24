package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

var paramRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// bodyFor builds a minimal valid JSON body from an operation's schema, so
// that a route with a body reaches its authorization check.
func bodyFor(doc map[string]any, schema map[string]any, foreign map[string]string) any {
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		schema = doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
	}
	typ, _ := schema["type"].(string)
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		req, _ := schema["required"].([]any)
		for _, r := range req {
			name := r.(string)
			out[name] = bodyFor(doc, props[name].(map[string]any), foreign)
		}
		// Reference fields point at the foreign tenant's objects.
		for name := range props {
			if id, ok := foreign[name]; ok {
				out[name] = id
			}
		}
		return out
	case "string":
		if e, ok := schema["enum"].([]any); ok && len(e) > 0 {
			// Avoid privileged choices: take the last enum value.
			return e[len(e)-1]
		}
		return "sweep-" + rampart.RandomToken(4)
	case "integer", "number":
		if m, ok := schema["minimum"].(float64); ok {
			return m
		}
		return 1
	case "boolean":
		return false
	case "array":
		return []any{}
	}
	return nil
}

// TestCrossTenantSweep is TEN-1: every route in /openapi.json, called by
// every role of tenant A with the IDs of tenant B's objects in its path and
// query parameters, answers 404, exactly like a missing object, and changes
// nothing in tenant B. The route list comes from the served document, so
// later routes are covered automatically; a route whose parameter has no
// fixture fails the test.
func TestCrossTenantSweep(t *testing.T) {
	e := servertest.Start(t)
	a := e.NewWorld(t, "tenant-a")
	var foreign []*servertest.World
	for i := range 3 {
		foreign = append(foreign, e.NewWorld(t, fmt.Sprintf("tenant-b%d", i)))
	}
	ops, doc := openAPIOps(t, e)
	type target struct {
		op     apiOp
		params []string
		query  []string
	}
	var targets []target
	for _, o := range ops {
		if !o.Secured {
			continue
		}
		var tg target
		tg.op = o
		for _, m := range paramRE.FindAllStringSubmatch(o.Path, -1) {
			if _, ok := servertest.Fixtures[m[1]]; !ok {
				t.Fatalf("route %s %s: path parameter %q has no servertest.Fixtures entry", o.Method, o.Path, m[1])
			}
			tg.params = append(tg.params, m[1])
		}
		for _, q := range o.Query {
			if strings.HasSuffix(q, "_id") {
				if _, ok := servertest.Fixtures[q]; !ok {
					t.Fatalf("route %s %s: query parameter %q has no fixture", o.Method, o.Path, q)
				}
				tg.query = append(tg.query, q)
			}
		}
		bodyRefs := 0
		if o.HasBody {
			sc := o.Schema
			if ref, ok := sc["$ref"].(string); ok {
				sc = doc["components"].(map[string]any)["schemas"].(map[string]any)[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			}
			props, _ := sc["properties"].(map[string]any)
			for name := range props {
				if _, ok := servertest.Fixtures[name]; ok {
					bodyRefs++
				} else if strings.HasSuffix(name, "_id") {
					t.Fatalf("route %s %s: body field %q has no fixture", o.Method, o.Path, name)
				}
			}
		}
		if len(tg.params)+len(tg.query)+bodyRefs > 0 {
			targets = append(targets, tg)
		}
	}
	if len(targets) < 6 {
		t.Fatalf("only %d routes take object IDs", len(targets))
	}
	rng := rand.New(rand.NewPCG(7, 7))
	hc := &http.Client{Timeout: 10 * time.Second}
	const total = 10000
	n, byRoute := 0, map[string]int{}
	for n < total {
		tg := targets[n%len(targets)]
		role := servertest.TenantRoles[(n/len(targets))%len(servertest.TenantRoles)]
		caller := a.Actors[role]
		b := foreign[rng.IntN(len(foreign))]
		pick := func(param string) string { ids := b.IDs[param]; return ids[rng.IntN(len(ids))] }
		path := paramRE.ReplaceAllStringFunc(tg.op.Path, func(m string) string { return url.PathEscape(pick(m[1 : len(m)-1])) })
		q := url.Values{}
		for _, name := range tg.query {
			q.Set(name, pick(name))
		}
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var body *strings.Reader
		if tg.op.HasBody {
			fm := map[string]string{}
			for name := range servertest.Fixtures {
				fm[name] = pick(name)
			}
			bb, _ := json.Marshal(bodyFor(doc, tg.op.Schema, fm))
			body = strings.NewReader(string(bb))
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequest(tg.op.Method, e.URL+path, body)
		req.Header.Set("Authorization", "Bearer "+caller.Token)
		if tg.op.HasBody {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p httpapi.Problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || p.Code != rampart.CodeNotFound {
			// Creating routes (no path IDs) may only refer to foreign
			// objects through query/body: those must be 404 too.
			t.Fatalf("%s as %s: %s %s → %d %s (%s), want 404", role, caller.Principal.Name, tg.op.Method, path, resp.StatusCode, p.Code, p.Detail)
		}
		byRoute[tg.op.Method+" "+tg.op.Path]++
		n++
	}
	t.Logf("%d cross-tenant requests over %d routes, all 404: %v", n, len(targets), byRoute)
	// Nothing in the foreign tenants changed: every key still works and no
	// principal was disabled.
	for _, b := range foreign {
		for _, r := range servertest.TenantRoles {
			var w httpapi.WhoamiResponse
			if err := b.Actors[r].C.Do(context.Background(), "GET", "/v1/whoami", nil, nil, &w); err != nil {
				t.Fatalf("foreign %s key broken after sweep: %v", r, err)
			}
		}
	}
}

// TestHTTPAuthzMatrix checks that what the API enforces is what the authz
// table says, for every role × identity action × own/self/foreign object.
func TestHTTPAuthzMatrix(t *testing.T) {
	e := servertest.Start(t)
	a := e.NewWorld(t, "mx-a")
	b := e.NewWorld(t, "mx-b")
	op := e.OperatorActor(t)
	callers := []*servertest.Actor{op}
	for _, r := range servertest.TenantRoles {
		callers = append(callers, a.Actors[r])
	}
	type call struct {
		action authz.Action
		method string
		path   func(c *servertest.Actor, target *servertest.Actor) string
		body   any
		rel    func(c, target *servertest.Actor) authz.Relation
	}
	rel := func(c, tg *servertest.Actor) authz.Relation {
		switch {
		case c.Principal.ID == tg.Principal.ID:
			return authz.Self
		case c.Tenant.ID == tg.Tenant.ID:
			return authz.Own
		}
		return authz.Foreign
	}
	tenantRel := func(c, tg *servertest.Actor) authz.Relation {
		if c.Tenant.ID == tg.Tenant.ID {
			return authz.Own
		}
		return authz.Foreign
	}
	calls := []call{
		{authz.TenantRead, "GET", func(c, tg *servertest.Actor) string { return "/v1/tenants/" + tg.Tenant.ID }, nil, tenantRel},
		{authz.PrincipalRead, "GET", func(c, tg *servertest.Actor) string { return "/v1/principals/" + tg.Principal.ID }, nil, rel},
		{authz.PrincipalList, "GET", func(c, tg *servertest.Actor) string { return "/v1/principals?tenant_id=" + tg.Tenant.ID }, nil, tenantRel},
		{authz.KeyList, "GET", func(c, tg *servertest.Actor) string { return "/v1/keys?principal_id=" + tg.Principal.ID }, nil, rel},
	}
	targets := []*servertest.Actor{op, a.Actors[rampart.RoleDataProvider], a.Actors[rampart.RoleAuditor], b.Actors[rampart.RoleServiceUser]}
	checked := 0
	for _, c := range callers {
		for _, tg := range targets {
			for _, cl := range calls {
				r := cl.rel(c, tg)
				allowed := authz.Allowed(c.Principal.Role, cl.action, r)
				want := 200
				if !allowed {
					want = 403
					if r == authz.Foreign {
						want = 404
					}
				}
				st, body := e.Raw(t, cl.method, cl.path(c, tg), c.Token, nil, nil)
				if st != want {
					t.Errorf("%s (%s) %s on %s [%s]: %d, want %d: %s", c.Principal.Name, c.Principal.Role, cl.action, tg.Principal.Name, r, st, want, body)
				}
				checked++
			}
		}
	}
	// Platform actions.
	for _, c := range callers {
		for _, pa := range []struct {
			action authz.Action
			method string
			path   string
			body   string
		}{
			{authz.TenantList, "GET", "/v1/tenants", ""},
			{authz.TenantCreate, "POST", "/v1/tenants", `{"name":"t-` + rampart.RandomToken(4) + `"}`},
			{authz.MetricsRead, "GET", "/metrics", ""},
		} {
			want := 403
			if authz.Allowed(c.Principal.Role, pa.action, authz.Platform) {
				want = 200
				if pa.method == "POST" {
					want = 201
				}
			}
			st, body := e.Raw(t, pa.method, pa.path, c.Token, strings.NewReader(pa.body), map[string]string{"Content-Type": "application/json"})
			if st != want {
				t.Errorf("%s (%s) %s: %d, want %d: %s", c.Principal.Name, c.Principal.Role, pa.action, st, want, body)
			}
			checked++
		}
	}
	// Key issuance is for oneself only; the operator cannot mint keys for a
	// tenant's principal (IAM-4): the API has no way to name another principal.
	// Revocation: own keys for everyone, any key for the operator.
	victim := b.Actors[rampart.RoleDataProvider]
	for _, c := range callers[1:] {
		st, _ := e.Raw(t, "POST", "/v1/keys/"+victim.KeyID+"/revoke", c.Token, nil, nil)
		if st != 404 {
			t.Errorf("%s revoked a foreign key: %d", c.Principal.Role, st)
		}
	}
	if err := victim.C.Do(context.Background(), "GET", "/v1/whoami", nil, nil, nil); err != nil {
		t.Fatalf("victim key broken: %v", err)
	}
	st, _ := e.Raw(t, "POST", "/v1/keys/"+victim.KeyID+"/revoke", op.Token, nil, nil)
	if st != 200 {
		t.Errorf("operator revoke: %d", st)
	}
	if err := victim.C.Do(context.Background(), "GET", "/v1/whoami", nil, nil, nil); !isCode(err, rampart.CodeUnauthenticated) {
		t.Errorf("revoked key still works: %v", err)
	}
	t.Logf("%d role × action × relation checks over HTTP", checked)
}
