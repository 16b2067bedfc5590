package raftsm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/config"
	dblogger "github.com/lni/dragonboat/v4/logger"
)

const testShard = 1

func init() {
	for _, name := range []string{"raft", "rsm", "transport", "dragonboat", "logdb", "raftpb", "config", "grpc", "settings"} {
		dblogger.GetLogger(name).SetLevel(dblogger.CRITICAL)
	}
}

// replica is one member: its store and its NodeHost.
type replica struct {
	id   uint64
	dir  string
	addr string
	d    *db.DB
	nh   *dragonboat.NodeHost
}

func (r *replica) start(t *testing.T, members map[uint64]dragonboat.Target) {
	t.Helper()
	d := testutil.Open(t, filepath.Join(r.dir, "store"), testutil.StoreOptions(nil, nil))
	nh, err := dragonboat.NewNodeHost(config.NodeHostConfig{
		NodeHostDir:    filepath.Join(r.dir, "nh"),
		RTTMillisecond: 5,
		RaftAddress:    r.addr,
		Expert:         config.ExpertConfig{LogDB: config.GetTinyMemLogDBConfig()},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{ReplicaID: r.id, ShardID: testShard, ElectionRTT: 10, HeartbeatRTT: 1, CheckQuorum: true,
		SnapshotEntries: 40, CompactionOverhead: 5}
	if err := nh.StartOnDiskReplica(members, false, Factory(d, keys.FirstData, filepath.Join(r.dir, "nh")), cfg); err != nil {
		t.Fatal(err)
	}
	r.d, r.nh = d, nh
}

func (r *replica) stop() {
	r.nh.Close()
	r.d.Close()
	r.nh, r.d = nil, nil
}

// propose sets ns/key = value through the shard, retrying while the shard
// has no leader.
func propose(t *testing.T, nh *dragonboat.NodeHost, key, value string) {
	t.Helper()
	cmd := setFrame(t, key, value)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		res, err := nh.SyncPropose(ctx, nh.GetNoOPSession(testShard), cmd)
		cancel()
		if err == nil {
			if res.Value != 1 {
				t.Fatalf("set %s: result %+v", key, res)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("propose %s: %v", key, err)
		}
		if !errors.Is(err, dragonboat.ErrShardNotReady) && !errors.Is(err, dragonboat.ErrTimeout) &&
			!errors.Is(err, dragonboat.ErrSystemBusy) && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("propose %s: %v (retrying)", key, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shardHash hashes every key and value of the test shard's range.
func shardHash(t *testing.T, d *db.DB) (uint64, int) { return rangeHash(t, d, keys.FirstData) }

func leaderOf(t *testing.T, rs []*replica) *replica {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range rs {
			if r.nh == nil {
				continue
			}
			if id, _, ok, err := r.nh.GetLeaderID(testShard); err == nil && ok {
				for _, l := range rs {
					if l.id == id && l.nh != nil {
						return l
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader")
	return nil
}

// TestThreeReplicas: three replicas on loopback apply the same frames
// through the store's applier; the leader's NodeHost stops while writes go
// on, restarts (catching up from the log or a streamed snapshot), and then
// every replica's shard range is byte-identical and holds every
// acknowledged write.
func TestThreeReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	before := recovered.Load()
	rs := make([]*replica, 3)
	members := map[uint64]dragonboat.Target{}
	for i := range rs {
		rs[i] = &replica{id: uint64(i + 1), dir: t.TempDir(), addr: testutil.FreeAddr(t)}
		members[rs[i].id] = rs[i].addr
	}
	for _, r := range rs {
		r.start(t, members)
	}
	defer func() {
		for _, r := range rs {
			if r.nh != nil {
				r.stop()
			}
		}
	}()
	n := 0
	write := func(count int) {
		for range count {
			l := leaderOf(t, rs)
			propose(t, l.nh, fmt.Sprintf("k%05d", n), fmt.Sprintf("v%d", n))
			n++
		}
	}
	write(60)
	down := leaderOf(t, rs)
	down.stop()
	write(120) // past SnapshotEntries: the restarted replica may need a snapshot
	down.start(t, members)
	write(20)
	// Wait until every replica applied the last write.
	want := leaderOf(t, rs)
	wantIndex, err := want.nh.StaleRead(testShard, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range rs {
		for {
			idx, err := r.nh.StaleRead(testShard, nil)
			if err == nil && idx.(uint64) >= wantIndex.(uint64) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d stuck at %v (%v), want %v", r.id, idx, err, wantIndex)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	h0, keys0 := shardHash(t, rs[0].d)
	for _, r := range rs[1:] {
		if h, k := shardHash(t, r.d); h != h0 || k != keys0 {
			t.Fatalf("replica %d: shard hash %x over %d keys, replica 1 %x over %d", r.id, h, k, h0, keys0)
		}
	}
	for _, r := range rs {
		for i := 0; i < n; i += 37 {
			v, err := r.d.Get(context.Background(), "kv", []byte(fmt.Sprintf("k%05d", i)))
			if err != nil || string(v) != fmt.Sprintf("v%d", i) {
				t.Fatalf("replica %d: k%05d = %q (%v)", r.id, i, v, err)
			}
		}
	}
	if recovered.Load() == before {
		t.Fatal("the restarted replica caught up without a snapshot: RecoverFromSnapshot untested")
	}
	t.Logf("%d writes; leader %d stopped and restarted (%d snapshot recoveries); 3 replicas identical over %d keys",
		n, down.id, recovered.Load()-before, keys0)
}
