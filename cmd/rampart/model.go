package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/rampart-mlaas/rampart/registry"
	"github.com/rampart-mlaas/rampart/signer"
	"github.com/spf13/cobra"
)

// modelRef splits MODEL[@VERSION]; version 0 means the latest.
func modelRef(s string) (string, int, error) {
	name, v, ok := strings.Cut(s, "@")
	if !ok {
		return name, 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("bad version in %q: want MODEL@N with N ≥ 1", s)
	}
	return name, n, nil
}

// resolveModel finds a model by ID (mdl_…) or name.
func resolveModel(ctx context.Context, c *httpapi.Client, ref string) (rampart.Model, error) {
	var m rampart.Model
	if rampart.ValidID(rampart.PrefixModel, ref) {
		var d httpapi.ModelDetail
		err := c.Do(ctx, "GET", "/v1/models/"+ref, nil, nil, &d)
		return d.Model, err
	}
	var page httpapi.List[rampart.Model]
	if err := c.Do(ctx, "GET", "/v1/models", url.Values{"name": {ref}}, nil, &page); err != nil {
		return m, err
	}
	if len(page.Items) != 1 {
		return m, fmt.Errorf("no model named %q", ref)
	}
	return page.Items[0], nil
}

// resolveVersion turns MODEL[@VERSION] into a model and a version number.
func resolveVersion(ctx context.Context, c *httpapi.Client, arg string) (rampart.Model, int, error) {
	ref, v, err := modelRef(arg)
	if err != nil {
		return rampart.Model{}, 0, err
	}
	m, err := resolveModel(ctx, c, ref)
	if err != nil {
		return m, 0, err
	}
	if v == 0 {
		v = m.LatestVersion
	}
	if v == 0 {
		return m, 0, fmt.Errorf("model %s has no version", m.Name)
	}
	return m, v, nil
}

func versionPath(m rampart.Model, v int, suffix string) string {
	return fmt.Sprintf("/v1/models/%s/versions/%d%s", m.ID, v, suffix)
}

func metricsString(ms map[string]float64) string {
	keys := make([]string, 0, len(ms))
	for k := range ms {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, ms[k]))
	}
	return strings.Join(parts, " ")
}

// parseGates reads "metric>=x" and "metric<=x"; two bounds on one metric
// merge into one gate.
func parseGates(reqs []string) ([]rampart.GateSpec, error) {
	var out []rampart.GateSpec
	idx := map[string]int{}
	for _, r := range reqs {
		op := ">="
		name, val, ok := strings.Cut(r, op)
		if !ok {
			op = "<="
			if name, val, ok = strings.Cut(r, op); !ok {
				return nil, fmt.Errorf("gate %q: want METRIC>=X or METRIC<=X", r)
			}
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("gate %q: %w", r, err)
		}
		name = strings.TrimSpace(name)
		i, seen := idx[name]
		if !seen {
			i = len(out)
			idx[name] = i
			out = append(out, rampart.GateSpec{Metric: name})
		}
		if op == ">=" {
			out[i].Min = &x
		} else {
			out[i].Max = &x
		}
	}
	return out, nil
}

func modelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Signed model registry: list, show, card, verify, import, promote, approve, export"}

	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List models", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ms, err := listAll[rampart.Model](cmd.Context(), c, "/v1/models", nil)
			if err != nil {
				return err
			}
			return g.emit(ms, func() {
				var rows []table.Row
				for _, m := range ms {
					prod := "-"
					if m.ProductionVersion > 0 {
						prod = strconv.Itoa(m.ProductionVersion)
					}
					rows = append(rows, table.Row{m.Name, m.ID, m.LatestVersion, prod, ts(m.CreatedAt)})
				}
				g.table(table.Row{"NAME", "ID", "LATEST", "PRODUCTION", "CREATED"}, rows)
			})
		}})

	cmd.AddCommand(&cobra.Command{Use: "show MODEL[@VERSION]", Short: "Show a version: digest, stage, metrics, approvals", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, v, err := resolveVersion(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			var d registry.VersionDetail
			if err := c.Do(cmd.Context(), "GET", versionPath(m, v, ""), nil, nil, &d); err != nil {
				return err
			}
			return g.emit(d, func() {
				g.table(table.Row{"MODEL", "VERSION", "STAGE", "FORMAT", "PROVENANCE", "DIGEST"},
					[]table.Row{{d.ModelName, d.Version, d.Stage, d.Format, d.Provenance, d.Digest}})
				fmt.Fprintf(g.out, "\nalgorithm: %s  task: %s  metrics: %s\n", d.Algorithm, d.Task, metricsString(d.Metrics))
				fmt.Fprintf(g.out, "created %s by %s; signed by key %s\n", ts(d.CreatedAt), d.CreatedBy, d.KeyID)
				for _, a := range d.Approvals {
					fmt.Fprintf(g.out, "approved by %s at %s\n", a.Principal, ts(a.CreatedAt))
				}
			})
		}})

	for _, doc := range []struct{ name, short string }{
		{"card", "Print a version's model card (MODEL-3)"},
		{"bom", "Print a version's CycloneDX ML-BOM (SUP-1)"},
		{"attestation", "Print a version's signed DSSE attestation (TRAIN-1)"},
	} {
		cmd.AddCommand(&cobra.Command{Use: doc.name + " MODEL[@VERSION]", Short: doc.short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				m, v, err := resolveVersion(cmd.Context(), c, args[0])
				if err != nil {
					return err
				}
				var raw json.RawMessage
				if err := c.Do(cmd.Context(), "GET", versionPath(m, v, "/"+doc.name), nil, nil, &raw); err != nil {
					return err
				}
				var pretty any
				if err := json.Unmarshal(raw, &pretty); err != nil {
					return err
				}
				enc := json.NewEncoder(g.out)
				enc.SetIndent("", "  ")
				return enc.Encode(pretty)
			}})
	}

	var artifactFile, attFile, keyFile string
	verify := &cobra.Command{Use: "verify [MODEL[@VERSION]] [--artifact FILE --attestation FILE --public-key FILE]",
		Short: "Verify a model: offline from files with the published public key, or on the server",
		Long: "With --artifact, --attestation and --public-key, verification is offline: the DSSE signature by the key\n" +
			"and the artifact's SHA-256 against the attested subject (MODEL-1). With MODEL and --artifact only, the\n" +
			"attestation and key are fetched from the server and checked here. With MODEL alone, the server verifies\n" +
			"the stored version exactly as a load does.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			offline := artifactFile != "" && attFile != "" && keyFile != ""
			if !offline && len(args) == 0 {
				return errors.New("give MODEL[@VERSION], or --artifact, --attestation and --public-key")
			}
			var env, pemKey []byte
			var err error
			if offline {
				if env, err = os.ReadFile(attFile); err != nil {
					return err
				}
				if pemKey, err = os.ReadFile(keyFile); err != nil {
					return err
				}
			} else {
				c, err := g.client()
				if err != nil {
					return err
				}
				m, v, err := resolveVersion(cmd.Context(), c, args[0])
				if err != nil {
					return err
				}
				if artifactFile == "" {
					var r registry.VerifyResult
					if err := c.Do(cmd.Context(), "POST", versionPath(m, v, "/verify"), nil, nil, &r); err != nil {
						return err
					}
					if err := g.emit(r, func() {
						if r.Verified {
							fmt.Fprintf(g.out, "verified: %s@%d %s (key %s)\n", m.Name, v, r.Digest, r.KeyID)
						} else {
							fmt.Fprintf(g.out, "NOT VERIFIED: %s@%d: %s\n", m.Name, v, r.Reason)
						}
					}); err != nil {
						return err
					}
					if !r.Verified {
						return errors.New("verification failed")
					}
					return nil
				}
				var raw json.RawMessage
				if err := c.Do(cmd.Context(), "GET", versionPath(m, v, "/attestation"), nil, nil, &raw); err != nil {
					return err
				}
				env = raw
				if keyFile != "" {
					pemKey, err = os.ReadFile(keyFile)
				} else {
					var k httpapi.PublicKeyResponse
					err = c.Do(cmd.Context(), "GET", "/v1/signing-key", nil, nil, &k)
					pemKey = []byte(k.PublicKeyPEM)
				}
				if err != nil {
					return err
				}
			}
			art, err := os.ReadFile(artifactFile)
			if err != nil {
				return err
			}
			pub, err := signer.ParsePublicKey(pemKey)
			if err != nil {
				return err
			}
			st, err := signer.VerifyArtifact(env, art, pub)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(art)
			out := map[string]any{"verified": true, "digest": "sha256:" + hex.EncodeToString(sum[:]), "key_id": signer.KeyID(pub),
				"subject": st.Subject[0].Name, "build_type": st.Predicate.BuildDefinition.BuildType,
				"external_parameters": st.Predicate.BuildDefinition.ExternalParameters}
			return g.emit(out, func() {
				fmt.Fprintf(g.out, "verified: %s sha256:%x signed by key %s\n", st.Subject[0].Name, sum, signer.KeyID(pub))
				fmt.Fprintf(g.out, "build type: %s\n", st.Predicate.BuildDefinition.BuildType)
				for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
					fmt.Fprintf(g.out, "input: %s sha256:%s\n", d.URI, d.Digest["sha256"])
				}
			})
		}}
	verify.Flags().StringVar(&artifactFile, "artifact", "", "the model artifact file")
	verify.Flags().StringVar(&attFile, "attestation", "", "the DSSE attestation (JSON) file")
	verify.Flags().StringVar(&keyFile, "public-key", "", "the platform's public key (PEM), as `rampart model key` prints it")
	cmd.AddCommand(verify)

	cmd.AddCommand(&cobra.Command{Use: "key", Short: "Print the platform's model-signing public key (PEM)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var k httpapi.PublicKeyResponse
			if err := c.Do(cmd.Context(), "GET", "/v1/signing-key", nil, nil, &k); err != nil {
				return err
			}
			return g.emit(k, func() { fmt.Fprint(g.out, k.PublicKeyPEM) })
		}})

	var name, digest, format, intended, source string
	var limits []string
	imp := &cobra.Command{Use: "import FILE --name NAME --digest sha256:HEX",
		Short: "Import an XGBoost JSON or LightGBM text model by pinned digest (pickle and other code-carrying formats are refused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{"name": {name}, "digest": {digest}}
			for k, v := range map[string]string{"format": format, "intended_use": intended, "source": source} {
				if v != "" {
					q.Set(k, v)
				}
			}
			for _, l := range limits {
				q.Add("limitation", l)
			}
			v, err := c.ImportModel(cmd.Context(), q, b)
			if err != nil {
				return err
			}
			return g.emit(v, func() {
				g.table(table.Row{"MODEL", "ID", "VERSION", "STAGE", "FORMAT", "DIGEST"}, []table.Row{{v.ModelName, v.ModelID, v.Version, v.Stage, v.Format, v.Digest}})
			})
		}}
	imp.Flags().StringVar(&name, "name", "", "model name")
	imp.Flags().StringVar(&digest, "digest", "", "expected sha256:<hex> of FILE (SUP-3); e.g. from sha256sum")
	imp.Flags().StringVar(&format, "format", "", "assert the format: xgboost-json | lightgbm-text")
	imp.Flags().StringVar(&intended, "intended-use", "", "intended use for the model card")
	imp.Flags().StringArrayVar(&limits, "limitation", nil, "a known limitation for the model card (repeatable)")
	imp.Flags().StringVar(&source, "source", "", "where the model came from")
	_ = imp.MarkFlagRequired("name")
	_ = imp.MarkFlagRequired("digest")
	cmd.AddCommand(imp)

	var to string
	promote := &cobra.Command{Use: "promote MODEL[@VERSION] --to staging|production",
		Short: "Promote a version one stage (production needs another principal's approval, MODEL-5)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, v, err := resolveVersion(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			var out rampart.ModelVersion
			if err := c.Do(cmd.Context(), "POST", versionPath(m, v, "/promote"), nil, httpapi.PromoteRequest{Stage: rampart.Stage(to)}, &out); err != nil {
				return err
			}
			return g.emit(out, func() { fmt.Fprintf(g.out, "%s@%d is now %s\n", m.Name, out.Version, out.Stage) })
		}}
	promote.Flags().StringVar(&to, "to", "", "staging | production")
	_ = promote.MarkFlagRequired("to")
	cmd.AddCommand(promote)

	cmd.AddCommand(&cobra.Command{Use: "approve MODEL[@VERSION]", Short: "Approve a version for production (not your own, MODEL-5)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, v, err := resolveVersion(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			var a rampart.ModelApproval
			if err := c.Do(cmd.Context(), "POST", versionPath(m, v, "/approve"), nil, nil, &a); err != nil {
				return err
			}
			return g.emit(a, func() { fmt.Fprintf(g.out, "approved %s@%d\n", m.Name, a.Version) })
		}})

	var rollTo int
	rollback := &cobra.Command{Use: "rollback MODEL [--to VERSION]", Short: "Restore an earlier production version (MODEL-6)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := resolveModel(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			var out rampart.ModelVersion
			if err := c.Do(cmd.Context(), "POST", "/v1/models/"+m.ID+"/rollback", nil, httpapi.RollbackRequest{ToVersion: rollTo}, &out); err != nil {
				return err
			}
			return g.emit(out, func() { fmt.Fprintf(g.out, "%s: production is now version %d\n", m.Name, out.Version) })
		}}
	rollback.Flags().IntVar(&rollTo, "to", 0, "version to restore (default: the previous production version)")
	cmd.AddCommand(rollback)

	var outFile, outAtt string
	export := &cobra.Command{Use: "export MODEL[@VERSION] -o FILE [--attestation FILE]",
		Short: "Download a version's weights (needs an export grant, MODEL-4) and its attestation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, v, err := resolveVersion(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			b, digest, err := c.ExportModel(cmd.Context(), m.ID, v)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
				return fmt.Errorf("downloaded bytes have %s, server says %s", got, digest)
			}
			if err := os.WriteFile(outFile, b, 0o600); err != nil {
				return err
			}
			if outAtt != "" {
				var raw json.RawMessage
				if err := c.Do(cmd.Context(), "GET", versionPath(m, v, "/attestation"), nil, nil, &raw); err != nil {
					return err
				}
				if err := os.WriteFile(outAtt, raw, 0o600); err != nil {
					return err
				}
			}
			out := map[string]any{"model": m.Name, "version": v, "digest": digest, "file": outFile, "attestation": outAtt}
			return g.emit(out, func() { fmt.Fprintf(g.out, "wrote %s (%d bytes, %s)\n", outFile, len(b), digest) })
		}}
	export.Flags().StringVarP(&outFile, "output", "o", "", "file to write the artifact to")
	export.Flags().StringVar(&outAtt, "attestation", "", "also write the DSSE attestation to this file")
	_ = export.MarkFlagRequired("output")
	cmd.AddCommand(export)

	var requires []string
	var clear bool
	gates := &cobra.Command{Use: "gates MODEL [--require 'METRIC>=X'|'METRIC<=X']… [--clear]",
		Short: "Show or set a model's own promotion gates (MODEL-5)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := resolveModel(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if len(requires) > 0 || clear {
				specs, err := parseGates(requires)
				if err != nil {
					return err
				}
				if err := c.Do(cmd.Context(), "PUT", "/v1/models/"+m.ID+"/gates", nil, httpapi.GatesRequest{Gates: specs}, &m); err != nil {
					return err
				}
			}
			return g.emit(m.Gates, func() {
				if len(m.Gates) == 0 {
					fmt.Fprintf(g.out, "%s: no model gates (platform gates still apply)\n", m.Name)
				}
				for _, gs := range m.Gates {
					fmt.Fprintln(g.out, registry.MetricGate{Metric: gs.Metric, Min: gs.Min, Max: gs.Max}.String())
				}
			})
		}}
	gates.Flags().StringArrayVar(&requires, "require", nil, "a gate, e.g. 'auc>=0.8' or 'mia_tpr_at_1pct_fpr<=0.05' (repeatable; replaces the model's gates)")
	gates.Flags().BoolVar(&clear, "clear", false, "remove the model's own gates")
	cmd.AddCommand(gates)

	var grantee string
	var ttl time.Duration
	grant := &cobra.Command{Use: "grant-export MODEL --to PRINCIPAL_ID [--ttl DURATION]",
		Short: "Let another principal export a model's weights (MODEL-4)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := resolveModel(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			var gr rampart.ExportGrant
			if err := c.Do(cmd.Context(), "POST", "/v1/models/"+m.ID+"/export-grants", nil,
				httpapi.ExportGrantRequest{PrincipalID: grantee, TTLSeconds: int64(ttl / time.Second)}, &gr); err != nil {
				return err
			}
			return g.emit(gr, func() {
				g.table(table.Row{"GRANT", "MODEL", "PRINCIPAL", "EXPIRES"}, []table.Row{{gr.ID, m.Name, gr.PrincipalID, tsp(gr.ExpiresAt)}})
			})
		}}
	grant.Flags().StringVar(&grantee, "to", "", "principal ID of the grantee")
	grant.Flags().DurationVar(&ttl, "ttl", 0, "grant lifetime (0 = until revoked)")
	_ = grant.MarkFlagRequired("to")
	cmd.AddCommand(grant)
	return cmd
}
