package db

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// ApplyFunc applies one record inside tx. It returns the record's result
// (wal.Result.Err set when the record is rejected) or a non-nil error when
// applying failed in a way that must stop the engine (an I/O error while
// reading). Contract:
//
//   - It is deterministic: its writes and result depend only on the state
//     read through tx, tx.Index, tx.Time and the record. No clock, no map
//     iteration order, no unseeded randomness, no goroutines.
//   - A rejected record (Result.Err != nil) has made none of its own
//     changes: validate the whole record before the first write.
//     Housekeeping that any record of the state machine performs at tx.Time
//     (timers that fell due) may still apply; it is deterministic too.
//   - It never panics on any body bytes: a body it cannot decode is rejected
//     with an error matching ErrBadRecord.
//   - In-memory state may be updated during apply only if it is a
//     deterministic function of the applied state, rebuilt from Pebble on
//     open (a queue's hot set is one). Effects that must not run ahead of
//     durability (waking waiters, publishing to outside readers) go through
//     tx.AfterCommit. A fatal error discards both: the store must reopen.
type ApplyFunc func(tx *Tx, rec wal.Record) (wal.Result, error)

// KindSpec registers a record kind with the applier.
type KindSpec struct {
	Kind wal.Kind
	// Name appears in metrics and `flowctl check` output.
	Name string
	// Reads is true when Apply calls tx.Get or tx.NewIter (which fail with
	// an error otherwise). Reads see the frame's earlier writes through an
	// indexed Pebble batch; the standalone engine indexes a frame's batch
	// only at its first read, a replica's batch up front when any of its
	// records has Reads.
	Reads bool
	Apply ApplyFunc
	// Route returns the shard a record of this kind applies on, from its
	// body, on a replicated store (where each shard is a Raft group); it
	// must name the shard whose keys Apply writes. Records it cannot route
	// get its error (ErrBadRecord, ErrCrossShard). nil means the catalog
	// shard. See RouteByName and RouteCatalog.
	Route func(p Placement, body []byte) (uint32, error)
	// Txn is true when records of this kind may be operations of a
	// transaction (KindTxn). Apply then runs inside the transaction with
	// tx.InTxn() true, and must leave nothing behind if a later operation
	// of the transaction is refused: its Pebble writes are taken back by the
	// engine; its in-memory changes the machine restores (Tx.OnAbort) or
	// defers (Tx.Defer). A machine with an in-memory view sets
	// Machine.TxnLock.
	Txn bool

	owner *Machine // set by Attach
}

// TableSpec registers a key table (see internal/keys) so that Check can
// verify its entries and report unknown tables.
type TableSpec struct {
	Table byte
	Name  string
	// Check validates one entry; nil accepts any entry. key excludes the
	// shard/table prefix.
	Check func(key, value []byte) error
}

// registry maps kinds and tables to the machines that own them. It is
// copied on write so that the apply path reads it without locks.
type registry struct {
	kinds    map[wal.Kind]*KindSpec
	tables   map[byte]*TableSpec
	machines []*Machine // in attach order
	errors   []error    // Machine.Errors in attach order, each once
}

type applierRegistry struct {
	mu  sync.Mutex // serializes writers
	cur atomic.Pointer[registry]
}

func (r *applierRegistry) load() *registry { return r.cur.Load() }

// attach adds m's kinds, tables and errors, all or none.
func (r *applierRegistry) attach(m *Machine) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := &registry{kinds: make(map[wal.Kind]*KindSpec), tables: make(map[byte]*TableSpec)}
	if old := r.cur.Load(); old != nil {
		maps.Copy(next.kinds, old.kinds)
		maps.Copy(next.tables, old.tables)
		next.machines = slices.Clone(old.machines)
		next.errors = slices.Clone(old.errors)
	}
	if m == nil { // Open installs an empty registry
		r.cur.Store(next)
		return nil
	}
	for i := range m.Kinds {
		k := &m.Kinds[i]
		if k.Kind == 0 || k.Apply == nil {
			return fmt.Errorf("%w: kind %d needs a non-zero kind and an Apply", ErrInvalidOptions, k.Kind)
		}
		k.owner = m
		if _, dup := next.kinds[k.Kind]; dup {
			return fmt.Errorf("%w: %d (%s)", ErrKindRegistered, k.Kind, k.Name)
		}
		next.kinds[k.Kind] = k
	}
	for i := range m.Tables {
		t := &m.Tables[i]
		if _, dup := next.tables[t.Table]; dup {
			return fmt.Errorf("%w: table %#x (%s)", ErrKindRegistered, t.Table, t.Name)
		}
		next.tables[t.Table] = t
	}
	for _, e := range m.Errors {
		if !slices.Contains(next.errors, e) {
			next.errors = append(next.errors, e)
		}
	}
	next.machines = append(next.machines, m)
	r.cur.Store(next)
	return nil
}

// Tx is what an ApplyFunc sees: the Pebble batch of the frame being applied,
// the frame's log index and its deterministic time. A Tx is valid only during
// the ApplyFunc call that received it.
type Tx struct {
	// Index is the log index of the frame being applied.
	Index uint64
	// Time is the frame's apply time in Unix nanoseconds:
	// max(frame time, previous apply time). Non-decreasing across frames.
	Time int64
	// Shard is the shard whose log is applied (keys.LocalShard standalone).
	Shard uint32
	// Placement places names on data shards.
	Placement Placement

	batch   *pebble.Batch
	indexed bool       // records may read (the batch is, or becomes, indexed)
	lazy    *pebble.DB // set while batch is not yet indexed: index it at the first read
	wait    func()     // before the first read: wait for earlier frames (standalone pipeline)
	after   []func()
	arena   []byte    // Scratch's memory, reused from frame to frame
	txn     *txnState // the transaction being applied, if any
}

var errUnindexed = errors.New("db: Tx read in a kind registered without Reads")

// Get reads key as of the frame so far (earlier records of this frame
// included). The returned value is valid until closer.Close(). A missing key
// gives pebble.ErrNotFound.
func (tx *Tx) Get(key []byte) ([]byte, io.Closer, error) {
	if !tx.indexed {
		return nil, nil, errUnindexed
	}
	if err := tx.beforeRead(); err != nil {
		return nil, nil, err
	}
	return tx.batch.Get(key)
}

// NewIter iterates the store as of the frame so far.
func (tx *Tx) NewIter(o *pebble.IterOptions) (*pebble.Iterator, error) {
	if !tx.indexed {
		return nil, errUnindexed
	}
	if err := tx.beforeRead(); err != nil {
		return nil, err
	}
	return tx.batch.NewIter(o)
}

// beforeRead prepares the frame's first read: it waits for earlier frames
// (waitEarlier) and, if the frame was started on a batch without an index,
// moves what the frame wrote so far into an indexed batch, so that reads see
// it. Most frames of the standalone pipeline read nothing (hot-set leases,
// cached acks, enqueues) and so never pay for indexing their writes.
func (tx *Tx) beforeRead() error {
	tx.waitEarlier()
	if tx.lazy == nil {
		return nil
	}
	ib := tx.lazy.NewIndexedBatch()
	if err := ib.Apply(tx.batch, nil); err != nil {
		ib.Close()
		return err
	}
	tx.batch.Close()
	tx.batch, tx.lazy = ib, nil
	return nil
}

// waitEarlier makes every earlier frame visible to this frame's reads: the
// standalone pipeline applies a frame while the previous one is still being
// written to Pebble, and its first read waits for that write.
func (tx *Tx) waitEarlier() {
	if w := tx.wait; w != nil {
		tx.wait = nil
		w()
	}
}

// Set writes key = value in the frame's batch.
func (tx *Tx) Set(key, value []byte) error { return tx.batch.Set(key, value, nil) }

// Delete deletes key in the frame's batch.
func (tx *Tx) Delete(key []byte) error { return tx.batch.Delete(key, nil) }

// DeleteRange deletes [start, end) in the frame's batch.
func (tx *Tx) DeleteRange(start, end []byte) error { return tx.batch.DeleteRange(start, end, nil) }

// Scratch returns an empty slice with capacity n, carved from memory the
// applier reuses from one frame to the next: for building the keys and
// values passed to Set, Delete and Get, which copy them. Nothing may keep a
// scratch slice (or a slice of it) once the record's Apply returns.
// Appending beyond n reallocates and is safe.
func (tx *Tx) Scratch(n int) []byte {
	if cap(tx.arena)-len(tx.arena) < n {
		// A fresh chunk: slices of the old one stay valid until the frame
		// ends (the old chunk is then dropped, not reused).
		tx.arena = make([]byte, 0, max(2*cap(tx.arena), n, 4096))
	}
	l := len(tx.arena)
	tx.arena = tx.arena[:l+n]
	return tx.arena[l : l : l+n]
}

// reuseArena empties a frame's scratch memory for the next frame, or drops
// it when a large frame grew it beyond what is worth keeping.
func reuseArena(a []byte) []byte {
	if cap(a) > 1<<20 {
		return nil
	}
	return a[:0]
}

// AfterCommit runs fn after the frame is durable, in apply order: on the
// standalone engine's acknowledging goroutine, on a replica after the
// batch's commit. Use it to publish in-memory state. fn may take a lock
// that apply functions hold (even while they wait at a read for earlier
// frames): the pipeline never makes stage B wait for the acknowledger.
// It must not wait for a later frame.
func (tx *Tx) AfterCommit(fn func()) { tx.after = append(tx.after, fn) }

// metaAppliedKey is where a shard's applied index and time live:
//
//	key   = shard | TableMeta | "applied"
//	value = index (8 B BE) | time (8 B BE, int64 bits)
func metaAppliedKey(shard uint32) []byte {
	return append(keys.Prefix(shard, keys.TableMeta), "applied"...)
}

func encodeApplied(index uint64, t int64) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), index)
	return binary.BigEndian.AppendUint64(v, uint64(t))
}

func decodeApplied(v []byte) (uint64, int64, error) {
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("%w: applied index value of %d bytes", wal.ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), int64(binary.BigEndian.Uint64(v[8:])), nil
}

// logKey is where a frame is kept:
//
//	key   = shard | TableLog | index (8 B BE)
//	value = the encoded frame (wal format)
func logKey(shard uint32, index uint64) []byte {
	return keys.AppendUint64(keys.Prefix(shard, keys.TableLog), index)
}

// readApplied returns a shard's applied index and time from r.
func readApplied(r pebble.Reader, shard uint32) (uint64, int64, error) {
	v, c, err := r.Get(metaAppliedKey(shard))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	return decodeApplied(v)
}

// applier turns frames into Pebble writes. It is the only code that mutates
// state. It owns no goroutines: callers serialize calls to applyFrame.
type applier struct {
	reg       *applierRegistry
	shard     uint32
	placement Placement
	retention int  // frames kept in the log table; <= 0 keeps none
	gaps      bool // indexes may skip (Raft entries that carry no frame)
	// encoded holds the last deduplicated frame's encoded results (kept or
	// new), so that ShardApplier does not encode them again; nil otherwise.
	encoded []byte

	// Protected by the caller's serialization (one applying goroutine).
	waitPrev func() // set by the standalone pipeline for the next applyFrame (see Tx.waitEarlier)
	index    uint64
	time     int64
	tx       Tx
}

// mayRead reports whether any record in f may read (KindSpec.Reads).
func (a *applier) mayRead(f *wal.Frame) bool {
	reg := a.reg.load()
	for i := range f.Records {
		if k := reg.kinds[f.Records[i].Kind]; k != nil && k.Reads {
			return true
		}
	}
	return false
}

// applyFrame applies f as log index `index` into b and returns the batch
// the caller commits: b itself or, when lazy is set and a record read, a new
// indexed batch holding b's writes (b is then closed). lazy (standalone
// only) lets records read although b has no index; a replica's batch, which
// may carry earlier frames and belongs to its caller, is indexed up front
// instead (ShardApplier.NewBatch). encoded is f's wire encoding, stored in
// the log table when retention > 0 (it may be nil otherwise). results
// receives one Result per record. The returned hooks must run, in order,
// after the batch is durable. A non-nil error is fatal: the returned batch
// must be discarded and the engine stopped.
func (a *applier) applyFrame(b *pebble.Batch, lazy *pebble.DB, index uint64, f *wal.Frame, encoded []byte, results []wal.Result) (*pebble.Batch, []func(), error) {
	if index != a.index+1 && !(a.gaps && index > a.index) {
		return b, nil, fmt.Errorf("db: frame index %d does not follow applied index %d", index, a.index)
	}
	t := f.Time
	if t < a.time {
		t = a.time
	}
	reg := a.reg.load()
	tx := &a.tx
	*tx = Tx{Index: index, Time: t, Shard: a.shard, Placement: a.placement,
		batch: b, indexed: b.Indexed() || lazy != nil, wait: a.waitPrev, after: tx.after[:0], arena: reuseArena(tx.arena)}
	if !b.Indexed() {
		tx.lazy = lazy
	}
	dedup := a.gaps && f.Origin.ID != 0
	a.encoded = nil
	if dedup {
		kept, seen, err := a.dedupSeen(b, f.Origin)
		if err != nil {
			return tx.batch, nil, err
		}
		if seen {
			// A retry of a frame already applied: answer as the first time.
			rs, derr := decodeResults(reg, kept)
			if derr != nil || len(rs) != len(results) {
				return tx.batch, nil, fmt.Errorf("db: kept results of origin %d/%d: %w", f.Origin.ID, f.Origin.Seq, wal.ErrCorrupt)
			}
			for i := range rs {
				rs[i].Index = index
			}
			copy(results, rs)
			a.encoded = kept
			return tx.batch, nil, b.Set(metaAppliedKey(a.shard), encodeApplied(index, t), nil)
		}
	}
	for i := range f.Records {
		rec := f.Records[i]
		spec := reg.kinds[rec.Kind]
		if spec == nil {
			results[i] = wal.Result{Index: index, Err: fmt.Errorf("%w: %d", ErrUnknownKind, rec.Kind)}
			continue
		}
		if a.gaps {
			// A replicated shard applies only what it owns.
			shard := keys.CatalogShard
			var rerr error
			if spec.Route != nil {
				shard, rerr = spec.Route(a.placement, rec.Body)
			}
			if rerr == nil && shard != a.shard {
				rerr = fmt.Errorf("%w: %s record for shard %d on shard %d", ErrWrongShard, spec.Name, shard, a.shard)
			}
			if rerr != nil {
				results[i] = wal.Result{Index: index, Err: rerr}
				continue
			}
		}
		r, err := spec.Apply(tx, rec)
		if err != nil {
			return tx.batch, nil, fmt.Errorf("db: applying %s record at index %d: %w", spec.Name, index, err)
		}
		r.Index = index
		results[i] = r
	}
	b = tx.batch // a read may have moved the frame into an indexed batch
	if a.retention > 0 {
		if err := b.Set(logKey(a.shard, index), encoded, nil); err != nil {
			return tx.batch, nil, err
		}
		// Truncate the log every 64 frames, deterministically by index.
		if index%64 == 0 && index > uint64(a.retention) {
			if err := b.DeleteRange(logKey(a.shard, 0), logKey(a.shard, index-uint64(a.retention)+1), nil); err != nil {
				return tx.batch, nil, err
			}
		}
	}
	if dedup {
		a.encoded = encodeResults(reg, results)
		if err := a.dedupKeep(b, index, t, f.Origin, a.encoded); err != nil {
			return tx.batch, nil, err
		}
	}
	if err := b.Set(metaAppliedKey(a.shard), encodeApplied(index, t), nil); err != nil {
		return tx.batch, nil, err
	}
	return tx.batch, tx.after, nil
}

// committed advances the applier after the batch holding the frame last
// passed to applyFrame is durable.
func (a *applier) committed() {
	a.index, a.time = a.tx.Index, a.tx.Time
}
