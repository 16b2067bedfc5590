package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/raftsm"
	"github.com/lni/dragonboat/v4"
	"github.com/spf13/cobra"
)

// nodeFile is a node's config file (JSON); flags override it.
type nodeFile struct {
	ID         uint64            `json:"id"`
	Dir        string            `json:"dir"`
	Raft       string            `json:"raft"`
	Listen     string            `json:"listen,omitempty"`
	Members    map[string]string `json:"members,omitempty"` // replica id -> Raft address
	Join       bool              `json:"join,omitempty"`
	DataShards int               `json:"data_shards,omitempty"`
	Admin      string            `json:"admin,omitempty"`
	TLSCA      string            `json:"tls_ca,omitempty"`
	TLSCert    string            `json:"tls_cert,omitempty"`
	TLSKey     string            `json:"tls_key,omitempty"`
	Insecure   bool              `json:"insecure,omitempty"`
	// Gossip registry: members are NodeHost IDs, addresses may change.
	NodeHostID  string `json:"node_host_id,omitempty"`
	GossipBind  string `json:"gossip_bind,omitempty"`
	GossipSeeds string `json:"gossip_seeds,omitempty"`
	// Raft timing (raftsm.Config; 0: its defaults, 20 ms, 25 and 5 RTTs).
	RTTMillisecond uint64 `json:"rtt_ms,omitempty"`
	ElectionRTT    uint64 `json:"election_rtt,omitempty"`
	HeartbeatRTT   uint64 `json:"heartbeat_rtt,omitempty"`
	// LogDB sizes Dragonboat's log store (raftsm.Config.LogDB).
	LogDB string `json:"logdb,omitempty"`
	// API configures the network API served on Admin (serve.go).
	API apiFlags `json:"api,omitempty"`
	// Peers are other members' admin addresses (replica id -> HOST:PORT
	// or URL), asked by the dashboard's cluster page for their applied
	// indexes (replica lag).
	Peers map[string]string `json:"peers,omitempty"`
}

func (a *app) nodeCmd() *cobra.Command {
	n := &cobra.Command{Use: "node", Short: "Run a replicated node"}
	n.AddCommand(a.nodeStartCmd())
	return n
}

// parseMembers reads "1=host:port,2=host:port".
func parseMembers(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range splitList(s) {
		id, addr, ok := strings.Cut(f, "=")
		if _, err := strconv.ParseUint(id, 10, 64); !ok || err != nil || addr == "" {
			return nil, usageError{fmt.Errorf("member %q: want ID=HOST:PORT", f)}
		}
		out[id] = addr
	}
	return out, nil
}

func (a *app) nodeStartCmd() *cobra.Command {
	var nf nodeFile
	var cfgPath, members, peers string
	c := &cobra.Command{
		Use:   "start",
		Short: "Start a node: a replica of every shard, and an admin/data HTTP endpoint",
		Long: `Start a node from a JSON config file (--config) and/or flags, and serve until
SIGINT or SIGTERM. The --admin address serves the network API (as
'flowctl serve' does, see --tokens) and, behind server:cluster:admin,
'flowctl cluster' and the data commands given --node http://ADMIN (the
token comes from FLOWDB_TOKEN).

  flowctl node start --dir D --id 1 --raft 127.0.0.1:7001 \
      --members 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --admin 127.0.0.1:7101`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var file nodeFile
			if cfgPath != "" {
				b, err := os.ReadFile(cfgPath)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &file); err != nil {
					return usageError{fmt.Errorf("%s: %w", cfgPath, err)}
				}
			}
			f := cmd.Flags()
			set := func(name string, dst, src any) {
				if !f.Changed(name) {
					switch d := dst.(type) {
					case *string:
						*d = *src.(*string)
					case *uint64:
						*d = *src.(*uint64)
					case *int:
						*d = *src.(*int)
					case *bool:
						*d = *src.(*bool)
					}
				}
			}
			set("id", &nf.ID, &file.ID)
			set("raft", &nf.Raft, &file.Raft)
			set("listen", &nf.Listen, &file.Listen)
			set("join", &nf.Join, &file.Join)
			set("data-shards", &nf.DataShards, &file.DataShards)
			set("admin", &nf.Admin, &file.Admin)
			set("tls-ca", &nf.TLSCA, &file.TLSCA)
			set("tls-cert", &nf.TLSCert, &file.TLSCert)
			set("tls-key", &nf.TLSKey, &file.TLSKey)
			set("insecure", &nf.Insecure, &file.Insecure)
			set("node-host-id", &nf.NodeHostID, &file.NodeHostID)
			set("gossip-bind", &nf.GossipBind, &file.GossipBind)
			set("gossip-seeds", &nf.GossipSeeds, &file.GossipSeeds)
			set("rtt-ms", &nf.RTTMillisecond, &file.RTTMillisecond)
			set("election-rtt", &nf.ElectionRTT, &file.ElectionRTT)
			set("heartbeat-rtt", &nf.HeartbeatRTT, &file.HeartbeatRTT)
			set("logdb", &nf.LogDB, &file.LogDB)
			mergeAPI(f, &nf.API, file.API)
			nf.Dir = a.dir
			if nf.Dir == "" {
				nf.Dir = file.Dir
			}
			nf.Members = file.Members
			nf.Peers = file.Peers
			if peers != "" {
				p, err := parseMembers(peers)
				if err != nil {
					return err
				}
				nf.Peers = p
			}
			if members != "" {
				m, err := parseMembers(members)
				if err != nil {
					return err
				}
				nf.Members = m
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runNode(ctx, nf)
		},
	}
	f := c.Flags()
	f.StringVar(&cfgPath, "config", "", "JSON config file (flags override it)")
	f.Uint64Var(&nf.ID, "id", 0, "replica id of this node (non-zero)")
	f.StringVar(&nf.Raft, "raft", "", "Raft address HOST:PORT")
	f.StringVar(&nf.Listen, "listen", "", "listen address (default: the Raft address)")
	f.StringVar(&members, "members", "", "initial members ID=HOST:PORT,... (same on every initial node)")
	f.StringVar(&peers, "peers", "", "other members' --admin addresses ID=HOST:PORT,... (the dashboard asks them for replica lag)")
	f.BoolVar(&nf.Join, "join", false, "join running shards (after 'cluster add' on a member)")
	f.IntVar(&nf.DataShards, "data-shards", 1, "data shards (fixed at creation)")
	f.StringVar(&nf.Admin, "admin", "127.0.0.1:7100", "network API and admin address (off loopback: needs --tokens, and TLS or --api-insecure)")
	addAPIFlags(f, &nf.API)
	f.StringVar(&nf.TLSCA, "tls-ca", "", "CA certificate (PEM) for mutual TLS")
	f.StringVar(&nf.TLSCert, "tls-cert", "", "this node's certificate (PEM)")
	f.StringVar(&nf.TLSKey, "tls-key", "", "this node's key (PEM)")
	f.BoolVar(&nf.Insecure, "insecure", false, "allow a non-loopback Raft address without TLS")
	f.StringVar(&nf.NodeHostID, "node-host-id", "", "with --gossip-bind: this node's stable UUID; --members then maps ids to NodeHost IDs")
	f.StringVar(&nf.GossipBind, "gossip-bind", "", "gossip registry address HOST:PORT (nodes may change Raft addresses)")
	f.StringVar(&nf.GossipSeeds, "gossip-seeds", "", "other nodes' gossip addresses, comma-separated")
	f.Uint64Var(&nf.RTTMillisecond, "rtt-ms", 0, "Raft's round trip in ms, the unit of the two below (0: 20)")
	f.Uint64Var(&nf.ElectionRTT, "election-rtt", 0, "RTTs without a leader before an election (0: 25, 500 ms to 1 s); shorter fails over sooner but may elect under load")
	f.StringVar(&nf.LogDB, "logdb", "", "Raft log store size: tiny, small, medium, large (empty: 8 MiB memtables, about 9 MiB of disk per shard; large preallocates 141 MiB per shard)")
	f.Uint64Var(&nf.HeartbeatRTT, "heartbeat-rtt", 0, "RTTs between a leader's heartbeats (0: 5); the election timeout must exceed two")
	return c
}

// runNode starts the node and serves the admin endpoint until ctx ends.
func (a *app) runNode(ctx context.Context, nf nodeFile) error {
	if nf.Dir == "" || nf.ID == 0 || nf.Raft == "" {
		return usageError{errors.New("--dir, --id and --raft are required")}
	}
	l, tokens, err := nf.API.listen(nf.Admin)
	if err != nil {
		return err
	}
	members := map[uint64]string{}
	for id, addr := range nf.Members {
		n, _ := strconv.ParseUint(id, 10, 64)
		members[n] = addr
	}
	peerAddrs := map[uint64]string{}
	for id, addr := range nf.Peers {
		rid, err := strconv.ParseUint(id, 10, 64)
		if err != nil || addr == "" {
			l.Close()
			return usageError{fmt.Errorf("peer %q=%q: want a replica id and its admin HOST:PORT", id, addr)}
		}
		peerAddrs[rid] = addr
	}
	if _, ok := members[nf.ID]; !nf.Join && len(members) > 0 && !ok {
		return usageError{fmt.Errorf("%w: --id %d is not among --members (a new member starts with --join after 'cluster add')", raftsm.ErrConfig, nf.ID)}
	}
	cfg := raftsm.Config{Dir: nf.Dir, ReplicaID: nf.ID, RaftAddress: nf.Raft, ListenAddress: nf.Listen,
		Members: members, Join: nf.Join, DataShards: nf.DataShards, Insecure: nf.Insecure, Logger: a.logger(),
		RTTMillisecond: nf.RTTMillisecond, ElectionRTT: nf.ElectionRTT, HeartbeatRTT: nf.HeartbeatRTT, LogDB: nf.LogDB,
		Store: &db.Options{Logger: a.logger()}}
	if nf.Join {
		cfg.Members = nil
	}
	if nf.GossipBind != "" || nf.NodeHostID != "" {
		cfg.Gossip = &raftsm.Gossip{NodeHostID: nf.NodeHostID, BindAddress: nf.GossipBind, Seeds: splitList(nf.GossipSeeds)}
	}
	if nf.TLSCA != "" || nf.TLSCert != "" || nf.TLSKey != "" {
		cfg.TLS = &raftsm.TLS{CAFile: nf.TLSCA, CertFile: nf.TLSCert, KeyFile: nf.TLSKey}
	}
	privateFiles()
	var s *store
	cfg.Attach = func(d *db.DB) (err error) {
		s, err = attach(d, true)
		return err
	}
	n, err := raftsm.Open(ctx, cfg)
	if err != nil {
		l.Close()
		return err
	}
	nodePeers.Store(n, peerAddrs)
	defer nodePeers.Delete(n)
	srv, err := a.serveNode(ctx, nf.API, l, tokens, n, s)
	if err != nil {
		l.Close()
		s.detach()
		n.Close()
		return err
	}
	fmt.Fprintf(a.errOut, "flowdb node %d: raft %s, admin http://%s, %d shards\n", nf.ID, nf.Raft, l.Addr(), len(n.Shards()))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	s.detach()
	return n.Close()
}

type statusJSON struct {
	Replica  uint64               `json:"replica"`
	Shards   []raftsm.ShardStatus `json:"shards"`
	Counters raftsm.Counters      `json:"counters"`
}

// errorClassHeader carries, on an error answer of the admin endpoint, the
// text of each sentinel error the error matches (clusterErrors), one value
// each, so that errors.Is works on the client (remoteError).
const errorClassHeader = "Flowdb-Error-Class"

// clusterErrors are the sentinels the cluster endpoints carry.
var clusterErrors = []error{db.ErrOutcomeUnknown, db.ErrNotFound, db.ErrClosed, raftsm.ErrRemoved,
	raftsm.ErrNotMember, raftsm.ErrAlreadyMember, raftsm.ErrRemovedID, raftsm.ErrNoQuorum,
	raftsm.ErrRejected, raftsm.ErrUnknownShard, raftsm.ErrConfig}

// httpError writes err with a status that keeps its meaning for the client:
// 504 for an outcome unknown (the request may have been applied), 410 from
// a removed node, 404 for what is not there (a key, a member, a shard), 409
// for a membership change that can never be made, 503 without a quorum,
// 400 for a bad request; and the sentinels it matches (errorClassHeader).
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, db.ErrOutcomeUnknown):
		code = http.StatusGatewayTimeout
	case errors.Is(err, raftsm.ErrRemoved):
		code = http.StatusGone
	case errors.Is(err, db.ErrNotFound), errors.Is(err, raftsm.ErrNotMember), errors.Is(err, raftsm.ErrUnknownShard), errors.Is(err, dragonboat.ErrShardNotFound):
		code = http.StatusNotFound
	case errors.Is(err, raftsm.ErrAlreadyMember), errors.Is(err, raftsm.ErrRemovedID), errors.Is(err, raftsm.ErrRejected):
		code = http.StatusConflict
	case errors.Is(err, raftsm.ErrNoQuorum):
		code = http.StatusServiceUnavailable
	case errors.Is(err, raftsm.ErrConfig):
		code = http.StatusBadRequest
	}
	for _, c := range clusterErrors {
		if errors.Is(err, c) {
			w.Header().Add(errorClassHeader, c.Error())
		}
	}
	http.Error(w, err.Error(), code)
}

// statusTimeout bounds GET /v1/status (its membership reads need a quorum).
const statusTimeout = 5 * time.Second

func nodeHandler(n *raftsm.Node, s *store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
		defer cancel()
		st, err := n.Status(ctx)
		if err != nil {
			httpError(w, err)
			return
		}
		json.NewEncoder(w).Encode(statusJSON{Replica: n.ReplicaID(), Shards: st, Counters: n.Counters()})
	})
	mux.HandleFunc("POST /v1/replicas", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.FormValue("id"), 10, 64)
		if err != nil || r.FormValue("addr") == "" {
			http.Error(w, "id and addr required", http.StatusBadRequest)
			return
		}
		if err := n.AddReplica(r.Context(), id, r.FormValue("addr")); err != nil {
			httpError(w, err)
		}
	})
	mux.HandleFunc("DELETE /v1/replicas/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		if err := n.RemoveReplica(r.Context(), id); err != nil {
			httpError(w, err)
		}
	})
	mux.HandleFunc("POST /v1/transfer", func(w http.ResponseWriter, r *http.Request) {
		shard, err1 := strconv.ParseUint(r.FormValue("shard"), 10, 32)
		to, err2 := strconv.ParseUint(r.FormValue("to"), 10, 64)
		if err1 != nil || err2 != nil {
			http.Error(w, "shard and to required", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if err := n.TransferLeader(ctx, uint32(shard), to); err != nil {
			httpError(w, err)
		}
	})
	mux.HandleFunc("POST /v1/exec", serveExec(s))
	// A removed node refuses every call, data and status alike: its state
	// stopped following the cluster's.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Removed() {
			httpError(w, fmt.Errorf("%w: replica %d serves nothing; start a replacement with a new id and --join", raftsm.ErrRemoved, n.ReplicaID()))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// noTimeout marks a request context that --timeout does not bound
// (requestContext: a long-running command).
type noTimeout struct{}

// nodeURL is --node as a URL: "HOST:PORT" means http://HOST:PORT.
func nodeURL(node string) string {
	if !strings.Contains(node, "://") {
		node = "http://" + node
	}
	return strings.TrimSuffix(node, "/")
}

// remote calls a node's admin endpoint (--node); out, if non-nil, receives
// the JSON answer. The request is bounded by --timeout unless ctx already
// has a deadline or is marked noTimeout.
func (a *app) remote(ctx context.Context, method, path string, body []byte, out any) error {
	if _, ok := ctx.Deadline(); !ok && ctx.Value(noTimeout{}) == nil && a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	u := nodeURL(a.node) + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return usageError{fmt.Errorf("--node %q: %w", a.node, err)}
	}
	// JSON even without a body: the endpoint refuses the content types a
	// browser could send cross-site. The token comes from FLOWDB_TOKEN.
	req.Header.Set("Content-Type", "application/json")
	if tok := os.Getenv("FLOWDB_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer in time (--timeout %v): %w", a.timeout, err)
	}
	if err != nil {
		if ctx.Value(readOnly{}) != nil {
			method = http.MethodGet // changes nothing: it failed
		}
		return a.unanswered(method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return a.unanswered(method, err)
	}
	if resp.StatusCode >= 300 {
		msg := strings.TrimSpace(string(b))
		classes := resp.Header.Values(errorClassHeader)
		switch resp.StatusCode {
		case http.StatusBadRequest:
			return usageError{&remoteError{msg: msg, classes: classes}}
		case http.StatusNotFound:
			classes = append(classes, db.ErrNotFound.Error())
		case http.StatusGatewayTimeout:
			classes = append(classes, db.ErrOutcomeUnknown.Error())
		}
		return &remoteError{msg: fmt.Sprintf("node %s: %s (HTTP %d)", a.node, msg, resp.StatusCode), classes: classes}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("node %s: bad answer: %w", a.node, err)
		}
	}
	return nil
}

// unanswered is the error of a request to a node that got no answer. A
// request that never reached the node (no connection) did nothing; any
// other request but a GET may have been applied by the node before it
// failed to answer (it died, the connection broke, the client gave up):
// its outcome is unknown (db.ErrOutcomeUnknown, exit status 3), never
// reported as failed.
func (a *app) unanswered(method string, err error) error {
	var op *net.OpError
	if method == http.MethodGet || (errors.As(err, &op) && op.Op == "dial") {
		return fmt.Errorf("node %s: %w", a.node, err)
	}
	return fmt.Errorf("%w: node %s did not answer, so the request may or may not have been applied: %w", db.ErrOutcomeUnknown, a.node, err)
}

// clusterTimeout bounds a cluster command on the client: the node bounds
// each operation by raftsm.OpTimeout, and answers before this.
const clusterTimeout = raftsm.OpTimeout + 5*time.Second

// cluster runs one cluster request with clusterTimeout.
func (a *app) cluster(cmd *cobra.Command, method, path string, out any) error {
	if err := a.needNode(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), clusterTimeout)
	defer cancel()
	return a.remote(ctx, method, path, nil, out)
}

func (a *app) clusterCmd() *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Cluster membership and status (through a node's --admin endpoint, given by --node)"}
	c.AddCommand(
		&cobra.Command{
			Use: "status", Short: "Each shard's leader, term, applied index and members", Args: exactArgs(0, "no arguments"),
			RunE: func(cmd *cobra.Command, args []string) error {
				var st statusJSON
				if err := a.cluster(cmd, http.MethodGet, "/v1/status", &st); err != nil {
					return err
				}
				return a.print(output{JSON: st, Text: func(w io.Writer) {
					fmt.Fprintf(w, "replica %d  proposals %d  retries %d  timeouts %d\n", st.Replica, st.Counters.Proposals, st.Counters.Retries, st.Counters.Timeouts)
					fmt.Fprintln(w, "shard  leader  term  applied  members")
					for _, s := range st.Shards {
						var ms []string
						for id, addr := range s.Members {
							ms = append(ms, fmt.Sprintf("%d=%s", id, addr))
						}
						sort.Strings(ms)
						fmt.Fprintf(w, "%-6d %-7d %-5d %-8d %s\n", s.Shard, s.Leader, s.Term, s.Applied, strings.Join(ms, ","))
					}
				}})
			},
		},
		&cobra.Command{
			Use: "add ID HOST:PORT", Short: "Add replica ID at HOST:PORT to every shard (then start it with --join)", Args: exactArgs(2, "ID and HOST:PORT"),
			RunE: func(cmd *cobra.Command, args []string) error {
				if _, err := strconv.ParseUint(args[0], 10, 64); err != nil || args[0] == "0" {
					return usageError{fmt.Errorf("replica id %q: want a positive integer", args[0])}
				}
				return a.cluster(cmd, http.MethodPost, "/v1/replicas?id="+url.QueryEscape(args[0])+"&addr="+url.QueryEscape(args[1]), nil)
			},
		},
		&cobra.Command{
			Use: "remove ID", Short: "Remove replica ID from every shard", Args: exactArgs(1, "ID"),
			RunE: func(cmd *cobra.Command, args []string) error {
				if _, err := strconv.ParseUint(args[0], 10, 64); err != nil || args[0] == "0" {
					return usageError{fmt.Errorf("replica id %q: want a positive integer", args[0])}
				}
				return a.cluster(cmd, http.MethodDelete, "/v1/replicas/"+url.PathEscape(args[0]), nil)
			},
		},
		&cobra.Command{
			Use: "transfer SHARD ID", Short: "Move SHARD's leadership to replica ID", Args: exactArgs(2, "SHARD and ID"),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.cluster(cmd, http.MethodPost, "/v1/transfer?shard="+url.QueryEscape(args[0])+"&to="+url.QueryEscape(args[1]), nil)
			},
		},
	)
	return c
}

func (a *app) needNode() error {
	if a.node == "" {
		return usageError{errors.New("--node http://HOST:PORT (a node's --admin address) is required")}
	}
	return nil
}
