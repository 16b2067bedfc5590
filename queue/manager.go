package queue

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Options configures Attach.
type Options struct {
	// TickInterval is how often the background ticker looks for due timers
	// (delayed tasks, expired leases, retention) and proposes a tick record
	// for queues that have some. Default 50ms; negative disables the ticker
	// (tests then call Tick).
	TickInterval time.Duration
}

// Manager owns the task queues of one DB. Its methods are safe for
// concurrent use.
type Manager struct {
	d    *db.DB
	opts Options

	mu     sync.Mutex         // protects queues and every qstate
	queues map[string]*qstate // by name
	// names holds the names in queues (written under mu with it), so that
	// the argument check of every call (exists) takes no lock that apply
	// holds.
	names sync.Map
	held  heldCounts // tasks leased to each agent (written under mu)
	// Buffers applyLease and applyEnqueue reuse (under mu).
	pickBuf  []hotEntry
	leaseBuf []task
	enqBuf   []enqTask

	stop     chan struct{}
	stopOnce sync.Once // closes stop: Close may run twice at once (db.Machine.Stop)
	done     chan struct{}
}

// applyErrors are the errors queue records are rejected with.
var applyErrors = []error{ErrNotFound, ErrExists, ErrFull, ErrLeaseLost, ErrCanceled, ErrInvalid, ErrNotReady, ErrAtCapacity}

// Attach attaches the queue state machine to d (db.DB.Attach: its record
// kinds and tables, its check, every queue's state loaded from Pebble) and
// starts the ticker. Call it once per DB,
// before any queue call. Close stops its ticker; closing d closes it too.
func Attach(d *db.DB, o *Options) (*Manager, error) {
	m := &Manager{d: d, queues: map[string]*qstate{}, stop: make(chan struct{}), done: make(chan struct{})}
	if o != nil {
		m.opts = *o
	}
	if m.opts.TickInterval == 0 {
		m.opts.TickInterval = 50 * time.Millisecond
	}
	err := d.Attach(db.Machine{
		Name: "queue",
		Kinds: []db.KindSpec{
			{Kind: KindCreate, Name: "queue.create", Apply: m.applyCreate, Route: db.RouteByName},
			{Kind: KindEnqueue, Name: "queue.enqueue", Reads: true, Apply: m.applyEnqueue, Route: db.RouteByName, Txn: true},
			{Kind: KindLease, Name: "queue.lease", Reads: true, Apply: m.applyLease, Route: db.RouteByName},
			{Kind: KindExtend, Name: "queue.extend", Reads: true, Apply: m.applyTaskOp, Route: db.RouteByName, Txn: true},
			{Kind: KindAck, Name: "queue.ack", Reads: true, Apply: m.applyTaskOp, Route: db.RouteByName, Txn: true},
			{Kind: KindNack, Name: "queue.nack", Reads: true, Apply: m.applyTaskOp, Route: db.RouteByName, Txn: true},
			{Kind: KindCancel, Name: "queue.cancel", Reads: true, Apply: m.applyTaskOp, Route: db.RouteByName, Txn: true},
			{Kind: KindTick, Name: "queue.tick", Reads: true, Apply: m.applyTick, Route: db.RouteByName},
			{Kind: KindReplay, Name: "queue.replay", Reads: true, Apply: m.applyDead, Route: db.RouteByName},
			{Kind: KindPurge, Name: "queue.purge", Reads: true, Apply: m.applyDead, Route: db.RouteByName},
			{Kind: KindAckBatch, Name: "queue.ackbatch", Reads: true, Apply: m.applyAckBatch, Route: db.RouteByName},
			{Kind: KindAssign, Name: "queue.assign", Reads: true, Apply: m.applyAssign, Route: db.RouteByName},
			{Kind: KindRelease, Name: "queue.release", Reads: true, Apply: m.applyRelease, Route: db.RouteByName},
		},
		Errors:  applyErrors,
		Tables:  tableSpecs(),
		Check:   m.check,
		Load:    m.loadShard,
		Reload:  m.reloadShard,
		Stop:    func() { m.Close() },
		TxnLock: &m.mu,
	})
	if err != nil {
		// No ticker runs: Close (which DB.Close calls through Stop if the
		// machine was registered before its Load failed) must not wait.
		close(m.done)
		return nil, err
	}
	if m.opts.TickInterval > 0 {
		go m.tickLoop()
	} else {
		close(m.done)
	}
	return m, nil
}

// reloadShard rebuilds the queues of shard after a Raft snapshot replaced
// its keys (db.Machine.Reload; every shard's apply is stopped). Waiters on
// the replaced queues wake and look again.
func (m *Manager) reloadShard(shard uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, q := range m.queues {
		if q.shard == shard {
			delete(m.queues, name)
			m.names.Delete(name)
			close(q.wake)
		}
	}
	return m.loadShard(shard)
}

// loadShard loads the queues of one shard.
func (m *Manager) loadShard(shard uint32) error {
	p := m.d.Pebble()
	{
		lo, hi := keys.TableRange(shard, keys.TableQueueDef)
		it, err := p.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			cfg, ok := decodeConfig(it.Value())
			if !ok {
				it.Close()
				return fmt.Errorf("queue: %w: definition at %x", wal.ErrCorrupt, it.Key())
			}
			q := &qstate{cfg: cfg, shard: shard, wake: make(chan struct{}), dueHint: math.MinInt64}
			v, c, err := p.Get(keys.NameKey(shard, keys.TableQueueMeta, cfg.Name))
			if err != nil {
				it.Close()
				return fmt.Errorf("queue %q: counters: %w", cfg.Name, err)
			}
			q.m, ok = decodeMeta(v)
			c.Close()
			if !ok {
				it.Close()
				return fmt.Errorf("queue %q: %w: counters", cfg.Name, wal.ErrCorrupt)
			}
			if err := loadHot(p, q); err != nil {
				it.Close()
				return err
			}
			if err := m.loadHeld(p, q); err != nil {
				it.Close()
				return err
			}
			m.queues[cfg.Name] = q
			m.names.Store(cfg.Name, struct{}{})
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// reader reads the store: a pebble.Reader, or a db.Tx (in apply).
type reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// loadHot reads the first HotCapacity ready entries into the hot set.
func loadHot(r reader, q *qstate) error {
	prefix := keys.NameKey(q.shard, keys.TableQueueReady, q.cfg.Name)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	q.hot = q.hot[:0]
	for ok := it.First(); ok && len(q.hot) < q.cfg.HotCapacity; ok = it.Next() {
		e, ok2 := hotFromReady(it.Key()[len(prefix):], it.Value())
		if !ok2 {
			it.Close()
			return fmt.Errorf("queue %q: %w: ready entry", q.cfg.Name, wal.ErrCorrupt)
		}
		q.hot = append(q.hot, e)
	}
	return it.Close()
}

// loadHeld counts the tasks leased to each agent, from the lease index and
// the leased tasks' states (one read per leased task).
func (m *Manager) loadHeld(r reader, q *qstate) error {
	prefix := keys.NameKey(q.shard, keys.TableQueueLease, q.cfg.Name)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+16 {
			it.Close()
			return fmt.Errorf("queue %q: %w: lease entry %x", q.cfg.Name, wal.ErrCorrupt, k)
		}
		id := binary.BigEndian.Uint64(k[len(k)-8:])
		v, c, err := r.Get(keys.NameKey(q.shard, keys.TableQueueState, q.cfg.Name, be64(id)))
		if err != nil {
			it.Close()
			return fmt.Errorf("queue %q: state of leased task %d: %w", q.cfg.Name, id, err)
		}
		t, ok := decodeState(v)
		agent := string(t.agent)
		c.Close()
		if !ok || (t.state != stateLeased && t.state != stateCanceled) {
			it.Close()
			return fmt.Errorf("queue %q: %w: lease entry of task %d has no leased task", q.cfg.Name, wal.ErrCorrupt, id)
		}
		m.held.add(q, agent, 1)
	}
	return it.Close()
}

// heldAgent parses a held-index key suffix: len(agent) | agent | id (8 B).
func heldAgent(k []byte) (string, bool) {
	if len(k) < 1 || k[0] == 0 || int(k[0]) > MaxLabelSize || len(k) != 1+int(k[0])+8 {
		return "", false
	}
	return string(k[1 : 1+k[0]]), true
}

// Close stops the ticker. It does not close the DB.
func (m *Manager) Close() error {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	return nil
}

// signal wakes LeaseWait callers of q.
func (m *Manager) signal(q *qstate) {
	m.mu.Lock()
	close(q.wake)
	q.wake = make(chan struct{})
	m.mu.Unlock()
}

func (m *Manager) propose(ctx context.Context, kind wal.Kind, body []byte) (wal.Result, error) {
	return m.d.Propose(ctx, wal.Record{Kind: kind, Body: body})
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameSize {
		return fmt.Errorf("%w: queue name of %d bytes (want 1..%d)", ErrInvalid, len(name), MaxNameSize)
	}
	return nil
}

// exists checks that queue name exists. On a replica that has not seen it
// yet, it waits for a read index of the queue's shard and looks again, so
// a queue created through another node is found once its creation was
// acknowledged.
func (m *Manager) exists(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, ok := m.names.Load(name)
	if !ok && m.d.Replicated() {
		if err := m.d.ReadBarrier(ctx, m.d.Placement().ShardFor(name)); err != nil {
			return err
		}
		_, ok = m.names.Load(name)
	}
	if !ok {
		return fmt.Errorf("%w: queue %q", ErrNotFound, name)
	}
	return nil
}

// Create creates a queue, or does nothing if it exists with the same
// config; ErrExists if it exists with another.
func (m *Manager) Create(ctx context.Context, c Config) error {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	_, err := m.propose(ctx, KindCreate, encodeConfig(c))
	return err
}

// Config returns a queue's configuration.
func (m *Manager) Config(name string) (Config, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[name]
	if q == nil {
		return Config{}, fmt.Errorf("%w: queue %q", ErrNotFound, name)
	}
	return q.cfg, nil
}

// Queues lists the queues' names in order.
func (m *Manager) Queues() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.queues {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Task is a task to enqueue.
type Task struct {
	Payload []byte
	// Priority 0..MaxPriority; higher is leased first.
	Priority int
	// IdempotencyKey, if set, makes a second Enqueue with the same key within
	// the queue's IdempotencyWindow return the first task's id and add nothing.
	IdempotencyKey string
	// NotBefore delays the task until then (zero: ready at once).
	NotBefore time.Time
	// Requires lists the capabilities an agent must have to lease the task.
	Requires []string
	// Tags are stored with the task and returned with its lease.
	Tags []string
	// Affinity, if set, asks the scheduler (sched.Dispatch) to prefer the
	// agent that last ran a task with the same key (at most MaxLabelSize
	// bytes).
	Affinity string
}

// taskSize bounds the size of appendTask's encoding of t.
func taskSize(t Task) int {
	n := 7*binary.MaxVarintLen64 + len(t.IdempotencyKey) + len(t.Affinity) + len(t.Payload)
	for _, l := range [][]string{t.Requires, t.Tags} {
		for _, s := range l {
			n += binary.MaxVarintLen64 + len(s)
		}
	}
	return n
}

func appendTask(e enc, t Task) (enc, error) {
	bad := func(f string, a ...any) (enc, error) {
		return e, fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, a...)...)
	}
	switch {
	case t.Priority < 0 || t.Priority > MaxPriority:
		return bad("priority %d (want 0..%d)", t.Priority, MaxPriority)
	case len(t.Payload) > MaxPayloadSize:
		return bad("payload of %d bytes > %d", len(t.Payload), MaxPayloadSize)
	case len(t.IdempotencyKey) > MaxIdemKeySize:
		return bad("idempotency key of %d bytes", len(t.IdempotencyKey))
	case len(t.Affinity) > MaxLabelSize:
		return bad("affinity key of %d bytes", len(t.Affinity))
	case len(t.Requires) > MaxCapabilities || len(t.Tags) > MaxTags:
		return bad("too many capabilities or tags")
	}
	lists := [2][][]byte{}
	for i, l := range [][]string{t.Requires, t.Tags} {
		for _, s := range l {
			if s == "" || len(s) > MaxLabelSize {
				return bad("capability or tag of %d bytes", len(s))
			}
			lists[i] = append(lists[i], []byte(s))
		}
	}
	var nb int64
	if !t.NotBefore.IsZero() {
		nb = t.NotBefore.UnixNano()
	}
	return e.U(uint64(t.Priority)).I(nb).S(t.IdempotencyKey).List(lists[0]).List(lists[1]).S(t.Affinity).B(t.Payload), nil
}

// Enqueue adds one task and returns its id once it is durable.
func (m *Manager) Enqueue(ctx context.Context, queue string, t Task) (uint64, error) {
	ids, err := m.EnqueueBatch(ctx, queue, []Task{t})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// EnqueueBatch adds tasks atomically (one record): all are accepted or none
// (ErrFull, ErrInvalid). It returns their ids, in order, once durable.
func (m *Manager) EnqueueBatch(ctx context.Context, queue string, tasks []Task) ([]uint64, error) {
	if err := m.exists(ctx, queue); err != nil {
		return nil, err
	}
	rec, err := enqueueRecord(queue, tasks)
	if err != nil {
		return nil, err
	}
	res, err := m.d.Propose(ctx, rec)
	if err != nil {
		return nil, err
	}
	return decodeIDs(res, len(tasks))
}

// enqueueRecord validates and encodes a KindEnqueue record.
func enqueueRecord(queue string, tasks []Task) (wal.Record, error) {
	if len(tasks) == 0 || len(tasks) > MaxBatch {
		return wal.Record{}, fmt.Errorf("%w: batch of %d tasks (want 1..%d)", ErrInvalid, len(tasks), MaxBatch)
	}
	size := 2*binary.MaxVarintLen64 + len(queue)
	for _, t := range tasks {
		size += taskSize(t)
	}
	e := enc(make([]byte, 0, size)).S(queue).U(uint64(len(tasks)))
	var err error
	for i, t := range tasks {
		if e, err = appendTask(e, t); err != nil {
			return wal.Record{}, fmt.Errorf("task %d: %w", i, err)
		}
	}
	return wal.Record{Kind: KindEnqueue, Body: e}, nil
}

// decodeIDs decodes an enqueue record's result: the n tasks' ids.
func decodeIDs(res wal.Result, n int) ([]uint64, error) {
	d := newDec(res.Data)
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.U64()
	}
	if !d.Done() {
		return nil, fmt.Errorf("queue: %w: enqueue result", wal.ErrCorrupt)
	}
	return ids, nil
}

// Lease is a task handed to an agent.
type Lease struct {
	Queue string
	// Agent is set on leases returned by Assign.
	Agent    string `json:",omitempty"`
	ID       uint64
	Token    uint64
	Expires  time.Time
	Attempt  int
	Priority int
	Payload  []byte
	Tags     []string
}

// Lease hands up to n ready tasks to agent, highest priority first and FIFO
// within a priority, skipping tasks that require capabilities caps lacks.
// leaseFor 0 means the queue's LeaseDuration. It returns no leases (and no
// error) when nothing is ready. ctx is checked before the lease is proposed;
// once proposed, Lease waits for it even if ctx ends, so that leased tasks
// always reach the caller.
func (m *Manager) Lease(ctx context.Context, queue, agent string, n int, caps []string, leaseFor time.Duration) ([]Lease, error) {
	if err := m.exists(ctx, queue); err != nil {
		return nil, err
	}
	if agent == "" || len(agent) > MaxLabelSize || n < 1 || n > MaxBatch || leaseFor < 0 || len(caps) > MaxCapabilities {
		return nil, fmt.Errorf("%w: lease of %d for agent %q", ErrInvalid, n, agent)
	}
	var capb [][]byte
	for _, c := range caps {
		capb = append(capb, []byte(c))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Once proposed, a lease is waited for whatever ctx does: giving up on
	// it would strand the leased tasks, unseen, until their leases expire.
	res, err := m.propose(context.WithoutCancel(ctx), KindLease, enc(nil).S(queue).S(agent).U(uint64(n)).List(capb).I(int64(leaseFor)))
	if err != nil {
		return nil, err
	}
	d := newDec(res.Data)
	cnt := d.U()
	out := make([]Lease, 0, min(cnt, MaxBatch))
	for i := uint64(0); i < cnt && d.OK; i++ {
		out = append(out, decodeLease(d, queue))
	}
	if !d.Done() {
		return nil, fmt.Errorf("queue: %w: lease result", wal.ErrCorrupt)
	}
	return out, nil
}

// LeaseWait is Lease that blocks, without polling, until at least one task is
// leased or ctx ends.
//
// It proposes a lease only when one may find something: a task is ready
// beyond what the leases this process has in flight asked for, or a
// delayed task or an expired lease may be due. Otherwise it waits for the
// queue's wake-up (tasks became ready) or, while leases are in flight, for
// one of them to be applied. A lease that found nothing (the ready tasks
// require capabilities caps lacks, or another consumer took them) waits
// for the next wake-up.
func (m *Manager) LeaseWait(ctx context.Context, queue, agent string, n int, caps []string, leaseFor time.Duration) ([]Lease, error) {
	for {
		m.mu.Lock()
		q := m.queues[queue]
		var wake, settled chan struct{}
		try := true
		if q != nil {
			wake = q.wake
			if q.dueHint > m.d.Now().UnixNano() { // nothing due to expire or wake
				switch {
				case q.m.ready == 0:
					try = false
				case q.leasing >= q.m.ready:
					try = false
					if q.settled == nil {
						q.settled = make(chan struct{})
					}
					settled = q.settled
				}
			}
			if try {
				q.leasing += int64(max(n, 1))
			}
		}
		m.mu.Unlock()
		if try {
			ls, err := m.Lease(ctx, queue, agent, n, caps, leaseFor)
			if q != nil {
				m.mu.Lock()
				q.leasing -= int64(max(n, 1))
				if q.settled != nil {
					close(q.settled)
					q.settled = nil
				}
				m.mu.Unlock()
			}
			if err != nil || len(ls) > 0 {
				return ls, err
			}
		}
		select {
		case <-wake:
		case <-settled:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Extend renews a lease for leaseFor (0: the queue's LeaseDuration).
func (m *Manager) Extend(ctx context.Context, queue string, id, token uint64, leaseFor time.Duration) error {
	if err := m.exists(ctx, queue); err != nil {
		return err
	}
	rec, err := extendRecord(queue, id, token, leaseFor)
	if err != nil {
		return err
	}
	_, err = m.d.Propose(ctx, rec)
	return err
}

func extendRecord(queue string, id, token uint64, leaseFor time.Duration) (wal.Record, error) {
	if leaseFor < 0 {
		return wal.Record{}, fmt.Errorf("%w: negative lease", ErrInvalid)
	}
	return wal.Record{Kind: KindExtend, Body: enc(nil).S(queue).U(id).U(token).I(int64(leaseFor))}, nil
}

// Ack completes a leased task, storing result for the queue's
// ResultRetention. ErrLeaseLost if the token is stale or the lease expired;
// ErrCanceled if the task was canceled.
func (m *Manager) Ack(ctx context.Context, queue string, id, token uint64, result []byte) error {
	if err := m.exists(ctx, queue); err != nil {
		return err
	}
	rec, err := ackRecord(queue, id, token, result)
	if err != nil {
		return err
	}
	_, err = m.d.Propose(ctx, rec)
	return err
}

func ackRecord(queue string, id, token uint64, result []byte) (wal.Record, error) {
	if len(result) > MaxResultSize {
		return wal.Record{}, fmt.Errorf("%w: result of %d bytes", ErrInvalid, len(result))
	}
	return wal.Record{Kind: KindAck, Body: enc(make([]byte, 0, 32+len(queue)+len(result))).S(queue).U(id).U(token).B(result)}, nil
}

// AckItem is one task of an AckBatch.
type AckItem struct {
	ID, Token uint64
	Result    []byte
}

// AckBatch completes many leased tasks in one durable record. Each item
// succeeds or fails on its own: the returned slice holds one error per item
// (nil, or matching ErrLeaseLost, ErrCanceled or ErrNotFound). The error
// result is for the call as a whole (ErrInvalid, ErrNotFound for the queue,
// db errors).
func (m *Manager) AckBatch(ctx context.Context, queue string, items []AckItem) ([]error, error) {
	if err := m.exists(ctx, queue); err != nil {
		return nil, err
	}
	if len(items) == 0 || len(items) > MaxBatch {
		return nil, fmt.Errorf("%w: %d acks (want 1..%d)", ErrInvalid, len(items), MaxBatch)
	}
	e := enc(nil).S(queue).U(uint64(len(items)))
	for _, it := range items {
		if len(it.Result) > MaxResultSize {
			return nil, fmt.Errorf("%w: result of %d bytes", ErrInvalid, len(it.Result))
		}
		e = e.U(it.ID).U(it.Token).B(it.Result)
	}
	res, err := m.propose(ctx, KindAckBatch, e)
	if err != nil {
		return nil, err
	}
	if len(res.Data) != len(items) {
		return nil, fmt.Errorf("queue: %w: ack batch result", wal.ErrCorrupt)
	}
	errs := make([]error, len(items))
	for i, s := range res.Data {
		switch s {
		case ackNotFound:
			errs[i] = fmt.Errorf("%w: task %d", ErrNotFound, items[i].ID)
		case ackLeaseLost:
			errs[i] = fmt.Errorf("%w: task %d", ErrLeaseLost, items[i].ID)
		case ackCanceled:
			errs[i] = fmt.Errorf("%w: task %d", ErrCanceled, items[i].ID)
		}
	}
	return errs, nil
}

// Nack returns a leased task for retry after backoff (or to the dead letters
// after MaxAttempts).
func (m *Manager) Nack(ctx context.Context, queue string, id, token uint64, reason string) error {
	if err := m.exists(ctx, queue); err != nil {
		return err
	}
	rec, err := nackRecord(queue, id, token, reason)
	if err != nil {
		return err
	}
	_, err = m.d.Propose(ctx, rec)
	return err
}

func nackRecord(queue string, id, token uint64, reason string) (wal.Record, error) {
	if len(reason) > 1<<16 {
		return wal.Record{}, fmt.Errorf("%w: reason of %d bytes", ErrInvalid, len(reason))
	}
	return wal.Record{Kind: KindNack, Body: enc(nil).S(queue).U(id).U(token).U(seed()).S(reason)}, nil
}

// Cancel removes a pending task; a leased one is marked so that its Ack is
// refused with ErrCanceled and it is dropped when its lease ends.
func (m *Manager) Cancel(ctx context.Context, queue string, id uint64) error {
	if err := m.exists(ctx, queue); err != nil {
		return err
	}
	_, err := m.propose(ctx, KindCancel, enc(nil).S(queue).U(id))
	return err
}

// Tick processes a queue's due timers and retention now. The ticker calls it
// when something is due; tests and tools may call it directly.
func (m *Manager) Tick(ctx context.Context, queue string) error {
	if err := m.exists(ctx, queue); err != nil {
		return err
	}
	_, err := m.propose(ctx, KindTick, enc(nil).S(queue).U(seed()))
	return err
}

// Replay re-enqueues dead letters (attempts reset); Purge deletes them.
func (m *Manager) Replay(ctx context.Context, queue string, ids []uint64) error {
	return m.deadOp(ctx, KindReplay, queue, ids)
}

// Purge deletes dead letters.
func (m *Manager) Purge(ctx context.Context, queue string, ids []uint64) error {
	return m.deadOp(ctx, KindPurge, queue, ids)
}

func (m *Manager) deadOp(ctx context.Context, kind wal.Kind, queue string, ids []uint64) error {
	if err := m.exists(ctx, queue); err != nil {
		return err
	}
	if len(ids) == 0 || len(ids) > MaxBatch {
		return fmt.Errorf("%w: %d ids", ErrInvalid, len(ids))
	}
	e := enc(nil).S(queue).U(uint64(len(ids)))
	for _, id := range ids {
		e = e.U(id)
	}
	_, err := m.propose(ctx, kind, e)
	return err
}

// seed draws jitter entropy on the proposer side.
func seed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
