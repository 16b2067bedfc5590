package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
)

// TxnReport is what the transactions part of the demo showed.
type TxnReport struct {
	// Steps agent steps committed, one transaction each (ack the task,
	// remember it, record it, enqueue its follow-up), at StepsPerS.
	Steps     int     `json:"steps"`
	StepsPerS float64 `json:"steps_per_s"`
	P50Micro  float64 `json:"p50_us"`
	P99Micro  float64 `json:"p99_us"`
	// RefusedOp is the operation the conflicting step was refused at (its
	// stale lease's ack), Refused why; NothingApplied reports that every
	// check afterwards found the store as before it.
	RefusedOp      int    `json:"refused_op"`
	Refused        string `json:"refused"`
	NothingApplied bool   `json:"nothing_applied"`
}

// The names of agent-7's state share the placement group {agent-7}, so a
// replicated store keeps them on one shard and a transaction may write
// them all.
const (
	txnTasks     = "{agent-7}tasks"
	txnFollowUps = "{agent-7}follow-ups"
	txnMemory    = "{agent-7}memory"
	txnNS        = "{agent-7}"
)

// demoTxn runs the transactions part of the demo: agent-7 works through
// its tasks, each step one transaction; then a step that holds a lease
// another agent's step already used is refused, and the demo checks that
// nothing of it (its memory, its key, its follow-up) was applied.
func demoTxn(ctx context.Context, d *db.DB, qm *queue.Manager, vm *hnsw.Manager, say func(string, ...any)) (*TxnReport, error) {
	const n, dim = 200, 32
	for _, name := range []string{txnTasks, txnFollowUps} {
		if err := qm.Create(ctx, queue.Config{Name: name, HotCapacity: 1000}); err != nil {
			return nil, err
		}
	}
	if err := vm.Create(ctx, hnsw.Config{Name: txnMemory, Dim: dim, Metric: quant.Cosine, Float: true}); err != nil {
		return nil, err
	}
	tasks := make([]queue.Task, n)
	for i := range tasks {
		tasks[i] = queue.Task{Payload: fmt.Appendf(nil, "read thread %d and file a summary", i)}
	}
	if _, err := qm.EnqueueBatch(ctx, txnTasks, tasks); err != nil {
		return nil, err
	}
	ls, err := qm.Lease(ctx, txnTasks, "agent-7", n, nil, time.Minute)
	if err != nil || len(ls) != n {
		return nil, fmt.Errorf("leasing agent-7's tasks: %d of %d: %v", len(ls), n, err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	memories := make([][]float32, n+1)
	for i := range memories {
		memories[i] = make([]float32, dim)
		for j := range memories[i] {
			memories[i][j] = float32(rng.NormFloat64())
		}
	}
	// step builds one agent step: ack the task, remember what was learned,
	// record the last task done, enqueue the follow-up.
	step := func(l queue.Lease, memory uint64) (*db.Txn, *queue.Enqueued) {
		tx := d.NewTxn()
		qm.TxAck(tx, txnTasks, l.ID, l.Token, []byte("summary filed"))
		vm.TxUpsert(tx, txnMemory, hnsw.Vector{ID: memory, Values: memories[memory%uint64(len(memories))]})
		tx.Set(txnNS, []byte("last-task"), strconv.AppendUint(nil, l.ID, 10))
		f := qm.TxEnqueue(tx, txnFollowUps, queue.Task{Payload: fmt.Appendf(nil, "review summary of task %d", l.ID)})
		return tx, f
	}
	s, err := timed("agent step", "", 4, n, func(w, i int) error {
		tx, _ := step(ls[i], uint64(i))
		return d.CommitTxn(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	rep := &TxnReport{Steps: n, StepsPerS: s.OpsPerS, P50Micro: s.P50Micro, P99Micro: s.P99Micro}
	say("  %-20s %7d ops %9.0f ops/s  p50 %7.1f µs  p99 %8.1f µs   ack + memory + key + follow-up, one transaction each, 4 agents\n",
		"agent step (txn)", n, s.OpsPerS, s.P50Micro, s.P99Micro)

	// A conflicting step: it holds the lease of a task whose step already
	// committed (a retry after a timeout, or a second worker), so its ack
	// is stale. Its memory, key and follow-up come first and must not stay.
	last, err := d.Get(ctx, txnNS, []byte("last-task"))
	if err != nil {
		return nil, err
	}
	before, err := qm.Stats(txnFollowUps)
	if err != nil {
		return nil, err
	}
	tx := d.NewTxn()
	const ghost = 9_999
	vm.TxUpsert(tx, txnMemory, hnsw.Vector{ID: ghost, Values: memories[n]})
	tx.Set(txnNS, []byte("last-task"), []byte("stale"))
	qm.TxEnqueue(tx, txnFollowUps, queue.Task{Payload: []byte("a follow-up that must not exist")})
	qm.TxAck(tx, txnTasks, ls[0].ID, ls[0].Token, nil)
	err = d.CommitTxn(ctx, tx)
	var te *db.TxnError
	if !errors.As(err, &te) || !errors.Is(err, queue.ErrLeaseLost) {
		return rep, fmt.Errorf("the conflicting step was not refused with a lost lease: %v", err)
	}
	rep.RefusedOp, rep.Refused = te.Op, te.Err.Error()
	say("  %-20s refused at operation %d (%s): %v\n", "conflicting step", te.Op, te.Kind, te.Err)

	_, memErr := vm.Get(txnMemory, ghost)
	now, err := d.Get(ctx, txnNS, []byte("last-task"))
	if err != nil {
		return rep, err
	}
	after, err := qm.Stats(txnFollowUps)
	if err != nil {
		return rep, err
	}
	info, err := qm.Get(ctx, txnTasks, ls[0].ID)
	if err != nil {
		return rep, err
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{fmt.Sprintf("memory %d absent", ghost), errors.Is(memErr, hnsw.ErrNotFound)},
		{fmt.Sprintf("key last-task still %q", last), string(now) == string(last)},
		{fmt.Sprintf("follow-ups still %d enqueued", before.Enqueued), after.Enqueued == before.Enqueued && after.Hot == before.Hot},
		{fmt.Sprintf("task %d acked once (%s)", ls[0].ID, info.State), info.State == "done"},
	}
	rep.NothingApplied = true
	for _, c := range checks {
		mark := "ok"
		if !c.ok {
			mark, rep.NothingApplied = "FAILED", false
		}
		say("  %-20s %s: %s\n", "", c.what, mark)
	}
	if !rep.NothingApplied {
		return rep, errors.New("a refused transaction left part of itself applied")
	}
	return rep, nil
}
