package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Data commands against a running node.
//
// With --node, a data command (kv, queue, agent, pool, sched, vec, stats)
// does not open a store: the client sends the command line it parsed to the
// node's admin endpoint (POST /v1/exec), and the node runs the very same
// command, from the same command tree, against its live replicated store,
// then answers with what the command printed, its exit status and the
// classes of its error. So every data command works against a node exactly
// as against an embedded store, with no second implementation to drift.
//
// The node reads the files a command names (vec import FILE); the admin
// endpoint listens on loopback only, so that is this machine, and the client
// makes such paths absolute first. Backup, restore, check and demo work on
// a store directory and are not forwarded.

// remoteGroups are the top-level commands forwarded with --node.
var remoteGroups = map[string]bool{"kv": true, "queue": true, "agent": true, "pool": true, "sched": true, "vec": true, "stats": true}

// pathArgs annotates a command whose positional argument at the given
// index names a file (made absolute before forwarding).
const pathArgs = "flowctl/path-arg"

// localFlags are not forwarded: they describe the client, not the command.
var localFlags = map[string]bool{"node": true, "dir": true, "verbose": true, "timeout": true}

// forwardable reports whether cmd is a data command that --node forwards.
func forwardable(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Parent() != nil && c.Parent().Parent() == nil {
			return remoteGroups[c.Name()]
		}
	}
	return false
}

// dirCommands are the top-level commands that work on a store directory
// only: given --node, they say so.
var dirCommands = map[string]bool{"check": true, "backup": true, "restore": true, "demo": true}

// topLevel returns the child of the root that c is or is under.
func topLevel(c *cobra.Command) *cobra.Command {
	for ; c != nil && c.Parent() != nil; c = c.Parent() {
		if c.Parent().Parent() == nil {
			return c
		}
	}
	return nil
}

// forwardWithNode wraps the RunE of every data command under root: with
// --node set (and not already running inside a node), the command runs on
// the node.
func (a *app) forwardWithNode(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.RunE == nil {
			return
		}
		local := c.RunE
		if !forwardable(c) {
			if top := topLevel(c); top != nil && dirCommands[top.Name()] {
				// check, backup, restore, demo: a store directory only.
				c.RunE = func(cmd *cobra.Command, args []string) error {
					if a.node != "" {
						return usageError{fmt.Errorf("%s works on a store directory (--dir), not through --node: "+
							"run it where the store is, with the node stopped (a running node holds its store's lock)", cmdName(cmd))}
					}
					return local(cmd, args)
				}
			}
			return
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if a.node == "" || a.shared != nil {
				return local(cmd, args)
			}
			return a.execRemote(cmd, args)
		}
	}
	walk(root)
}

// commandLine rebuilds the arguments cmd was parsed from: its path, every
// flag set on the command line (but the client's own), then "--" and the
// positional arguments, so that a payload starting with '-' stays one.
func commandLine(cmd *cobra.Command, args []string) ([]string, error) {
	out := strings.Fields(cmd.CommandPath())[1:]
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if localFlags[f.Name] {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				out = append(out, "--"+f.Name+"="+v)
			}
			return
		}
		out = append(out, "--"+f.Name+"="+f.Value.String())
	})
	args = append([]string(nil), args...)
	if s := cmd.Annotations[pathArgs]; s != "" {
		i, _ := strconv.Atoi(s)
		if i < len(args) {
			abs, err := filepath.Abs(args[i])
			if err != nil {
				return nil, err
			}
			args[i] = abs
		}
	}
	out = append(out, "--")
	return append(out, args...), nil
}

// longRunning annotates commands whose run time grows with their input
// (vec import, vec compact): --timeout bounds them only when given.
const longRunning = "flowctl/long-running"

// execRequest and execResponse are the /v1/exec wire format.
type execRequest struct {
	Args []string `json:"args"`
}

type execResponse struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Error is the command's error text ("" on success), Usage whether it
	// was a bad argument (exit status 2), Classes the texts of the
	// sentinel errors it matches (errorClasses).
	Error   string   `json:"error,omitempty"`
	Usage   bool     `json:"usage,omitempty"`
	Classes []string `json:"classes,omitempty"`
}

// errorClasses returns the texts of the sentinel errors err matches among
// those the engine carries across a replicated store: its own and those
// every subsystem registered (db.Machine.Errors), so a subsystem's new
// sentinel crosses /v1/exec as soon as the subsystem registers it.
func errorClasses(d *db.DB, err error) []string {
	var out []string
	for _, c := range d.ErrorClasses(err) {
		out = append(out, c.Error())
	}
	return out
}

// remoteError is a node's command error on the client: its text, and the
// texts of the sentinels it matched on the node. errors.Is matches a
// sentinel by its text, as the engine's results do (sentinel texts are
// unique: each starts with its package's name).
type remoteError struct {
	msg     string
	classes []string
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	return target != nil && slices.Contains(e.classes, target.Error())
}

// readVerbs name the commands that change nothing: a request of theirs
// that got no answer failed, its outcome is not unknown.
var readVerbs = map[string]bool{"get": true, "scan": true, "stats": true, "list": true, "inspect": true,
	"search": true, "status": true}

// readOnly marks the context of a request that changes nothing.
type readOnly struct{}

// execRemote runs cmd on the node named by --node and replays its output.
func (a *app) execRemote(cmd *cobra.Command, args []string) error {
	args, err := a.resolveValues(cmd, append([]string(nil), args...))
	if err != nil {
		return err
	}
	line, err := commandLine(cmd, args)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(execRequest{Args: line})
	var r execResponse
	ctx, cancel := a.requestContext(cmd)
	defer cancel()
	if readVerbs[cmd.Name()] {
		ctx = context.WithValue(ctx, readOnly{}, true)
	}
	if err := a.remote(ctx, http.MethodPost, "/v1/exec", body, &r); err != nil {
		return err
	}
	io.WriteString(a.out, r.Stdout)
	io.WriteString(a.errOut, r.Stderr)
	if r.Error == "" {
		return nil
	}
	re := &remoteError{msg: r.Error, classes: r.Classes}
	if r.Usage {
		return usageError{re}
	}
	return re
}

// requestContext bounds a --node request of cmd by --timeout, plus the
// time the command itself may block (--wait); a long-running command is
// bounded only when --timeout is given.
func (a *app) requestContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	limit := a.timeout
	if cmd.Annotations[longRunning] != "" && !cmd.Flags().Changed("timeout") {
		// The node runs it as long as it takes (the client may still stop it).
		limit = 0
	}
	if f := cmd.Flags().Lookup("wait"); f != nil && limit > 0 {
		if w, err := time.ParseDuration(f.Value.String()); err == nil && w > 0 {
			limit += w
		}
	}
	if limit <= 0 {
		return context.WithCancel(context.WithValue(ctx, noTimeout{}, true))
	}
	return context.WithTimeout(ctx, limit)
}

// serveExec runs a forwarded data command against s.
func serveExec(s *store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req execRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		var out, errOut bytes.Buffer
		sub := &app{out: &out, errOut: &errOut, shared: s}
		root := sub.rootCmd()
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(req.Args)
		if c, _, err := root.Find(req.Args); err != nil || !forwardable(c) {
			http.Error(w, fmt.Sprintf("not a data command: %q", req.Args), http.StatusBadRequest)
			return
		}
		err := root.ExecuteContext(r.Context())
		resp := execResponse{Stdout: out.String(), Stderr: errOut.String()}
		if err != nil {
			resp.Error = err.Error()
			var ue usageError
			resp.Usage = errors.As(err, &ue) || usage(err)
			resp.Classes = errorClasses(s.DB, err)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	}
}
