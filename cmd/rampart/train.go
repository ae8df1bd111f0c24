package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/rampart-mlaas/rampart"
	"github.com/rampart-mlaas/rampart/executor"
	"github.com/rampart-mlaas/rampart/httpapi"
	"github.com/spf13/cobra"
)

func trainCmd(g *globals) *cobra.Command {
	var (
		ds, target, algorithm, task, name string
		features, params                  []string
		seed                              uint64
		eps, delta                        float64
		mem, cpu, wall                    int
		detach                            bool
	)
	cmd := &cobra.Command{
		Use:   "train --dataset NAME[@VERSION] --target COL --algorithm logreg|linreg|gbdt|mlp",
		Short: "Train a model in an isolated job and follow its progress",
		Long: "Submits a training job, draws its progress and exits with its outcome: 0 succeeded, 1 failed or refused, " +
			"2 cancelled. --json prints the finished job (model version, artifact digest, metrics).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			req := httpapi.CreateJobRequest{Target: target, Algorithm: algorithm, Task: task, Features: features, Seed: seed,
				ModelName: name, Limits: rampart.JobLimits{MemoryMB: mem, CPUSeconds: cpu, WallSeconds: wall}}
			ref, ver, _ := strings.Cut(ds, "@")
			if ver != "" {
				if req.DatasetVersion, err = strconv.Atoi(ver); err != nil || req.DatasetVersion < 1 {
					return fmt.Errorf("--dataset %s: the version after @ must be a positive number", ds)
				}
			}
			if req.DatasetID, err = datasetID(ctx, c, ref); err != nil {
				return err
			}
			if len(params) > 0 {
				req.Params = map[string]string{}
				for _, p := range params {
					k, v, ok := strings.Cut(p, "=")
					if !ok || k == "" {
						return fmt.Errorf("--param %q: want KEY=VALUE", p)
					}
					req.Params[k] = v
				}
			}
			if cmd.Flags().Changed("dp-epsilon") {
				req.DP = &rampart.JobDP{Epsilon: eps, Delta: delta}
			} else if cmd.Flags().Changed("dp-delta") {
				return fmt.Errorf("--dp-delta needs --dp-epsilon")
			}
			var j rampart.Job
			if err := c.Do(ctx, "POST", "/v1/jobs", nil, req, &j); err != nil {
				var pe *httpapi.ProblemError
				if errors.As(err, &pe) && pe.Field != "" {
					return fmt.Errorf("refused (%s): %w", pe.Field, err)
				}
				return err
			}
			if detach {
				return g.emit(j, func() { fmt.Fprintf(g.out, "%s %s\n", j.ID, j.State) })
			}
			fmt.Fprintf(g.errOut, "job %s queued\n", j.ID)
			return g.follow(ctx, c, j.ID, false)
		},
	}
	f := cmd.Flags()
	f.StringVar(&ds, "dataset", "", "dataset name or ID, optionally @VERSION (default: latest)")
	f.StringVar(&target, "target", "", "target column")
	f.StringVar(&algorithm, "algorithm", "", "logreg, linreg, gbdt or mlp")
	f.StringVar(&task, "task", "", "classification or regression (default by algorithm)")
	f.StringSliceVar(&features, "feature", nil, "feature column (repeatable; default: all but the target)")
	f.StringArrayVar(&params, "param", nil, "hyper-parameter KEY=VALUE (repeatable)")
	f.Uint64Var(&seed, "seed", 0, "random seed (same data, parameters and seed give the same model)")
	f.Float64Var(&eps, "dp-epsilon", 0, "train with differential privacy to this ε (logreg, mlp)")
	f.Float64Var(&delta, "dp-delta", 0, "DP δ (default 1/(10·rows))")
	f.StringVar(&name, "name", "", "model name to register under")
	f.IntVar(&mem, "memory-mb", 0, "memory limit in MiB (default 2048)")
	f.IntVar(&cpu, "cpu-seconds", 0, "CPU-time limit (default 3600)")
	f.IntVar(&wall, "wall-seconds", 0, "wall-clock limit (default 3600)")
	f.BoolVar(&detach, "detach", false, "submit and print the job without following it")
	for _, req := range []string{"dataset", "target", "algorithm"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// datasetID resolves a dataset name: an ID as is, else one of the
// tenant's datasets, else a dataset granted to the caller.
func datasetID(ctx context.Context, c *httpapi.Client, ref string) (string, error) {
	if rampart.ValidID("ds", ref) {
		return ref, nil
	}
	type named struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	own, err := listAll[named](ctx, c, "/v1/datasets", nil)
	if err != nil {
		return "", err
	}
	for _, d := range own {
		if d.Name == ref {
			return d.ID, nil
		}
	}
	type grant struct {
		DatasetID string `json:"dataset_id"`
	}
	grants, err := listAll[grant](ctx, c, "/v1/grants", nil)
	if err != nil {
		return "", err
	}
	seen := map[string]bool{}
	for _, gr := range grants {
		if seen[gr.DatasetID] {
			continue
		}
		seen[gr.DatasetID] = true
		var d named
		if err := c.Do(ctx, "GET", "/v1/datasets/"+url.PathEscape(gr.DatasetID), nil, nil, &d); err == nil && d.Name == ref {
			return d.ID, nil
		}
	}
	return "", fmt.Errorf("no dataset named %q in your tenant or granted to you", ref)
}

// internalCmd holds hidden commands the server runs itself.
func internalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "internal", Hidden: true, Short: "Commands the server runs itself"}
	cmd.AddCommand(&cobra.Command{Use: "train-worker", Hidden: true, Args: cobra.NoArgs,
		Short: "Train one job from stdin frames in a confined process (TEN-2); started by the server, never by hand",
		RunE: func(cmd *cobra.Command, _ []string) error {
			os.Exit(executor.ServeChild(os.Stdin, os.Stdout, executor.Train))
			return nil
		}})
	return cmd
}
