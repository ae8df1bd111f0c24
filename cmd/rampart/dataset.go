package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/mattn/go-isatty"
	"github.com/rampart-mlaas/rampart/authz"
	"github.com/rampart-mlaas/rampart/dataset"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/spf13/cobra"
)

// datasetCmd is `rampart dataset …` (issue 5).
func datasetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Upload, audit, share and delete datasets"}
	cmd.AddCommand(dsCreateCmd(g), dsPutCmd(g), dsListCmd(g), dsShowCmd(g), dsReportCmd(g), dsDeleteCmd(g),
		dsDownloadCmd(g), dsGrantCmd(g), dsGrantsCmd(g), dsRevokeCmd(g), dsReceivedCmd(g), dsPolicyCmd(g))
	return cmd
}

// resolveDataset turns NAME or ds_… (optionally @VERSION) into an ID and a
// version (0 when absent).
func resolveDataset(ctx context.Context, c *httpapi.Client, arg string) (string, int, error) {
	name, ver, hasVer := strings.Cut(arg, "@")
	v := 0
	if hasVer {
		n, err := strconv.Atoi(ver)
		if err != nil || n <= 0 {
			return "", 0, fmt.Errorf("%q: the version after @ must be a positive integer", arg)
		}
		v = n
	}
	if strings.HasPrefix(name, dataset.PrefixDataset+"_") {
		return name, v, nil
	}
	all, err := listAll[dataset.Dataset](ctx, c, "/v1/datasets", nil)
	if err != nil {
		return "", 0, err
	}
	for _, d := range all {
		if d.Name == name {
			return d.ID, v, nil
		}
	}
	return "", 0, fmt.Errorf("no dataset named %q in your tenant", name)
}

func dsCreateCmd(g *globals) *cobra.Command {
	var label, schemaFile string
	c := &cobra.Command{Use: "create NAME", Short: "Create a dataset", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			req := httpapi.CreateDatasetRequest{Name: args[0], Label: label}
			if schemaFile != "" {
				b, err := os.ReadFile(schemaFile)
				if err != nil {
					return err
				}
				if req.Schema, err = dataset.ParseSchema(b); err != nil {
					return fmt.Errorf("%s: %w", schemaFile, err)
				}
			}
			var d dataset.Dataset
			if err := cl.Do(cmd.Context(), "POST", "/v1/datasets", nil, req, &d); err != nil {
				return err
			}
			return g.emit(d, func() {
				g.table(table.Row{"NAME", "ID", "LABEL", "CREATED"}, []table.Row{{d.Name, d.ID, d.Label, ts(d.CreatedAt)}})
			})
		}}
	c.Flags().StringVar(&label, "label", "", "label column (enables class balance and label-flip screening)")
	c.Flags().StringVar(&schemaFile, "schema", "", "JSON file declaring the columns: {\"columns\":[{\"name\":…,\"type\":…}]}")
	return c
}

// progressReader reports upload progress on a terminal.
type progressReader struct {
	r     io.Reader
	n     atomic.Int64
	total int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	return n, err
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func dsPutCmd(g *globals) *cobra.Command {
	var format, declare string
	c := &cobra.Command{Use: "put NAME FILE", Short: "Upload FILE (CSV or Parquet) as the dataset's next version", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			id, _, err := resolveDataset(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			f, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if format == "" {
				format = "csv"
				if strings.HasSuffix(strings.ToLower(args[1]), ".parquet") {
					format = "parquet"
				}
			}
			q := url.Values{"format": {format}}
			if declare != "" {
				q.Set("declare_pii", declare)
			}
			pr := &progressReader{r: f, total: fi.Size()}
			stop := make(chan struct{})
			done := make(chan struct{})
			if !g.json && isatty.IsTerminal(os.Stderr.Fd()) {
				go func() {
					defer close(done)
					start := time.Now()
					t := time.NewTicker(200 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stop:
							fmt.Fprintf(g.errOut, "\r%-70s\r", "")
							return
						case <-t.C:
							n := pr.n.Load()
							pct := 100 * float64(n) / float64(max(pr.total, 1))
							bar := strings.Repeat("█", int(pct/5)) + strings.Repeat("░", 20-int(pct/5))
							rate := float64(n) / time.Since(start).Seconds() / 1e6
							fmt.Fprintf(g.errOut, "\r%s %5.1f%% %s / %s  %.0f MB/s ", bar, pct, mib(n), mib(pr.total), rate)
						}
					}
				}()
			} else {
				close(done)
			}
			var out httpapi.UploadResponse
			err = uploadFile(cmd.Context(), cl, "/v1/datasets/"+url.PathEscape(id)+"/versions?"+q.Encode(), pr, fi.Size(), format, &out, g.errOut)
			close(stop)
			<-done
			if err != nil {
				return err
			}
			return g.emit(out, func() {
				v := out.Version
				g.table(table.Row{"DATASET", "VERSION", "ROWS", "COLUMNS", "SIZE", "DIGEST", "PII", "FLAGGED"},
					[]table.Row{{id, v.Version, v.Rows, v.Columns, mib(v.Size), "sha256:" + v.Digest, strings.Join(v.PIIKinds, ","), v.Flagged}})
				printWarnings(g, out.Report)
			})
		}}
	c.Flags().StringVar(&format, "format", "", "csv or parquet (default: from the file name)")
	c.Flags().StringVar(&declare, "declare-pii", "", "identifier kinds the file contains, comma-separated ("+strings.Join(dataset.PIIKinds, ",")+")")
	return c
}

func printWarnings(g *globals, r *dataset.Report) {
	if r == nil {
		return
	}
	if r.PII != nil && len(r.PII.Columns) > 0 {
		for _, c := range r.PII.Columns {
			fmt.Fprintf(g.out, "warning: column %q holds direct identifiers: %v\n", c.Column, c.Kinds)
		}
	}
	if r.Formula.Cells > 0 {
		fmt.Fprintf(g.out, "warning: %d cell(s) in %v would run as spreadsheet formulas; exports escape them\n", r.Formula.Cells, r.Formula.Columns)
	}
	if r.LabelFlip != nil && r.LabelFlip.Flagged > 0 {
		fmt.Fprintf(g.out, "warning: %d row(s) have implausible labels (policy %s)\n", r.LabelFlip.Flagged, r.LabelFlip.Policy)
	}
	if r.Duplicate.Rows > 0 || r.Duplicate.ConflictingLabels > 0 {
		fmt.Fprintf(g.out, "note: %d duplicate row(s), %d with conflicting labels\n", r.Duplicate.Rows, r.Duplicate.ConflictingLabels)
	}
}

// uploadFile streams body to path and decodes the answer.
func uploadFile(ctx context.Context, c *httpapi.Client, path string, body io.Reader, size int64, format string, out any, errOut io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "POST", c.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	ct := "text/csv"
	if format == "parquet" {
		ct = "application/vnd.apache.parquet"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := *c.HTTP
	hc.Timeout = 0 // large uploads; the context bounds the call
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var p httpapi.ProblemError
		if json.Unmarshal(b, &p.Problem) != nil || p.Code == "" {
			return fmt.Errorf("server answered %s", resp.Status)
		}
		// Each violation on its own line (the error itself prints as one).
		for i, e := range p.Errors {
			if i == 50 {
				fmt.Fprintf(errOut, "  … and %d more\n", len(p.Errors)-50)
				break
			}
			fmt.Fprintln(errOut, "  "+e.Message)
		}
		return &p
	}
	return json.Unmarshal(b, out)
}

func dsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "list", Short: "List your tenant's datasets", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			ds, err := listAll[dataset.Dataset](cmd.Context(), cl, "/v1/datasets", nil)
			if err != nil {
				return err
			}
			return g.emit(ds, func() {
				var rows []table.Row
				for _, d := range ds {
					rows = append(rows, table.Row{d.Name, d.ID, d.Label, d.Latest, ts(d.CreatedAt)})
				}
				g.table(table.Row{"NAME", "ID", "LABEL", "LATEST", "CREATED"}, rows)
			})
		}}
}

func dsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "show NAME[@VERSION]", Short: "Show a dataset and its versions, or one version", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			id, v, err := resolveDataset(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			base := "/v1/datasets/" + url.PathEscape(id)
			if v > 0 {
				var ver dataset.Version
				if err := cl.Do(cmd.Context(), "GET", base+"/versions/"+strconv.Itoa(v), nil, nil, &ver); err != nil {
					return err
				}
				return g.emit(ver, func() { versionTable(g, []dataset.Version{ver}) })
			}
			var d dataset.Dataset
			if err := cl.Do(cmd.Context(), "GET", base, nil, nil, &d); err != nil {
				return err
			}
			vs, err := listAll[dataset.Version](cmd.Context(), cl, base+"/versions", nil)
			if err != nil {
				return err
			}
			return g.emit(struct {
				Dataset  dataset.Dataset   `json:"dataset"`
				Versions []dataset.Version `json:"versions"`
			}{d, vs}, func() {
				g.table(table.Row{"NAME", "ID", "LABEL", "CREATED"}, []table.Row{{d.Name, d.ID, d.Label, ts(d.CreatedAt)}})
				fmt.Fprintln(g.out)
				versionTable(g, vs)
			})
		}}
}

func versionTable(g *globals, vs []dataset.Version) {
	var rows []table.Row
	for _, v := range vs {
		rows = append(rows, table.Row{v.Version, v.Status, v.Format, v.Rows, v.Columns, mib(v.Size), strings.Join(v.PIIKinds, ","), v.Flagged, ts(v.CreatedAt)})
	}
	g.table(table.Row{"VERSION", "STATUS", "FORMAT", "ROWS", "COLUMNS", "SIZE", "PII", "FLAGGED", "CREATED"}, rows)
}

func latestVersion(ctx context.Context, cl *httpapi.Client, id string) (int, error) {
	var d dataset.Dataset
	if err := cl.Do(ctx, "GET", "/v1/datasets/"+url.PathEscape(id), nil, nil, &d); err != nil {
		return 0, err
	}
	if d.Latest == 0 {
		return 0, errors.New("the dataset has no version yet")
	}
	return d.Latest, nil
}

func dsReportCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "report NAME[@VERSION]", Short: "Show a version's data audit report (latest by default)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			id, v, err := resolveDataset(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			if v == 0 {
				if v, err = latestVersion(cmd.Context(), cl, id); err != nil {
					return err
				}
			}
			var r dataset.Report
			if err := cl.Do(cmd.Context(), "GET", "/v1/datasets/"+url.PathEscape(id)+"/versions/"+strconv.Itoa(v)+"/report", nil, nil, &r); err != nil {
				return err
			}
			return g.emit(r, func() {
				fmt.Fprintf(g.out, "%s@%d: %d rows, %d columns, %s, %d duplicate rows (%d with conflicting labels)\n\n",
					id, v, r.Rows, len(r.Columns), mib(r.Bytes), r.Duplicate.Rows, r.Duplicate.ConflictingLabels)
				var rows []table.Row
				f := func(p *float64) string {
					if p == nil {
						return "-"
					}
					return strconv.FormatFloat(*p, 'g', 5, 64)
				}
				for _, c := range r.Columns {
					top := ""
					for i, t := range c.Top {
						if i == 3 {
							break
						}
						top += fmt.Sprintf("%s(%d) ", t.Value, t.Count)
					}
					rows = append(rows, table.Row{c.Name, c.Type, fmt.Sprintf("%.1f%%", 100*c.MissPct), f(c.Min), f(c.Max), f(c.Mean), f(c.Std), f(c.PSI), strings.TrimSpace(top)})
				}
				g.table(table.Row{"COLUMN", "TYPE", "MISSING", "MIN", "MAX", "MEAN", "STD", "PSI", "TOP"}, rows)
				if len(r.Classes) > 0 {
					fmt.Fprint(g.out, "\nclasses:")
					for _, c := range r.Classes {
						fmt.Fprintf(g.out, " %s=%d", c.Value, c.Count)
					}
					fmt.Fprintln(g.out)
				}
				if r.LabelFlip != nil {
					lf := r.LabelFlip
					if lf.Skipped != "" {
						fmt.Fprintf(g.out, "label screening skipped: %s\n", lf.Skipped)
					} else {
						fmt.Fprintf(g.out, "label screening: %d of %d rows flagged (policy %s)\n", lf.Flagged, lf.Screened, lf.Policy)
					}
				}
				printWarnings(g, &r)
			})
		}}
}

func dsDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "delete NAME[@VERSION]", Short: "Crypto-shred a version, or the whole dataset", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			id, v, err := resolveDataset(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			path := "/v1/datasets/" + url.PathEscape(id)
			if v > 0 {
				path += "/versions/" + strconv.Itoa(v)
			}
			var del dataset.Deletion
			if err := cl.Do(cmd.Context(), "DELETE", path, nil, nil, &del); err != nil {
				return err
			}
			return g.emit(del, func() {
				fmt.Fprintf(g.out, "shredded %s versions %v\n", id, del.Versions)
				for _, a := range del.Affected {
					fmt.Fprintf(g.out, "affected: %s %s (version %d)\n", a.Kind, a.ObjectID, a.Version)
				}
			})
		}}
}

func dsDownloadCmd(g *globals) *cobra.Command {
	var out string
	c := &cobra.Command{Use: "download NAME[@VERSION]", Short: "Download a version's rows as CSV (formulas escaped)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			id, v, err := resolveDataset(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			if v == 0 {
				if v, err = latestVersion(cmd.Context(), cl, id); err != nil {
					return err
				}
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "GET", cl.BaseURL+"/v1/datasets/"+url.PathEscape(id)+"/versions/"+strconv.Itoa(v)+"/data", nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+cl.Token)
			hc := *cl.HTTP
			hc.Timeout = 0
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				var p httpapi.ProblemError
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				if json.Unmarshal(b, &p.Problem) == nil && p.Code != "" {
					return &p
				}
				return fmt.Errorf("server answered %s", resp.Status)
			}
			w := g.out
			if out != "" && out != "-" {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if _, err := io.Copy(w, resp.Body); err != nil {
				return fmt.Errorf("download interrupted (discard the partial file): %w", err)
			}
			return nil
		}}
	c.Flags().StringVarP(&out, "output", "o", "-", "file to create (default stdout)")
	return c
}

// parseDuration accepts Go durations and a "d" (days) suffix.
func parseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func dsGrantCmd(g *globals) *cobra.Command {
	var to, purpose, expires string
	var maxEps float64
	var requireDP bool
	c := &cobra.Command{Use: "grant NAME --to TENANT|PRINCIPAL --purpose train|evaluate|read", Short: "Let another tenant or principal use a dataset (DATA-7)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			id, _, err := resolveDataset(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			req := httpapi.GrantRequest{To: to, Purpose: authz.Purpose(purpose), RequireDP: requireDP}
			if expires != "" {
				d, err := parseDuration(expires)
				if err != nil {
					return err
				}
				req.ExpiresInSeconds = int64(d / time.Second)
			}
			if cmd.Flags().Changed("max-epsilon") {
				req.MaxEpsilon = &maxEps
			}
			var gr dataset.Grant
			if err := cl.Do(cmd.Context(), "POST", "/v1/datasets/"+url.PathEscape(id)+"/grants", nil, req, &gr); err != nil {
				return err
			}
			return g.emit(gr, func() { grantTable(g, []dataset.Grant{gr}) })
		}}
	c.Flags().StringVar(&to, "to", "", "grantee: tenant ID (tn_…) or principal ID (pr_…)")
	c.Flags().StringVar(&purpose, "purpose", "", "train (never readable), evaluate or read")
	c.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30d or 12h (default: no expiry)")
	c.Flags().Float64Var(&maxEps, "max-epsilon", 0, "largest total privacy loss ε the grantee may spend (train)")
	c.Flags().BoolVar(&requireDP, "require-dp", false, "training must be differentially private (train)")
	_ = c.MarkFlagRequired("to")
	_ = c.MarkFlagRequired("purpose")
	return c
}

func grantTable(g *globals, gs []dataset.Grant) {
	var rows []table.Row
	for _, gr := range gs {
		who := gr.GranteeTenantID
		if gr.GranteePrincipalID != "" {
			who = gr.GranteePrincipalID
		}
		terms := ""
		if gr.Terms.RequireDP {
			terms = "dp "
		}
		if gr.Terms.MaxEpsilon != nil {
			terms += "ε≤" + strconv.FormatFloat(*gr.Terms.MaxEpsilon, 'g', -1, 64)
		}
		state := "live"
		if gr.RevokedAt != nil {
			state = "revoked"
		} else if gr.ExpiresAt != nil && time.Now().After(*gr.ExpiresAt) {
			state = "expired"
		}
		rows = append(rows, table.Row{gr.ID, gr.DatasetID, who, gr.Purpose, terms, tsp(gr.ExpiresAt), state})
	}
	g.table(table.Row{"GRANT", "DATASET", "GRANTEE", "PURPOSE", "TERMS", "EXPIRES", "STATE"}, rows)
}

func dsGrantsCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "grants NAME", Short: "List a dataset's grants", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			id, _, err := resolveDataset(cmd.Context(), cl, args[0])
			if err != nil {
				return err
			}
			gs, err := listAll[dataset.Grant](cmd.Context(), cl, "/v1/datasets/"+url.PathEscape(id)+"/grants", nil)
			if err != nil {
				return err
			}
			return g.emit(gs, func() { grantTable(g, gs) })
		}}
}

func dsReceivedCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "received", Short: "List grants given to you or your tenant", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			gs, err := listAll[dataset.Grant](cmd.Context(), cl, "/v1/grants", nil)
			if err != nil {
				return err
			}
			return g.emit(gs, func() { grantTable(g, gs) })
		}}
}

func dsRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "revoke GRANT", Short: "Revoke a grant", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var gr dataset.Grant
			if err := cl.Do(cmd.Context(), "DELETE", "/v1/grants/"+url.PathEscape(args[0]), nil, nil, &gr); err != nil {
				return err
			}
			return g.emit(gr, func() { grantTable(g, []dataset.Grant{gr}) })
		}}
}

func dsPolicyCmd(g *globals) *cobra.Command {
	var pii, label string
	c := &cobra.Command{Use: "policy", Short: "Show or set the tenant's screening policy", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			var p dataset.Policy
			if pii != "" || label != "" {
				if err := cl.Do(cmd.Context(), "GET", "/v1/dataset-policy", nil, nil, &p); err != nil {
					return err
				}
				req := httpapi.PolicyRequest{PII: p.PII, Label: p.Label}
				if pii != "" {
					req.PII = pii
				}
				if label != "" {
					req.Label = label
				}
				if err := cl.Do(cmd.Context(), "PUT", "/v1/dataset-policy", nil, req, &p); err != nil {
					return err
				}
			} else if err := cl.Do(cmd.Context(), "GET", "/v1/dataset-policy", nil, nil, &p); err != nil {
				return err
			}
			return g.emit(p, func() {
				g.table(table.Row{"TENANT", "PII", "LABEL", "UPDATED"}, []table.Row{{p.TenantID, p.PII, p.Label, ts(p.UpdatedAt)}})
			})
		}}
	c.Flags().StringVar(&pii, "pii", "", "warn, block or require-declaration")
	c.Flags().StringVar(&label, "label", "", "warn or quarantine")
	return c
}
