package raftsm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	dblogger "github.com/lni/dragonboat/v4/logger"
	"github.com/lni/dragonboat/v4/raftio"
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
	// ErrRemoved: this node's replica was removed from the cluster. A
	// removed node refuses every call (proposals, reads, status), and
	// Open refuses to start it again: its directory is left for
	// inspection; a replacement joins with a new replica id.
	ErrRemoved = errors.New("raftsm: this node was removed from the cluster")
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
	// Default 20. ElectionRTT (default 25) and HeartbeatRTT (default 5)
	// count in RTTs: by default a leader sends heartbeats every 100 ms and
	// a follower that hears nothing for 500 ms to 1 s (Raft randomizes it)
	// starts an election; PreVote and CheckQuorum are always on. With these
	// a SIGKILLed leader's shard takes its next write on a new leader after
	// about 0.8 s (TestFailover measures it). A shorter election timeout
	// fails over faster but elects spuriously when a loaded node's Raft
	// worker waits on a slow fsync: bench/replbench with 200 ms saw 7
	// elections in 10 s at peak load on a 2-core VM, each stalling writes
	// for up to 2.4 s.
	RTTMillisecond uint64
	ElectionRTT    uint64
	HeartbeatRTT   uint64
	// AttemptTimeout bounds one Raft request (a proposal, a read index, a
	// membership read or change) before it is made again within the
	// caller's deadline; default 2s. An attempt Raft dropped (a message
	// lost in a partition, a proposal to a leader that stepped down
	// without an election this node saw) waits this long before its
	// retry. Retried proposals are deduplicated, so a shorter bound costs
	// only repeated requests on a slow disk.
	AttemptTimeout time.Duration
	// SnapshotEntries: a snapshot every this many applied entries; default
	// 100,000. CompactionOverhead entries stay in the log after one;
	// default 10,000.
	SnapshotEntries    uint64
	CompactionOverhead uint64
	// LogDB sizes Dragonboat's log store (LogDBSize): "" for this
	// package's default, 8 MiB memtables; "tiny" (4 MiB), "small"
	// (16 MiB), "medium" (64 MiB) or "large" (128 MiB, Dragonboat's own
	// default). Each Raft shard's log store preallocates a write-ahead log
	// file of 110% of a memtable, so the size sets an idle node's disk use:
	// about 9 MiB per shard by default, 141 MiB with "large".
	LogDB string
	// LogStore is how Dragonboat keeps the Raft log: LogStorePebble
	// (Pebble instances, sized by LogDB) or LogStoreTan (Dragonboat's
	// append-only log: no memtable flushes or compactions; LogDB then
	// sizes only its 16 encoding buffers, a memtable's size each, touched
	// only as far as a Raft update fills them). Empty: a new node takes the
	// package's default, and an existing node the store it was created
	// with (a node created before this setting existed used Pebble). A
	// node keeps its store for good: Open refuses another with
	// ErrLogStoreChanged, since neither reads the other's log.
	LogStore string

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
	if _, ok := o.Members[o.ReplicaID]; !o.Join && !ok {
		return o, fmt.Errorf("%w: replica id %d is not among the members (a new member starts with Join)", ErrConfig, o.ReplicaID)
	}
	if o.DataShards <= 0 {
		o.DataShards = 1
	}
	def := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.LogStore != "" {
		if _, err := logStoreFactory(o.LogStore); err != nil {
			return o, err
		}
	}
	def(&o.RTTMillisecond, 20)
	def(&o.ElectionRTT, 25)
	def(&o.HeartbeatRTT, 5)
	def(&o.SnapshotEntries, 100_000)
	def(&o.CompactionOverhead, 10_000)
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = 2 * time.Second
	}
	if tick := time.Duration(o.RTTMillisecond) * time.Millisecond; o.AttemptTimeout < 4*tick {
		return o, fmt.Errorf("%w: AttemptTimeout %v under four ticks of %v (Raft could not answer within it)", ErrConfig, o.AttemptTimeout, tick)
	}
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
	// removed is set once this node's replica was removed from a shard
	// (Dragonboat's NodeDeleted event); removedMarker records it on disk.
	removed atomic.Bool
	// leaders holds, per shard, a channel closed when the shard's leader
	// changes (Dragonboat's LeaderUpdated event): a proposal waiting on a
	// leader that is gone is retried at once, not after its attempt's
	// timeout.
	leaders sync.Map // uint32 -> *leaderEpoch

	proposals, retries, timeouts atomic.Uint64
	// commitLat holds per shard the Raft commit times of this node's
	// proposals (CommitLatency); filled by open, read-only afterwards.
	commitLat map[uint32]*histo.Histogram
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

// CommitLatency returns, per shard, the distribution of the Raft commit
// times of the frames this node proposed: from Propose's call to its
// answer, the entry committed by a quorum and applied by this replica
// (retries included). Only frames that succeeded are counted, one sample
// each. Read it with Quantile(0.99); Add merges shards.
func (n *Node) CommitLatency() map[uint32]histo.Snapshot {
	out := make(map[uint32]histo.Snapshot, len(n.commitLat))
	for s, h := range n.commitLat {
		out[s] = h.Snapshot()
	}
	return out
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
//
// A start that fails in a directory that did not exist or was empty
// leaves it as it was: what the attempt created is removed.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	QuietRaftLogs()
	ents, statErr := os.ReadDir(c.Dir)
	existed := statErr == nil
	fresh := errors.Is(statErr, fs.ErrNotExist) || (existed && len(ents) == 0)
	n, err := open(ctx, c)
	if err != nil && fresh {
		if existed {
			ents, _ := os.ReadDir(c.Dir)
			for _, e := range ents {
				os.RemoveAll(filepath.Join(c.Dir, e.Name()))
			}
		} else {
			os.RemoveAll(c.Dir)
		}
	}
	return n, err
}

func open(ctx context.Context, c Config) (*Node, error) {
	raftDir := filepath.Join(c.Dir, "raft")
	if _, err := os.Stat(filepath.Join(raftDir, removedMarker)); err == nil {
		return nil, fmt.Errorf("%w: replica %d (its directory %s is kept for inspection; a replacement joins with a new replica id)", ErrRemoved, c.ReplicaID, c.Dir)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return nil, err
	}
	n := &Node{cfg: c, commitLat: map[uint32]*histo.Histogram{}}
	n.shards = append(n.shards, keys.CatalogShard)
	for i := 0; i < c.DataShards; i++ {
		n.shards = append(n.shards, keys.FirstData+uint32(i))
	}
	for _, s := range n.shards {
		n.commitLat[s] = new(histo.Histogram)
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
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		d.Close()
		return nil, err
	}
	// A node restarts from its bootstrap record: Members and Join count
	// only the first time (Dragonboat refuses a member list that differs
	// from the recorded one, as it would after membership changes).
	marker := filepath.Join(raftDir, "flowdb-bootstrapped")
	_, statErr := os.Stat(marker)
	restart := statErr == nil
	if c.LogStore, err = resolveLogStore(raftDir, c.LogStore, restart); err != nil {
		d.Close()
		return nil, err
	}
	n.cfg.LogStore = c.LogStore
	nhc := config.NodeHostConfig{
		NodeHostDir:         raftDir,
		RTTMillisecond:      c.RTTMillisecond,
		RaftAddress:         c.RaftAddress,
		ListenAddress:       c.ListenAddress,
		SystemEventListener: &events{n: n, raftDir: raftDir},
		RaftEventListener:   &events{n: n, raftDir: raftDir},
	}
	if nhc.Expert.LogDB, err = LogDBSize(c.LogDB); err != nil {
		d.Close()
		return nil, err
	}
	if nhc.Expert.LogDBFactory, err = logStoreFactory(c.LogStore); err != nil {
		d.Close()
		return nil, err
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
	members := map[uint64]dragonboat.Target{}
	join := c.Join && !restart
	if !c.Join && !restart {
		for id, a := range c.Members {
			members[id] = a
		}
	}
	for _, s := range n.shards {
		rc := config.Config{ReplicaID: c.ReplicaID, ShardID: uint64(s), ElectionRTT: c.ElectionRTT,
			HeartbeatRTT: c.HeartbeatRTT, CheckQuorum: true, PreVote: true, SnapshotEntries: c.SnapshotEntries,
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

// LogStore is the log store the node runs (Config.LogStore, resolved).
func (n *Node) LogStore() string { return n.cfg.LogStore }

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
		errors.Is(err, dragonboat.ErrShardNotInitialized), errors.Is(err, dragonboat.ErrTimeoutTooSmall):
		// ErrTimeoutTooSmall: the context's deadline is less than a tick
		// away; nothing was sent.
		return true, false
	case errors.Is(err, dragonboat.ErrTimeout), errors.Is(err, dragonboat.ErrAborted),
		errors.Is(err, dragonboat.ErrCanceled):
		return true, true
	}
	// ErrRejected is an answer, not a lost request: Raft refused it (a
	// membership change it will never make), so it is not retried.
	return false, false
}

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
	if err := n.removedErr(); err != nil {
		return nil, err
	}
	sess := n.nh.GetNoOPSession(uint64(shard))
	maybe := false
	n.proposals.Add(1)
	t0 := time.Now()
	for i := 0; ; i++ {
		if i > 0 {
			n.retries.Add(1)
		}
		actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
		stop := context.AfterFunc(n.epoch(shard), cancel)
		res, err := n.nh.SyncPropose(actx, sess, frame)
		stop()
		cancel()
		if err == nil {
			if h := n.commitLat[shard]; h != nil {
				h.Since(t0)
			}
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
			if rerr := n.removedErr(); rerr != nil && !maybe {
				return nil, rerr
			}
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
		if err := n.removedErr(); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
		_, err := n.nh.SyncRead(actx, uint64(shard), nil)
		cancel()
		if err == nil {
			return nil
		}
		if err := n.removedErr(); err != nil {
			return err
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

// removedMarker, in the Raft directory, records that this node's replica
// was removed: Open refuses to start it again (ErrRemoved).
const removedMarker = "flowdb-removed"

// Removed reports whether this node's replica was removed from the
// cluster (ErrRemoved).
func (n *Node) Removed() bool { return n.removed.Load() }

// removedErr returns ErrRemoved once the node was removed, else nil.
func (n *Node) removedErr() error {
	if !n.removed.Load() {
		return nil
	}
	return fmt.Errorf("%w: replica %d", ErrRemoved, n.cfg.ReplicaID)
}

// events receives Dragonboat's system events: NodeDeleted for this node's
// replica marks the node removed (in memory and on disk).
type events struct {
	n       *Node
	raftDir string
}

func (e *events) NodeDeleted(info raftio.NodeInfo) {
	if info.ReplicaID != e.n.cfg.ReplicaID || e.n.removed.Swap(true) {
		return
	}
	e.n.cfg.Logger.Warn("flowdb node removed from the cluster: it refuses every call from now on", "replica", info.ReplicaID, "shard", info.ShardID)
	if err := os.WriteFile(filepath.Join(e.raftDir, removedMarker), nil, 0o600); err != nil {
		e.n.cfg.Logger.Error("flowdb node: recording its removal", "err", err)
	}
}

func (e *events) NodeHostShuttingDown()                       {}
func (e *events) NodeUnloaded(raftio.NodeInfo)                {}
func (e *events) NodeReady(raftio.NodeInfo)                   {}
func (e *events) MembershipChanged(raftio.NodeInfo)           {}
func (e *events) ConnectionEstablished(raftio.ConnectionInfo) {}
func (e *events) ConnectionFailed(raftio.ConnectionInfo)      {}
func (e *events) SendSnapshotStarted(raftio.SnapshotInfo)     {}
func (e *events) SendSnapshotCompleted(raftio.SnapshotInfo)   {}
func (e *events) SendSnapshotAborted(raftio.SnapshotInfo)     {}
func (e *events) SnapshotReceived(raftio.SnapshotInfo)        {}
func (e *events) SnapshotRecovered(raftio.SnapshotInfo)       {}
func (e *events) SnapshotCreated(raftio.SnapshotInfo)         {}
func (e *events) SnapshotCompacted(raftio.SnapshotInfo)       {}
func (e *events) LogCompacted(raftio.EntryInfo)               {}
func (e *events) LogDBCompacted(raftio.EntryInfo)             {}

// leaderEpoch is one shard's leadership until it changes: ctx is canceled
// then.
type leaderEpoch struct {
	leader, term uint64
	ctx          context.Context
	cancel       context.CancelFunc
}

// epoch returns a context canceled when shard's leader changes.
func (n *Node) epoch(shard uint32) context.Context {
	v, ok := n.leaders.Load(shard)
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		v, _ = n.leaders.LoadOrStore(shard, &leaderEpoch{ctx: ctx, cancel: cancel})
	}
	return v.(*leaderEpoch).ctx
}

// LeaderUpdated ends the shard's leader epoch when its leader or term
// changes, so
// that proposals waiting on the old leader (which may be dead: a follower
// forwards proposals, and a dead leader never answers) are made again to
// the new one at once; the frame's Origin makes the retry safe.
func (e *events) LeaderUpdated(info raftio.LeaderInfo) {
	shard := uint32(info.ShardID)
	ctx, cancel := context.WithCancel(context.Background())
	next := &leaderEpoch{leader: info.LeaderID, term: info.Term, ctx: ctx, cancel: cancel}
	for {
		v, ok := e.n.leaders.Load(shard)
		if !ok {
			if _, loaded := e.n.leaders.LoadOrStore(shard, next); !loaded {
				return
			}
			continue
		}
		old := v.(*leaderEpoch)
		if old.leader == info.LeaderID && old.term == info.Term {
			cancel()
			return
		}
		if e.n.leaders.CompareAndSwap(shard, old, next) {
			old.cancel()
			return
		}
	}
}

// LogDBSize returns Dragonboat's log store configuration for a
// Config.LogDB name. The log store is one Pebble instance per LogDB shard
// (16; a Raft shard uses the one its id maps to), each with
// KVMaxWriteBufferNumber memtables of KVWriteBufferSize bytes and a
// write-ahead log file preallocated at 110% of a memtable. Raft entries
// here are frames of up to db.Options.Batcher.MaxRecords records, rarely
// over a few hundred KiB, so 8 MiB memtables hold dozens of them before a
// flush, and an idle node holds about 9 MiB of log per shard; memory is at
// most 32 MiB per shard in use. Only memtable sizes differ between the
// names: the LogDB shard count (fixed once a node has written its log) is
// Dragonboat's default, so a node may restart with another size.
func LogDBSize(name string) (config.LogDBConfig, error) {
	switch name {
	case "":
		c := config.GetDefaultLogDBConfig()
		c.KVWriteBufferSize = 8 << 20
		c.KVMaxWriteBufferNumber = 4
		return c, nil
	case "tiny":
		return config.GetTinyMemLogDBConfig(), nil
	case "small":
		return config.GetSmallMemLogDBConfig(), nil
	case "medium":
		return config.GetMediumMemLogDBConfig(), nil
	case "large":
		return config.GetLargeMemLogDBConfig(), nil
	}
	return config.LogDBConfig{}, fmt.Errorf("%w: LogDB %q (want tiny, small, medium, large or empty)", ErrConfig, name)
}
