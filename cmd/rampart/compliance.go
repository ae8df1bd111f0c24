package main

import (
	"fmt"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/rampart-mlaas/rampart/compliance"
	"github.com/spf13/cobra"
)

func complianceCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "compliance", Short: "Evaluate the deployment against every security requirement, with evidence", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var r compliance.Evaluation
			if err := c.Do(cmd.Context(), "GET", "/v1/compliance", nil, nil, &r); err != nil {
				return err
			}
			return g.emit(r, func() {
				var rows []table.Row
				for _, x := range r.Results {
					rows = append(rows, table.Row{x.ID, x.Status, x.Evidence})
				}
				g.table(table.Row{"REQUIREMENT", "STATUS", "EVIDENCE"}, rows)
				fmt.Fprintf(g.out, "\n%d pass, %d fail, %d not applicable, %d not checked at run time (see docs/requirements.md for their tests)\n",
					r.Summary[compliance.Pass], r.Summary[compliance.Fail], r.Summary[compliance.NotApplicable], r.Summary[compliance.NotChecked])
			})
		}}
}
