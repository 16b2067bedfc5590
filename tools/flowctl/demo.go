package main

import (
	"os"

	"github.com/flowdb/flowdb/tools/flowctl/internal/demo"
	"github.com/spf13/cobra"
)

func (a *app) demoCmd() *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run a short realistic workload on an embedded store and print what it measured",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := a.dir
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
	return c
}
