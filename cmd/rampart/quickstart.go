package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/server"
	"github.com/spf13/cobra"
)

// demoTenant is one tenant of the quickstart with its principal's role.
type demoTenant struct {
	Tenant    string       `json:"tenant"`
	Principal string       `json:"principal"`
	Role      rampart.Role `json:"role"`
	Key       string       `json:"key"`
}

var demoTenants = []demoTenant{
	{Tenant: "bank", Principal: "bank-data", Role: rampart.RoleDataProvider},
	{Tenant: "modelworks", Principal: "modelworks-dev", Role: rampart.RoleModelDeveloper},
	{Tenant: "shop", Principal: "shop-app", Role: rampart.RoleServiceUser},
}

func quickstartCmd(g *globals) *cobra.Command {
	var data, addr string
	var once bool
	cmd := &cobra.Command{
		Use:   "quickstart [--data DIR] [--addr HOST:PORT]",
		Short: "Start an embedded server with demo tenants bank, modelworks and shop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg := server.Defaults()
			cfg.Quiet = true
			if data == "" {
				d, err := os.MkdirTemp("", "rampart-quickstart-")
				if err != nil {
					return err
				}
				data = d
			}
			cfg.DataDir = data
			cfg.Addr = addr
			log := newLogger(os.Stderr, slog.LevelWarn)
			srv, err := server.Open(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			ln, err := srv.Listen()
			if err != nil && errors.Is(err, syscall.EADDRINUSE) && !cmd.Flags().Changed("addr") {
				cfg.Addr = "127.0.0.1:0"
				srv.SetAddr(cfg.Addr)
				ln, err = srv.Listen()
			}
			if err != nil {
				return err
			}
			base := srv.URL(ln)
			serveCtx, stop := context.WithCancel(ctx)
			defer stop()
			done := make(chan error, 1)
			go func() { done <- srv.Serve(serveCtx, ln) }()

			opKey, err := os.ReadFile(filepath.Join(data, "operator.key"))
			if err != nil {
				return fmt.Errorf("operator key: %w", err)
			}
			tenants, err := setupDemo(ctx, base, strings.TrimSpace(string(opKey)), data)
			if err != nil {
				return err
			}
			if err := g.emit(map[string]any{"server": base, "data": data, "tenants": tenants}, func() {
				printQuickstart(g, base, data, strings.TrimSpace(string(opKey)), tenants)
			}); err != nil {
				return err
			}
			if err := demoChecks(ctx, g, base, tenants); err != nil {
				return err
			}
			if err := runStory(ctx, g, base, strings.TrimSpace(string(opKey)), filepath.Join(data, "witness"), tenants); err != nil {
				return err
			}
			if once {
				stop()
				return <-done
			}
			fmt.Fprintln(g.errOut, "Serving until Ctrl-C.")
			return <-done
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "data directory (default: a new temporary directory)")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "listen address (loopback; falls back to a free port if busy)")
	cmd.Flags().BoolVar(&once, "exit", false, "run the script, then exit instead of serving (tests, CI)")
	cmd.Flags().BoolVar(&once, "once", false, "same as --exit")
	_ = cmd.Flags().MarkHidden("once")
	return cmd
}

// setupDemo creates the demo tenants through the API, as an operator would.
// The keys are kept in DIR/quickstart.json (0600) so a rerun on the same
// data dir can show them again: the server itself never can.
func setupDemo(ctx context.Context, base, opKey, data string) ([]demoTenant, error) {
	saved := filepath.Join(data, "quickstart.json")
	if b, err := os.ReadFile(saved); err == nil {
		var ts []demoTenant
		if err := json.Unmarshal(b, &ts); err == nil && len(ts) == len(demoTenants) {
			return ts, nil
		}
	}
	op, err := httpapi.NewClient(base, opKey, "")
	if err != nil {
		return nil, err
	}
	out := make([]demoTenant, 0, len(demoTenants))
	for _, d := range demoTenants {
		var t rampart.Tenant
		err := op.Do(ctx, "POST", "/v1/tenants", nil, httpapi.CreateTenantRequest{Name: d.Tenant}, &t)
		if errors.Is(err, rampart.ErrConflict) {
			all, lerr := listAll[rampart.Tenant](ctx, op, "/v1/tenants", url.Values{})
			if lerr != nil {
				return nil, lerr
			}
			for _, x := range all {
				if x.Name == d.Tenant {
					t = x
				}
			}
		} else if err != nil {
			return nil, fmt.Errorf("create tenant %s: %w", d.Tenant, err)
		}
		var pr httpapi.CreatePrincipalResponse
		if err := op.Do(ctx, "POST", "/v1/principals", nil, httpapi.CreatePrincipalRequest{TenantID: t.ID, Name: d.Principal, Role: d.Role}, &pr); err != nil {
			return nil, fmt.Errorf("create principal %s: %w", d.Principal, err)
		}
		d.Key = pr.Token
		out = append(out, d)
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := writePrivate(saved, b); err != nil {
		return nil, err
	}
	return out, nil
}

func printQuickstart(g *globals, base, data, opKey string, ts []demoTenant) {
	w := g.out
	fmt.Fprintf(w, "Rampart is running at %s (data in %s)\n\n", base, data)
	fmt.Fprintf(w, "Operator (system tenant) key:\n    export RAMPART_SERVER=%s RAMPART_KEY=%s\n\n", base, opKey)
	for _, d := range ts {
		fmt.Fprintf(w, "%-11s %-16s key: %s\n", d.Tenant, "("+string(d.Role)+")", d.Key)
	}
	fmt.Fprintf(w, "\nTry, as the bank's data provider:\n    RAMPART_SERVER=%s RAMPART_KEY=%s rampart whoami\n\n", base, ts[0].Key)
}

// demoChecks shows the core controls working against the live server.
func demoChecks(ctx context.Context, g *globals, base string, ts []demoTenant) error {
	clients := map[string]*httpapi.Client{}
	for _, d := range ts {
		c, err := httpapi.NewClient(base, d.Key, "")
		if err != nil {
			return err
		}
		clients[d.Tenant] = c
	}
	var bankWho httpapi.WhoamiResponse
	if err := clients["bank"].Do(ctx, "GET", "/v1/whoami", nil, nil, &bankWho); err != nil {
		return err
	}
	type check struct {
		What string `json:"check"`
		OK   bool   `json:"ok"`
		Got  string `json:"got"`
	}
	var checks []check
	add := func(what string, err error, want rampart.Code) {
		got := "200"
		var pe *httpapi.ProblemError
		if errors.As(err, &pe) {
			got = fmt.Sprintf("%d %s", pe.Status, pe.Code)
		} else if err != nil {
			got = err.Error()
		}
		checks = append(checks, check{What: what, OK: (want == "" && err == nil) || (want != "" && errors.Is(err, &rampart.Error{Code: want})), Got: got})
	}
	for _, d := range ts {
		add(d.Tenant+" authenticates", clients[d.Tenant].Do(ctx, "GET", "/v1/whoami", nil, nil, nil), "")
	}
	add("shop reads bank's principal → 404 (cross-tenant, TEN-1)",
		clients["shop"].Do(ctx, "GET", "/v1/principals/"+bankWho.Principal.ID, nil, nil, nil), rampart.CodeNotFound)
	add("modelworks lists tenants → 403 (operator only, IAM-2)",
		clients["modelworks"].Do(ctx, "GET", "/v1/tenants", nil, nil, nil), rampart.CodeForbidden)
	k := []byte(ts[0].Key)
	k[len(k)-1] ^= 1 // one flipped bit
	bad, _ := httpapi.NewClient(base, string(k), "")
	add("tampered key → 401 (IAM-1)", bad.Do(ctx, "GET", "/v1/whoami", nil, nil, nil), rampart.CodeUnauthenticated)
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	err := g.emit(checks, func() {
		fmt.Fprintln(g.out, "Checks against the live server:")
		for _, c := range checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(g.out, "  [%s] %s (%s)\n", mark, c.What, c.Got)
		}
		fmt.Fprintln(g.out)
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d quickstart checks failed", failed)
	}
	return nil
}
