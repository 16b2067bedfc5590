package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/embed"
	flowmcp "github.com/flowdb/flowdb/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

// mcpCmd is `flowctl mcp`: an MCP server on stdin/stdout over the store at
// --dir, for an MCP client that starts it as a subprocess. Logs go to
// stderr; stdout carries only the protocol.
func (a *app) mcpCmd() *cobra.Command {
	var (
		dim                             int
		embedURL, embedModel            string
		embedKeyEnv, embedKeyFile       string
		embedTimeout, callTimeout, wait time.Duration
	)
	c := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the store to an MCP client over stdio (tools for tasks, memory, agents, keys)",
		Long: `mcp runs a Model Context Protocol server on stdin/stdout over the store at --dir (created if
absent), for an MCP client that starts it. Memory texts are embedded by the built-in hashed
embedder (no model, no network) unless --embed-url names an OpenAI-compatible embeddings
endpoint. It stops when the client closes stdin, or on SIGINT/SIGTERM.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.node != "" {
				return usageError{errors.New("mcp serves a store directory (--dir); a node's MCP endpoint comes with the network server")}
			}
			var e embed.Embedder
			var err error
			if embedURL != "" {
				e, err = embed.NewOpenAI(embed.OpenAIOptions{URL: embedURL, Model: embedModel, Dim: dim,
					KeyEnv: embedKeyEnv, KeyFile: embedKeyFile, Timeout: embedTimeout})
			} else {
				e, err = embed.NewHashed(dim)
			}
			if err != nil {
				return usageError{err}
			}
			if a.dir == "" {
				return usageError{errors.New("--dir is required (the store directory)")}
			}
			s, err := a.openLive()
			if err != nil {
				return err
			}
			defer s.Close()
			srv, err := flowmcp.NewServer(flowmcp.Stack{DB: s.DB, Queues: s.Q, Registry: s.R, Vectors: s.V},
				&flowmcp.Options{Embedder: e, CallTimeout: callTimeout, MaxLeaseWait: wait, Version: "flowctl"})
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err = srv.Run(ctx, &sdk.StdioTransport{})
			if ctx.Err() != nil {
				return nil // stopped by a signal
			}
			return err
		},
	}
	f := c.Flags()
	f.IntVar(&dim, "dim", 0, "embedding dimension (hashed embedder: default 256; required with --embed-url)")
	f.StringVar(&embedURL, "embed-url", "", "OpenAI-compatible embeddings endpoint, e.g. http://localhost:11434/v1")
	f.StringVar(&embedModel, "embed-model", "", "embeddings model name (with --embed-url)")
	f.StringVar(&embedKeyEnv, "embed-key-env", "", "environment variable holding the endpoint's key")
	f.StringVar(&embedKeyFile, "embed-key-file", "", "file holding the endpoint's key")
	f.DurationVar(&embedTimeout, "embed-timeout", 30*time.Second, "timeout of each embeddings request")
	f.DurationVar(&callTimeout, "call-timeout", 30*time.Second, "deadline of every tool call")
	f.DurationVar(&wait, "max-lease-wait", 20*time.Second, "longest wait a task_lease call may ask for")
	return c
}

// openLive opens the store at --dir for a long-running server: the
// subsystems run their background loops (lease expiry, retries, heartbeat
// checks), as in a node.
func (a *app) openLive() (*store, error) {
	d, err := db.Open(a.dir, &db.Options{Logger: a.logger()})
	if errors.Is(err, db.ErrLocked) {
		return nil, fmt.Errorf("%s is open in another process; stop it first: %w", a.dir, err)
	}
	if err != nil {
		return nil, err
	}
	s, err := attach(d, true)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("attach: %w", err)
	}
	return s, nil
}
