package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/servertest"
)

// openAPIOps lists every operation in the served /openapi.json.
type apiOp struct {
	Method, Path string
	Secured      bool
	HasBody      bool
	Query        []string
	Schema       map[string]any
}

func openAPIOps(t *testing.T, e *servertest.Env) ([]apiOp, map[string]any) {
	t.Helper()
	st, body := e.Raw(t, "GET", "/openapi.json", e.OpToken, nil, nil)
	if st != 200 {
		t.Fatalf("openapi.json: %d", st)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi version %q", v)
	}
	var ops []apiOp
	for path, item := range doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			om := o.(map[string]any)
			op := apiOp{Method: strings.ToUpper(method), Path: path, Secured: true}
			if sec, ok := om["security"].([]any); ok && len(sec) == 0 {
				op.Secured = false
			}
			if rb, ok := om["requestBody"].(map[string]any); ok {
				op.HasBody = true
				if c, ok := rb["content"].(map[string]any)["application/json"].(map[string]any); ok {
					op.Schema, _ = c["schema"].(map[string]any)
				}
			}
			if ps, ok := om["parameters"].([]any); ok {
				for _, p := range ps {
					pm := p.(map[string]any)
					if pm["in"] == "query" {
						op.Query = append(op.Query, pm["name"].(string))
					}
				}
			}
			ops = append(ops, op)
		}
	}
	return ops, doc
}

// TestCredentials is IAM-1: 10,000 requests over every secured route with
// missing, malformed, truncated, expired, revoked, spliced (other tenant's
// secret), wrong-scheme and bit-flipped credentials: all 401, none accepted.
func TestCredentials(t *testing.T) {
	e := servertest.Start(t)
	a := e.Tenant(t, "alpha")
	b := e.Tenant(t, "beta")
	alice := e.Actor(t, a, "alice", rampart.RoleDataProvider)
	bob := e.Actor(t, b, "bob", rampart.RoleModelDeveloper)
	// An expiring key, a revoked key.
	var exp httpapi.IssuedKey
	if err := alice.C.Do(context.Background(), "POST", "/v1/keys", nil, httpapi.CreateKeyRequest{Name: "short", TTLSeconds: 1}, &exp); err != nil {
		t.Fatal(err)
	}
	var rev httpapi.IssuedKey
	if err := alice.C.Do(context.Background(), "POST", "/v1/keys", nil, httpapi.CreateKeyRequest{Name: "gone"}, &rev); err != nil {
		t.Fatal(err)
	}
	revC := e.Client(t, rev.Token)
	if err := revC.Do(context.Background(), "GET", "/v1/whoami", nil, nil, nil); err != nil {
		t.Fatalf("fresh key refused: %v", err)
	}
	if err := alice.C.Do(context.Background(), "POST", "/v1/keys/"+rev.Key.ID+"/revoke", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	// The revoked key fails on its very next request.
	if err := revC.Do(context.Background(), "GET", "/v1/whoami", nil, nil, nil); !isCode(err, rampart.CodeUnauthenticated) {
		t.Fatalf("revoked key: %v", err)
	}
	time.Sleep(1100 * time.Millisecond) // let the 1 s key expire

	ops, _ := openAPIOps(t, e)
	var secured []apiOp
	for _, o := range ops {
		if o.Secured {
			secured = append(secured, o)
		}
	}
	if len(secured) < 10 {
		t.Fatalf("only %d secured operations", len(secured))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	good := []string{alice.Token, bob.Token}
	bad := func(i int) (string, string) {
		g := good[rng.IntN(len(good))]
		switch i % 10 {
		case 0:
			return "missing", ""
		case 1:
			return "malformed", "rmp_" + rampart.RandomToken(20)
		case 2:
			return "truncated", g[:rng.IntN(len(g)-1)]
		case 3:
			return "expired", exp.Token
		case 4:
			return "revoked", rev.Token
		case 5: // alice's key ID with bob's secret
			return "spliced", alice.Token[:31] + bob.Token[31:]
		case 6:
			bs := []byte(g)
			i := 4 + rng.IntN(len(bs)-4)
			for {
				c := bs[i] ^ byte(1<<rng.IntN(7))
				if c > 0x20 && c < 0x7f { // still a legal header byte
					bs[i] = c
					break
				}
			}
			return "bitflip", string(bs)
		case 7:
			return "extended", g + "a"
		case 8:
			return "random", "rmp_" + rampart.RandomToken(16) + "_" + rampart.RandomToken(32)
		default:
			return "unicode", g[:10] + "é" + g[12:]
		}
	}
	const total = 10000
	type res struct {
		kind   string
		status int
	}
	jobs := make(chan int)
	results := make(chan res, 64)
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				o := secured[i%len(secured)]
				kind, tok := func() (string, string) { mu.Lock(); defer mu.Unlock(); return bad(i) }()
				path := strings.NewReplacer("{tenant_id}", a.ID, "{principal_id}", alice.Principal.ID, "{key_id}", alice.KeyID).Replace(o.Path)
				path = fillUnknownParams(path)
				req, _ := http.NewRequest(o.Method, e.URL+path, strings.NewReader("{}"))
				req.Header.Set("Content-Type", "application/json")
				switch {
				case kind == "missing":
				case i%20 == 9:
					req.Header.Set("Authorization", "Basic "+tok) // wrong scheme
				default:
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := hc.Do(req)
				if err != nil {
					results <- res{kind, -1}
					continue
				}
				resp.Body.Close()
				results <- res{kind, resp.StatusCode}
			}
		}()
	}
	go func() {
		for i := 0; i < total; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	counts := map[string]int{}
	n := 0
	for r := range results {
		n++
		counts[r.kind]++
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s credential: status %d, want 401", r.kind, r.status)
		}
	}
	if n != total {
		t.Fatalf("ran %d requests", n)
	}
	t.Logf("10,000 bad-credential requests over %d routes: all 401 (%v)", len(secured), counts)
	// The good keys still work: nothing above locked them out.
	if err := alice.C.Do(context.Background(), "GET", "/v1/whoami", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

var mu sync.Mutex

// fillUnknownParams replaces any remaining {param} with a well-formed but
// unknown ID so the route is exercised.
func fillUnknownParams(p string) string {
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return p
		}
		j := strings.IndexByte(p[i:], '}')
		p = p[:i] + "x_" + rampart.RandomToken(16) + p[i+j+1:]
	}
}

func isCode(err error, c rampart.Code) bool {
	return err != nil && rampart.ErrorCode(asRampart(err)) == c
}

func asRampart(err error) error {
	if pe, ok := err.(*httpapi.ProblemError); ok {
		return &rampart.Error{Code: pe.Code, Message: pe.Detail}
	}
	return err
}

// TestProblemFormat checks RFC 9457 answers, request IDs and bad input:
// oversized bodies 413, malformed JSON and unknown fields 400 naming the field.
func TestProblemFormat(t *testing.T) {
	e := servertest.Start(t)
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		status int
		code   rampart.Code
		field  string
		noAuth bool
	}{
		{name: "no credential", method: "GET", path: "/v1/whoami", status: 401, code: "unauthenticated", noAuth: true},
		{name: "unknown route, no credential", method: "GET", path: "/v1/nope", status: 401, code: "unauthenticated", noAuth: true},
		{name: "unknown route", method: "GET", path: "/v1/nope", status: 404, code: "not_found"},
		{name: "malformed json", method: "POST", path: "/v1/tenants", body: `{"name": "x"`, status: 400, code: "invalid"},
		{name: "unknown field", method: "POST", path: "/v1/tenants", body: `{"name":"okname","admin":true}`, status: 400, code: "invalid", field: "admin"},
		{name: "wrong type", method: "POST", path: "/v1/tenants", body: `{"name":5}`, status: 400, code: "invalid", field: "name"},
		{name: "bad name", method: "POST", path: "/v1/tenants", body: `{"name":"Bad Name!"}`, status: 400, code: "invalid", field: "name"},
		{name: "oversized body", method: "POST", path: "/v1/tenants", body: `{"name":"` + strings.Repeat("a", 70000) + `"}`, status: 413, code: "too_large"},
		{name: "unknown query", method: "GET", path: "/v1/tenants?admin=1", status: 400, code: "invalid"},
		{name: "bad limit", method: "GET", path: "/v1/tenants?limit=100000", status: 400, code: "invalid"},
		{name: "bad cursor", method: "GET", path: "/v1/tenants?cursor=%25%25", status: 400, code: "invalid"},
		{name: "missing id", method: "GET", path: "/v1/tenants/tn_aaaaaaaaaaaaaaaaaaaaaaaaaa", status: 404, code: "not_found"},
		{name: "garbage id", method: "GET", path: "/v1/tenants/..%2f..%2fetc", status: 404, code: "not_found"},
		{name: "bad role", method: "POST", path: "/v1/principals", body: `{"name":"x","role":"root"}`, status: 400, code: "invalid", field: "role"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := e.OpToken
			if c.noAuth {
				tok = ""
			}
			hdr := map[string]string{"Content-Type": "application/json"}
			var body *bytes.Reader
			if c.body != "" {
				body = bytes.NewReader([]byte(c.body))
			} else {
				body = bytes.NewReader(nil)
			}
			req, _ := http.NewRequest(c.method, e.URL+c.path, body)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p httpapi.Problem
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatalf("decode problem: %v", err)
			}
			if resp.StatusCode != c.status || p.Status != c.status || p.Code != c.code {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, p, c.status, c.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			if p.Type != httpapi.ProblemTypeBase+string(c.code) {
				t.Errorf("type %q", p.Type)
			}
			rid := resp.Header.Get("X-Request-Id")
			if !rampart.ValidID(rampart.PrefixRequest, rid) || p.RequestID != rid {
				t.Errorf("request id header %q body %q", rid, p.RequestID)
			}
			if c.field != "" && p.Field != c.field {
				t.Errorf("field %q, want %q (detail %q)", p.Field, c.field, p.Detail)
			}
			if strings.Contains(p.Detail, "sqlite") || strings.Contains(p.Detail, ".go:") {
				t.Errorf("detail leaks internals: %q", p.Detail)
			}
		})
	}
}

// TestHealthAndMetrics: health is public, everything else is not; metrics
// are the operator's.
func TestHealthAndMetrics(t *testing.T) {
	e := servertest.Start(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if st, _ := e.Raw(t, "GET", p, "", nil, nil); st != 200 {
			t.Errorf("%s: %d", p, st)
		}
	}
	for _, p := range []string{"/metrics", "/openapi.json", "/v1/whoami"} {
		if st, _ := e.Raw(t, "GET", p, "", nil, nil); st != 401 {
			t.Errorf("%s without credential: %d", p, st)
		}
	}
	st, body := e.Raw(t, "GET", "/metrics", e.OpToken, nil, nil)
	if st != 200 || !bytes.Contains(body, []byte("rampart_http_requests_total")) {
		t.Fatalf("metrics: %d", st)
	}
	tn := e.Tenant(t, "acme")
	dp := e.Actor(t, tn, "dp", rampart.RoleDataProvider)
	// Platform resources are not hidden (they exist for everyone): 403.
	if st, _ := e.Raw(t, "GET", "/metrics", dp.Token, nil, nil); st != 403 {
		t.Errorf("tenant principal reading metrics: %d", st)
	}
}

func ExampleProblem() {
	fmt.Println(httpapi.ProblemTypeBase + "not_found")
	// Output: urn:rampart:problem:not_found
}
