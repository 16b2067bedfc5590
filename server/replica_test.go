package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil/cluster"
	"github.com/flowdb/flowdb/queue"
)

// startReplicas runs a three-replica cluster in this process, a server on
// each member, and returns a client per member.
func startReplicas(t *testing.T) []*client.Client {
	t.Helper()
	var out []*client.Client
	for _, m := range cluster.Start(t, nil) {
		c, _ := client.New(m.URL, nil)
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

// Every member accepts every call; what one member acknowledged, the next
// reads (reads are linearizable).
func TestReplicatedServers(t *testing.T) {
	t.Parallel()
	cs := startReplicas(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	on := func(i int) *client.Client { return cs[i%3] }
	for i := range 3 {
		k := fmt.Appendf(nil, "k%d", i)
		if err := on(i).Set(ctx, "ns", k, []byte("v")); err != nil {
			t.Fatalf("set on %d: %v", i, err)
		}
		if v, err := on(i+1).Get(ctx, "ns", k); err != nil || string(v) != "v" {
			t.Fatalf("get on %d: %q %v", i+1, v, err)
		}
	}
	if _, err := on(2).Get(ctx, "ns", []byte("none")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("typed error from a replica: %v", err)
	}
	if err := on(0).CreateQueue(ctx, client.QueueConfig{Name: "rq"}); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := range 6 {
		id, err := on(i).Enqueue(ctx, "rq", client.Task{Payload: fmt.Appendf(nil, "%d", i)})
		if err != nil {
			t.Fatalf("enqueue on %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	for i := range 6 {
		ls, err := on(i+1).Lease(ctx, "rq", "a", 1, nil, time.Minute)
		if err != nil || len(ls) != 1 || ls[0].ID != ids[i] {
			t.Fatalf("lease on %d: %v %v, want task %d (FIFO)", i+1, ls, err, ids[i])
		}
		if err := on(i+2).Ack(ctx, "rq", ls[0].ID, ls[0].Token, nil); err != nil {
			t.Fatalf("ack on %d: %v", i+2, err)
		}
		if err := on(i).Ack(ctx, "rq", ls[0].ID, ls[0].Token, nil); !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("second ack on %d: %v", i, err)
		}
	}
	st, err := on(1).QueueStats(ctx, "rq")
	if err != nil || st.Acked != 6 {
		t.Fatalf("stats %+v %v", st, err)
	}
	// Stats through a member count every write acknowledged through
	// another one.
	for i := range 30 {
		if _, err := on(i).Enqueue(ctx, "rq", client.Task{Payload: []byte("s")}); err != nil {
			t.Fatal(err)
		}
		if st, err := on(i+1).QueueStats(ctx, "rq"); err != nil || st.Enqueued != uint64(7+i) {
			t.Fatalf("stats on node %d right after enqueue %d on node %d: enqueued %d (%v), want %d", (i+1)%3, i, i%3, st.Enqueued, err, 7+i)
		}
	}
	if err := on(2).Register(ctx, client.AgentSpec{ID: "ag", Capacity: 1}); err != nil {
		t.Fatal(err)
	}
	if err := on(0).Heartbeat(ctx, "ag", 0, "ok"); err != nil {
		t.Fatal(err)
	}
	if a, err := on(1).Agent(ctx, "ag"); err != nil || a.Status != "ok" {
		t.Fatalf("agent %+v %v", a, err)
	}
	if err := on(1).CreateCollection(ctx, client.CollectionConfig{Name: "rv", Dim: 2, Float: true}); err != nil {
		t.Fatal(err)
	}
	if err := on(2).Upsert(ctx, "rv", []client.Vector{{ID: 1, Values: []float32{1, 0}}, {ID: 2, Values: []float32{0, 1}}}); err != nil {
		t.Fatal(err)
	}
	if hits, err := on(0).Search(ctx, "rv", []float32{0.9, 0.1}, 1, client.SearchOptions{}); err != nil || len(hits) != 1 || hits[0].ID != 1 {
		t.Fatalf("search %+v %v", hits, err)
	}
	// A collection created through one node is usable through the others
	// as soon as its creation was acknowledged (a replica that has not
	// applied it yet waits for a read index instead of refusing).
	for i := range 30 {
		name := fmt.Sprintf("rv%d", i)
		if err := on(i).CreateCollection(ctx, client.CollectionConfig{Name: name, Dim: 2, Float: true}); err != nil {
			t.Fatal(err)
		}
		if err := on(i+1).Upsert(ctx, name, []client.Vector{{ID: 1, Values: []float32{1, 0}}}); err != nil {
			t.Fatalf("upsert on node %d right after the create on node %d: %v", (i+1)%3, i%3, err)
		}
		if n, err := on(i+2).DeleteVectors(ctx, name, []uint64{1}); err != nil || n != 1 {
			t.Fatalf("delete on node %d right after the upsert: %d %v", (i+2)%3, n, err)
		}
	}
	if h, err := on(0).Health(ctx); err != nil || !h.Replicated {
		t.Fatalf("health %+v %v", h, err)
	}
}

// Transactions on a replicated node: any member commits one whose
// operations share a shard (a placement group), the next member reads it,
// a refused one leaves nothing on any member, and one that spans shards is
// refused with db.ErrCrossShard.
func TestReplicatedTxn(t *testing.T) {
	t.Parallel()
	cs := startReplicas(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	on := func(i int) *client.Client { return cs[i%3] }
	const q, coll, ns = "{a7}jobs", "{a7}mem", "{a7}state"
	if err := on(0).CreateQueue(ctx, client.QueueConfig{Name: q}); err != nil {
		t.Fatal(err)
	}
	if err := on(1).CreateCollection(ctx, client.CollectionConfig{Name: coll, Dim: 2, Float: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := on(2).Enqueue(ctx, q, client.Task{Payload: []byte("t")}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ls, err := on(i).Lease(ctx, q, "a", 1, nil, time.Minute)
		if err != nil || len(ls) != 1 {
			t.Fatalf("lease on %d: %v %v", i, ls, err)
		}
		// The agent's step, whole, on member i.
		tx := on(i).NewTxn()
		tx.SetIdempotencyKey(fmt.Sprintf("step-%d", i))
		tx.Ack(q, ls[0].ID, ls[0].Token, []byte("ok"))
		tx.Upsert(coll, client.Vector{ID: uint64(i + 1), Values: []float32{1, float32(i)}})
		tx.Set(ns, fmt.Appendf(nil, "r%d", i), []byte("done"))
		next := tx.Enqueue(q, client.Task{Payload: fmt.Appendf(nil, "next %d", i)})
		if err := on(i).CommitTxn(ctx, tx); err != nil {
			t.Fatalf("commit on %d: %v", i, err)
		}
		if len(next.IDs) != 1 {
			t.Fatalf("enqueued ids on %d: %v", i, next.IDs)
		}
		if v, err := on(i+1).Get(ctx, ns, fmt.Appendf(nil, "r%d", i)); err != nil || string(v) != "done" {
			t.Fatalf("read on %d: %q %v", i+1, v, err)
		}
		if _, err := on(i+2).GetVector(ctx, coll, uint64(i+1)); err != nil {
			t.Fatalf("vector on %d: %v", i+2, err)
		}
		// The same ack again, in a transaction that also writes: refused,
		// and nothing of it on any member.
		tx = on(i + 1).NewTxn()
		tx.Set(ns, []byte("refused"), []byte("x"))
		tx.Ack(q, ls[0].ID, ls[0].Token, nil)
		err = on(i+1).CommitTxn(ctx, tx)
		var te *client.TxnError
		if !errors.As(err, &te) || te.Op != 1 || !errors.Is(err, queue.ErrLeaseLost) || !errors.Is(err, db.ErrTxnRejected) {
			t.Fatalf("stale ack on %d: %v", i+1, err)
		}
		for j := range 3 {
			if _, err := on(j).Get(ctx, ns, []byte("refused")); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("refused transaction visible on %d: %v", j, err)
			}
		}
	}
	if st, err := on(0).QueueStats(ctx, q); err != nil || st.Acked != 3 || st.Enqueued != 4 {
		t.Fatalf("stats %+v %v", st, err)
	}
	// Across shards: a queue and a namespace that do not share a shard.
	p := db.Placement{DataShards: 2}
	other := ""
	for i := 0; other == ""; i++ {
		if n := fmt.Sprintf("ns%d", i); p.ShardFor(n) != p.ShardFor(q) {
			other = n
		}
	}
	tx := on(1).NewTxn()
	tx.Enqueue(q, client.Task{Payload: []byte("x")})
	tx.Set(other, []byte("k"), []byte("v"))
	if err := on(1).CommitTxn(ctx, tx); !errors.Is(err, db.ErrCrossShard) {
		t.Fatalf("cross-shard transaction: %v", err)
	}
	if st, _ := on(2).QueueStats(ctx, q); st.Enqueued != 4 {
		t.Fatalf("a refused cross-shard transaction enqueued: %d", st.Enqueued)
	}
	// Registry operations commit together (on the catalog shard).
	tx = on(2).NewTxn()
	tx.Register(client.AgentSpec{ID: "r1", Capacity: 1})
	tx.Register(client.AgentSpec{ID: "r2", Capacity: 1})
	if err := on(2).CommitTxn(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if _, err := on(0).Agent(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
}
