package txntest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
)

type stack struct {
	d  *db.DB
	qm *queue.Manager
	r  *registry.Registry
	vm *hnsw.Manager
}

func attach(t testing.TB, d *db.DB) *stack {
	t.Helper()
	qm, err := queue.Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := hnsw.Attach(d)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{d: d, qm: qm, r: r, vm: vm}
}

func TestAgentStepCommitsWhole(t *testing.T) {
	ctx := context.Background()
	clock := testutil.NewClock()
	s := attach(t, testutil.OpenMem(t, clock))
	if err := s.qm.Create(ctx, queue.Config{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	if err := s.vm.Create(ctx, hnsw.Config{Name: "memory", Dim: 4, Metric: quant.Cosine, Float: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.r.Register(ctx, registry.AgentSpec{ID: "a1", Capacity: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.qm.EnqueueBatch(ctx, "jobs", []queue.Task{{Payload: []byte("t1")}, {Payload: []byte("t2")}}); err != nil {
		t.Fatal(err)
	}
	ls, err := s.qm.Lease(ctx, "jobs", "a1", 2, nil, time.Minute)
	if err != nil || len(ls) != 2 {
		t.Fatalf("lease: %v %v", ls, err)
	}

	// One step: ack, remember, record, follow up.
	tx := s.d.NewTxn()
	s.qm.TxAck(tx, "jobs", ls[0].ID, ls[0].Token, []byte("done"))
	s.vm.TxUpsert(tx, "memory", hnsw.Vector{ID: 1, Values: []float32{1, 0, 0, 0}})
	tx.Set("agent", []byte("a1/last"), []byte("t1"))
	next := s.qm.TxEnqueue(tx, "jobs", queue.Task{Payload: []byte("t3")})
	if err := s.d.CommitTxn(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if len(next.IDs) != 1 || next.IDs[0] == 0 {
		t.Fatalf("follow-up ids %v", next.IDs)
	}
	if info, err := s.qm.Get(ctx, "jobs", ls[0].ID); err != nil || info.State != "done" {
		t.Fatalf("acked task: %+v %v", info, err)
	}
	if hits, err := s.vm.Search(ctx, "memory", []float32{1, 0, 0, 0}, 1, hnsw.SearchOptions{}); err != nil || len(hits) != 1 || hits[0].ID != 1 {
		t.Fatalf("memory: %v %v", hits, err)
	}

	// A step refused part-way: the stale token (the first task is acked)
	// comes after a memory, a key and an enqueue; nothing of it remains.
	before := s.views(t)
	tx = s.d.NewTxn()
	s.vm.TxUpsert(tx, "memory", hnsw.Vector{ID: 2, Values: []float32{0, 1, 0, 0}})
	tx.Set("agent", []byte("a1/last"), []byte("t2"))
	s.qm.TxEnqueue(tx, "jobs", queue.Task{Payload: []byte("t4")})
	s.qm.TxAck(tx, "jobs", ls[1].ID, ls[1].Token, nil)
	s.qm.TxAck(tx, "jobs", ls[0].ID, ls[0].Token, nil) // already acked
	s.r.TxHeartbeat(tx, "a1", 1, "busy")
	err = s.d.CommitTxn(ctx, tx)
	var te *db.TxnError
	if !errors.Is(err, queue.ErrLeaseLost) || !errors.As(err, &te) || te.Op != 4 {
		t.Fatalf("want lease lost at op 4, got %v", err)
	}
	if diff := s.views(t).sameAs(before); diff != "" {
		t.Fatalf("views changed by a refused transaction: %s", diff)
	}
	if v, _ := s.d.Get(ctx, "agent", []byte("a1/last")); string(v) != "t1" {
		t.Fatalf("kv changed: %q", v)
	}
	if _, err := s.vm.Get("memory", 2); !errors.Is(err, hnsw.ErrNotFound) {
		t.Fatalf("memory 2 stored: %v", err)
	}
	// The second lease still acks.
	if err := s.qm.Ack(ctx, "jobs", ls[1].ID, ls[1].Token, nil); err != nil {
		t.Fatal(err)
	}
}

// close closes the subsystems and the store.
func (s *stack) close() {
	s.qm.Close()
	s.r.Close()
	s.d.Close()
}
