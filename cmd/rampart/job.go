package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/mattn/go-isatty"
	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/spf13/cobra"
)

// jobExit is the exit status of a job that did not succeed.
type jobExit struct {
	state  rampart.JobState
	reason string
}

func (e *jobExit) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("job %s: %s", e.state, e.reason)
	}
	return "job " + string(e.state)
}

// ExitCode: 1 failed, 2 cancelled.
func (e *jobExit) ExitCode() int {
	if e.state == rampart.JobCancelled {
		return 2
	}
	return 1
}

func jobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Training jobs: list, show, cancel, follow events"}
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List the tenant's jobs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			js, err := listAll[rampart.Job](cmd.Context(), c, "/v1/jobs", nil)
			if err != nil {
				return err
			}
			return g.emit(js, func() {
				var rows []table.Row
				for _, j := range js {
					rows = append(rows, table.Row{j.ID, j.State, j.Spec.Algorithm, j.Spec.DatasetID + "@" + strconv.Itoa(j.Spec.DatasetVersion),
						progressText(j.Progress), ts(j.CreatedAt), j.Reason})
				}
				g.table(table.Row{"ID", "STATE", "ALGORITHM", "DATASET", "PROGRESS", "CREATED", "REASON"}, rows)
			})
		}})
	cmd.AddCommand(&cobra.Command{Use: "show JOB_ID", Short: "Show a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var j rampart.Job
			if err := c.Do(cmd.Context(), "GET", "/v1/jobs/"+url.PathEscape(args[0]), nil, nil, &j); err != nil {
				return err
			}
			return g.emit(j, func() { g.showJob(j) })
		}})
	cmd.AddCommand(&cobra.Command{Use: "cancel JOB_ID", Short: "Cancel a queued or running job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var j rampart.Job
			if err := c.Do(cmd.Context(), "POST", "/v1/jobs/"+url.PathEscape(args[0])+"/cancel", nil, nil, &j); err != nil {
				return err
			}
			return g.emit(j, func() { fmt.Fprintf(g.out, "%s %s\n", j.ID, j.State) })
		}})
	cmd.AddCommand(&cobra.Command{Use: "events JOB_ID", Short: "Follow a job's events until it ends (exit status: the job's outcome)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return g.follow(cmd.Context(), c, args[0], false)
		}})
	return cmd
}

func progressText(p rampart.JobProgress) string {
	if p.Stage == "" {
		return "-"
	}
	s := p.Stage
	if p.Total > 0 {
		s += fmt.Sprintf(" %d/%d", p.Step, p.Total)
	} else if p.Step > 0 {
		s += fmt.Sprintf(" %d", p.Step)
	}
	if p.Loss != nil {
		s += fmt.Sprintf(" loss %.4g", *p.Loss)
	}
	return s
}

func (g *globals) showJob(j rampart.Job) {
	rows := []table.Row{{"id", j.ID}, {"state", j.State}, {"algorithm", j.Spec.Algorithm},
		{"dataset", fmt.Sprintf("%s@%d (%s)", j.Spec.DatasetID, j.Spec.DatasetVersion, j.DatasetDigest)},
		{"target", j.Spec.Target}, {"seed", j.Spec.Seed}, {"attempt", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts)},
		{"progress", progressText(j.Progress)}, {"created", ts(j.CreatedAt)}, {"started", tsp(j.StartedAt)}, {"finished", tsp(j.FinishedAt)}}
	if j.Spec.DP != nil {
		rows = append(rows, table.Row{"dp", fmt.Sprintf("ε %g, δ %g (charged ε %g to %s)", j.Spec.DP.Epsilon, j.Spec.DP.Delta, j.EpsilonCharged, j.Grantee)})
	}
	if j.Reason != "" {
		rows = append(rows, table.Row{"reason", j.Reason})
	}
	if len(j.Isolation) > 0 {
		rows = append(rows, table.Row{"isolation", strings.Join(j.Isolation, ", ")})
	}
	if r := j.Result; r != nil {
		rows = append(rows, table.Row{"artifact", r.ArtifactDigest})
		if r.ModelID != "" {
			rows = append(rows, table.Row{"model", fmt.Sprintf("%s@%d", r.ModelID, r.ModelVersion)})
		}
		for _, k := range sortedKeys(r.Metrics) {
			rows = append(rows, table.Row{"metric " + k, fmt.Sprintf("%.6g", r.Metrics[k])})
		}
	}
	g.table(table.Row{"FIELD", "VALUE"}, rows)
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// streamEvents reads a job's Server-Sent Events, resuming after a dropped
// connection from the last sequence number, until a final event.
func streamEvents(ctx context.Context, c *httpapi.Client, id string, on func(rampart.JobEvent)) (rampart.JobEvent, error) {
	var after int64
	var last rampart.JobEvent
	hc := &http.Client{Transport: c.HTTP.Transport}
	for tries := 0; ; tries++ {
		req, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+"/v1/jobs/"+url.PathEscape(id)+"/events?after="+strconv.FormatInt(after, 10), nil)
		if err != nil {
			return last, err
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil || tries > 5 {
				return last, err
			}
			time.Sleep(time.Second)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			var p httpapi.ProblemError
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if json.Unmarshal(b, &p.Problem) == nil && p.Code != "" {
				return last, &p
			}
			return last, fmt.Errorf("events: server answered %s", resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var ev rampart.JobEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				resp.Body.Close()
				return last, fmt.Errorf("events: %w", err)
			}
			after, last = ev.Seq, ev
			on(ev)
			if ev.Final() {
				resp.Body.Close()
				return ev, nil
			}
		}
		resp.Body.Close()
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
	}
}

// follow draws a job's progress (a bar on a terminal, lines otherwise)
// until it ends; it returns a jobExit error unless the job succeeded.
// With --json it prints the final job instead.
func (g *globals) follow(ctx context.Context, c *httpapi.Client, id string, quietEvents bool) error {
	tty := false
	if f, ok := g.errOut.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	bar := func(ev rampart.JobEvent) {
		switch ev.Type {
		case rampart.EventProgress:
			if !tty {
				if !quietEvents {
					fmt.Fprintf(g.errOut, "%s %s\n", ev.Type, progressText(rampart.JobProgress{Stage: ev.Stage, Step: ev.Step, Total: ev.Total, Loss: ev.Loss}))
				}
				return
			}
			frac := 0.0
			if ev.Total > 0 {
				frac = float64(ev.Step) / float64(ev.Total)
			}
			const width = 30
			n := int(frac * width)
			fmt.Fprintf(g.errOut, "\r[%s%s] %3.0f%% %-40s", strings.Repeat("#", n), strings.Repeat("-", width-n), frac*100,
				progressText(rampart.JobProgress{Stage: ev.Stage, Step: ev.Step, Total: ev.Total, Loss: ev.Loss}))
		default:
			if tty {
				fmt.Fprint(g.errOut, "\r\033[K")
			}
			msg := ""
			if ev.Message != "" {
				msg = ": " + ev.Message
			}
			fmt.Fprintf(g.errOut, "%s%s\n", ev.Type, msg)
		}
	}
	if _, err := streamEvents(ctx, c, id, bar); err != nil {
		return err
	}
	var j rampart.Job
	if err := c.Do(ctx, "GET", "/v1/jobs/"+url.PathEscape(id), nil, nil, &j); err != nil {
		return err
	}
	if g.json {
		if err := g.emit(j, nil); err != nil {
			return err
		}
	} else if j.State == rampart.JobSucceeded && j.Result != nil {
		model := ""
		if j.Result.ModelID != "" {
			model = fmt.Sprintf(" model %s@%d", j.Result.ModelID, j.Result.ModelVersion)
		}
		fmt.Fprintf(g.out, "%s succeeded:%s artifact %s\n", j.ID, model, j.Result.ArtifactDigest)
	}
	if j.State != rampart.JobSucceeded {
		return &jobExit{state: j.State, reason: j.Reason}
	}
	return nil
}
