package mcp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil/cluster"
	flowmcp "github.com/flowdb/flowdb/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// startReplicas runs a three-replica cluster in this process with a
// server and its MCP endpoint (mcp.Mount, as `flowctl node start` mounts
// it) on each member, and returns an MCP session per member.
func startReplicas(t *testing.T) []*sdk.ClientSession {
	t.Helper()
	ms := cluster.Start(t, func(m *cluster.Member) error {
		return flowmcp.Mount(m.Server, flowmcp.Stack{DB: m.DB, Queues: m.Queues, Registry: m.Registry, Vectors: m.Vectors}, nil)
	})
	var out []*sdk.ClientSession
	for _, m := range ms {
		cs, err := connectHTTP(m.URL, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		out = append(out, cs)
	}
	return out
}

// TestReplicatedEndpoints: every member's MCP endpoint takes every kind of
// write (through Raft, whichever replica leads), and what one member
// acknowledged, the next one reads at once (read barriers), so agents may
// talk to followers as RPC clients do.
func TestReplicatedEndpoints(t *testing.T) {
	t.Parallel()
	cs := startReplicas(t)
	on := func(i int) *sdk.ClientSession { return cs[i%3] }
	ok(t, on(0), "queue_create", map[string]any{"queue": "rq"})
	var ids []uint64
	for i := range 6 {
		ids = append(ids, num(ok(t, on(i+1), "task_enqueue", map[string]any{"queue": "rq", "payload": fmt.Sprint(i)})["id"]))
	}
	for i := range 6 {
		ls := ok(t, on(i+1), "task_lease", map[string]any{"queue": "rq", "agent": "a"})["tasks"].([]any)
		if len(ls) != 1 || num(ls[0].(map[string]any)["id"]) != ids[i] {
			t.Fatalf("lease on %d: %v, want task %d (FIFO)", (i+1)%3, ls, ids[i])
		}
		l := ls[0].(map[string]any)
		ok(t, on(i+2), "task_ack", map[string]any{"queue": "rq", "id": l["id"], "token": l["token"], "result": "r"})
		fails(t, on(i), "lease_lost", "task_ack", map[string]any{"queue": "rq", "id": l["id"], "token": l["token"]})
	}
	if st := ok(t, on(1), "queue_stats", map[string]any{"queue": "rq"}); num(st["acked"]) != 6 {
		t.Fatalf("stats %v", st)
	}
	// Memories go to collections on both data shards: a memory's vector and
	// text commit in one transaction, so the text goes to the
	// collection's shard whatever that is.
	colls := []string{"facts0", "facts1", "facts2"}
	pl := db.Placement{DataShards: 2}
	spread := map[uint32]bool{}
	for _, c := range colls {
		spread[pl.ShardFor(c)] = true
	}
	if len(spread) != 2 {
		t.Fatalf("collections %v all on one shard; pick names on both", colls)
	}
	for i := range 3 {
		k := fmt.Sprintf("k%d", i)
		ok(t, on(i), "kv_set", map[string]any{"namespace": "ns", "key": k, "value": "v"})
		if g := ok(t, on(i+1), "kv_get", map[string]any{"namespace": "ns", "key": k}); g["value"] != "v" {
			t.Fatalf("kv_get on %d: %v", i+1, g)
		}
		text := fmt.Sprintf("fact number %d about replicated memory", i)
		ok(t, on(i), "memory_remember", map[string]any{"collection": colls[i], "text": text, "id": i + 1})
		rc := ok(t, on(i+1), "memory_recall", map[string]any{"collection": colls[i], "text": text, "k": 1})
		if ms := rc["memories"].([]any); len(ms) != 1 || ms[0].(map[string]any)["text"] != text {
			t.Fatalf("recall on %d: %v", i+1, rc)
		}
		agent := fmt.Sprintf("ag%d", i)
		ok(t, on(i), "agent_register", map[string]any{"agent": agent})
		as := ok(t, on(i+1), "agent_list", map[string]any{})["agents"].([]any)
		if len(as) != i+1 {
			t.Fatalf("agent_list on %d after registering %s: %v", i+1, agent, as)
		}
	}
	for i, c := range colls {
		if n := num(ok(t, on(i+2), "memory_forget", map[string]any{"collection": c, "ids": []int{i + 1}})["deleted"]); n != 1 {
			t.Fatalf("forget in %s deleted %d", c, n)
		}
	}
	// A step across shards is refused whole, with a code a model can act on.
	var other string
	for _, c := range colls[1:] {
		if pl.ShardFor(c) != pl.ShardFor(colls[0]) {
			other = c
		}
	}
	fails(t, on(1), "cross_shard", "step", map[string]any{"memories": []any{
		map[string]any{"collection": colls[0], "text": "one half", "id": 100},
		map[string]any{"collection": other, "text": "other half", "id": 101}}})
	if rc := ok(t, on(2), "memory_recall", map[string]any{"collection": colls[0], "text": "one half", "k": 5}); len(rc["memories"].([]any)) != 0 {
		t.Fatalf("a refused step stored: %v", rc)
	}
	ok(t, on(2), "queue_create", map[string]any{"queue": "next"})
	so := ok(t, on(0), "step", map[string]any{
		"kv":      []any{map[string]any{"namespace": "ns", "key": "step", "value": "1"}},
		"enqueue": []any{map[string]any{"queue": "next", "payload": "follow-up"}}})
	if len(so["task_ids"].([]any)) != 1 {
		t.Fatalf("step %v", so)
	}
	if st := ok(t, on(1), "queue_stats", map[string]any{"queue": "next"}); num(st["enqueued"]) != 1 {
		t.Fatalf("step's enqueue on another member: %v", st)
	}
	if !strings.Contains(fmt.Sprint(ok(t, on(2), "kv_get", map[string]any{"namespace": "ns", "key": "step"})), "1") {
		t.Fatal("step's key not read on another member")
	}
}
