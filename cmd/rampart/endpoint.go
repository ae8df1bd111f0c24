package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/spf13/cobra"
)

// endpointCmd is `rampart endpoint …` (issue 7).
func endpointCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "endpoint", Short: "Serve models behind the guard pipeline: create, list, show, update (rollback), grant, delete"}
	cmd.AddCommand(epCreateCmd(g), epListCmd(g), epShowCmd(g), epUpdateCmd(g), epDeleteCmd(g), epGrantCmd(g), epGrantsCmd(g),
		epRevokeCmd(g), predictCmd(g))
	return cmd
}

// policyFlags are the guard policy flags shared by create and update.
type policyFlags struct {
	output, rate, budget, total, ood, extraction string
	sign, noSign                                 bool
	maxRows                                      int
}

func (f *policyFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.output, "output", "", "output policy: label (label only) | topk:K | proba:DECIMALS (default: label + probability to 2 decimals)")
	fl.StringVar(&f.rate, "rate", "", "rate limit per principal, N/s (e.g. 50/s; off to disable)")
	fl.StringVar(&f.budget, "budget", "", "rows per principal per day, N/day (unlimited to disable)")
	fl.StringVar(&f.total, "budget-total", "", "rows per principal in total (unlimited to disable)")
	fl.StringVar(&f.ood, "ood", "", "out-of-distribution inputs: flag | reject | off")
	fl.StringVar(&f.extraction, "extraction", "", "extraction-shaped query streams: alert | throttle | block | off")
	fl.BoolVar(&f.sign, "sign", false, "sign every prediction (JWS, Ed25519)")
	fl.BoolVar(&f.noSign, "no-sign", false, "stop signing predictions")
	fl.IntVar(&f.maxRows, "max-rows", 0, "rows per request")
}

// apply sets the flags given on top of p.
func (f *policyFlags) apply(p *rampart.GuardPolicy) error {
	if f.output != "" {
		mode, arg, _ := strings.Cut(f.output, ":")
		switch mode {
		case rampart.OutputLabel:
			p.Output, p.Decimals = rampart.OutputLabel, -1
			if arg != "" {
				return fmt.Errorf("--output label takes no argument (label + probability is the default)")
			}
		case rampart.OutputTopK:
			k, err := strconv.Atoi(arg)
			if err != nil || k < 1 {
				return fmt.Errorf("--output topk:K needs K ≥ 1")
			}
			p.Output, p.TopK = rampart.OutputTopK, k
		case rampart.OutputProba:
			d, err := strconv.Atoi(arg)
			if err != nil || d < 1 {
				return fmt.Errorf("--output proba:DECIMALS needs DECIMALS ≥ 1")
			}
			p.Output, p.Decimals = rampart.OutputProba, d
		default:
			return fmt.Errorf("--output must be label, topk:K or proba:DECIMALS")
		}
	}
	if f.rate != "" {
		if f.rate == "off" {
			p.RatePerSec = -1
		} else {
			v, err := strconv.ParseFloat(strings.TrimSuffix(f.rate, "/s"), 64)
			if err != nil || v <= 0 {
				return fmt.Errorf("--rate must be N/s with N > 0, or off")
			}
			p.RatePerSec, p.Burst = v, max(1, int(v))
		}
	}
	parseBudget := func(s, suffix string, dst *int64) error {
		if s == "" {
			return nil
		}
		if s == "unlimited" {
			*dst = -1
			return nil
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(s, suffix), 10, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("budget %q: want N%s with N > 0, or unlimited", s, suffix)
		}
		*dst = v
		return nil
	}
	if err := parseBudget(f.budget, "/day", &p.BudgetPerDay); err != nil {
		return err
	}
	if err := parseBudget(f.total, "", &p.BudgetTotal); err != nil {
		return err
	}
	if f.ood != "" {
		p.OOD = f.ood
	}
	if f.extraction != "" {
		p.Extraction = f.extraction
	}
	if f.sign {
		p.Sign = true
	}
	if f.noSign {
		p.Sign = false
	}
	if f.maxRows != 0 {
		p.MaxRows = f.maxRows
	}
	return nil
}

func epCreateCmd(g *globals) *cobra.Command {
	var model string
	var pf policyFlags
	cmd := &cobra.Command{Use: "create NAME --model MODEL[@VERSION]", Short: "Create an endpoint serving a model version (default: production, else latest)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if model == "" {
				return fmt.Errorf("--model MODEL[@VERSION] is required")
			}
			name, ver, hasVer := strings.Cut(model, "@")
			req := httpapi.CreateEndpointRequest{Name: args[0], Model: name}
			if hasVer {
				v, err := strconv.Atoi(ver)
				if err != nil || v < 1 {
					return fmt.Errorf("--model %s: the version after @ must be a positive integer", model)
				}
				req.Version = v
			}
			var pol rampart.GuardPolicy
			if err := pf.apply(&pol); err != nil {
				return err
			}
			req.Policy = &pol
			cl, err := g.client()
			if err != nil {
				return err
			}
			var ep rampart.Endpoint
			if err := cl.Do(cmd.Context(), "POST", "/v1/endpoints", nil, req, &ep); err != nil {
				return err
			}
			return g.emit(ep, func() { endpointTable(g, ep) })
		}}
	cmd.Flags().StringVar(&model, "model", "", "model name or ID, optionally @VERSION")
	pf.add(cmd)
	return cmd
}

func endpointTable(g *globals, ep rampart.Endpoint) {
	p := ep.Policy
	out := p.Output
	switch {
	case p.Output == rampart.OutputTopK:
		out = fmt.Sprintf("topk:%d", p.TopK)
	case p.Output == rampart.OutputProba:
		out = fmt.Sprintf("proba:%d", p.Decimals)
	case p.Decimals >= 0:
		out = fmt.Sprintf("label+p:%d", p.Decimals)
	}
	rate := "off"
	if p.RatePerSec >= 0 {
		rate = fmt.Sprintf("%g/s (burst %d)", p.RatePerSec, p.Burst)
	}
	budget := func(v int64) string {
		if v < 0 {
			return "unlimited"
		}
		return strconv.FormatInt(v, 10)
	}
	g.table(table.Row{"NAME", "ID", "MODEL", "VERSION", "DIGEST"}, []table.Row{{ep.Name, ep.ID, ep.ModelName, ep.ModelVersion, ep.ModelDigest}})
	fmt.Fprintln(g.out)
	g.table(table.Row{"OUTPUT", "RATE", "BUDGET/DAY", "BUDGET TOTAL", "MAX ROWS", "OOD", "EXTRACTION", "SIGN"},
		[]table.Row{{out, rate, budget(p.BudgetPerDay), budget(p.BudgetTotal), p.MaxRows, p.OOD, p.Extraction, p.Sign}})
}

func epListCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "list", Short: "List your tenant's endpoints", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			eps, err := listAll[rampart.Endpoint](cmd.Context(), cl, "/v1/endpoints", nil)
			if err != nil {
				return err
			}
			return g.emit(eps, func() {
				var rows []table.Row
				for _, e := range eps {
					rows = append(rows, table.Row{e.Name, e.ID, e.ModelName, e.ModelVersion, ts(e.UpdatedAt)})
				}
				g.table(table.Row{"NAME", "ID", "MODEL", "VERSION", "UPDATED"}, rows)
			})
		}}
}

func epPath(name string) string { return "/v1/endpoints/" + url.PathEscape(name) }

func epShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "show NAME", Short: "Show an endpoint, its policy and drift", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var ep rampart.Endpoint
			if err := cl.Do(cmd.Context(), "GET", epPath(args[0]), nil, nil, &ep); err != nil {
				return err
			}
			return g.emit(ep, func() { endpointTable(g, ep) })
		}}
}

func epUpdateCmd(g *globals) *cobra.Command {
	var version int
	var pf policyFlags
	cmd := &cobra.Command{Use: "update NAME [--version V] [policy flags]",
		Short: "Switch the served version (rollback without failed requests) or change the policy", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var cur rampart.Endpoint
			if err := cl.Do(cmd.Context(), "GET", epPath(args[0]), nil, nil, &cur); err != nil {
				return err
			}
			req := httpapi.UpdateEndpointRequest{}
			if version > 0 {
				req.Version = &version
			}
			pol := cur.Policy
			if err := pf.apply(&pol); err != nil {
				return err
			}
			if pol != cur.Policy {
				req.Policy = &pol
			}
			var ep rampart.Endpoint
			if err := cl.Do(cmd.Context(), "PATCH", epPath(args[0]), nil, req, &ep); err != nil {
				return err
			}
			return g.emit(ep, func() { endpointTable(g, ep) })
		}}
	cmd.Flags().IntVar(&version, "version", 0, "model version to serve")
	pf.add(cmd)
	return cmd
}

func epDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "delete NAME", Short: "Delete an endpoint and its grants", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.Do(cmd.Context(), "DELETE", epPath(args[0]), nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.errOut, "deleted endpoint %s\n", args[0])
			return nil
		}}
}

func epGrantCmd(g *globals) *cobra.Command {
	var to string
	cmd := &cobra.Command{Use: "grant NAME --to TENANT|PRINCIPAL",
		Short: "Let another tenant (tn_…) or a principal (pr_…) predict; grantees call the endpoint by its ID", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := httpapi.EndpointGrantRequest{}
			switch {
			case strings.HasPrefix(to, rampart.PrefixTenant+"_"):
				req.TenantID = to
			case strings.HasPrefix(to, rampart.PrefixPrincipal+"_"):
				req.PrincipalID = to
			default:
				return fmt.Errorf("--to must be a tenant ID (tn_…) or a principal ID (pr_…)")
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			var gr rampart.EndpointGrant
			if err := cl.Do(cmd.Context(), "POST", epPath(args[0])+"/grants", nil, req, &gr); err != nil {
				return err
			}
			return g.emit(gr, func() { endpointGrantTable(g, []rampart.EndpointGrant{gr}) })
		}}
	cmd.Flags().StringVar(&to, "to", "", "grantee tenant or principal ID")
	return cmd
}

func endpointGrantTable(g *globals, gs []rampart.EndpointGrant) {
	var rows []table.Row
	for _, gr := range gs {
		to := gr.ToTenant
		if gr.ToPrincipal != "" {
			to = gr.ToPrincipal
		}
		rows = append(rows, table.Row{gr.ID, gr.EndpointID, to, ts(gr.CreatedAt), tsp(gr.RevokedAt)})
	}
	g.table(table.Row{"GRANT", "ENDPOINT ID", "TO", "CREATED", "REVOKED"}, rows)
}

func epGrantsCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "grants NAME", Short: "List an endpoint's grants", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var page httpapi.List[rampart.EndpointGrant]
			if err := cl.Do(cmd.Context(), "GET", epPath(args[0])+"/grants", nil, nil, &page); err != nil {
				return err
			}
			return g.emit(page.Items, func() { endpointGrantTable(g, page.Items) })
		}}
}

func epRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "revoke NAME GRANT_ID", Short: "Revoke a grant", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.Do(cmd.Context(), "DELETE", epPath(args[0])+"/grants/"+url.PathEscape(args[1]), nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.errOut, "revoked %s\n", args[1])
			return nil
		}}
}
