package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/spf13/cobra"
)

func whoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "whoami", Short: "Show the authenticated principal", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var w httpapi.WhoamiResponse
			if err := c.Do(cmd.Context(), "GET", "/v1/whoami", nil, nil, &w); err != nil {
				return err
			}
			return g.emit(w, func() {
				g.table(table.Row{"PRINCIPAL", "ID", "ROLE", "TENANT", "TENANT ID", "KEY"},
					[]table.Row{{w.Principal.Name, w.Principal.ID, w.Principal.Role, w.Tenant.Name, w.Tenant.ID, w.KeyID}})
			})
		}}
}

// listAll follows cursors until the last page.
func listAll[T any](ctx context.Context, c *httpapi.Client, path string, q url.Values) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	var all []T
	for {
		var page httpapi.List[T]
		if err := c.Do(ctx, "GET", path, q, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			return all, nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

func tenantCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Manage tenants (operator)"}
	cmd.AddCommand(&cobra.Command{Use: "create NAME", Short: "Create a tenant", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var t rampart.Tenant
			if err := c.Do(cmd.Context(), "POST", "/v1/tenants", nil, httpapi.CreateTenantRequest{Name: args[0]}, &t); err != nil {
				return err
			}
			return g.emit(t, func() { g.table(table.Row{"NAME", "ID", "CREATED"}, []table.Row{{t.Name, t.ID, ts(t.CreatedAt)}}) })
		}})
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List tenants", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts0, err := listAll[rampart.Tenant](cmd.Context(), c, "/v1/tenants", nil)
			if err != nil {
				return err
			}
			return g.emit(ts0, func() {
				var rows []table.Row
				for _, t := range ts0 {
					rows = append(rows, table.Row{t.Name, t.ID, ts(t.CreatedAt)})
				}
				g.table(table.Row{"NAME", "ID", "CREATED"}, rows)
			})
		}})
	return cmd
}

// tenantID resolves a tenant given by name or ID.
func tenantID(ctx context.Context, c *httpapi.Client, nameOrID string) (string, error) {
	if nameOrID == "" || rampart.ValidID(rampart.PrefixTenant, nameOrID) {
		return nameOrID, nil
	}
	all, err := listAll[rampart.Tenant](ctx, c, "/v1/tenants", nil)
	if err != nil {
		return "", fmt.Errorf("resolve tenant %q: %w", nameOrID, err)
	}
	for _, t := range all {
		if t.Name == nameOrID {
			return t.ID, nil
		}
	}
	return "", fmt.Errorf("no tenant named %q", nameOrID)
}

func principalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "principal", Short: "Manage principals"}
	var tenant, role, kind string
	var ttl time.Duration
	create := &cobra.Command{Use: "create NAME --role ROLE [--tenant TENANT]", Short: "Create a principal; prints its API key once",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tid, err := tenantID(cmd.Context(), c, tenant)
			if err != nil {
				return err
			}
			var out httpapi.CreatePrincipalResponse
			req := httpapi.CreatePrincipalRequest{TenantID: tid, Name: args[0], Role: rampart.Role(role),
				Kind: rampart.PrincipalKind(kind), KeyTTLSeconds: int64(ttl / time.Second)}
			if err := c.Do(cmd.Context(), "POST", "/v1/principals", nil, req, &out); err != nil {
				return err
			}
			return g.emit(out, func() {
				g.table(table.Row{"NAME", "ID", "ROLE", "TENANT ID"}, []table.Row{{out.Principal.Name, out.Principal.ID, out.Principal.Role, out.Principal.TenantID}})
				fmt.Fprintf(g.out, "\nAPI key (shown once; store it now):\n\n    %s\n", out.Token)
			})
		}}
	create.Flags().StringVar(&tenant, "tenant", "", "tenant name or ID (default: yours)")
	create.Flags().StringVar(&role, "role", "", "operator | data-provider | model-developer | service-user | auditor")
	create.Flags().StringVar(&kind, "kind", "user", "user | service")
	create.Flags().DurationVar(&ttl, "key-ttl", 0, "lifetime of the first key (0 = no expiry)")
	_ = create.MarkFlagRequired("role")
	var ltenant string
	list := &cobra.Command{Use: "list [--tenant TENANT]", Short: "List principals", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			tid, err := tenantID(cmd.Context(), c, ltenant)
			if err != nil {
				return err
			}
			q := url.Values{}
			if tid != "" {
				q.Set("tenant_id", tid)
			}
			ps, err := listAll[rampart.Principal](cmd.Context(), c, "/v1/principals", q)
			if err != nil {
				return err
			}
			return g.emit(ps, func() {
				var rows []table.Row
				for _, p := range ps {
					rows = append(rows, table.Row{p.Name, p.ID, p.Role, p.Kind, !p.Disabled, ts(p.CreatedAt)})
				}
				g.table(table.Row{"NAME", "ID", "ROLE", "KIND", "ACTIVE", "CREATED"}, rows)
			})
		}}
	list.Flags().StringVar(&ltenant, "tenant", "", "tenant name or ID (default: yours)")
	cmd.AddCommand(create, list)
	for _, st := range []string{"disable", "enable"} {
		cmd.AddCommand(&cobra.Command{Use: st + " PRINCIPAL_ID", Short: strings.ToUpper(st[:1]) + st[1:] + " a principal", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				var p rampart.Principal
				if err := c.Do(cmd.Context(), "POST", "/v1/principals/"+url.PathEscape(args[0])+"/"+st, nil, nil, &p); err != nil {
					return err
				}
				return g.emit(p, func() { fmt.Fprintf(g.out, "%s %sd\n", p.ID, st) })
			}})
	}
	return cmd
}

func keyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage your API keys"}
	var ttl time.Duration
	create := &cobra.Command{Use: "create NAME [--ttl DURATION]", Short: "Issue a new API key for yourself; prints it once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var out httpapi.IssuedKey
			if err := c.Do(cmd.Context(), "POST", "/v1/keys", nil, httpapi.CreateKeyRequest{Name: args[0], TTLSeconds: int64(ttl / time.Second)}, &out); err != nil {
				return err
			}
			return g.emit(out, func() {
				g.table(table.Row{"NAME", "ID", "EXPIRES"}, []table.Row{{out.Key.Name, out.Key.ID, tsp(out.Key.ExpiresAt)}})
				fmt.Fprintf(g.out, "\nAPI key (shown once; store it now):\n\n    %s\n", out.Token)
			})
		}}
	create.Flags().DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 720h (0 = no expiry)")
	var principal string
	list := &cobra.Command{Use: "list [--principal ID]", Short: "List API keys (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if principal != "" {
				q.Set("principal_id", principal)
			}
			ks, err := listAll[rampart.APIKey](cmd.Context(), c, "/v1/keys", q)
			if err != nil {
				return err
			}
			return g.emit(ks, func() {
				var rows []table.Row
				for _, k := range ks {
					state := "active"
					if k.RevokedAt != nil {
						state = "revoked"
					} else if !k.Active(time.Now()) {
						state = "expired"
					}
					rows = append(rows, table.Row{k.Name, k.ID, state, ts(k.CreatedAt), tsp(k.ExpiresAt), tsp(k.LastUsedAt)})
				}
				g.table(table.Row{"NAME", "ID", "STATE", "CREATED", "EXPIRES", "LAST USED"}, rows)
			})
		}}
	list.Flags().StringVar(&principal, "principal", "", "principal ID (default: you)")
	revoke := &cobra.Command{Use: "revoke KEY_ID", Short: "Revoke an API key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var k rampart.APIKey
			if err := c.Do(cmd.Context(), "POST", "/v1/keys/"+url.PathEscape(args[0])+"/revoke", nil, nil, &k); err != nil {
				return err
			}
			return g.emit(k, func() { fmt.Fprintf(g.out, "%s revoked at %s\n", k.ID, tsp(k.RevokedAt)) })
		}}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
