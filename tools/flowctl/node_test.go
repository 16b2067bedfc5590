package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/raftsm"
)

// startNode runs `node start` for a one-node cluster (two data shards) and
// returns its admin URL once every shard has a leader.
func startNode(t *testing.T) string {
	t.Helper()
	raft, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	dir := filepath.Join(t.TempDir(), "node")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		a := &app{out: io.Discard, errOut: io.Discard}
		done <- a.runNode(ctx, nodeFile{ID: 1, Dir: dir, Raft: raft, Admin: admin, DataShards: 2,
			Members: map[string]string{"1": raft}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	})
	node := "http://" + admin
	var st statusJSON
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := run(t, "--node", node, "--json", "cluster", "status")
		if err == nil {
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatal(err)
			}
			ready := len(st.Shards) == 3
			for _, s := range st.Shards {
				ready = ready && s.Leader == 1
			}
			if ready {
				return node
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status never showed 3 led shards: %v %+v", err, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNodeCommands: every data command suite that runs against an embedded
// store runs again against a running node (--node): the node executes the
// same commands on its replicated store, and output, exit classes and
// errors.Is come back to the client.
func TestNodeCommands(t *testing.T) {
	for _, c := range []struct {
		name  string
		suite func(*testing.T, target)
	}{{"kv", kvSuite}, {"queue", queueSuite}, {"agent", agentSuite}, {"vec", vecSuite}} {
		t.Run(c.name, func(t *testing.T) { c.suite(t, target{"--node", startNode(t)}) })
	}
	node := startNode(t)
	if _, err := run(t, "--node", node, "queue", "stats", "nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("stats of a missing queue: %v", err)
	}
	// A payload that looks like a flag stays a payload across the wire.
	mustRun(t, "--node", node, "queue", "create", "q")
	id := strings.TrimSpace(mustRun(t, "--node", node, "queue", "enqueue", "q", "--priority", "3", "--", "-x"))
	if got := mustRun(t, "--node", node, "queue", "inspect", "q", id); !strings.Contains(got, "-x") {
		t.Fatalf("inspect: %q", got)
	}
	// The node reads the files a command names; relative paths are the
	// client's.
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "v.jsonl"), []byte("{\"id\":7,\"vector\":[1,2]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(tmp)
	mustRun(t, "--node", node, "vec", "create", "m", "--dim", "2", "--float")
	mustRun(t, "--node", node, "vec", "import", "m", "v.jsonl")
	if got := mustRun(t, "--node", node, "vec", "get", "m", "7"); !strings.Contains(got, "7") {
		t.Fatalf("get: %q", got)
	}
	var ue usageError
	if _, err := run(t, "--node", node, "queue", "create", "bad", "--hot", "-5"); !errors.As(err, &ue) || !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("invalid config through a node: %v", err)
	}
	if _, err := run(t, "cluster", "status"); err == nil {
		t.Fatal("cluster status without --node succeeded")
	}
}

// TestNodeStartRaftTiming: node start passes its Raft timing to raftsm,
// which refuses an election timeout not above two heartbeats before
// starting anything.
func TestNodeStartRaftTiming(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	a := &app{out: io.Discard, errOut: io.Discard}
	root := a.rootCmd()
	root.SetArgs([]string{"--dir", dir, "node", "start", "--id", "1", "--raft", testutil.FreeAddr(t),
		"--admin", testutil.FreeAddr(t), "--election-rtt", "10", "--heartbeat-rtt", "5"})
	// Were the flags dropped, the node would start and serve: end it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := root.ExecuteContext(ctx); !errors.Is(err, raftsm.ErrConfig) {
		t.Fatalf("election 10 RTTs with heartbeats every 5: got %v, want raftsm.ErrConfig", err)
	}
}
