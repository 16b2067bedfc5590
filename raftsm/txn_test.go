package raftsm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/cespare/xxhash/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
)

// The transaction linearizability test records histories of clients that
// run transactions over one placement group, "{g1}": a queue "{g1}jobs"
// and two keys of namespace "{g1}", through different nodes while the
// leader of the group's shard stops and restarts. Porcupine checks each
// history against a sequential model of the queue (linState, the FIFO with
// leases of linear_test.go) and the two keys, in which a committed
// transaction applies whole and a refused one not at all:
//
//	'E' Set(k, v), TxEnqueue                   -> the new task's id
//	'C' TxEnqueue (a follow-up),
//	    Require(k, expect), Set(k, v), TxAck(id) -> the follow-up's id, or refused
//	                                              at 1 (condition) or 3 (lease)
//	'L' Lease one task (not a transaction)     -> its id
//	'G' Get(k)                                 -> the value
//	'g' Get(task)                              -> its state
//
// A 'C' refused at its condition comes after an enqueue of its own, and
// one refused at its ack after an enqueue and a write: were any of them
// left applied, a later read of k, or a lease handing out a follow-up the
// model never saw, would make the history fail.

const txnGroup = "{g1}"

// txnQueue is the queue of the cross-shard checks (each schedule has its own).
var txnQueue = txnGroup + "jobs-0"

type txnLinOp struct {
	kind   byte
	key    int
	val    string // E, C: the value written
	expect string // C: the condition
	id     uint64 // C: the task acked; g: the task read
}

type txnLinOut struct {
	unknown bool
	ok      bool
	refused int    // C: the refused operation's index (1 or 3), -1 if none
	id      uint64 // E, C: the enqueued task; L: the leased task
	val     string // G
	state   string // g
}

// txnLinState is the model: the queue and the two keys ("" absent).
type txnLinState struct {
	q  linState
	kv [2]string
}

func (s txnLinState) key() string { return s.q.key() + "|" + s.kv[0] + "|" + s.kv[1] }

func txnLinStep(st, in, out any) []any {
	s, op, o := st.(txnLinState), in.(txnLinOp), out.(txnLinOut)
	var next []any
	if o.unknown {
		next = append(next, s) // it may not have happened
	}
	// enqueued returns s with task id ready (id 0: an unknown id).
	enqueued := func(s txnLinState, id uint64) (txnLinState, bool) {
		if id == 0 {
			s.q.phantoms++
			return s, true
		}
		if id <= s.q.max || s.q.has(id) {
			return s, false
		}
		s.q.ready = insertSorted(s.q.ready, id)
		s.q.max = id
		return s, true
	}
	switch op.kind {
	case 'E':
		switch {
		case o.unknown || o.ok:
			n := s
			n.kv[op.key] = op.val
			if n, ok := enqueued(n, o.id); ok {
				next = append(next, n)
			}
		default:
			next = append(next, s) // refused: nothing changed
		}
	case 'C':
		cond := s.kv[op.key] == op.expect
		_, leased := slices.BinarySearch(s.q.leased, op.id)
		switch {
		case o.unknown || o.ok:
			if !cond || !leased {
				break
			}
			n := s
			n.kv[op.key] = op.val
			n.q.leased, _ = removeSorted(s.q.leased, op.id)
			n.q.done = insertSorted(s.q.done, op.id)
			if n, ok := enqueued(n, o.id); ok {
				next = append(next, n)
			}
		case o.refused == 1 && !cond, o.refused == 3 && cond && !leased:
			next = append(next, s)
		}
	case 'G':
		if o.unknown || s.kv[op.key] == o.val {
			next = append(next, s)
		}
	case 'L', 'g':
		lop := linOp{kind: 'l', id: op.id}
		if op.kind == 'g' {
			lop.kind = 'g'
		}
		for _, q := range linStep(s.q, lop, linOut{unknown: o.unknown, ok: o.ok, id: o.id, state: o.state}) {
			n := s
			n.q = q.(linState)
			next = append(next, n)
		}
	}
	return next
}

var txnLinModel = porcupine.NondeterministicModel{
	Init:  func() []any { return []any{txnLinState{}} },
	Step:  txnLinStep,
	Equal: func(a, b any) bool { return a.(txnLinState).key() == b.(txnLinState).key() },
	Hash:  func(a any) uint64 { return xxhash.Sum64String(a.(txnLinState).key()) },
	DescribeOperation: func(in, out any) string {
		op := in.(txnLinOp)
		return fmt.Sprintf("%c(k%d %q<-%q id %d) -> %+v", op.kind, op.key, op.expect, op.val, op.id, out.(txnLinOut))
	},
	DescribeState: func(s any) string { return s.(txnLinState).key() },
}

// pickStore returns a running node's store and queue manager, or nils.
func (c *linCluster) pickStore(r *rand.Rand) (*db.DB, *queue.Manager) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*tnode
	for _, n := range c.nodes {
		if n.q != nil {
			live = append(live, n)
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	n := live[r.IntN(len(live))]
	return n.n.DB(), n.q
}

func txnSchedules() int {
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_TXN_SCHEDULES")); err == nil && v > 0 {
		return v
	}
	return 3
}

// TestTxnLinearizable: transactions over one placement group, run by
// clients through every node while the leader of the group's shard stops
// and restarts (and, every other schedule, leadership moves): each history
// is linearizable against a model in which every committed transaction
// applied whole and every refused one not at all; afterwards every shard is
// byte-identical on all nodes. Then a transaction over two shards is
// refused with db.ErrCrossShard, saying how to co-locate, and nothing of
// it applies.
func TestTxnLinearizable(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	ns, members := startCluster(t, 3)
	c := &linCluster{t: t, nodes: ns, members: members, nextID: 3}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.n != nil {
				c.stopNode(n)
			}
		}
	})
	for seed := range txnSchedules() {
		c.txnSchedule(uint64(seed))
	}
	converge(t, c.nodes)
	txnCrossShard(t, c)
}

// txnSchedule runs and checks one schedule.
func (c *linCluster) txnSchedule(seed uint64) {
	t := c.t
	ctx := t.Context()
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		start   = time.Now()
		stop    atomic.Bool
		stats   [4]atomic.Int64 // committed, refused at the condition, at the lease, unknown
	)
	keyName := func(k int) []byte { return fmt.Appendf(nil, "s%d-k%d", seed, k) }
	now := func() int64 { return int64(time.Since(start)) }
	record := func(client int, in txnLinOp, call int64, out txnLinOut) {
		ret := now()
		if out.unknown {
			ret = math.MaxInt64
		}
		mu.Lock()
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
		mu.Unlock()
	}
	closed := func(err error) bool { return errors.Is(err, db.ErrClosed) && !errors.Is(err, db.ErrOutcomeUnknown) }
	// A fresh queue and fresh keys in the placement group: the model
	// starts empty.
	qname := fmt.Sprintf("%sjobs-%d", txnGroup, seed)
	{
		d, q := c.pickStore(rand.New(rand.NewPCG(seed, 0)))
		if err := q.Create(ctx, queue.Config{Name: qname, LeaseDuration: time.Hour, ResultRetention: time.Hour,
			HotCapacity: 100_000}); err != nil {
			t.Fatalf("seed %d: create: %v", seed, err)
		}
		if p := d.Placement(); p.ShardFor(qname) != p.ShardFor(txnGroup) {
			t.Fatalf("placement group: %q on shard %d, %q on %d", qname, p.ShardFor(qname), txnGroup, p.ShardFor(txnGroup))
		}
	}

	var wg sync.WaitGroup
	for cl := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr := rand.New(rand.NewPCG(seed, uint64(cl)+100))
			type held struct{ id, token uint64 }
			var mine []held
			var acked, known []uint64
			var guess [2]string // what this client last saw in each key
			seq := 0
			for !stop.Load() {
				mu.Lock()
				busy := len(history) > 1500
				mu.Unlock()
				if busy {
					time.Sleep(20 * time.Millisecond)
				}
				d, q := c.pickStore(cr)
				if d == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				octx, cancel := context.WithTimeout(ctx, 20*time.Second)
				call := now()
				k := cr.IntN(2)
				seq++
				val := fmt.Sprintf("c%d.%d", cl, seq)
				switch x := cr.IntN(10); {
				case x < 3:
					tx := d.NewTxn()
					tx.Set(txnGroup, keyName(k), []byte(val))
					e := q.TxEnqueue(tx, qname, queue.Task{Payload: []byte(val)})
					in := txnLinOp{kind: 'E', key: k, val: val}
					switch err := d.CommitTxn(octx, tx); {
					case err == nil:
						stats[0].Add(1)
						guess[k] = val
						known = append(known, e.IDs[0])
						record(cl, in, call, txnLinOut{ok: true, id: e.IDs[0], refused: -1})
					case errors.Is(err, db.ErrOutcomeUnknown):
						stats[3].Add(1)
						record(cl, in, call, txnLinOut{unknown: true, refused: -1})
					case closed(err):
					default:
						t.Errorf("seed %d: E: %v", seed, err)
					}
				case x < 6 && len(mine)+len(acked) > 0:
					// Ack a held task (or, now and then, one already acked,
					// whose token is stale) in a step whose condition holds
					// if no other client wrote k since this one saw it.
					var h held
					stale := len(mine) == 0 || (len(acked) > 0 && cr.IntN(3) == 0)
					if stale {
						h = held{id: acked[cr.IntN(len(acked))], token: 1}
					} else {
						i := cr.IntN(len(mine))
						h = mine[i]
						mine = slices.Delete(mine, i, i+1)
					}
					in := txnLinOp{kind: 'C', key: k, val: val, expect: guess[k], id: h.id}
					tx := d.NewTxn()
					e := q.TxEnqueue(tx, qname, queue.Task{Payload: []byte("follow-up " + val)})
					if guess[k] == "" {
						tx.RequireAbsent(txnGroup, keyName(k))
					} else {
						tx.Require(txnGroup, keyName(k), []byte(guess[k]))
					}
					tx.Set(txnGroup, keyName(k), []byte(val))
					q.TxAck(tx, qname, h.id, h.token, nil)
					err := d.CommitTxn(octx, tx)
					var te *db.TxnError
					switch {
					case err == nil:
						stats[0].Add(1)
						guess[k] = val
						acked = append(acked, h.id)
						known = append(known, e.IDs[0])
						record(cl, in, call, txnLinOut{ok: true, id: e.IDs[0], refused: -1})
					case errors.Is(err, db.ErrOutcomeUnknown):
						// Neither held nor surely acked: not used again.
						stats[3].Add(1)
						record(cl, in, call, txnLinOut{unknown: true, refused: -1})
					case errors.Is(err, db.ErrConditionFailed) && errors.As(err, &te) && te.Op == 1:
						stats[1].Add(1)
						guess[k] = "?" // unknown until read
						if !stale {
							mine = append(mine, h)
						}
						record(cl, in, call, txnLinOut{refused: 1})
					case (errors.Is(err, queue.ErrLeaseLost) || errors.Is(err, queue.ErrNotFound)) && errors.As(err, &te) && te.Op == 3:
						stats[2].Add(1)
						record(cl, in, call, txnLinOut{refused: 3})
					case closed(err):
						if !stale {
							mine = append(mine, h)
						}
					default:
						t.Errorf("seed %d: C: %v", seed, err)
					}
				case x < 8:
					ls, err := q.Lease(octx, qname, fmt.Sprintf("c%d", cl), 1, nil, 0)
					switch {
					case err == nil && len(ls) == 1:
						mine = append(mine, held{ls[0].ID, ls[0].Token})
						known = append(known, ls[0].ID)
						record(cl, txnLinOp{kind: 'L'}, call, txnLinOut{ok: true, id: ls[0].ID, refused: -1})
					case err == nil:
						record(cl, txnLinOp{kind: 'L'}, call, txnLinOut{refused: -1})
					case errors.Is(err, db.ErrOutcomeUnknown):
						record(cl, txnLinOp{kind: 'L'}, call, txnLinOut{unknown: true, refused: -1})
					case closed(err):
					default:
						t.Errorf("seed %d: lease: %v", seed, err)
					}
				case x < 9 || len(known) == 0:
					v, err := d.Get(octx, txnGroup, keyName(k))
					switch {
					case err == nil || errors.Is(err, db.ErrNotFound):
						guess[k] = string(v)
						record(cl, txnLinOp{kind: 'G', key: k}, call, txnLinOut{val: string(v), refused: -1})
					case closed(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
					default:
						t.Errorf("seed %d: get: %v", seed, err)
					}
				default:
					id := known[cr.IntN(len(known))]
					ti, err := q.Get(octx, qname, id)
					switch {
					case err == nil:
						record(cl, txnLinOp{kind: 'g', id: id}, call, txnLinOut{state: ti.State, refused: -1})
					case errors.Is(err, queue.ErrNotFound):
						record(cl, txnLinOp{kind: 'g', id: id}, call, txnLinOut{state: "absent", refused: -1})
					case closed(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
					default:
						t.Errorf("seed %d: get task: %v", seed, err)
					}
				}
				cancel()
			}
		}()
	}
	settle := func() { time.Sleep(200 * time.Millisecond) }
	settle()
	what := c.fault(int(seed%2)*3, qname, settle) // 0: leader stop and restart; 3: leadership moves
	settle()
	// A loaded host may leave the clients little time around the fault:
	// run on (at most 15 s) until the schedule committed and refused
	// something, so that it always tests both.
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end) && (stats[0].Load() < 5 || stats[1].Load()+stats[2].Load() == 0); {
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	model := txnLinModel
	res, info := porcupine.CheckOperationsVerbose(model.ToModel(), history, 20*time.Second)
	if res != porcupine.Ok {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("flowdb-txn-lin-%d.html", seed))
		if f, err := os.Create(path); err == nil {
			porcupine.Visualize(model.ToModel(), info, f)
			f.Close()
		}
		if os.Getenv("FLOWDB_LIN_DEBUG") != "" {
			slices.SortFunc(history, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
			for _, op := range history {
				t.Logf("  client %d [%d, %d] %s", op.ClientId, op.Call/1000, op.Return/1000, txnLinModel.DescribeOperation(op.Input, op.Output))
			}
		}
		t.Fatalf("seed %d (%s): history of %d operations is %s (visualization: %s)", seed, what, len(history), res, path)
	}
	if stats[0].Load() == 0 || stats[1].Load()+stats[2].Load() == 0 {
		t.Fatalf("seed %d: %d committed, %d refused: the schedule tested nothing", seed, stats[0].Load(), stats[1].Load()+stats[2].Load())
	}
	t.Logf("seed %d: %s; %d operations linearizable; transactions: %d committed, %d refused at the condition, %d at a stale lease, %d of unknown outcome",
		seed, what, len(history), stats[0].Load(), stats[1].Load(), stats[2].Load(), stats[3].Load())
}

// txnCrossShard: a transaction over names on two shards is refused before
// anything is proposed, with a message that says how to co-locate them,
// and nothing of it applies; the same operations in one placement group
// commit.
func txnCrossShard(t *testing.T, c *linCluster) {
	ctx := t.Context()
	d, q := c.pickStore(rand.New(rand.NewPCG(2, 2)))
	p := d.Placement()
	a, b := namesOnShards(p)
	other := a
	if p.ShardFor(a) == p.ShardFor(txnQueue) {
		other = b
	}
	for _, tc := range []struct {
		name string
		add  func(tx *db.Txn)
		gone []string // namespaces whose key "x" must stay absent
	}{
		{"two namespaces", func(tx *db.Txn) {
			tx.Set(a, []byte("x"), []byte("1"))
			tx.Set(b, []byte("x"), []byte("1"))
		}, []string{a, b}},
		{"a queue and a namespace", func(tx *db.Txn) {
			tx.Set(other, []byte("x"), []byte("1"))
			q.TxEnqueue(tx, txnQueue, queue.Task{Payload: []byte("cross")})
		}, []string{other}},
	} {
		before, err := q.Stats(txnQueue)
		if err != nil {
			t.Fatal(err)
		}
		tx := d.NewTxn()
		tc.add(tx)
		err = d.CommitTxn(ctx, tx)
		if !errors.Is(err, db.ErrCrossShard) || !strings.Contains(err.Error(), "placement group") ||
			!strings.Contains(err.Error(), "{group}") {
			t.Fatalf("%s: want db.ErrCrossShard saying how to co-locate, got %v", tc.name, err)
		}
		for _, ns := range tc.gone {
			if _, err := d.Get(ctx, ns, []byte("x")); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("%s: %s/x after a refused transaction: %v", tc.name, ns, err)
			}
		}
		after, err := q.Stats(txnQueue)
		if err != nil {
			t.Fatal(err)
		}
		if after.Enqueued != before.Enqueued {
			t.Fatalf("%s: the queue took %d tasks from a refused transaction", tc.name, after.Enqueued-before.Enqueued)
		}
	}
	tx := d.NewTxn()
	tx.Set(txnGroup+"other", []byte("x"), []byte("1"))
	e := q.TxEnqueue(tx, txnQueue, queue.Task{Payload: []byte("co-located")})
	if err := d.CommitTxn(ctx, tx); err != nil || len(e.IDs) != 1 {
		t.Fatalf("one placement group: %v %v", e.IDs, err)
	}
}
