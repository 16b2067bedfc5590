package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/vecio"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/spf13/cobra"
)

// app holds the global flags and streams.
type app struct {
	dir     string
	node    string        // a running node's admin address (--node)
	timeout time.Duration // each --node request's limit (--timeout)
	shared  *store        // inside a node: the live store every data command borrows
	json    bool
	verbose bool
	in      io.Reader // standard input ("-" arguments)
	out     io.Writer
	errOut  io.Writer
	// command is the running command's path without "flowctl ".
	command string
	// onJSON, if set (tests), receives every value printed as JSON.
	onJSON func(v any)
}

// errDamage makes check exit 1 without an extra message.
var errDamage = errors.New("damage found")

// usageError marks a bad invocation or bad input (exit 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// runMain runs flowctl with args and returns its exit status (exitCode).
// SIGINT and SIGTERM cancel the command's context: commands that run long
// (vec import, backup, restore, check, demo) stop cleanly and say what
// they left; a second signal kills the process.
func runMain(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // the next signal kills
	}()
	defer stop()
	a := &app{in: in, out: out, errOut: errOut}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.ExecuteContext(ctx)
	code := exitCode(err)
	switch {
	case err == nil || errors.Is(err, errDamage):
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(errOut, "flowctl: interrupted:", message(err))
	default:
		fmt.Fprintln(errOut, "flowctl:", message(err))
	}
	return code
}

// message is err's text without a leading "flowctl: " (main adds one).
func message(err error) string {
	s := err.Error()
	for {
		t, ok := strings.CutPrefix(s, "flowctl: ")
		if !ok {
			return s
		}
		s = t
	}
}

// Exit statuses: one contract for every command, printed by --help
// (exitHelp) and in the README (TestREADMEExitStatus keeps them equal).
const (
	exitOK      = 0 // success
	exitFailed  = 1 // the operation failed
	exitUsage   = 2 // bad invocation or bad input
	exitUnknown = 3 // a write sent to a node may or may not have been applied
)

const exitHelp = `Exit status:
  0  success
  1  the operation failed: not found, lease lost, damage found, I/O error, interrupted
  2  bad invocation or bad input: unknown command, missing or extra arguments,
     bad flag values, input that fails validation (a key over the limit, a
     negative TTL, a malformed vector file, a wrong dimension)
  3  outcome unknown: a write sent to a node (--node) may or may not have been
     applied (the node died or the answer was lost); check before retrying`

// inputErrors are the sentinels of input the library refused before
// logging anything: exit 2, like a bad argument.
var inputErrors = []error{
	db.ErrEmptyKey, db.ErrKeyTooLarge, db.ErrNamespaceTooLarge, db.ErrValueTooLarge,
	db.ErrBatchTooLarge, db.ErrEmptyBatch, db.ErrInvalidTTL, db.ErrInvalidRange, db.ErrInvalidOptions,
	queue.ErrInvalid, registry.ErrInvalid, sched.ErrInvalid,
	hnsw.ErrInvalid, hnsw.ErrZeroVector, quant.ErrDimension, quant.ErrNotFinite,
	vecio.ErrFormat,
}

// exitCode maps a command's error to its exit status.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, db.ErrOutcomeUnknown):
		return exitUnknown
	case usage(err):
		return exitUsage
	}
	return exitFailed
}

// usage reports whether err is a bad invocation or input (exit 2).
func usage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	for _, s := range inputErrors {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "flowctl",
		Short: "Operate a flowdb store",
		Long: "flowctl operates a flowdb store (--dir) or a running node (--node): key-value data,\n" +
			"queues, agents, vectors, stats, backups, checks and a demo.\n\n" +
			"Every command prints JSON with --json. Values, payloads and vectors may be\n" +
			"given as - (standard input) or @FILE; bytes that are not text as hex:....\n\n" + exitHelp,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("flowctl {{.Version}}\n")
	root.PersistentPreRun = func(cmd *cobra.Command, args []string) {
		a.command = strings.TrimPrefix(cmd.CommandPath(), "flowctl ")
	}
	root.PersistentFlags().StringVar(&a.dir, "dir", "", "store directory")
	root.PersistentFlags().StringVar(&a.node, "node", "", "a running node's admin address (HOST:PORT or http://HOST:PORT): cluster commands, and the data commands (kv, queue, agent, pool, sched, vec, stats) run on that node")
	root.PersistentFlags().DurationVar(&a.timeout, "timeout", 10*time.Second, "limit of each --node request (0: none)")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print JSON")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log engine events to stderr")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.kvCmd(), a.queueCmd(), a.agentCmd(), a.poolCmd(), a.schedCmd(), a.vecCmd(), a.txnCmd(), a.statsCmd(), a.checkCmd(), a.backupCmd(), a.restoreCmd(), a.demoCmd(), a.nodeCmd(), a.clusterCmd(), a.serveCmd(), a.tokenCmd(), a.mcpCmd())
	a.forwardWithNode(root)
	a.groups(root)
	return root
}

// groups makes every command that only groups others (flowctl, kv,
// queue, ...) refuse what it is given: a missing or unknown subcommand is a
// bad invocation (exit 2), with the group's usage on stderr.
func (a *app) groups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		a.groups(sub)
	}
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.SuggestionsMinimumDistance = 2
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			fmt.Fprint(a.errOut, cmd.UsageString())
			if !cmd.HasParent() {
				return usageError{errors.New("missing command (the list is above)")}
			}
			return usageError{fmt.Errorf("%s needs a command (the list is above)", cmdName(cmd))}
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageError{fmt.Errorf("%s; see %s --help", msg, cmd.CommandPath())}
	}
}

// cmdName is cmd's path without "flowctl " (errors get "flowctl: ").
func cmdName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), "flowctl ")
}

// version is the module version and VCS commit flowctl was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		}
	}
	if rev != "" {
		v += " commit " + rev + modified
	}
	return v + " " + bi.GoVersion
}

// plural returns "n thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
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
