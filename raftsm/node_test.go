package raftsm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
)

// tnode is one member of a test cluster: a Node and the queue manager
// attached to its store.
type tnode struct {
	id   uint64
	dir  string
	addr string
	// listen, if set, is where the node listens (Config.ListenAddress):
	// addr is then its faultNet proxy.
	listen string
	n      *Node
	q      *queue.Manager
	// joined: the node joined running shards (Config.Join); it restarts
	// the same way.
	joined bool
	// tick is the queue ticker's interval (0: no ticker).
	tick time.Duration
}

func testConfig(id uint64, dir, addr string, members map[uint64]string) Config {
	return Config{Dir: dir, ReplicaID: id, RaftAddress: addr, Members: members, DataShards: 2,
		RTTMillisecond: 5, ElectionRTT: 10, HeartbeatRTT: 1, SnapshotEntries: 40, CompactionOverhead: 5,
		AttemptTimeout: 300 * time.Millisecond,
		LogDB:          "tiny", Logger: testutil.Quiet(),
		Store: testutil.StoreOptions(nil, nil)}
}

func (tn *tnode) start(t *testing.T, members map[uint64]string, join bool) {
	t.Helper()
	cfg := testConfig(tn.id, tn.dir, tn.addr, members)
	cfg.ListenAddress = tn.listen
	tn.joined = tn.joined || join
	if tn.joined {
		cfg.Members, cfg.Join = nil, true
	}
	cfg.Attach = func(d *db.DB) error {
		var err error
		tick := tn.tick
		if tick == 0 {
			tick = -1
		}
		tn.q, err = queue.Attach(d, &queue.Options{TickInterval: tick})
		return err
	}
	n, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn.n = n
}

func (tn *tnode) stop() {
	tn.q.Close()
	tn.n.Close()
	tn.n, tn.q = nil, nil
}

func startCluster(t *testing.T, size int) ([]*tnode, map[uint64]string) {
	t.Helper()
	return startClusterTick(t, size, 0)
}

func startClusterTick(t *testing.T, size int, tick time.Duration) ([]*tnode, map[uint64]string) {
	t.Helper()
	return startClusterNet(t, size, tick, nil)
}

// startClusterNet starts a cluster whose nodes reach each other through
// fn's proxies (directly if fn is nil).
func startClusterNet(t *testing.T, size int, tick time.Duration, fn *faultNet) ([]*tnode, map[uint64]string) {
	t.Helper()
	ns := make([]*tnode, size)
	members := map[uint64]string{}
	for i := range ns {
		ns[i] = newTnode(t, uint64(i+1), fn)
		ns[i].tick = tick
		members[ns[i].id] = ns[i].addr
	}
	for _, n := range ns {
		n.start(t, members, false)
	}
	t.Cleanup(func() {
		for _, n := range ns {
			if n.n != nil {
				n.stop()
			}
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, n := range ns {
		if err := n.n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ns, members
}

// rangeHash hashes every key and value of shard in d.
func rangeHash(t *testing.T, d *db.DB, shard uint32) (uint64, int) {
	t.Helper()
	lo, hi := keys.ShardRange(shard)
	it, err := d.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	h := xxhash.New()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		h.Write(it.Key())
		h.Write(it.Value())
		n++
	}
	return h.Sum64(), n
}

// converge waits until every running node applied every shard as far as
// the first running node after a read index, then checks that each
// shard's key range is identical on all of them.
func converge(t *testing.T, ns []*tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var live []*tnode
	for _, n := range ns {
		if n.n != nil {
			live = append(live, n)
		}
	}
	for _, s := range live[0].n.Shards() {
		if err := live[0].n.ReadIndex(ctx, s); err != nil {
			t.Fatal(err)
		}
		want, _ := live[0].n.NodeHost().StaleRead(uint64(s), nil)
		for _, n := range live[1:] {
			for {
				got, err := n.n.NodeHost().StaleRead(uint64(s), nil)
				if err == nil && got.(uint64) >= want.(uint64) {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("node %d shard %d stuck at %v, want %v", n.id, s, got, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		h0, k0 := rangeHash(t, live[0].n.DB(), s)
		for _, n := range live[1:] {
			if h, k := rangeHash(t, n.n.DB(), s); h != h0 || k != k0 {
				t.Fatalf("shard %d: node %d hash %x over %d keys, node %d %x over %d", s, n.id, h, k, live[0].id, h0, k0)
			}
		}
	}
}

// namesOnShards returns one name placed on each of two different shards.
func namesOnShards(p db.Placement) (string, string) {
	a := "ns-0"
	for i := 1; ; i++ {
		b := fmt.Sprintf("ns-%d", i)
		if p.ShardFor(b) != p.ShardFor(a) {
			return a, b
		}
	}
}

// TestReplicatedDB: three nodes on loopback, each with the same *db.DB API
// over Raft: writes from any node, linearizable reads from any other, typed
// rejections across the wire, cross-shard batches refused; the leader of
// the queue's shard stops while enqueues go on and comes back through a
// streamed snapshot, after which every shard is byte-identical on all
// nodes and the in-memory queue views (reloaded from the snapshot) agree.
func TestReplicatedDB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	before := recovered.Load()
	ns, members := startCluster(t, 3)
	ctx := t.Context()
	d1, d2, d3 := ns[0].n.DB(), ns[1].n.DB(), ns[2].n.DB()

	// Key-value: write on one node, read (linearizable) on the others.
	a, b := namesOnShards(d1.Placement())
	for i := range 20 {
		if err := d1.Set(ctx, a, fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
		v, err := d2.Get(ctx, a, fmt.Appendf(nil, "k%d", i))
		if err != nil || string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("node 2 read k%d = %q (%v) right after node 1 wrote it", i, v, err)
		}
	}
	bt := d3.NewBatch()
	bt.Set(a, []byte("x"), []byte("1"))
	bt.Set(b, []byte("x"), []byte("1"))
	if err := d3.Commit(ctx, bt); !errors.Is(err, db.ErrCrossShard) {
		t.Fatalf("batch over two shards: %v, want ErrCrossShard", err)
	}

	// Queues: typed errors travel back from the state machine.
	if _, err := ns[2].q.Enqueue(ctx, "nope", queue.Task{Payload: []byte("x")}); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("enqueue to a missing queue: %v, want queue.ErrNotFound", err)
	}
	if err := ns[1].q.Create(ctx, queue.Config{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]bool{}
	enqueue := func(from []*tnode, count int) {
		t.Helper()
		for i := range count {
			n := from[i%len(from)]
			id, err := n.q.Enqueue(ctx, "jobs", queue.Task{Payload: fmt.Appendf(nil, "task-%d", i), Priority: i % 10})
			if err != nil {
				t.Fatalf("enqueue through node %d: %v", n.id, err)
			}
			if acked[id] {
				t.Fatalf("task id %d given twice", id)
			}
			acked[id] = true
		}
	}
	enqueue(ns, 30)
	ls, err := ns[2].q.Lease(ctx, "jobs", "agent-1", 10, nil, time.Minute)
	if err != nil || len(ls) != 10 {
		t.Fatalf("lease on node 3: %d leases, %v", len(ls), err)
	}
	for _, l := range ls {
		if err := ns[0].q.Ack(ctx, "jobs", l.ID, l.Token, nil); err != nil {
			t.Fatalf("ack on node 1 of a lease from node 3: %v", err)
		}
	}
	if err := ns[1].q.Ack(ctx, "jobs", ls[0].ID, ls[0].Token, nil); !errors.Is(err, queue.ErrLeaseLost) && !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("second ack: %v, want ErrLeaseLost or ErrNotFound", err)
	}
	converge(t, ns)

	// Stop the leader of the queue's shard; keep enqueuing past a snapshot.
	shard := d1.Placement().ShardFor("jobs")
	leader, _, _, err := ns[0].n.NodeHost().GetLeaderID(uint64(shard))
	if err != nil {
		t.Fatal(err)
	}
	down := ns[leader-1]
	down.stop()
	var up []*tnode
	for _, n := range ns {
		if n != down {
			up = append(up, n)
		}
	}
	enqueue(up, 150) // SnapshotEntries is 40: the restarted node needs a snapshot
	down.start(t, members, false)
	enqueue(ns, 10)
	converge(t, ns)
	if recovered.Load() == before {
		t.Fatal("the restarted node caught up without a snapshot: snapshot reload untested")
	}
	s0, err := ns[0].q.Stats("jobs")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(acked) - 10); s0.Hot+s0.Overflow != want || s0.Acked != 10 {
		t.Fatalf("node 1 stats %+v, want %d ready and 10 acked", s0, want)
	}
	for _, n := range ns[1:] {
		s, err := n.q.Stats("jobs")
		if err != nil {
			t.Fatal(err)
		}
		if s.Hot != s0.Hot || s.Overflow != s0.Overflow || s.Leased != s0.Leased || s.Enqueued != s0.Enqueued || s.Acked != s0.Acked {
			t.Fatalf("node %d queue view %+v differs from node 1's %+v", n.id, s, s0)
		}
	}
	// Every acknowledged task is there, once, on the restarted node.
	got := map[uint64]bool{}
	for {
		ls, err := down.q.Lease(ctx, "jobs", "agent-2", 100, nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) == 0 {
			break
		}
		for _, l := range ls {
			if got[l.ID] || !acked[l.ID] {
				t.Fatalf("lease of task %d: duplicate or never enqueued", l.ID)
			}
			got[l.ID] = true
		}
	}
	if len(got) != len(acked)-10 {
		t.Fatalf("leased %d tasks after the restart, want %d", len(got), len(acked)-10)
	}
	t.Logf("%d tasks enqueued across 3 nodes; node %d stopped and restarted (%d snapshot recoveries); shards identical", len(acked), down.id, recovered.Load()-before)
}

// TestBackgroundOnLeader: the queue ticker runs on every node, but only the
// leader of the queue's shard proposes ticks; delayed tasks still become
// ready on every node.
func TestBackgroundOnLeader(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	ns, _ := startClusterTick(t, 3, 5*time.Millisecond)
	ctx := t.Context()
	shard := ns[0].n.DB().Placement().ShardFor("timers")
	// WaitReady only means every node knows some leader: on a loaded host
	// an election may still be under way, so wait for one node to lead.
	var leader *tnode
	for deadline := time.Now().Add(10 * time.Second); leader == nil; {
		for _, n := range ns {
			if n.n.Leads(shard) {
				leader = n
			}
		}
		if leader == nil && time.Now().After(deadline) {
			t.Fatal("no node leads the queue's shard")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := leader.q.Create(ctx, queue.Config{Name: "timers"}); err != nil {
		t.Fatal(err)
	}
	// One batch, due from 500 ms out: separate enqueues are a Raft round
	// trip each, and on a loaded host they outlasted delays that started
	// at once, so every task was ready before the snapshot below and the
	// leader had no tick left to propose (CI, 2026-12-05).
	base := time.Now().Add(500 * time.Millisecond)
	tasks := make([]queue.Task, 20)
	for i := range tasks {
		tasks[i] = queue.Task{Payload: []byte("x"), NotBefore: base.Add(time.Duration(10*i) * time.Millisecond)}
	}
	if _, err := leader.q.EnqueueBatch(ctx, "timers", tasks); err != nil {
		t.Fatal(err)
	}
	before := map[uint64]uint64{}
	for _, n := range ns {
		before[n.id] = n.n.Counters().Proposals
	}
	if st, err := leader.q.Stats("timers"); err != nil || st.Delayed == 0 {
		t.Fatalf("setup outlasted the delays: the leader holds no delayed task at the snapshot (%+v, %v)", st, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ready := true
		for _, n := range ns {
			// Stats is a local read: a follower may not have applied the
			// queue's creation yet.
			st, err := n.q.Stats("timers")
			if err != nil && !errors.Is(err, queue.ErrNotFound) {
				t.Fatal(err)
			}
			ready = ready && err == nil && st.Delayed == 0 && st.Hot == 20
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("delayed tasks never became ready on every node")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	var ticks uint64
	for _, n := range ns {
		grew := n.n.Counters().Proposals - before[n.id]
		ticks += grew
		if n != leader && grew != 0 && n.n.Leads(shard) == false {
			t.Fatalf("follower %d proposed %d frames (ticks belong to the leader)", n.id, grew)
		}
	}
	if ticks == 0 {
		t.Fatal("no node proposed a tick: the delayed tasks woke without one")
	}
}

// TestGossipAddressChange: with the gossip registry, members are NodeHost
// IDs; a node that comes back on another Raft address catches up and
// serves reads.
func TestGossipAddressChange(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	ids := map[uint64]string{1: "8c3c2a26-0f5e-4b38-9d0c-000000000001", 2: "8c3c2a26-0f5e-4b38-9d0c-000000000002", 3: "8c3c2a26-0f5e-4b38-9d0c-000000000003"}
	gossip := map[uint64]string{1: testutil.FreeAddr(t), 2: testutil.FreeAddr(t), 3: testutil.FreeAddr(t)}
	dirs := map[uint64]string{}
	var seeds []string
	for id := uint64(1); id <= 3; id++ {
		dirs[id] = filepath.Join(t.TempDir(), "node")
		seeds = append(seeds, gossip[id])
	}
	open := func(id uint64, raft string) *Node {
		t.Helper()
		cfg := testConfig(id, dirs[id], raft, ids)
		cfg.Gossip = &Gossip{NodeHostID: ids[id], BindAddress: gossip[id], Seeds: seeds}
		n, err := Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	nodes := map[uint64]*Node{}
	for id := uint64(1); id <= 3; id++ {
		nodes[id] = open(id, testutil.FreeAddr(t))
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[1].DB().Set(ctx, "kv", []byte("before"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	nodes[3].Close()
	if err := nodes[1].DB().Set(ctx, "kv", []byte("during"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	nodes[3] = open(3, testutil.FreeAddr(t)) // a new Raft address, the same NodeHost ID
	if err := nodes[1].DB().Set(ctx, "kv", []byte("after"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"before", "during", "after"} {
		v, err := nodes[3].DB().Get(ctx, "kv", []byte(k))
		if err != nil {
			t.Fatalf("node 3 on its new address: %s: %v", k, err)
		}
		if len(v) != 1 {
			t.Fatalf("node 3: %s = %q", k, v)
		}
	}
	st, err := nodes[3].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Members[3] != ids[3] {
		t.Fatalf("members are not NodeHost IDs: %v", st[0].Members)
	}
}

// newTnode returns a new member's tnode (not started), behind fn's proxy
// if fn is not nil.
func newTnode(t *testing.T, id uint64, fn *faultNet) *tnode {
	tn := &tnode{id: id, dir: filepath.Join(t.TempDir(), "node"), addr: testutil.FreeAddr(t)}
	if fn != nil {
		tn.listen = tn.addr
		tn.addr = fn.add(id, tn.listen)
	}
	return tn
}
