package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/embed"
	flowmcp "github.com/flowdb/flowdb/mcp"
	"github.com/flowdb/flowdb/server"
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
		tokenFile                       string
	)
	c := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the store to an MCP client over stdio (tools for tasks, memory, agents, keys)",
		Long: `mcp runs a Model Context Protocol server on stdin/stdout over the store at --dir (created if
absent), for an MCP client that starts it. Memory texts are embedded by the built-in hashed
embedder (no model, no network) unless --embed-url names an OpenAI-compatible embeddings
endpoint. It stops when the client closes stdin, or on SIGINT/SIGTERM.

With --node instead of --dir it relays stdin/stdout to the MCP endpoint (/mcp) of a running
'flowctl serve' or 'flowctl node start', so that a client that starts a subprocess uses a
remote or replicated store. The bearer token is read from --token-file, else FLOWDB_TOKEN;
the server's scopes apply. A call the server cannot be reached for gets a JSON-RPC error
and the relay keeps going.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if a.node != "" {
				if a.dir != "" {
					return usageError{errors.New("give --dir (a store) or --node (a server), not both")}
				}
				return a.relayMCP(ctx, tokenFile)
			}
			if tokenFile != "" {
				return usageError{errors.New("--token-file goes with --node")}
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
	f.StringVar(&tokenFile, "token-file", "", "with --node: file holding the bearer token (default: FLOWDB_TOKEN)")
	return c
}

// relayMCP is `flowctl mcp --node`: stdio relayed to the node's /mcp.
func (a *app) relayMCP(ctx context.Context, tokenFile string) error {
	tok := os.Getenv("FLOWDB_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return usageError{err}
		}
		tok = strings.TrimSpace(string(b))
		if tok == "" {
			return usageError{fmt.Errorf("%s holds no token", tokenFile)}
		}
	}
	remote := &sdk.StreamableClientTransport{Endpoint: nodeURL(a.node) + flowmcp.Path,
		HTTPClient: &http.Client{Transport: flowmcp.BearerTransport(tok, nil)}, DisableStandaloneSSE: true}
	return flowmcp.Relay(ctx, &sdk.StdioTransport{}, remote)
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

// mountMCP serves the MCP endpoint (streamable HTTP, /mcp) on the network
// server of `serve` and `node start`, behind its tokens; memory texts are
// embedded by the built-in hashed embedder.
func mountMCP(srv *server.Server, s *store) error {
	return flowmcp.Mount(srv, flowmcp.Stack{DB: s.DB, Queues: s.Q, Registry: s.R, Vectors: s.V}, &flowmcp.Options{Version: "flowctl"})
}
