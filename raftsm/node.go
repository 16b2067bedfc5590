package raftsm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	dblogger "github.com/lni/dragonboat/v4/logger"
)

// Errors of a node.
var (
	// ErrInsecure: a node asked to listen on a non-loopback address without
	// mutual TLS, and Config.Insecure was not set.
	ErrInsecure = errors.New("raftsm: refusing a non-loopback Raft address without mutual TLS")
	// ErrConfig: a Config that fails validation.
	ErrConfig = errors.New("raftsm: invalid node config")
	// ErrNoLeader: a shard had no leader before the context ended.
	ErrNoLeader = errors.New("raftsm: shard has no leader")
)

// TLS names the PEM files of a node's mutual TLS: its certificate and key,
// and the CA that must have signed every peer's certificate.
type TLS struct {
	CAFile, CertFile, KeyFile string
}

// Gossip configures Dragonboat's gossip node registry.
type Gossip struct {
	// NodeHostID names this node for good: a UUID (for example from
	// `uuidgen`). Required.
	NodeHostID string
	// BindAddress is where the gossip service listens (UDP and TCP);
	// AdvertiseAddress is what peers use to reach it (default BindAddress).
	BindAddress, AdvertiseAddress string
	// Seeds are other nodes' gossip addresses; one reachable seed is
	// enough to join.
	Seeds []string
}

// Config starts a node: one NodeHost running a replica of the catalog
// shard and of every data shard, over one flowdb store.
type Config struct {
	// Dir holds the node: the store in Dir/store, Raft's log and snapshots
	// in Dir/raft. Created 0700. Required.
	Dir string
	// ReplicaID is this node's replica id in every shard (non-zero).
	ReplicaID uint64
	// RaftAddress is host:port where peers reach this node. Required.
	RaftAddress string
	// ListenAddress, if set, is where the node listens (default RaftAddress).
	ListenAddress string
	// Members are the initial members (replica id -> Raft address), the same
	// on every initial node; ignored when the node's shards already exist
	// on disk. Empty with Join.
	Members map[uint64]string
	// Join starts the node as a new member added to running shards with
	// Node.AddReplica on a current member.
	Join bool
	// DataShards is the number of data shards (fixed when the cluster is
	// created). Default 1.
	DataShards int

	// RTTMillisecond is the network round trip Raft's ticks count in.
	// Default 20. ElectionRTT (default 50) and HeartbeatRTT (default 5)
	// count in RTTs: by default a leader sends heartbeats every 100 ms and
	// a follower that hears nothing for 1 s starts an election (etcd's
	// defaults). A shorter election timeout fails over faster but elects
	// spuriously when a loaded node's Raft worker waits on a slow fsync:
	// bench/replbench with 200 ms (the earlier default) saw 7 elections in
	// 10 s at peak load on a 2-core VM, each stalling writes for up to
	// 2.4 s; with 1 s, none.
	RTTMillisecond uint64
	ElectionRTT    uint64
	HeartbeatRTT   uint64
	// SnapshotEntries: a snapshot every this many applied entries; default
	// 100,000. CompactionOverhead entries stay in the log after one;
	// default 10,000.
	SnapshotEntries    uint64
	CompactionOverhead uint64
	// LogDB sizes the memory of Dragonboat's log store: "tiny" (tests),
	// "small", "medium", or "" for Dragonboat's default (the largest).
	LogDB string

	// Gossip, if set, addresses nodes by a stable NodeHost ID through
	// Dragonboat's gossip registry instead of by Raft address, so a node
	// may come back on another address. Members values and AddReplica
	// targets are then NodeHost IDs. Once a node started with it, it must
	// keep it.
	Gossip *Gossip

	// TLS turns on mutual TLS between nodes. Without it a node listens
	// only on loopback addresses unless Insecure is set.
	TLS      *TLS
	Insecure bool

	// Store are the store's options (Replicator is set by Open).
	Store *db.Options
	// Attach registers the state machines (queue.Attach, registry.Attach,
	// hnsw.Attach) on the store before any shard starts applying: every
	// record kind the cluster uses must be registered on every node.
	Attach func(*db.DB) error
	// Logger for node events. Default slog.Default(). Dragonboat's own
	// logs are cut to errors.
	Logger *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	o := *c
	if o.Dir == "" || o.ReplicaID == 0 || o.RaftAddress == "" {
		return o, fmt.Errorf("%w: Dir, ReplicaID and RaftAddress are required", ErrConfig)
	}
	if o.Gossip != nil && (o.Gossip.NodeHostID == "" || o.Gossip.BindAddress == "") {
		return o, fmt.Errorf("%w: Gossip needs NodeHostID and BindAddress", ErrConfig)
	}
	if !o.Join && len(o.Members) == 0 {
		self := o.RaftAddress
		if o.Gossip != nil {
			self = o.Gossip.NodeHostID
		}
		o.Members = map[uint64]string{o.ReplicaID: self}
	}
	if o.Join && len(o.Members) > 0 {
		return o, fmt.Errorf("%w: Join with Members", ErrConfig)
	}
	if o.DataShards <= 0 {
		o.DataShards = 1
	}
	def := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.RTTMillisecond, 20)
	def(&o.ElectionRTT, 50)
	def(&o.HeartbeatRTT, 5)
	def(&o.SnapshotEntries, 100_000)
	def(&o.CompactionOverhead, 10_000)
	if o.ElectionRTT <= 2*o.HeartbeatRTT {
		return o, fmt.Errorf("%w: ElectionRTT %d must exceed twice HeartbeatRTT %d", ErrConfig, o.ElectionRTT, o.HeartbeatRTT)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TLS == nil && !o.Insecure {
		addrs := []string{o.RaftAddress, o.ListenAddress}
		if o.Gossip != nil {
			addrs = append(addrs, o.Gossip.BindAddress, o.Gossip.AdvertiseAddress)
		}
		for _, a := range addrs {
			if a != "" && !loopback(a) {
				return o, fmt.Errorf("%w: %s", ErrInsecure, a)
			}
		}
	}
	return o, nil
}

// loopback reports whether host:port names a loopback address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Node is a running member: a NodeHost with a replica of every shard, and
// the store they apply into. Node.DB is a *db.DB like a standalone store's,
// whose writes go through Raft (db.Replicator).
type Node struct {
	cfg Config
	d   *db.DB
	nh  *dragonboat.NodeHost
	// started holds nh once it exists: the store's background loops
	// (attached before the NodeHost starts, since it opens the state
	// machines) may ask Leads while Open is still running.
	started atomic.Pointer[dragonboat.NodeHost]
	shards  []uint32
	once    sync.Once

	proposals, retries, timeouts atomic.Uint64
}

// Counters are a node's proposal counters since Open.
type Counters struct {
	// Proposals made (frames), retries of them (a shard not ready, a lost
	// request), and attempts that timed out.
	Proposals uint64 `json:"proposals"`
	Retries   uint64 `json:"retries"`
	Timeouts  uint64 `json:"timeouts"`
}

// Counters returns the node's proposal counters.
func (n *Node) Counters() Counters {
	return Counters{Proposals: n.proposals.Load(), Retries: n.retries.Load(), Timeouts: n.timeouts.Load()}
}

var quietOnce sync.Once

// QuietRaftLogs cuts Dragonboat's loggers to errors, and its transport's
// to critical ones (Open does it).
func QuietRaftLogs() {
	quietOnce.Do(func() {
		for _, name := range []string{"raft", "rsm", "dragonboat", "logdb", "raftpb", "config", "grpc", "settings", "gossip", "tan", "registry"} {
			dblogger.GetLogger(name).SetLevel(dblogger.ERROR)
		}
		// A peer that is down or restarting is routine: its connection
		// errors are not worth an error line each.
		dblogger.GetLogger("transport").SetLevel(dblogger.CRITICAL)
	})
}

// Open starts a node: it opens (creating) the store, runs cfg.Attach, then
// starts the NodeHost and a replica of every shard. It does not wait for
// leaders (WaitReady does).
func Open(ctx context.Context, cfg Config) (*Node, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	QuietRaftLogs()
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return nil, err
	}
	n := &Node{cfg: c}
	n.shards = append(n.shards, keys.CatalogShard)
	for i := 0; i < c.DataShards; i++ {
		n.shards = append(n.shards, keys.FirstData+uint32(i))
	}
	so := db.Options{}
	if c.Store != nil {
		so = *c.Store
	}
	so.Replicator = n
	so.DataShards = c.DataShards
	if so.Logger == nil {
		so.Logger = c.Logger
	}
	d, err := db.Open(filepath.Join(c.Dir, "store"), &so)
	if err != nil {
		return nil, err
	}
	n.d = d
	if c.Attach != nil {
		if err := c.Attach(d); err != nil {
			d.Close()
			return nil, err
		}
	}
	raftDir := filepath.Join(c.Dir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		d.Close()
		return nil, err
	}
	nhc := config.NodeHostConfig{
		NodeHostDir:    raftDir,
		RTTMillisecond: c.RTTMillisecond,
		RaftAddress:    c.RaftAddress,
		ListenAddress:  c.ListenAddress,
	}
	switch c.LogDB {
	case "":
	case "tiny":
		nhc.Expert.LogDB = config.GetTinyMemLogDBConfig()
	case "small":
		nhc.Expert.LogDB = config.GetSmallMemLogDBConfig()
	case "medium":
		nhc.Expert.LogDB = config.GetMediumMemLogDBConfig()
	default:
		d.Close()
		return nil, fmt.Errorf("%w: LogDB %q", ErrConfig, c.LogDB)
	}
	if g := c.Gossip; g != nil {
		nhc.DefaultNodeRegistryEnabled = true
		nhc.NodeHostID = g.NodeHostID
		adv := g.AdvertiseAddress
		if adv == "" {
			adv = g.BindAddress
		}
		nhc.Gossip = config.GossipConfig{BindAddress: g.BindAddress, AdvertiseAddress: adv, Seed: g.Seeds}
	}
	if c.TLS != nil {
		nhc.MutualTLS = true
		nhc.CAFile, nhc.CertFile, nhc.KeyFile = c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile
	}
	nh, err := dragonboat.NewNodeHost(nhc)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("raftsm: start NodeHost: %w", err)
	}
	n.nh = nh
	n.started.Store(nh)
	// A node restarts from its bootstrap record: Members and Join count
	// only the first time (Dragonboat refuses a member list that differs
	// from the recorded one, as it would after membership changes).
	marker := filepath.Join(raftDir, "flowdb-bootstrapped")
	_, statErr := os.Stat(marker)
	restart := statErr == nil
	members := map[uint64]dragonboat.Target{}
	join := c.Join && !restart
	if !c.Join && !restart {
		for id, a := range c.Members {
			members[id] = a
		}
	}
	for _, s := range n.shards {
		rc := config.Config{ReplicaID: c.ReplicaID, ShardID: uint64(s), ElectionRTT: c.ElectionRTT,
			HeartbeatRTT: c.HeartbeatRTT, CheckQuorum: true, SnapshotEntries: c.SnapshotEntries,
			CompactionOverhead: c.CompactionOverhead}
		if err := nh.StartOnDiskReplica(members, join, Factory(d, s, raftDir), rc); err != nil {
			n.Close()
			return nil, fmt.Errorf("raftsm: start shard %d: %w", s, err)
		}
	}
	if !restart {
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			n.Close()
			return nil, err
		}
	}
	c.Logger.Info("flowdb node started", "replica", c.ReplicaID, "raft", c.RaftAddress, "shards", len(n.shards), "tls", c.TLS != nil)
	return n, nil
}

// DB is the node's store: the same API as a standalone store, replicated.
func (n *Node) DB() *db.DB { return n.d }

// NodeHost is the node's Dragonboat NodeHost.
func (n *Node) NodeHost() *dragonboat.NodeHost { return n.nh }

// Shards lists the node's shards: the catalog shard, then the data shards.
func (n *Node) Shards() []uint32 { return slices.Clone(n.shards) }

// ReplicaID is this node's replica id.
func (n *Node) ReplicaID() uint64 { return n.cfg.ReplicaID }

// Close stops the NodeHost (proposals in flight end with
// db.ErrOutcomeUnknown), then closes the store. The caller closes the
// state machines it attached (queue, registry) first.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		if n.nh != nil {
			n.nh.Close()
		}
		if n.d != nil {
			err = n.d.Close()
		}
	})
	return err
}

// retryable reports whether a Dragonboat request error means "not now":
// the shard is not ready, busy, or lost the request (timeout, aborted by a
// leader change), so the same request may be made again.
func retryable(err error) (retry, maybeProposed bool) {
	switch {
	case errors.Is(err, dragonboat.ErrShardNotReady), errors.Is(err, dragonboat.ErrSystemBusy),
		errors.Is(err, dragonboat.ErrShardNotInitialized):
		return true, false
	case errors.Is(err, dragonboat.ErrTimeout), errors.Is(err, dragonboat.ErrAborted),
		errors.Is(err, dragonboat.ErrCanceled), errors.Is(err, dragonboat.ErrRejected):
		return true, true
	}
	return false, false
}

// attempt bounds one Raft request within the caller's context.
const attempt = 2 * time.Second

// backoff sleeps before retry i, or returns ctx's error.
func backoff(ctx context.Context, i int) error {
	d := time.Duration(1<<min(i, 7)) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Propose implements db.Replicator: it proposes frame to shard with a
// no-op session (on-disk state machines cannot use Dragonboat's sessions;
// the frame's Origin deduplicates retries instead), retrying within ctx
// while the shard is not ready or the request was lost.
func (n *Node) Propose(ctx context.Context, shard uint32, frame []byte) ([]byte, error) {
	sess := n.nh.GetNoOPSession(uint64(shard))
	maybe := false
	n.proposals.Add(1)
	for i := 0; ; i++ {
		if i > 0 {
			n.retries.Add(1)
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		res, err := n.nh.SyncPropose(actx, sess, frame)
		cancel()
		if err == nil {
			return res.Data, nil
		}
		retry, mp := retryable(err)
		maybe = maybe || mp
		if errors.Is(err, dragonboat.ErrTimeout) {
			n.timeouts.Add(1)
		}
		if errors.Is(err, dragonboat.ErrTimeout) && ctx.Err() != nil {
			retry = false
		}
		if retry {
			err = backoff(ctx, i)
		}
		if err != nil {
			if maybe || ctx.Err() != nil || errors.Is(err, dragonboat.ErrClosed) || errors.Is(err, dragonboat.ErrShardClosed) {
				// A frame that reached Raft (or may have) is not known to
				// have failed: report its outcome as unknown.
				return nil, fmt.Errorf("%w: shard %d: %w", db.ErrOutcomeUnknown, shard, err)
			}
			return nil, fmt.Errorf("raftsm: shard %d: %w", shard, err)
		}
	}
}

// ReadIndex implements db.Replicator: a Raft read index on shard, after
// which this replica has applied every entry committed before the call.
func (n *Node) ReadIndex(ctx context.Context, shard uint32) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	for i := 0; ; i++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		_, err := n.nh.SyncRead(actx, uint64(shard), nil)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, dragonboat.ErrClosed) || errors.Is(err, dragonboat.ErrShardClosed) {
			return fmt.Errorf("%w: read index of shard %d: %w", db.ErrClosed, shard, err)
		}
		if retry, _ := retryable(err); !retry || ctx.Err() != nil {
			return fmt.Errorf("raftsm: read index of shard %d: %w", shard, err)
		}
		if err := backoff(ctx, i); err != nil {
			return err
		}
	}
}

// Leads implements db.Replicator: whether this node leads shard, as far
// as it knows.
func (n *Node) Leads(shard uint32) bool {
	nh := n.started.Load()
	if nh == nil {
		return false
	}
	id, _, ok, err := nh.GetLeaderID(uint64(shard))
	return err == nil && ok && id == n.cfg.ReplicaID
}

// WaitReady waits until every shard has a leader.
func (n *Node) WaitReady(ctx context.Context) error {
	for _, s := range n.shards {
		for i := 0; ; i++ {
			if _, _, ok, err := n.nh.GetLeaderID(uint64(s)); err == nil && ok {
				break
			}
			if err := backoff(ctx, min(i, 5)); err != nil {
				return fmt.Errorf("%w: shard %d: %w", ErrNoLeader, s, err)
			}
		}
	}
	return nil
}

// ShardStatus is one shard as this node sees it.
type ShardStatus struct {
	Shard    uint32            `json:"shard"`
	Leader   uint64            `json:"leader"`
	Term     uint64            `json:"term"`
	IsLeader bool              `json:"is_leader"`
	Applied  uint64            `json:"applied"`
	Members  map[uint64]string `json:"members"`
}

// Status reports every shard: leader and term as this node knows them,
// the applied index of its replica, and the members (a linearizable
// membership read, so it needs a quorum).
func (n *Node) Status(ctx context.Context) ([]ShardStatus, error) {
	var out []ShardStatus
	for _, s := range n.shards {
		st := ShardStatus{Shard: s}
		leader, term, ok, err := n.nh.GetLeaderID(uint64(s))
		if err != nil {
			return nil, err
		}
		if ok {
			st.Leader, st.Term, st.IsLeader = leader, term, leader == n.cfg.ReplicaID
		}
		v, err := n.nh.StaleRead(uint64(s), nil)
		if err != nil {
			return nil, err
		}
		st.Applied = v.(uint64)
		var m *dragonboat.Membership
		for i := 0; ; i++ {
			actx, cancel := context.WithTimeout(ctx, attempt)
			m, err = n.nh.SyncGetShardMembership(actx, uint64(s))
			cancel()
			if err == nil {
				break
			}
			// A replica that has just restarted drops requests until its
			// shard is ready: retry those within ctx, like ReadIndex.
			if retry, _ := retryable(err); !retry || ctx.Err() != nil {
				return nil, fmt.Errorf("raftsm: membership of shard %d: %w", s, err)
			}
			if err := backoff(ctx, i); err != nil {
				return nil, fmt.Errorf("raftsm: membership of shard %d: %w", s, err)
			}
		}
		st.Members = m.Nodes
		out = append(out, st)
	}
	return out, nil
}

// membershipChange retries a membership request on every shard.
func (n *Node) membershipChange(ctx context.Context, what string, fn func(ctx context.Context, shard uint64) error) error {
	for _, s := range n.shards {
		for i := 0; ; i++ {
			actx, cancel := context.WithTimeout(ctx, attempt)
			err := fn(actx, uint64(s))
			cancel()
			if err == nil {
				break
			}
			if retry, _ := retryable(err); !retry || ctx.Err() != nil {
				return fmt.Errorf("raftsm: %s on shard %d: %w", what, s, err)
			}
			if err := backoff(ctx, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddReplica adds replica id at addr to every shard. Start the new node
// with Config.Join afterwards (or before: it waits to be contacted).
func (n *Node) AddReplica(ctx context.Context, id uint64, addr string) error {
	return n.membershipChange(ctx, "add replica", func(ctx context.Context, s uint64) error {
		return n.nh.SyncRequestAddReplica(ctx, s, id, addr, 0)
	})
}

// RemoveReplica removes replica id from every shard. A removed replica id
// can never join again.
func (n *Node) RemoveReplica(ctx context.Context, id uint64) error {
	return n.membershipChange(ctx, "remove replica", func(ctx context.Context, s uint64) error {
		return n.nh.SyncRequestDeleteReplica(ctx, s, id, 0)
	})
}

// TransferLeader asks shard's leader to hand leadership to replica target,
// repeating the request every half second (Raft may drop it, for example
// while target catches up), until target leads or ctx ends.
func (n *Node) TransferLeader(ctx context.Context, shard uint32, target uint64) error {
	var last time.Time
	for i := 0; ; i++ {
		if l, _, ok, _ := n.nh.GetLeaderID(uint64(shard)); ok && l == target {
			return nil
		}
		if time.Since(last) > 500*time.Millisecond {
			if err := n.nh.RequestLeaderTransfer(uint64(shard), target); err != nil {
				return fmt.Errorf("raftsm: transfer shard %d: %w", shard, err)
			}
			last = time.Now()
		}
		if err := backoff(ctx, min(i, 5)); err != nil {
			return fmt.Errorf("raftsm: transfer shard %d to %d: %w", shard, target, err)
		}
	}
}
