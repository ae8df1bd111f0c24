package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/assess/record"
	"github.com/rampart-mlaas/rampart/assess/service"
	"github.com/rampart-mlaas/rampart/httpapi"
)

// assessCmd: rampart assess MODEL[@VERSION] — a security assessment
// (issue 8, PRIV-1..3) run by the server as an asynchronous job; the CLI
// follows its progress and writes the report.
func assessCmd(g *globals) *cobra.Command {
	var attacks, holdout, report string
	var queries int
	var seed uint64
	cmd := &cobra.Command{
		Use:   "assess ENDPOINT|MODEL[@VERSION] [--attacks membership,extraction,evasion,poisoning] [--queries N] [--holdout DATASET_ID[@V]] [--report out.html|out.json] [--json]",
		Short: "Assess a model version: membership inference, extraction, evasion, poisoning drill (PRIV-1..3)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := g.client()
			if err != nil {
				return err
			}
			// ENDPOINT|MODEL[@VERSION]: an endpoint of the caller's tenant
			// is attacked through its API (its guards measured) as well.
			var req httpapi.CreateAssessmentRequest
			m, v, err := resolveVersion(ctx, c, args[0])
			if err != nil && !strings.Contains(args[0], "@") {
				var ep rampart.Endpoint
				if eerr := c.Do(ctx, "GET", "/v1/endpoints/"+url.PathEscape(args[0]), nil, nil, &ep); eerr != nil {
					return err
				}
				req.Endpoint = ep.ID
				m.Name, m.ID, v = ep.ModelName, ep.ModelID, ep.ModelVersion
			} else if err != nil {
				return err
			}
			req.ModelID, req.ModelVersion, req.Queries, req.Seed = m.ID, v, queries, seed
			if attacks != "" {
				req.Attacks = strings.Split(attacks, ",")
			}
			if holdout != "" {
				id, ver, _ := strings.Cut(holdout, "@")
				req.HoldoutID = id
				if ver != "" {
					if req.HoldoutVersion, err = strconv.Atoi(ver); err != nil || req.HoldoutVersion < 1 {
						return fmt.Errorf("bad --holdout %q: want DATASET_ID[@N]", holdout)
					}
				}
			}
			var a record.Assessment
			if err := c.Do(ctx, "POST", "/v1/assessments", nil, req, &a); err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(g.errOut, "assessment %s of %s v%d: %s\n", a.ID, m.Name, v, strings.Join(a.Attacks, ", "))
			}
			if err := followAssessment(ctx, c, a.ID, func(e service.Event) {
				if !g.json && !e.Done {
					fmt.Fprintf(g.errOut, "  %s\n", e.Message)
				}
			}); err != nil {
				return err
			}
			if err := c.Do(ctx, "GET", "/v1/assessments/"+url.PathEscape(a.ID), nil, nil, &a); err != nil {
				return err
			}
			if report != "" && a.Status == record.Succeeded {
				if err := downloadReport(ctx, c, a.ID, report); err != nil {
					return err
				}
				if !g.json {
					fmt.Fprintf(g.errOut, "report written to %s\n", report)
				}
			}
			if err := g.emit(a, func() { g.showAssessment(a) }); err != nil {
				return err
			}
			if a.Status != record.Succeeded {
				return &jobExit{state: rampart.JobState(a.Status), reason: a.Reason}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&attacks, "attacks", "", "comma-separated attacks (default membership,extraction,evasion)")
	cmd.Flags().IntVar(&queries, "queries", 0, fmt.Sprintf("extraction query budget, %d to %d (default %d)", service.MinQueries, service.MaxQueries, service.DefaultQueries))
	cmd.Flags().StringVar(&holdout, "holdout", "", "dataset of rows the model was not trained on (needed for membership inference)")
	cmd.Flags().StringVar(&report, "report", "", "write the report: .json for JSON, anything else for the HTML page")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "seed of the attacks")
	cmd.AddCommand(thresholdsCmd(g))
	return cmd
}

func (g *globals) showAssessment(a record.Assessment) {
	fmt.Fprintf(g.out, "%s  %s  model %s v%d\n", a.ID, a.Status, a.ModelID, a.ModelVersion)
	if a.Reason != "" {
		fmt.Fprintf(g.out, "reason: %s\n", a.Reason)
	}
	keys := make([]string, 0, len(a.Metrics))
	for k := range a.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var rows []table.Row
	for _, k := range keys {
		rows = append(rows, table.Row{k, strconv.FormatFloat(a.Metrics[k], 'f', 4, 64)})
	}
	if len(rows) > 0 {
		g.table(table.Row{"METRIC", "VALUE"}, rows)
	}
}

// followAssessment reads the assessment's SSE progress until the final
// event.
func followAssessment(ctx context.Context, c *httpapi.Client, id string, on func(service.Event)) error {
	hc := &http.Client{Transport: c.HTTP.Transport}
	req, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+"/v1/assessments/"+url.PathEscape(id)+"/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.Decode(resp, nil)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e service.Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return fmt.Errorf("assessment events: %w", err)
		}
		on(e)
		if e.Done {
			return nil
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// downloadReport writes the report (HTML unless the file ends in .json).
func downloadReport(ctx context.Context, c *httpapi.Client, id, path string) error {
	q := url.Values{"format": {"html"}}
	if strings.EqualFold(filepath.Ext(path), ".json") {
		q.Set("format", "json")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+"/v1/assessments/"+url.PathEscape(id)+"/report?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.Decode(resp, nil)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// thresholdsCmd shows or sets the tenant's assessment thresholds (MODEL-5).
func thresholdsCmd(g *globals) *cobra.Command {
	var reqs []string
	var clear bool
	cmd := &cobra.Command{Use: "thresholds [--require 'membership.auc<=0.6']… [--clear]",
		Short: "Show or set the assessment thresholds that gate promotion to production", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var out httpapi.ThresholdsBody
			if len(reqs) > 0 || clear {
				th, err := parseGates(reqs)
				if err != nil {
					return err
				}
				if err := c.Do(cmd.Context(), "PUT", "/v1/assessment-thresholds", nil, httpapi.ThresholdsBody{Thresholds: th}, &out); err != nil {
					return err
				}
			} else if err := c.Do(cmd.Context(), "GET", "/v1/assessment-thresholds", nil, nil, &out); err != nil {
				return err
			}
			return g.emit(out, func() {
				if len(out.Thresholds) == 0 {
					fmt.Fprintln(g.out, "no assessment thresholds: promotion is gated by approval and model gates only")
					return
				}
				for _, t := range out.Thresholds {
					if t.Min != nil {
						fmt.Fprintf(g.out, "%s >= %g\n", t.Metric, *t.Min)
					}
					if t.Max != nil {
						fmt.Fprintf(g.out, "%s <= %g\n", t.Metric, *t.Max)
					}
				}
			})
		}}
	cmd.Flags().StringArrayVar(&reqs, "require", nil, "METRIC>=X or METRIC<=X (repeat)")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove every threshold")
	return cmd
}
