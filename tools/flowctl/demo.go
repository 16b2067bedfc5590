package main

import (
	"fmt"
	"os"

	"github.com/flowdb/flowdb/tools/flowctl/internal/demo"
	"github.com/spf13/cobra"
)

func (a *app) demoCmd() *cobra.Command {
	var keep, force bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run a short realistic workload on an embedded store and print what it measured",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := a.dir
			if dir != "" && !force {
				// The demo writes thousands of keys, a queue and 1,000
				// agents: never into someone's store unless told.
				if ls, err := os.ReadDir(dir); err == nil && len(ls) > 0 {
					return usageError{fmt.Errorf("demo: %s is not empty (it would write its workload there); "+
						"give a new or empty --dir, or --force to run it in that store anyway", dir)}
				}
			}
			if dir == "" {
				tmp, err := os.MkdirTemp("", "flowdb-demo-")
				if err != nil {
					return err
				}
				dir = tmp
				if !keep {
					defer os.RemoveAll(tmp)
				}
			}
			o := demo.Options{Logger: a.logger()}
			if !a.json {
				o.Out = a.out // the figures as they come; JSON is the report at the end
			}
			rep, err := demo.Run(cmd.Context(), dir, o)
			if err != nil {
				return err
			}
			return a.print(output{JSON: rep})
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary store directory")
	c.Flags().BoolVar(&force, "force", false, "run in a --dir that already holds a store (writes the demo's keys, queue and agents into it)")
	return c
}
