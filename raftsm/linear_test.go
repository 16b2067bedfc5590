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
	"sort"
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

// The linearizability test records histories of one queue, used by several
// clients through different nodes while a seeded fault happens, and checks
// them with porcupine against a sequential model: a FIFO queue (one
// priority) with leases that do not expire. Operations whose outcome is
// unknown (db.ErrOutcomeUnknown) may take effect at any time after their
// call, or never.

type linOp struct {
	kind byte   // 'e' enqueue, 'l' lease one, 'a' ack, 'g' get
	id   uint64 // a, g: the task
}

type linOut struct {
	unknown bool
	ok      bool   // e, a: acknowledged; l: got a task
	id      uint64 // e: the new task's id; l: the leased task
	state   string // g: ready, leased, done
}

// linState is the model's state. Task ids are assigned in apply order
// (a queue's sequence), and with one priority a lease hands out the
// smallest ready id, so the ready set is kept sorted by id; max is the
// largest id enqueued (ids must grow in real-time order too); phantoms
// counts enqueues of unknown outcome that may have taken effect with an
// id never reported.
type linState struct {
	ready, leased, done []uint64
	max                 uint64
	phantoms            int
}

func (s linState) key() string {
	var b strings.Builder
	for _, l := range [][]uint64{s.ready, s.leased, s.done} {
		for _, p := range l {
			b.WriteString(strconv.FormatUint(p, 36))
			b.WriteByte(',')
		}
		b.WriteByte('|')
	}
	fmt.Fprintf(&b, "%d|%d", s.max, s.phantoms)
	return b.String()
}

func insertSorted(l []uint64, p uint64) []uint64 {
	i, _ := slices.BinarySearch(l, p)
	return slices.Insert(slices.Clone(l), i, p)
}

func removeSorted(l []uint64, p uint64) ([]uint64, bool) {
	i, ok := slices.BinarySearch(l, p)
	if !ok {
		return l, false
	}
	return slices.Delete(slices.Clone(l), i, i+1), true
}

func (s linState) has(id uint64) bool {
	for _, l := range [][]uint64{s.ready, s.leased, s.done} {
		if _, ok := slices.BinarySearch(l, id); ok {
			return true
		}
	}
	return false
}

func linStep(st any, in any, out any) []any {
	s, op, o := st.(linState), in.(linOp), out.(linOut)
	var next []any
	if o.unknown {
		next = append(next, s) // it may not have happened
	}
	switch op.kind {
	case 'e':
		switch {
		case o.unknown:
			n := s
			n.phantoms++
			next = append(next, n)
		case o.ok:
			if o.id > s.max && !s.has(o.id) {
				n := s
				n.ready = insertSorted(s.ready, o.id)
				n.max = o.id
				next = append(next, n)
			}
		default:
			next = append(next, s) // refused: nothing changed
		}
	case 'l':
		switch {
		case o.unknown:
			if len(s.ready) > 0 {
				n := s
				n.leased = insertSorted(s.leased, s.ready[0])
				n.ready = s.ready[1:]
				next = append(next, n)
			}
		case o.ok:
			if len(s.ready) > 0 && s.ready[0] == o.id {
				n := s
				n.leased = insertSorted(s.leased, o.id)
				n.ready = s.ready[1:]
				next = append(next, n)
			} else if s.phantoms > 0 && !s.has(o.id) && (len(s.ready) == 0 || o.id < s.ready[0]) {
				// A task of an enqueue whose outcome was unknown.
				n := s
				n.phantoms--
				n.leased = insertSorted(s.leased, o.id)
				next = append(next, n)
			}
		default:
			if len(s.ready) == 0 {
				next = append(next, s)
			}
		}
	case 'a':
		leased, was := removeSorted(s.leased, op.id)
		switch {
		case o.ok || o.unknown:
			if was {
				n := s
				n.leased, n.done = leased, insertSorted(s.done, op.id)
				next = append(next, n)
			}
		default:
			if !was {
				next = append(next, s)
			}
		}
	case 'g':
		state := "absent"
		if _, ok := slices.BinarySearch(s.ready, op.id); ok {
			state = "ready"
		} else if _, ok := slices.BinarySearch(s.leased, op.id); ok {
			state = "leased"
		} else if _, ok := slices.BinarySearch(s.done, op.id); ok {
			state = "done"
		}
		if o.unknown || o.state == state {
			next = append(next, s)
		}
	}
	return next
}

var linModel = porcupine.NondeterministicModel{
	Init:  func() []any { return []any{linState{}} },
	Step:  linStep,
	Equal: func(a, b any) bool { return a.(linState).key() == b.(linState).key() },
	Hash:  func(a any) uint64 { return xxhash.Sum64String(a.(linState).key()) },
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%c(%d) -> %+v", in.(linOp).kind, in.(linOp).id, out.(linOut))
	},
	DescribeState: func(s any) string { return s.(linState).key() },
}

// linCluster is a cluster whose membership changes between schedules,
// its nodes reaching each other through a faultNet.
type linCluster struct {
	t       *testing.T
	net     *faultNet
	mu      sync.Mutex
	nodes   []*tnode // running or stopped members
	members map[uint64]string
	nextID  uint64
	// isolated is the replica a network fault cuts off (0: none): writers
	// stop picking it (as clients would give up on it), readers do not,
	// so that every read a cut-off node serves is checked.
	isolated atomic.Uint64
}

func (c *linCluster) live() []*tnode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tnode
	for _, n := range c.nodes {
		if n.n != nil {
			out = append(out, n)
		}
	}
	return out
}

// pick returns a running node's queue manager, or nil; a writer does not
// get the isolated one.
func (c *linCluster) pick(r *rand.Rand, writer bool) *queue.Manager {
	c.mu.Lock()
	defer c.mu.Unlock()
	var qs []*queue.Manager
	for _, n := range c.nodes {
		if n.q != nil && (!writer || n.id != c.isolated.Load()) {
			qs = append(qs, n.q)
		}
	}
	if len(qs) == 0 {
		return nil
	}
	return qs[r.IntN(len(qs))]
}

func (c *linCluster) leaderOf(queueName string) *tnode {
	for _, n := range c.live() {
		shard := n.n.DB().Placement().ShardFor(queueName)
		if id, _, ok, err := n.n.NodeHost().GetLeaderID(uint64(shard)); err == nil && ok {
			for _, m := range c.live() {
				if m.id == id {
					return m
				}
			}
		}
	}
	return nil
}

func (c *linCluster) stopNode(n *tnode) {
	c.mu.Lock()
	q, nn := n.q, n.n
	n.q, n.n = nil, nil
	c.mu.Unlock()
	q.Close()
	nn.Close()
}

func (c *linCluster) startNode(n *tnode, join bool) {
	tmp := &tnode{id: n.id, dir: n.dir, addr: n.addr, listen: n.listen, joined: n.joined}
	tmp.start(c.t, c.members, join)
	c.mu.Lock()
	n.n, n.q, n.joined = tmp.n, tmp.q, tmp.joined
	c.mu.Unlock()
}

// fault runs one seeded fault while the clients work.
func (c *linCluster) fault(kind int, queueName string, settle func()) string {
	t := c.t
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	switch kind {
	case 0: // the leader of the queue's shard stops, then restarts
		l := c.leaderOf(queueName)
		if l == nil {
			return "no leader found"
		}
		c.stopNode(l)
		settle()
		c.startNode(l, false)
		return fmt.Sprintf("leader %d stopped and restarted", l.id)
	case 1: // a follower stops, misses a snapshot's worth of entries, restarts
		l := c.leaderOf(queueName)
		for _, n := range c.live() {
			if n != l {
				c.stopNode(n)
				settle()
				settle()
				c.startNode(n, false)
				return fmt.Sprintf("follower %d stopped past a snapshot and restarted", n.id)
			}
		}
	case 2: // a follower is removed; a new replica is added and joins
		l := c.leaderOf(queueName)
		var victim *tnode
		for _, n := range c.live() {
			if n != l {
				victim = n
				break
			}
		}
		if victim == nil || l == nil {
			return "no follower"
		}
		c.stopNode(victim)
		if err := l.n.RemoveReplica(ctx, victim.id); err != nil {
			t.Fatalf("remove replica %d: %v", victim.id, err)
		}
		c.mu.Lock()
		c.nodes = slices.DeleteFunc(c.nodes, func(n *tnode) bool { return n == victim })
		delete(c.members, victim.id)
		c.nextID++
		nn := newTnode(t, c.nextID, c.net)
		c.members[nn.id] = nn.addr
		c.mu.Unlock()
		settle()
		if err := l.n.AddReplica(ctx, nn.id, nn.addr); err != nil {
			t.Fatalf("add replica %d: %v", nn.id, err)
		}
		c.startNode(nn, true)
		c.mu.Lock()
		c.nodes = append(c.nodes, nn)
		c.mu.Unlock()
		return fmt.Sprintf("replica %d removed, replica %d added", victim.id, nn.id)
	case 3: // leadership moves to another replica
		l := c.leaderOf(queueName)
		for _, n := range c.live() {
			if l != nil && n != l {
				shard := n.n.DB().Placement().ShardFor(queueName)
				tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if err := l.n.TransferLeader(tctx, shard, n.id); err != nil {
					return fmt.Sprintf("transfer to %d: %v", n.id, err)
				}
				return fmt.Sprintf("leadership moved %d -> %d", l.id, n.id)
			}
		}
	case 4, 5, 6: // the leader is cut off: both ways, only its sends, only its receipts
		l := c.leaderOf(queueName)
		if l == nil {
			return "no leader found"
		}
		out, in := kind != 6, kind != 5
		c.isolated.Store(l.id)
		c.net.isolate(l.id, c.ids(), out, in)
		for range 4 {
			settle()
		}
		c.net.heal()
		c.isolated.Store(0)
		return fmt.Sprintf("leader %d partitioned (sends cut %v, receipts cut %v), healed", l.id, out, in)
	case 7: // a follower is partitioned away, then heals
		l := c.leaderOf(queueName)
		for _, n := range c.live() {
			if n != l {
				c.isolated.Store(n.id)
				c.net.isolate(n.id, c.ids(), true, true)
				for range 4 {
					settle()
				}
				c.net.heal()
				c.isolated.Store(0)
				return fmt.Sprintf("follower %d partitioned, healed", n.id)
			}
		}
	case 8: // a lossy network: drops, duplicates, delays on every link
		ids := c.ids()
		for _, a := range ids {
			for _, b := range ids {
				if a != b {
					c.net.set(a, b, linkFault{drop: 0.2, dup: 0.2, delay: 20 * time.Millisecond})
				}
			}
		}
		settle()
		settle()
		c.net.heal()
		return "lossy network (20% dropped, 20% duplicated, up to 20 ms late), healed"
	case 9: // connections are cut, again and again
		for range 4 {
			c.net.cut(nil)
			time.Sleep(50 * time.Millisecond)
		}
		settle()
		return "every connection cut four times"
	}
	return "no fault"
}

// ids lists the members' replica ids.
func (c *linCluster) ids() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []uint64
	for _, n := range c.nodes {
		out = append(out, n.id)
	}
	return out
}

// linFaults is the number of fault kinds (linCluster.fault): schedule
// seed runs kind seed % linFaults.
const linFaults = 10

// linGroups is how many clusters run TestLinearizable's schedules at once.
// Each keeps four writers and two readers busy: more would starve two
// cores, and Raft on a starved host misses its heartbeats.
const linGroups = 3

func linSchedules() int {
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_LIN_SCHEDULES")); err == nil && v > 0 {
		return v
	}
	return 50
}

// TestLinearizable: seeded schedules (50; FLOWDB_LIN_SCHEDULES) of
// clients using one queue through different nodes under a leader stop and
// restart, a follower's snapshot-streamed catch-up, a replica removal and
// addition, a leadership transfer, and network faults injected by a proxy
// between the nodes (faultNet): the leader partitioned both ways or one
// way, a follower partitioned, a lossy network that drops, duplicates and
// delays messages, connections cut; each heals before the schedule ends.
// Every history must be linearizable against the FIFO-with-leases model,
// and no acknowledged task may be lost.
//
// The schedules run in linGroups parallel groups of consecutive seeds,
// each group on a cluster of its own (each meets every fault kind, one
// after the other on the same cluster): a schedule spends much of its time
// waiting for a fault to settle.
func TestLinearizable(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	schedules := linSchedules()
	for g := range linGroups {
		first, last := g*schedules/linGroups, (g+1)*schedules/linGroups-1
		if last < first {
			continue
		}
		t.Run(fmt.Sprintf("seeds-%d-%d", first, last), func(t *testing.T) {
			t.Parallel()
			fn := newFaultNet(t, 1+uint64(first))
			ns, members := startClusterNet(t, 3, 0, fn)
			c := &linCluster{t: t, net: fn, nodes: ns, members: members, nextID: 3}
			t.Cleanup(func() {
				for _, n := range c.nodes {
					if n.n != nil {
						c.stopNode(n)
					}
				}
			})
			for seed := first; seed <= last; seed++ {
				c.schedule(uint64(seed))
			}
		})
	}
}

func (c *linCluster) schedule(seed uint64) {
	t := c.t
	r := rand.New(rand.NewPCG(seed, 0x11ea))
	name := fmt.Sprintf("lin-%d", seed)
	ctx := t.Context()
	{
		q := c.pick(r, true)
		if err := q.Create(ctx, queue.Config{Name: name, LeaseDuration: time.Hour, ResultRetention: time.Hour, HotCapacity: 8}); err != nil {
			t.Fatalf("seed %d: create: %v", seed, err)
		}
	}
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		start   = time.Now()
		stop    atomic.Bool
		acked   sync.Map // task id -> true (acknowledged enqueues)
	)
	now := func() int64 { return int64(time.Since(start)) }
	record := func(client int, in linOp, call int64, out linOut) {
		ret := now()
		if out.unknown {
			ret = math.MaxInt64
		}
		mu.Lock()
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
		mu.Unlock()
	}
	clients := 4
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_LIN_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cr := rand.New(rand.NewPCG(seed, uint64(cl)))
			type held struct{ id, token uint64 }
			var mine []held
			var finished, known []uint64
			for !stop.Load() {
				mu.Lock()
				busy := len(history) > 2000
				mu.Unlock()
				if busy {
					// Keep histories small when a fault takes long.
					time.Sleep(20 * time.Millisecond)
				}
				q := c.pick(cr, true)
				if q == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				octx, cancel := context.WithTimeout(ctx, 20*time.Second)
				call := now()
				// An error wrapping db.ErrClosed alone means the call was
				// refused before it was proposed (its node closed): it did
				// not happen, and is left out of the history.
				closed := func(err error) bool {
					return errors.Is(err, db.ErrClosed) && !errors.Is(err, db.ErrOutcomeUnknown)
				}
				switch x := cr.IntN(10); {
				case x < 4:
					id, err := q.Enqueue(octx, name, queue.Task{Payload: []byte("task")})
					switch {
					case err == nil:
						acked.Store(id, true)
						known = append(known, id)
						record(cl, linOp{kind: 'e'}, call, linOut{ok: true, id: id})
					case errors.Is(err, db.ErrOutcomeUnknown):
						record(cl, linOp{kind: 'e'}, call, linOut{unknown: true})
					case errors.Is(err, queue.ErrFull):
						record(cl, linOp{kind: 'e'}, call, linOut{})
					case closed(err):
					default:
						t.Errorf("seed %d: enqueue: %v", seed, err)
					}
				case x < 7:
					ls, err := q.Lease(octx, name, fmt.Sprintf("c%d", cl), 1, nil, 0)
					switch {
					case err == nil && len(ls) == 1:
						mine = append(mine, held{ls[0].ID, ls[0].Token})
						known = append(known, ls[0].ID)
						record(cl, linOp{kind: 'l'}, call, linOut{ok: true, id: ls[0].ID})
					case err == nil:
						record(cl, linOp{kind: 'l'}, call, linOut{})
					case errors.Is(err, db.ErrOutcomeUnknown):
						record(cl, linOp{kind: 'l'}, call, linOut{unknown: true})
					case closed(err):
					default:
						t.Errorf("seed %d: lease: %v", seed, err)
					}
				case x < 9 && (len(mine) > 0 || len(finished) > 0):
					// Ack a held task, or (now and then) one already acked,
					// with a wrong token.
					var h held
					if len(mine) > 0 && (len(finished) == 0 || cr.IntN(5) > 0) {
						i := cr.IntN(len(mine))
						h = mine[i]
						mine = slices.Delete(mine, i, i+1)
					} else {
						h = held{id: finished[cr.IntN(len(finished))], token: 1}
					}
					err := q.Ack(octx, name, h.id, h.token, nil)
					switch {
					case err == nil:
						finished = append(finished, h.id)
						record(cl, linOp{kind: 'a', id: h.id}, call, linOut{ok: true})
					case errors.Is(err, queue.ErrLeaseLost), errors.Is(err, queue.ErrNotFound), errors.Is(err, queue.ErrCanceled):
						record(cl, linOp{kind: 'a', id: h.id}, call, linOut{})
					case errors.Is(err, db.ErrOutcomeUnknown):
						record(cl, linOp{kind: 'a', id: h.id}, call, linOut{unknown: true})
					case closed(err):
						if h.token != 1 {
							mine = append(mine, h) // still held
						}
					default:
						t.Errorf("seed %d: ack: %v", seed, err)
					}
				default:
					// Read a task's state (a linearizable read).
					if len(known) == 0 {
						cancel()
						continue
					}
					id := known[cr.IntN(len(known))]
					ti, err := q.Get(octx, name, id)
					switch {
					case err == nil:
						record(cl, linOp{kind: 'g', id: id}, call, linOut{state: ti.State})
					case errors.Is(err, queue.ErrNotFound):
						record(cl, linOp{kind: 'g', id: id}, call, linOut{state: "absent"})
					case closed(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
						// A failed read changes nothing: leave it out.
					default:
						t.Errorf("seed %d: get: %v", seed, err)
					}
				}
				cancel()
			}
		}()
	}
	// Readers read the state of acknowledged tasks through any node, the
	// isolated one included.
	for rd := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients + rd
			cr := rand.New(rand.NewPCG(seed, uint64(cl)))
			for !stop.Load() {
				var ids []uint64
				acked.Range(func(k, _ any) bool { ids = append(ids, k.(uint64)); return len(ids) < 64 })
				q := c.pick(cr, false)
				if q == nil || len(ids) == 0 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				id := ids[cr.IntN(len(ids))]
				octx, cancel := context.WithTimeout(ctx, 20*time.Second)
				call := now()
				ti, err := q.Get(octx, name, id)
				cancel()
				switch {
				case err == nil:
					record(cl, linOp{kind: 'g', id: id}, call, linOut{state: ti.State})
				case errors.Is(err, queue.ErrNotFound):
					record(cl, linOp{kind: 'g', id: id}, call, linOut{state: "absent"})
				case errors.Is(err, db.ErrClosed), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
				default:
					t.Errorf("seed %d: get: %v", seed, err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	settle := func() { time.Sleep(150 * time.Millisecond) }
	settle()
	what := "no fault"
	if os.Getenv("FLOWDB_LIN_NOFAULT") == "" {
		what = c.fault(int(seed%linFaults), name, settle)
	} else {
		settle()
	}
	settle()
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	res, info := porcupine.CheckOperationsVerbose(linModel.ToModel(), history, 10*time.Second)
	if res != porcupine.Ok {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("flowdb-lin-%d.html", seed))
		if f, err := os.Create(path); err == nil {
			porcupine.Visualize(linModel.ToModel(), info, f)
			f.Close()
		}
		if os.Getenv("FLOWDB_LIN_DEBUG") != "" {
			sort.Slice(history, func(i, j int) bool { return history[i].Call < history[j].Call })
			lo, hi := 1, len(history)
			for lo < hi {
				mid := (lo + hi) / 2
				if porcupine.CheckOperationsTimeout(linModel.ToModel(), history[:mid], 2*time.Second) == porcupine.Ok {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			t.Logf("smallest failing prefix: %d ops: %s", lo, porcupine.CheckOperationsTimeout(linModel.ToModel(), history[:lo], 5*time.Second))
			last := history[lo-1]
			pl := max(last.Input.(linOp).id, last.Output.(linOut).id)
			for _, op := range history[max(0, lo-12):lo] {
				t.Logf("  client %d [%d, %d] %c(%d) -> %+v", op.ClientId, op.Call/1000, op.Return/1000, op.Input.(linOp).kind, op.Input.(linOp).id, op.Output)
			}
			for _, op := range history[:lo] {
				if p := max(op.Input.(linOp).id, op.Output.(linOut).id); p+2 >= pl && p <= pl {
					t.Logf("  * client %d [%d, %d] %c(%d) -> %+v", op.ClientId, op.Call/1000, op.Return/1000, op.Input.(linOp).kind, op.Input.(linOp).id, op.Output)
				}
			}
		}
		unknown := 0
		for _, op := range history {
			if op.Output.(linOut).unknown {
				unknown++
			}
		}
		t.Fatalf("seed %d (%s): history of %d operations (%d of unknown outcome) is %s (visualization: %s)", seed, what, len(history), unknown, res, path)
	}
	// No acknowledged enqueue is lost: every one is on every live node,
	// after a read index.
	lost := 0
	n := 0
	for _, tn := range c.live() {
		acked.Range(func(k, _ any) bool {
			if _, err := tn.q.Get(ctx, name, k.(uint64)); err != nil {
				lost++
			}
			n++
			return true
		})
	}
	if lost > 0 {
		t.Fatalf("seed %d (%s): %d of %d acknowledged tasks missing on some node", seed, what, lost, n)
	}
	t.Logf("seed %d: %s; %d operations linearizable; %d acknowledged enqueues present on every node; frames so far: %d, %d dropped, %d duplicated",
		seed, what, len(history), n/max(len(c.live()), 1), c.net.passed.Load(), c.net.dropped.Load(), c.net.duplicated.Load())
}
