package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/tools/flowctl/internal/humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func (a *app) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print engine and Pebble figures",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				m, dir := s.Metrics(), s.Dir()
				return output{JSON: struct {
					db.Metrics
					ReadAmp   int    `json:"read_amp"`
					Memtables int64  `json:"memtables"`
					Dir       string `json:"dir"`
				}{m, m.Pebble.ReadAmp(), m.Pebble.MemTable.Count, dir}, Text: func(w io.Writer) {
					fmt.Fprintf(w, "store          %s\n", dir)
					fmt.Fprintf(w, "applied index  %d\n", m.AppliedIndex)
					fmt.Fprintf(w, "disk usage     %s\n", humanize.IBytes(m.DiskBytes))
					fmt.Fprintf(w, "durability     %s\n", m.Durability)
					fmt.Fprintf(w, "read amp       %d\n\n", m.Pebble.ReadAmp())
					fmt.Fprint(w, m.Pebble.String())
				}}, nil
			})
		},
	}
}

func (a *app) checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Verify frame checksums and engine invariants; exit 1 on damage",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				bar := a.bar(-1, "checking keys")
				rep, err := s.Check(cmd.Context(), func(n int) {
					if bar != nil {
						bar.Set(n)
					}
				})
				if bar != nil {
					bar.Finish()
				}
				if err != nil {
					return output{}, err
				}
				out := output{JSON: rep, Text: func(w io.Writer) {
					fmt.Fprintf(w, "checked %d keys, %d frames (%d..%d), applied index %d\n",
						rep.Keys, rep.Frames, rep.FirstFrame, rep.LastFrame, rep.AppliedIndex)
					for _, p := range rep.Problems {
						fmt.Fprintf(w, "DAMAGE%s: %s\n", readableKey(p.Table, p.Key), p.Err)
					}
					for _, p := range rep.Warnings {
						fmt.Fprintf(w, "WARNING %s: %s\n", p.Table, p.Err)
					}
					if rep.OK() {
						fmt.Fprintln(w, "ok")
					}
				}}
				if !rep.OK() {
					return out, errDamage
				}
				return out, nil
			})
		},
	}
}

// terminal reports whether w is a terminal (a character device).
func terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// bar returns a progress bar of n steps (-1: unknown) on stderr, or nil
// when stderr is not a terminal (a log file, a pipe) or with --json.
func (a *app) bar(n int, desc string) *progressbar.ProgressBar {
	if a.json || !terminal(a.errOut) {
		return nil
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(a.errOut),
		progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
}

// progress returns a byte-progress callback for backup and restore (nil
// when there is no bar to draw) and the function that ends it.
// readableKey renders where check found damage: the table, and the raw
// Pebble key (hex) as its shard and the rest of the key, quoted.
func readableKey(table, hexKey string) string {
	var s string
	if table != "" {
		s = " table " + table
	}
	k, err := hex.DecodeString(hexKey)
	if err != nil || len(k) == 0 {
		return s
	}
	if shard, _, rest, ok := keys.Split(k); ok {
		return fmt.Sprintf("%s shard %d key %s", s, shard, strconv.QuoteToASCII(string(rest)))
	}
	return s + " key " + strconv.QuoteToASCII(string(k))
}

func (a *app) progress(desc string) (db.Progress, func()) {
	if a.json || !terminal(a.errOut) {
		return nil, func() {}
	}
	var bar *progressbar.ProgressBar
	return func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(a.errOut), progressbar.OptionSetDescription(desc),
					progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
			}
			bar.Set64(done)
		}, func() {
			if bar != nil {
				bar.Finish()
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
			return a.withStore(mustExist, func(s *store) (output, error) {
				p, done := a.progress("backup")
				err := s.Backup(cmd.Context(), to, p)
				done()
				if err != nil {
					return output{}, err
				}
				applied, dir := s.AppliedIndex(), s.Dir()
				return output{JSON: map[string]any{"backup": to, "applied_index": applied}, Text: func(w io.Writer) {
					fmt.Fprintf(w, "backup of %s at applied index %d written to %s\n", dir, applied, to)
				}}, nil
			})
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
				&db.RestoreOptions{Attach: func(d *db.DB) error { _, err := attach(d, false); return err }}, p)
			done()
			if err != nil {
				return err
			}
			return a.print(output{JSON: map[string]any{"restored": a.dir, "keys": rep.Keys, "applied_index": rep.AppliedIndex},
				Text: func(w io.Writer) {
					fmt.Fprintf(w, "restored %d keys (applied index %d) from %s into %s\n", rep.Keys, rep.AppliedIndex, from, a.dir)
				}})
		},
	}
	c.Flags().StringVar(&from, "from", "", "backup directory written by flowctl backup")
	return c
}
