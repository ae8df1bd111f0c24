package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/auditlog"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/spf13/cobra"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the tamper-evident audit log"}
	cmd.AddCommand(auditKeyCmd(g), auditTailCmd(g), auditVerifyCmd(g), auditExportCmd(g))
	return cmd
}

func auditKeyCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "key", Short: "Print the audit log's public verifier key", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var k httpapi.AuditKey
			if err := c.Do(cmd.Context(), "GET", "/v1/audit/key", nil, nil, &k); err != nil {
				return err
			}
			return g.emit(k, func() { fmt.Fprintln(g.out, k.Key) })
		}}
}

func auditTailCmd(g *globals) *cobra.Command {
	var follow bool
	var action, principal, tenant string
	var n int
	cmd := &cobra.Command{Use: "tail [--follow]", Short: "Show the latest audit events you may read", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			set := func(k, v string) {
				if v != "" {
					q.Set(k, v)
				}
			}
			set("action", action)
			set("principal", principal)
			set("tenant_id", tenant)
			recs, err := listAll[httpapi.AuditRecord](cmd.Context(), c, "/v1/audit/events", q)
			if err != nil {
				return err
			}
			if len(recs) > n {
				recs = recs[len(recs)-n:]
			}
			print := func(rs []httpapi.AuditRecord) error {
				if g.json {
					for _, r := range rs {
						if err := g.emit(r, nil); err != nil {
							return err
						}
					}
					return nil
				}
				for _, r := range rs {
					e := r.Event
					fmt.Fprintf(g.out, "%7d %s %-5s %-22s %-28s %-30s %s %s\n", r.Index, e.Time.Local().Format("2006-01-02 15:04:05"),
						e.Decision, e.Action, e.Principal, e.Resource, e.Outcome, e.Reason)
				}
				return nil
			}
			if err := print(recs); err != nil {
				return err
			}
			if !follow {
				return nil
			}
			var last uint64
			if len(recs) > 0 {
				last = recs[len(recs)-1].Index
			}
			for {
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
				more, err := listAll[httpapi.AuditRecord](cmd.Context(), c, "/v1/audit/events", cloneValues(q))
				if err != nil {
					return err
				}
				var fresh []httpapi.AuditRecord
				for _, r := range more {
					if r.Index > last {
						fresh = append(fresh, r)
						last = r.Index
					}
				}
				if err := print(fresh); err != nil {
					return err
				}
			}
		}}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	f.StringVar(&action, "action", "", "only this action")
	f.StringVar(&principal, "principal", "", "only this principal ID")
	f.StringVar(&tenant, "tenant", "", "operators: only this tenant ID")
	f.IntVarP(&n, "lines", "n", 20, "how many of the latest events to show")
	return cmd
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// witnessPath is where the client keeps the last checkpoint it verified for
// a server: the client acts as a witness, so the log cannot be rolled back
// or forked behind its back.
func witnessPath(dir, server string) string {
	sum := sha256.Sum256([]byte(server))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".checkpoint")
}

func auditVerifyCmd(g *globals) *cobra.Command {
	var offline, key string
	var requireTS bool
	cmd := &cobra.Command{Use: "verify [--offline FILE --key KEY]",
		Short: "Verify the audit log (signatures, consistency with what this client saw, your events' inclusion)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if offline != "" {
				return verifyOffline(g, offline, key, requireTS)
			}
			return verifyOnline(cmd.Context(), g, key, requireTS)
		}}
	f := cmd.Flags()
	f.StringVar(&offline, "offline", "", "verify an export file with no server")
	f.StringVar(&key, "key", "", "the log's verifier key (required with --offline; online it pins the key instead of trusting the server's)")
	f.BoolVar(&requireTS, "require-timestamp", false, "fail if the checkpoint has no RFC 3161 time-stamp")
	return cmd
}

// verifyResult is what verify prints.
type verifyResult struct {
	OK          bool   `json:"ok"`
	Size        uint64 `json:"size"`
	Root        string `json:"root"`
	Witnessed   uint64 `json:"witnessed_size,omitempty"`
	Events      int    `json:"events_checked"`
	Leaves      int    `json:"leaves_checked"`
	TimeStamped string `json:"timestamped_at,omitempty"`
}

func verifyOffline(g *globals, file, key string, requireTS bool) error {
	if key == "" {
		return errors.New("--offline needs --key (from `rampart audit key`)")
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := auditlog.VerifyExport(f, key, auditlog.ExportOptions{RequireTimestamp: requireTS})
	if err != nil {
		return fmt.Errorf("audit export does NOT verify: %w", err)
	}
	res := verifyResult{OK: true, Size: rep.Checkpoint.Size, Root: hex.EncodeToString(rep.Checkpoint.Root), Events: len(rep.Events)}
	if rep.Timestamp != nil {
		res.TimeStamped = rep.Timestamp.Time.UTC().Format(time.RFC3339)
	}
	return g.emit(res, func() {
		fmt.Fprintf(g.out, "export verified: %d events proven in signed checkpoint of size %d (root %s)\n", res.Events, res.Size, res.Root[:16])
		if res.TimeStamped != "" {
			fmt.Fprintf(g.out, "checkpoint time-stamped at %s\n", res.TimeStamped)
		}
	})
}

func verifyOnline(ctx context.Context, g *globals, pinned string, requireTS bool) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	dir, err := configDir()
	if err != nil {
		return err
	}
	return verifyWith(ctx, g, c, filepath.Join(dir, "witness"), pinned, requireTS)
}

// verifyWith verifies the log served to c, keeping witness checkpoints in
// witnessDir.
func verifyWith(ctx context.Context, g *globals, c *httpapi.Client, witnessDir, pinned string, requireTS bool) error {
	var k httpapi.AuditKey
	if err := c.Do(ctx, "GET", "/v1/audit/key", nil, nil, &k); err != nil {
		return err
	}
	if pinned != "" && pinned != k.Key {
		return fmt.Errorf("the server's audit key %q is not the pinned key", k.Key)
	}
	var cp httpapi.AuditCheckpoint
	if err := c.Do(ctx, "GET", "/v1/audit/checkpoint", nil, nil, &cp); err != nil {
		return err
	}
	req := auditlog.VerifyRequest{Key: k.Key, Checkpoint: []byte(cp.Note), Timestamp: cp.Timestamp, RequireTimestamp: requireTS}
	wpath := witnessPath(witnessDir, c.BaseURL)
	res := verifyResult{}
	if w, err := os.ReadFile(wpath); err == nil {
		req.Witness = w
		v, err := auditlog.NewVerifier(k.Key)
		if err != nil {
			return fmt.Errorf("server audit key: %w", err)
		}
		wcp, err := auditlog.ParseCheckpoint(w, v)
		if err != nil {
			return fmt.Errorf("stored witness checkpoint %s: %w", wpath, err)
		}
		res.Witnessed = wcp.Size
		if wcp.Size > 0 && wcp.Size <= cp.Size {
			var p httpapi.AuditProof
			q := url.Values{"from": {strconv.FormatUint(wcp.Size, 10)}, "to": {strconv.FormatUint(cp.Size, 10)}}
			if wcp.Size < cp.Size {
				if err := c.Do(ctx, "GET", "/v1/audit/proofs/consistency", q, nil, &p); err != nil {
					return err
				}
			}
			req.Consistency = p.Proof
		}
	}
	// The events this principal may read, each with its inclusion proof in
	// the checkpoint's tree; operators get the whole log and recompute the root.
	recs, err := listAll[httpapi.AuditRecord](ctx, c, "/v1/audit/events", nil)
	if err != nil {
		return err
	}
	var who httpapi.WhoamiResponse
	if err := c.Do(ctx, "GET", "/v1/whoami", nil, nil, &who); err != nil {
		return err
	}
	if who.Principal.Role == rampart.RoleOperator {
		for _, r := range recs {
			if r.Index < cp.Size {
				req.Leaves = append(req.Leaves, r.Raw)
			}
		}
	} else {
		for _, r := range recs {
			if r.Index >= cp.Size {
				continue
			}
			var p httpapi.AuditProof
			q := url.Values{"index": {strconv.FormatUint(r.Index, 10)}, "size": {strconv.FormatUint(cp.Size, 10)}}
			if err := c.Do(ctx, "GET", "/v1/audit/proofs/inclusion", q, nil, &p); err != nil {
				return err
			}
			req.Events = append(req.Events, auditlog.ProvenEvent{Index: r.Index, Event: r.Raw, Proof: p.Proof})
		}
	}
	vr, err := auditlog.Verify(req)
	if err != nil {
		return fmt.Errorf("audit log does NOT verify: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(wpath), 0o700); err != nil {
		return err
	}
	if err := writePrivate(wpath, []byte(cp.Note)); err != nil {
		return err
	}
	res.OK, res.Size, res.Root, res.Events, res.Leaves = true, vr.Checkpoint.Size, hex.EncodeToString(vr.Checkpoint.Root), vr.EventsChecked, vr.LeavesChecked
	if vr.Timestamp != nil {
		res.TimeStamped = vr.Timestamp.Time.UTC().Format(time.RFC3339)
	}
	return g.emit(res, func() {
		g.table(table.Row{"CHECKPOINT SIZE", "ROOT", "CONSISTENT WITH", "EVENTS PROVEN", "LEAVES RECOMPUTED", "TIME-STAMP"},
			[]table.Row{{res.Size, res.Root[:16] + "…", witnessText(res.Witnessed), res.Events, res.Leaves, orDash(res.TimeStamped)}})
		fmt.Fprintln(g.out, "audit log verified")
	})
}

func witnessText(n uint64) string {
	if n == 0 {
		return "(first check)"
	}
	return "size " + strconv.FormatUint(n, 10)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditExportCmd(g *globals) *cobra.Command {
	var out, tenant string
	cmd := &cobra.Command{Use: "export [--out FILE]", Short: "Export your tenant's events with proofs and the signed checkpoint (JSON lines)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			u := c.BaseURL + "/v1/audit/export"
			if tenant != "" {
				u += "?tenant_id=" + url.QueryEscape(tenant)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), "GET", u, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+c.Token)
			resp, err := c.HTTP.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				return c.Decode(resp, nil)
			}
			var w io.Writer = g.out
			if out != "" && out != "-" {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			n, err := io.Copy(w, resp.Body)
			if err != nil {
				return err
			}
			if out != "" && out != "-" {
				fmt.Fprintf(g.errOut, "wrote %d bytes to %s; verify with: rampart audit verify --offline %s --key \"$(rampart audit key)\"\n", n, out, out)
			}
			return nil
		}}
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write (default: standard output)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "operators: the tenant ID to export")
	return cmd
}
