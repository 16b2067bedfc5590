// Command flowctl is flowdb's admin CLI: key-value commands, stats, backup
// and restore, consistency checks, and a demo of the whole engine.
//
//	flowctl --dir D kv get|set|del|scan ...
//	flowctl --dir D stats | check | backup --to B
//	flowctl --dir D restore --from B
//	flowctl demo [--dir D]
//	flowctl --dir D mcp [--embed-url U --embed-model M --dim N] (MCP server on stdio)
//	flowctl --dir D node start --id 1 --raft H:P --members 1=H:P,... [--admin H:P]
//	flowctl --node http://ADMIN cluster status|add|remove|transfer
//	flowctl --node http://ADMIN kv|queue|agent|pool|sched|vec|stats ... (run on the node)
//
// Every read command prints JSON with --json. Exit status: 0 on success, 1 on
// damage found by check or any error, 2 on a bad argument.
package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/spf13/cobra"
)

// app holds the global flags and output streams.
type app struct {
	dir     string
	node    string // a running node's admin URL (--node)
	shared  *store // inside a node: the live store every data command borrows
	json    bool
	verbose bool
	out     io.Writer
	errOut  io.Writer
}

// errDamage makes check exit 1 without an extra message.
var errDamage = errors.New("damage found")

// usageError marks a bad argument (exit 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func main() {
	a := &app{out: os.Stdout, errOut: os.Stderr}
	root := a.rootCmd()
	if err := root.Execute(); err != nil {
		var ue usageError
		switch {
		case errors.Is(err, errDamage):
		case errors.As(err, &ue) || usage(err):
			// Arguments the library refused before logging anything.
			fmt.Fprintln(os.Stderr, "flowctl:", err)
			os.Exit(2)
		default:
			fmt.Fprintln(os.Stderr, "flowctl:", err)
		}
		os.Exit(1)
	}
}

// usage reports whether err is an argument the library refused (exit 2).
func usage(err error) bool {
	return errors.Is(err, queue.ErrInvalid) || errors.Is(err, registry.ErrInvalid) ||
		errors.Is(err, hnsw.ErrInvalid) || errors.Is(err, quant.ErrDimension) || errors.Is(err, quant.ErrNotFinite) ||
		errors.Is(err, hnsw.ErrZeroVector)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "flowctl",
		Short:         "Operate a flowdb store",
		Long:          "flowctl operates a flowdb store: key-value data, stats, backups, checks and a demo.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dir, "dir", "", "store directory")
	root.PersistentFlags().StringVar(&a.node, "node", "", "a running node's admin URL (http://HOST:PORT): cluster commands, and the data commands (kv, queue, agent, pool, sched, vec, stats) run on that node")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print JSON")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log engine events to stderr")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.kvCmd(), a.queueCmd(), a.agentCmd(), a.poolCmd(), a.schedCmd(), a.vecCmd(), a.statsCmd(), a.checkCmd(), a.backupCmd(), a.restoreCmd(), a.demoCmd(), a.nodeCmd(), a.clusterCmd(), a.mcpCmd())
	a.forwardWithNode(root)
	return root
}

func (a *app) logger() *slog.Logger {
	if a.verbose {
		return slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// printable renders bytes as text when they are printable UTF-8 (tabs and
// newlines allowed), else as "hex:..." (which kv commands also accept).
func printable(b []byte) string {
	if !utf8.Valid(b) || strings.HasPrefix(string(b), "hex:") {
		return "hex:" + hex.EncodeToString(b)
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != '\t' && r != '\n' {
			return "hex:" + hex.EncodeToString(b)
		}
	}
	return string(b)
}
