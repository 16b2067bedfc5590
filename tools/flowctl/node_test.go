package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestNodeCommands: `node start` runs a one-node cluster; `cluster status`
// and the data commands go through its admin endpoint with --node.
func TestNodeCommands(t *testing.T) {
	raft, admin := freePort(t), freePort(t)
	dir := filepath.Join(t.TempDir(), "node")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		a := &app{out: &strings.Builder{}, errOut: &strings.Builder{}}
		done <- a.runNode(ctx, nodeFile{ID: 1, Dir: dir, Raft: raft, Admin: admin, DataShards: 2,
			Members: map[string]string{"1": raft}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	}()
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
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status never showed 3 led shards: %v %+v", err, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mustRun(t, "--node", node, "kv", "set", "agents", "a1", "planner")
	if got := mustRun(t, "--node", node, "kv", "get", "agents", "a1"); got != "planner\n" {
		t.Fatalf("remote get: %q", got)
	}
	mustRun(t, "--node", node, "kv", "del", "agents", "a1")
	if _, err := run(t, "--node", node, "kv", "get", "agents", "a1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("get after del: %v", err)
	}
	mustRun(t, "--node", node, "queue", "create", "jobs")
	if got := strings.TrimSpace(mustRun(t, "--node", node, "queue", "enqueue", "jobs", "payload")); got == "" {
		t.Fatal("enqueue printed no id")
	}
	var qs struct{ Hot, Enqueued int64 }
	if err := json.Unmarshal([]byte(mustRun(t, "--node", node, "--json", "queue", "stats", "jobs")), &qs); err != nil || qs.Hot != 1 || qs.Enqueued != 1 {
		t.Fatalf("remote stats: %+v %v", qs, err)
	}
	if _, err := run(t, "--node", node, "queue", "stats", "nope"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("stats of a missing queue: %v", err)
	}
	if _, err := run(t, "cluster", "status"); err == nil {
		t.Fatal("cluster status without --node succeeded")
	}
}
