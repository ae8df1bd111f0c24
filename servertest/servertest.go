// Package servertest starts real Rampart servers on 127.0.0.1 for tests:
// the real stores in a temp dir, the real HTTP stack, a real listener.
package servertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/server"
)

// Env is one running server.
type Env struct {
	Server   *server.Server
	URL      string
	DataDir  string
	Operator *httpapi.Client
	OpToken  string
}

// Start runs a server in a temp dir until the test ends. mod may adjust
// the configuration.
func Start(t testing.TB, mod ...func(*server.Config)) *Env {
	t.Helper()
	return StartWithLog(t, io.Discard, mod...)
}

// StartWithLog is Start with the server's own log written to logw (JSON).
func StartWithLog(t testing.TB, logw io.Writer, mod ...func(*server.Config)) *Env {
	t.Helper()
	cfg := server.Defaults()
	cfg.DataDir = t.TempDir() + "/data"
	cfg.Addr = "127.0.0.1:0"
	cfg.Quiet = true
	for _, m := range mod {
		m(&cfg)
	}
	log := slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("open server: %v", err)
	}
	ln, err := srv.Listen()
	if err != nil {
		cancel()
		srv.Close()
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	e := &Env{Server: srv, URL: srv.URL(ln), DataDir: cfg.DataDir, OpToken: srv.OperatorToken.Reveal()}
	e.Operator = e.Client(t, e.OpToken)
	return e
}

// Client returns an API client with token.
func (e *Env) Client(t testing.TB, token string) *httpapi.Client {
	t.Helper()
	c, err := httpapi.NewClient(e.URL, token, "")
	if err != nil {
		t.Fatal(err)
	}
	c.HTTP.Timeout = 30 * time.Second
	return c
}

// Actor is a principal with its key.
type Actor struct {
	Tenant    rampart.Tenant
	Principal rampart.Principal
	KeyID     string
	Token     string
	C         *httpapi.Client
}

// Tenant creates a tenant (operator) and returns it.
func (e *Env) Tenant(t testing.TB, name string) rampart.Tenant {
	t.Helper()
	var tn rampart.Tenant
	if err := e.Operator.Do(context.Background(), "POST", "/v1/tenants", nil, httpapi.CreateTenantRequest{Name: name}, &tn); err != nil {
		t.Fatalf("create tenant %s: %v", name, err)
	}
	return tn
}

// Actor creates a principal with role in tenant tn.
func (e *Env) Actor(t testing.TB, tn rampart.Tenant, name string, role rampart.Role) *Actor {
	t.Helper()
	var out httpapi.CreatePrincipalResponse
	if err := e.Operator.Do(context.Background(), "POST", "/v1/principals", nil,
		httpapi.CreatePrincipalRequest{TenantID: tn.ID, Name: name, Role: role}, &out); err != nil {
		t.Fatalf("create principal %s: %v", name, err)
	}
	return &Actor{Tenant: tn, Principal: out.Principal, KeyID: out.Key.ID, Token: out.Token, C: e.Client(t, out.Token)}
}

// OperatorActor describes the bootstrap operator as an Actor.
func (e *Env) OperatorActor(t testing.TB) *Actor {
	t.Helper()
	var w httpapi.WhoamiResponse
	if err := e.Operator.Do(context.Background(), "GET", "/v1/whoami", nil, nil, &w); err != nil {
		t.Fatal(err)
	}
	return &Actor{Tenant: w.Tenant, Principal: w.Principal, KeyID: w.KeyID, Token: e.OpToken, C: e.Operator}
}

// Raw sends a request with a raw body and header set, returning status and body.
func (e *Env) Raw(t testing.TB, method, path, token string, body io.Reader, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.Operator.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, b
}

// ClientWithCA returns an operator client that trusts caFile.
func (e *Env) ClientWithCA(caFile string) (*httpapi.Client, error) {
	return httpapi.NewClient(e.URL, e.OpToken, caFile)
}
