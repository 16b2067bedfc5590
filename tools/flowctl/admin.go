package main

import (
	"fmt"
	"os"

	"github.com/flowdb/flowdb/db"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func (a *app) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print engine and Pebble figures",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.open(true)
			if err != nil {
				return err
			}
			defer d.Close()
			m := d.Metrics()
			if a.json {
				return a.printJSON(struct {
					db.Metrics
					ReadAmp   int    `json:"read_amp"`
					Memtables int64  `json:"memtables"`
					Dir       string `json:"dir"`
				}{m, m.Pebble.ReadAmp(), m.Pebble.MemTable.Count, d.Dir()})
			}
			fmt.Fprintf(a.out, "store          %s\n", d.Dir())
			fmt.Fprintf(a.out, "applied index  %d\n", m.AppliedIndex)
			fmt.Fprintf(a.out, "disk usage     %s\n", humanBytes(m.DiskBytes))
			fmt.Fprintf(a.out, "durability     %s\n", m.Durability)
			fmt.Fprintf(a.out, "read amp       %d\n\n", m.Pebble.ReadAmp())
			fmt.Fprint(a.out, m.Pebble.String())
			return nil
		},
	}
}

func (a *app) checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Verify frame checksums and engine invariants; exit 1 on damage",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.open(true)
			if err != nil {
				return err
			}
			defer d.Close()
			var bar *progressbar.ProgressBar
			if !a.json {
				bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(a.errOut),
					progressbar.OptionSetDescription("checking keys"), progressbar.OptionClearOnFinish())
			}
			rep, err := d.Check(cmd.Context(), func(n int) {
				if bar != nil {
					bar.Set(n)
				}
			})
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return err
			}
			if a.json {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.out, "checked %d keys, %d frames (%d..%d), applied index %d\n",
					rep.Keys, rep.Frames, rep.FirstFrame, rep.LastFrame, rep.AppliedIndex)
				for _, p := range rep.Problems {
					fmt.Fprintf(a.out, "DAMAGE table=%s key=%s: %s\n", p.Table, p.Key, p.Err)
				}
				if rep.OK() {
					fmt.Fprintln(a.out, "ok")
				}
			}
			if !rep.OK() {
				return errDamage
			}
			return nil
		},
	}
}

func (a *app) progress(desc string) (db.Progress, func()) {
	if a.json {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int64) {
			if bar == nil {
				bar = progressbar.DefaultBytes(total, desc)
			}
			bar.Set64(done)
		}, func() {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(os.Stderr)
			}
		}
}

func (a *app) backupCmd() *cobra.Command {
	var to string
	c := &cobra.Command{
		Use:   "backup --to DIR",
		Short: "Write a consistent copy of the store to DIR",
		Args:  exactArgs(0, "no arguments (use --to)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError{fmt.Errorf("--to is required")}
			}
			d, err := a.open(true)
			if err != nil {
				return err
			}
			defer d.Close()
			p, done := a.progress("backup")
			err = d.Backup(cmd.Context(), to, p)
			done()
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]any{"backup": to, "applied_index": d.AppliedIndex()})
			}
			fmt.Fprintf(a.out, "backup of %s at applied index %d written to %s\n", d.Dir(), d.AppliedIndex(), to)
			return nil
		},
	}
	c.Flags().StringVar(&to, "to", "", "destination directory (must not exist or be empty)")
	return c
}

func (a *app) restoreCmd() *cobra.Command {
	var from string
	c := &cobra.Command{
		Use:   "restore --from BACKUP --dir DIR",
		Short: "Check a backup and restore it into an empty --dir",
		Args:  exactArgs(0, "no arguments (use --from and --dir)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || a.dir == "" {
				return usageError{fmt.Errorf("--from and --dir are required")}
			}
			p, done := a.progress("restore")
			rep, err := db.Restore(cmd.Context(), from, a.dir,
				&db.RestoreOptions{Attach: func(d *db.DB) error { _, err := attach(d); return err }}, p)
			done()
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]any{"restored": a.dir, "keys": rep.Keys, "applied_index": rep.AppliedIndex})
			}
			fmt.Fprintf(a.out, "restored %d keys (applied index %d) from %s into %s\n", rep.Keys, rep.AppliedIndex, from, a.dir)
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "", "backup directory written by flowctl backup")
	return c
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
