package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/raftsm"
	"github.com/flowdb/flowdb/sched"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
	"github.com/flowdb/flowdb/server/ui"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// apiFlags configure the network API of `flowctl serve` and of a node's
// --admin endpoint.
type apiFlags struct {
	Tokens       string   `json:"tokens,omitempty"`
	TLSCert      string   `json:"api_tls_cert,omitempty"`
	TLSKey       string   `json:"api_tls_key,omitempty"`
	ClientCA     string   `json:"api_client_ca,omitempty"`
	Insecure     bool     `json:"api_insecure,omitempty"`
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
	MaxRequest   int      `json:"max_request_bytes,omitempty"`
	// Durability is `flowctl serve`'s --durability (sync or nosync); a
	// node's durability is Raft's, so it has no such flag.
	Durability string `json:"-"`
}

// apiFlagNames are the flags addAPIFlags defines.
var apiFlagNames = []string{"tokens", "api-tls-cert", "api-tls-key", "api-client-ca", "api-insecure", "allowed-host", "max-request-bytes"}

func addAPIFlags(f *pflag.FlagSet, af *apiFlags) {
	f.StringVar(&af.Tokens, "tokens", "", "tokens file (JSON, hashed tokens with scopes; see 'flowctl token'); required off loopback")
	f.StringVar(&af.TLSCert, "api-tls-cert", "", "TLS certificate (PEM) of the API listener")
	f.StringVar(&af.TLSKey, "api-tls-key", "", "TLS key (PEM) of the API listener")
	f.StringVar(&af.ClientCA, "api-client-ca", "", "CA (PEM) whose client certificates the API requires (mutual TLS)")
	f.BoolVar(&af.Insecure, "api-insecure", false, "serve plain text on a non-loopback API address")
	f.StringSliceVar(&af.AllowedHosts, "allowed-host", nil, "host names requests may address besides IP literals and localhost")
	f.IntVar(&af.MaxRequest, "max-request-bytes", 0, "largest request body (default 40 MiB)")
}

// mergeAPI takes the config file's API settings unless a flag set any.
func mergeAPI(f *pflag.FlagSet, dst *apiFlags, file apiFlags) {
	for _, n := range apiFlagNames {
		if f.Changed(n) {
			return
		}
	}
	*dst = file
}

// listen applies the listening policy and opens addr, with TLS if asked.
func (af apiFlags) listen(addr string) (net.Listener, *auth.Store, error) {
	if (af.TLSCert == "") != (af.TLSKey == "") {
		return nil, nil, usageError{errors.New("--api-tls-cert and --api-tls-key go together")}
	}
	if err := server.CheckListen(addr, af.TLSCert != "", af.Tokens != "", af.Insecure); err != nil {
		return nil, nil, usageError{err}
	}
	var tokens *auth.Store
	if af.Tokens != "" {
		var err error
		if tokens, err = auth.Open(af.Tokens); err != nil {
			return nil, nil, err
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if af.TLSCert != "" {
		tc, err := server.TLSConfig(af.TLSCert, af.TLSKey, af.ClientCA)
		if err != nil {
			l.Close()
			return nil, nil, err
		}
		l = tls.NewListener(l, tc)
	}
	return l, tokens, nil
}

// apiServer builds the network API over s (and a node's cluster).
func (a *app) apiServer(af apiFlags, s *store, sc *sched.Scheduler, tokens *auth.Store, cluster server.Cluster, l net.Listener) (*server.Server, error) {
	hosts := af.AllowedHosts
	if h, _, err := net.SplitHostPort(l.Addr().String()); err == nil {
		hosts = append(slices.Clone(hosts), h)
	}
	return server.New(server.Options{DB: s.DB, Queues: s.Q, Registry: s.R, Vectors: s.V, Scheduler: sc, Cluster: cluster,
		Tokens: tokens, AllowedHosts: hosts, MaxRequestBytes: af.MaxRequest, Logger: a.logger()})
}

func (a *app) serveCmd() *cobra.Command {
	var af apiFlags
	var listen string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve a store's network API (Connect, gRPC, HTTP/JSON) and /metrics",
		Long: `Open the store at --dir and serve its network API on --listen until SIGINT or
SIGTERM: key-value, queues, registry, vector collections, health and stats,
over Connect, gRPC and plain HTTP/JSON, with Prometheus metrics on /metrics,
the web dashboard on /ui/ and the MCP endpoint (streamable HTTP) on /mcp.

On loopback no token is needed. Any other address needs --tokens, and TLS
(--api-tls-cert, --api-tls-key) unless --api-insecure is given.

--durability nosync acknowledges writes once the kernel holds them, before
their fsync: a crash of the process loses nothing acknowledged, a power cut
or kernel crash may lose the last ones (see docs/server.md).

  flowctl --dir D serve --listen 127.0.0.1:7300
  curl -H 'Content-Type: application/json' -d '{}' http://127.0.0.1:7300/flowdb.v1.ServerService/Health`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runServe(ctx, listen, af)
		},
	}
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:7300", "listen address HOST:PORT")
	c.Flags().StringVar(&af.Durability, "durability", "sync", "when a write is acknowledged: sync (after fsync; survives power loss) "+
		"or nosync (after write(2); survives a process crash, a power cut may lose the last acknowledged writes)")
	addAPIFlags(c.Flags(), &af)
	return c
}

// runServe serves the store at --dir until ctx ends.
func (a *app) runServe(ctx context.Context, listen string, af apiFlags) error {
	var dur db.Durability
	switch af.Durability {
	case "", "sync":
		dur = db.SyncEachCommit
	case "nosync":
		dur = db.NoSync
	default:
		return usageError{fmt.Errorf("--durability %q: want sync or nosync", af.Durability)}
	}
	l, tokens, err := af.listen(listen)
	if err != nil {
		return err
	}
	defer l.Close()
	s, err := a.openServing(dur)
	if err != nil {
		return err
	}
	defer s.Close()
	sc, err := sched.New(s.Q, s.R, nil)
	if err != nil {
		return err
	}
	defer sc.Close()
	srv, err := a.apiServer(af, s, sc, tokens, nil, l)
	if err != nil {
		return err
	}
	ui.Mount(srv, ui.Options{DB: s.DB, Queues: s.Q, Registry: s.R, Vectors: s.V, Scheduler: sc, Tokens: tokens})
	if err := mountMCP(srv, s); err != nil {
		return err
	}
	hs := server.HTTPServer(srv.Handler(), nil)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	scheme := "http"
	if af.TLSCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(a.errOut, "flowdb serving %s://%s (store %s)\n", scheme, l.Addr(), a.dir)
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// openServing opens --dir (creating the store) with the subsystems'
// background loops running, as a server needs, acknowledging writes per
// dur.
func (a *app) openServing(dur db.Durability) (*store, error) {
	if a.dir == "" {
		return nil, usageError{errors.New("--dir is required (the store directory)")}
	}
	d, err := db.Open(a.dir, &db.Options{Logger: a.logger(), Durability: dur})
	if err != nil {
		return nil, err
	}
	s, err := attach(d, true)
	if err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}

// serveNode serves a node's network API and its cluster administration
// (/v1/..., behind server:cluster:admin) on l until ctx ends.
func (a *app) serveNode(ctx context.Context, af apiFlags, l net.Listener, tokens *auth.Store, n *raftsm.Node, s *store) (*http.Server, error) {
	srv, err := a.apiServer(af, s, nil, tokens, nodeCluster{n}, l)
	if err != nil {
		return nil, err
	}
	srv.Handle("/v1/", srv.Require(auth.Server, "cluster", auth.Admin, nodeHandler(n, s)))
	ui.Mount(srv, ui.Options{DB: s.DB, Queues: s.Q, Registry: s.R, Vectors: s.V, Cluster: nodeCluster{n}, Tokens: tokens})
	if err := mountMCP(srv, s); err != nil {
		return nil, err
	}
	hs := server.HTTPServer(srv.Handler(), nil)
	go hs.Serve(l)
	return hs, nil
}

// nodeCluster adapts a raftsm.Node to server.Cluster.
type nodeCluster struct{ n *raftsm.Node }

func (c nodeCluster) Shards(ctx context.Context) ([]server.ShardFigures, error) {
	st, err := c.n.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]server.ShardFigures, len(st))
	for i, s := range st {
		out[i] = server.ShardFigures{Shard: s.Shard, HasLeader: s.Leader != 0, IsLeader: s.IsLeader, Term: s.Term, Applied: s.Applied}
	}
	return out, nil
}

func (c nodeCluster) Counters() (proposals, retries, timeouts uint64) {
	k := c.n.Counters()
	return k.Proposals, k.Retries, k.Timeouts
}

// tokenCmd manages a tokens file.
func (a *app) tokenCmd() *cobra.Command {
	var file string
	t := &cobra.Command{Use: "token", Short: "Create, list and revoke the API's bearer tokens (a tokens file)"}
	t.PersistentFlags().StringVar(&file, "file", "", "tokens file (created if missing)")
	read := func() (auth.File, error) {
		var f auth.File
		if file == "" {
			return f, usageError{errors.New("--file is required")}
		}
		b, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			return f, nil
		}
		if err != nil {
			return f, err
		}
		if _, err := auth.ParseFile(b); err != nil {
			return f, err
		}
		return f, json.Unmarshal(b, &f)
	}
	write := func(f auth.File) error {
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			return err
		}
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, file)
	}
	var scopes []string
	var expires time.Duration
	create := &cobra.Command{
		Use: "create NAME", Short: "Add a token and print its secret (shown once; the file keeps only its hash)", Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := read()
			if err != nil {
				return err
			}
			if len(scopes) == 0 {
				return usageError{errors.New("--scope is required (RESOURCE:NAME:LEVEL, e.g. queue:jobs:write or *:*:admin)")}
			}
			for _, s := range scopes {
				if _, err := auth.ParseScope(s); err != nil {
					return usageError{err}
				}
			}
			for _, e := range f.Tokens {
				if e.Name == args[0] {
					return usageError{fmt.Errorf("a token named %q exists; revoke it first", args[0])}
				}
			}
			secret, hash, err := auth.NewSecret()
			if err != nil {
				return err
			}
			e := auth.FileEntry{Name: args[0], Hash: hash, Scopes: scopes}
			if expires > 0 {
				e.Expires = time.Now().Add(expires).UTC().Truncate(time.Second)
			}
			f.Tokens = append(f.Tokens, e)
			if err := write(f); err != nil {
				return err
			}
			type created struct {
				Name   string `json:"name"`
				Secret string `json:"secret"`
			}
			return a.print(output{JSON: created{Name: args[0], Secret: secret}, Text: func(w io.Writer) { fmt.Fprintln(w, secret) }})
		},
	}
	create.Flags().StringSliceVar(&scopes, "scope", nil, "scopes RESOURCE:NAME:LEVEL (resource kv, queue, agent, vec, server or *; level read, write or admin)")
	create.Flags().DurationVar(&expires, "expires", 0, "lifetime (0: no expiry)")
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Remove a token (servers refuse it within a fraction of a second)", Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := read()
			if err != nil {
				return err
			}
			n := len(f.Tokens)
			f.Tokens = slices.DeleteFunc(f.Tokens, func(e auth.FileEntry) bool { return e.Name == args[0] })
			if len(f.Tokens) == n {
				return fmt.Errorf("no token named %q", args[0])
			}
			if err := write(f); err != nil {
				return err
			}
			return a.print(output{})
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List tokens (names, scopes, expiry; never secrets)", Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := read()
			if err != nil {
				return err
			}
			type row struct {
				Name    string    `json:"name"`
				Scopes  []string  `json:"scopes"`
				Expires time.Time `json:"expires,omitzero"`
			}
			rows := []row{}
			for _, e := range f.Tokens {
				rows = append(rows, row{e.Name, e.Scopes, e.Expires})
			}
			return a.print(output{JSON: rows, Text: func(w io.Writer) {
				for _, r := range rows {
					exp := "never"
					if !r.Expires.IsZero() {
						exp = r.Expires.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%-20s expires %-20s %s\n", r.Name, exp, strings.Join(r.Scopes, ","))
				}
			}})
		},
	}
	t.AddCommand(create, revoke, list)
	return t
}
