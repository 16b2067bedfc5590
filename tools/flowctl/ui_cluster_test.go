package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/server/ui"
)

// TestDashboardReplicaLag: three nodes started with --peers; node 1's
// cluster page shows, per shard, every member's applied index as that
// member reports it (lag behind the most advanced), and a member that was
// stopped as unreachable.
func TestDashboardReplicaLag(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	const size = 3
	raft, admin := make([]string, size), make([]string, size)
	members, peers := map[string]string{}, map[string]string{}
	for i := range size {
		raft[i], admin[i] = testutil.FreeAddr(t), testutil.FreeAddr(t)
		members[strconv.Itoa(i+1)], peers[strconv.Itoa(i+1)] = raft[i], admin[i]
	}
	stops := make([]func(), size)
	base := t.TempDir()
	for i := range size {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			a := &app{out: io.Discard, errOut: io.Discard}
			done <- a.runNode(ctx, nodeFile{ID: uint64(i + 1), Dir: filepath.Join(base, fmt.Sprint(i+1)), Raft: raft[i], Admin: admin[i],
				Members: members, Peers: peers})
		}()
		stopped := false
		stops[i] = func() {
			if !stopped {
				stopped = true
				cancel()
				if err := <-done; err != nil {
					t.Errorf("node %d: %v", i+1, err)
				}
			}
		}
		t.Cleanup(stops[i])
	}
	cluster := func() ui.ClusterView {
		t.Helper()
		var cv ui.ClusterView
		resp, err := http.Get("http://" + admin[0] + "/ui/api/cluster")
		if err != nil {
			return cv
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&cv)
		return cv
	}
	// states returns each shard's replicas as "id:state".
	states := func(cv ui.ClusterView) map[string]string {
		out := map[string]string{}
		for _, s := range cv.Shards {
			for _, r := range s.Replicas {
				out[fmt.Sprintf("%d/%d", s.Shard, r.ID)] = r.State
			}
		}
		return out
	}
	waitFor := func(what string, ok func(ui.ClusterView) bool) ui.ClusterView {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			cv := cluster()
			if ok(cv) {
				return cv
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: never; last %+v", what, cv)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	cv := waitFor("every member of every shard answers", func(cv ui.ClusterView) bool {
		st := states(cv)
		if len(cv.Shards) != 2 || len(st) != 2*size {
			return false
		}
		for _, s := range st {
			if s != "ok" {
				return false
			}
		}
		return true
	})
	// Writes reach the data shard: every replica's applied index there
	// moves past them.
	for i := range 5 {
		mustRun(t, "--node", "http://"+admin[i%size], "kv", "set", "ns", fmt.Sprint(i), "v")
	}
	cv = waitFor("every replica applies the writes", func(cv ui.ClusterView) bool {
		n := 0
		for _, s := range cv.Shards {
			for _, r := range s.Replicas {
				if s.Shard == 2 && r.State == "ok" && r.Applied >= 5 {
					n++
				}
			}
		}
		return n == size
	})
	for _, s := range cv.Shards {
		var top uint64
		for _, r := range s.Replicas {
			top = max(top, r.Applied)
		}
		for _, r := range s.Replicas {
			if (s.Shard == 2 && r.Applied < 5) || r.Lag != top-r.Applied || r.Address != raft[r.ID-1] {
				t.Errorf("shard %d replica %+v (most advanced %d)", s.Shard, r, top)
			}
		}
	}
	stops[2]()
	waitFor("the stopped member shows as unreachable", func(cv ui.ClusterView) bool {
		st := states(cv)
		return len(st) == 2*size && st["1/3"] == "unreachable" && st["1/1"] == "ok" && st["1/2"] == "ok"
	})
}
