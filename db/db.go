package db

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// DB is an open flowdb store. All methods are safe for concurrent use.
type DB struct {
	opts      Options
	dir       string
	pdb       *pebble.DB
	lock      *pebble.Lock
	batcher   *wal.Batcher
	reg       applierRegistry
	placement Placement

	// closeMu is read-held by every call while it enters the engine (a read,
	// a Submit); Close write-holds it after setting closed, so it waits for
	// those calls and no new one gets in.
	closeMu sync.RWMutex
	closed  atomic.Bool
	// fatal holds the first fatal error; once set no write is acknowledged.
	fatal atomic.Pointer[error]

	commitDone chan struct{}
	reaperStop chan struct{}
	reaperDone chan struct{}

	// applier and sorter are owned by the commit goroutine (stage A).
	applier applier
	sorter  batchSorter
	// vis tracks the last frame stage B has made visible in Pebble.
	vis     visibility
	applied atomic.Uint64 // last durable log index, for readers

	cursors struct {
		sync.Mutex
		open map[*Cursor]struct{}
	}

	m engineMetrics

	// Replicated stores only (Options.Replicator).
	repl    *replicaState
	applyMu sync.Mutex // serializes every shard's apply (ShardApplier)
}

// visibility tracks the last frame stage B has made visible in Pebble.
type visibility struct {
	sync.Mutex
	cond  *sync.Cond
	index uint64 // protected by the mutex
}

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts *Options) (*DB, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &DB{opts: o, dir: dir, placement: Placement{DataShards: o.DataShards}}
	d.reg.attach(nil) // install an empty registry
	d.cursors.open = make(map[*Cursor]struct{})

	if o.ErrorIfNotExists || o.ReadOnly {
		if ls, _ := o.FS.List(dir); !slices.Contains(ls, markerName) {
			return nil, fmt.Errorf("%w: %s", ErrNotExist, dir)
		}
	}
	if !o.ReadOnly {
		if err := o.FS.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("db: create %s: %w", dir, err)
		}
	}
	if err := refuseForeign(o.FS, dir); err != nil { // before LOCK is created
		return nil, err
	}
	lock, err := pebble.LockDirectory(dir, o.FS)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLocked, dir, err)
	}
	d.lock = lock
	creating := false
	if !o.ReadOnly {
		if creating, err = prepareDir(o.FS, dir); err != nil {
			lock.Close()
			return nil, err
		}
	}

	po := PebbleOptions(o.CacheSize)
	defer po.Cache.Unref() // Pebble holds its own reference
	po.FS = yieldFS{o.FS}
	if o.noSyncWAL() {
		po.FS = noSyncWALFS{po.FS}
	}
	po.Logger = pebbleLogger{o.Logger}
	po.ReadOnly = o.ReadOnly
	po.Lock = lock
	// Corruption found on a read path surfaces as that read's error (and in
	// Check); Pebble's default would exit the process.
	po.EventListener = &pebble.EventListener{DataCorruption: func(info pebble.DataCorruptionInfo) {
		d.m.corruptions.Add(1)
		o.Logger.Error("flowdb: on-disk corruption", "path", info.Path, "err", info.Details)
	}}
	if o.Pebble != nil {
		o.Pebble(po)
	}
	pdb, err := openPebble(dir, po, o)
	if err != nil {
		lock.Close()
		return nil, err
	}
	d.pdb = pdb

	if err := d.initShardsMeta(); err != nil {
		pdb.Close()
		lock.Close()
		return nil, err
	}
	retention, err := d.initLogRetention()
	if err != nil {
		pdb.Close()
		lock.Close()
		return nil, err
	}
	index, t, err := readApplied(pdb, keys.LocalShard)
	if err != nil {
		pdb.Close()
		lock.Close()
		return nil, fmt.Errorf("db: read applied index: %w", err)
	}
	if creating {
		// Pebble wrote the new store's first WAL in its older chunk format
		// (it creates the WAL before raising the store to
		// FormatMajorVersion), whose recovery can skip a record lost with
		// a page at a block's end and apply the records after it. Frames
		// must go to a WAL in the current format: rotate it now, before
		// the first frame (TestLostWALPageKeepsPrefix).
		if err := pdb.Flush(); err != nil {
			pdb.Close()
			lock.Close()
			return nil, fmt.Errorf("db: rotate the first WAL: %w", err)
		}
		// The store and its configuration are durable: make it a store.
		if err := finishCreate(o.FS, dir); err != nil {
			pdb.Close()
			lock.Close()
			return nil, err
		}
	}
	d.applier = applier{reg: &d.reg, shard: keys.LocalShard, placement: d.placement,
		retention: retention, index: index, time: t}
	d.applied.Store(index)
	if err := errors.Join(d.registerKV(), d.registerTxn()); err != nil {
		pdb.Close()
		lock.Close()
		return nil, err
	}

	d.commitDone = make(chan struct{})
	d.reaperStop = make(chan struct{})
	d.reaperDone = make(chan struct{})
	if o.ReadOnly {
		close(d.commitDone)
		close(d.reaperDone)
		return d, nil
	}
	if o.Replicator != nil {
		// A replica: records go to their shards' Raft groups.
		if err := d.startReplica(); err != nil {
			pdb.Close()
			lock.Close()
			return nil, err
		}
		close(d.commitDone)
		if o.TTLReapInterval > 0 {
			go d.reapLoop()
		} else {
			close(d.reaperDone)
		}
		return d, nil
	}
	d.batcher = wal.NewBatcher(o.Batcher)
	d.vis.cond = sync.NewCond(&d.vis)
	d.vis.index = index
	go d.commitLoop()
	if o.TTLReapInterval > 0 {
		go d.reapLoop()
	} else {
		close(d.reaperDone)
	}
	o.Logger.Debug("flowdb opened", "dir", dir, "applied", index, "durability", o.Durability)
	return d, nil
}

// A store directory holds markerName once its creation completed. Creation
// is two-phase so that a crash while creating never leaves a directory that
// cannot be opened: creatingName is written (synced) before the Pebble store
// is created, and renamed to markerName once the store and its configuration
// are durable. Nothing can have been acknowledged by a store whose creation
// did not complete, so a leftover creatingName means: clear and start over.
const (
	markerName   = "FLOWDB"
	creatingName = "FLOWDB.creating"
)

// ErrForeign is returned by Open for a directory that holds files but is not
// a flowdb store (for example a plain Pebble store). flowdb never touches it.
var ErrForeign = errors.New("db: directory holds files that are not a flowdb store")

// prepareDir readies dir for Open and reports whether a store is being
// created.
func prepareDir(fs vfs.FS, dir string) (bool, error) {
	names, err := fs.List(dir)
	if err != nil {
		return false, err
	}
	switch {
	case slices.Contains(names, markerName):
		return false, nil
	case slices.Contains(names, creatingName):
		for _, n := range names { // an interrupted creation: clear it
			if n != creatingName && n != "LOCK" {
				if err := fs.RemoveAll(fs.PathJoin(dir, n)); err != nil {
					return false, err
				}
			}
		}
		return true, syncDir(fs, dir)
	}
	for _, n := range names {
		if n != "LOCK" {
			return false, fmt.Errorf("%w: %s has %q", ErrForeign, dir, n)
		}
	}
	f, err := fs.Create(fs.PathJoin(dir, creatingName), vfs.WriteCategoryUnspecified)
	if err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	return true, syncDir(fs, dir)
}

// refuseForeign returns ErrForeign for a directory that holds files but
// no store, before Open creates anything in it (its LOCK included): a
// refused directory is left exactly as it was. prepareDir checks again
// under the lock.
func refuseForeign(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil || slices.Contains(names, markerName) || slices.Contains(names, creatingName) {
		return nil
	}
	for _, n := range names {
		if n != "LOCK" {
			return fmt.Errorf("%w: %s has %q", ErrForeign, dir, n)
		}
	}
	return nil
}

// finishCreate turns an interrupted-creation marker into the store marker.
func finishCreate(fs vfs.FS, dir string) error {
	if err := fs.Rename(fs.PathJoin(dir, creatingName), fs.PathJoin(dir, markerName)); err != nil {
		return err
	}
	return syncDir(fs, dir)
}

// writeMarker writes the store marker into dir (used by Backup).
func writeMarker(fs vfs.FS, dir string) error {
	f, err := fs.Create(fs.PathJoin(dir, markerName), vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(fs, dir)
}

func syncDir(fs vfs.FS, dir string) error {
	f, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// dataShardsKey records DataShards so that a store is never reopened with a
// different placement (which would hide its data).
var dataShardsKey = append(keys.Prefix(keys.LocalShard, keys.TableMeta), "data-shards"...)

func (d *DB) initShardsMeta() error {
	v, c, err := d.pdb.Get(dataShardsKey)
	if err == nil {
		defer c.Close()
		if len(v) != 4 {
			return fmt.Errorf("db: %w: data-shards value of %d bytes", wal.ErrCorrupt, len(v))
		}
		n := int(uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]))
		if d.opts.DataShards != n {
			if d.opts.DataShards != 1 { // 1 is also the default: adopt the store's
				return fmt.Errorf("%w: store has %d data shards, Options say %d", ErrInvalidOptions, n, d.opts.DataShards)
			}
			d.opts.DataShards = n
			d.placement = Placement{DataShards: n}
		}
		return nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	if d.opts.ReadOnly {
		return nil
	}
	n := uint32(d.opts.DataShards)
	// Written once at creation, before any record: part of the store's
	// identity, not a state-machine mutation.
	return d.pdb.Set(dataShardsKey, []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, pebble.Sync)
}

// logRetentionKey holds the store's command-log retention (uint32 BE).
var logRetentionKey = append(keys.Prefix(keys.LocalShard, keys.TableMeta), "log-retention"...)

// initLogRetention settles the store's command-log retention (see
// Options.LogRetention). Turning the log off drops the frames it kept, so
// the log never has holes. Like the data-shards marker, this is store
// configuration written at open, not a state-machine mutation.
func (d *DB) initLogRetention() (int, error) {
	stored := 0
	v, c, err := d.pdb.Get(logRetentionKey)
	switch {
	case err == nil:
		if len(v) != 4 {
			c.Close()
			return 0, fmt.Errorf("db: %w: log-retention value of %d bytes", wal.ErrCorrupt, len(v))
		}
		stored = int(binary.BigEndian.Uint32(v))
		c.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return 0, err
	}
	want := d.opts.LogRetention
	switch {
	case want == 0:
		return stored, nil
	case want < 0:
		want = 0
	}
	if want == stored || d.opts.ReadOnly {
		return stored, nil
	}
	b := d.pdb.NewBatch()
	defer b.Close()
	if want == 0 {
		lo, hi := keys.TableRange(keys.LocalShard, keys.TableLog)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return 0, err
		}
	}
	if err := b.Set(logRetentionKey, binary.BigEndian.AppendUint32(nil, uint32(want)), nil); err != nil {
		return 0, err
	}
	return want, b.Commit(pebble.Sync)
}

// memTableSize is a quarter of the cache, between 4 and 64 MiB.
func memTableSize(cache int64) uint64 {
	return uint64(min(max(cache/4, 4<<20), 64<<20))
}

// Dir returns the directory the store was opened in.
func (d *DB) Dir() string { return d.dir }

// FS is the file system the store writes through (Options.FS).
func (d *DB) FS() vfs.FS { return d.opts.FS }

// Pebble returns the underlying Pebble store for reads. Writing to it
// directly breaks flowdb's invariants: every mutation must be a record.
func (d *DB) Pebble() *pebble.DB { return d.pdb }

// Compact rewrites the tables holding keys in [start, end) into the LSM's
// last level, as far down as they go, so that a point read there probes one
// table instead of one per level. It changes no data and writes no
// record: replicas compact on their own. It is worth its write cost after
// a bulk load that is read at random afterwards (a vector collection's
// import, see hnsw.Manager.Compact); Pebble compacts on its own otherwise.
// It blocks until done or ctx ends, and Close waits for it. On a read-only
// store it returns ErrReadOnly.
func (d *DB) Compact(ctx context.Context, start, end []byte) error {
	if d.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.pdb.Compact(ctx, start, end, true); err != nil {
		return fmt.Errorf("db: compact: %w", err)
	}
	return nil
}

// Placement returns how names are placed on data shards.
func (d *DB) Placement() Placement { return d.placement }

// Now returns the proposer clock's time (Options.Now).
func (d *DB) Now() time.Time { return d.opts.Now() }

// Logger returns the store's logger.
func (d *DB) Logger() *slog.Logger { return d.opts.Logger }

// enter admits a call into the engine; leave must follow.
func (d *DB) enter() error {
	d.closeMu.RLock()
	if d.closed.Load() {
		d.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (d *DB) leave() { d.closeMu.RUnlock() }

// Propose submits one record through the commit pipeline and waits until it
// is applied and durable (per Options.Durability). It returns the record's
// result; the error is the record's rejection (result.Err), ErrClosed,
// ErrReadOnly, ErrFatal, or ErrOutcomeUnknown wrapping ctx.Err() when ctx
// ended after submission. State-machine packages call it with records they
// validated.
func (d *DB) Propose(ctx context.Context, rec wal.Record) (wal.Result, error) {
	if err := ctx.Err(); err != nil {
		return wal.Result{}, err
	}
	if d.opts.ReadOnly {
		return wal.Result{}, ErrReadOnly
	}
	var shard uint32
	if d.repl != nil {
		// A replica proposes each record to the shard that owns it.
		var err error
		if shard, err = d.route(rec); err != nil {
			return wal.Result{}, err
		}
	} else if fe := d.fatal.Load(); fe != nil {
		return wal.Result{}, *fe
	}
	if err := d.enter(); err != nil {
		return wal.Result{}, err
	}
	b := d.batcher
	if d.repl != nil {
		b = d.proposer(shard).b // started inside enter: never after Close
	}
	p := wal.NewProposal(rec)
	t0 := time.Now()
	err := b.Submit(p)
	d.leave()
	if err != nil {
		return wal.Result{}, ErrClosed
	}
	if err := p.Wait(ctx); err != nil {
		return wal.Result{}, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	d.m.commit.Since(t0) // answered: applied, rejected or failed (Metrics.Commit)
	return p.Result, p.Result.Err
}

// inflight is a frame on its way through the pipeline: applied into a batch
// (stage A), written to Pebble (stage B), fsynced and acknowledged (acker).
type inflight struct {
	b       *pebble.Batch
	props   []*wal.Proposal
	results []wal.Result
	hooks   []func()
	index   uint64
	start   time.Time
	// Stage timings for Metrics: visibility wait and apply (A), write (B),
	// and the time the acker waited for the fsync.
	waitDur, applyDur, writeDur time.Duration
	bytes                       int
	err                         error // the frame failed before reaching Pebble
}

// pipeDepth bounds the frames between stages A and B (a variable so that
// tests can shrink it).
var pipeDepth = 64

// commitLoop is stage A of the commit pipeline, the single goroutine that
// frames and applies:
//
//	A (this goroutine)   batcher.Next -> applier.applyFrame into a Pebble batch
//	B (writeLoop)        Pebble ApplyNoSyncWait: WAL write + memtable, in order
//	acker (ackLoop)      SyncWait, in order -> publish index, hooks, answer callers
//
// A applies frame N+1 while B writes frame N and the acker waits for older
// fsyncs, so CPU work and fsyncs overlap; every caller is still answered only
// after its frame is durable. A frame whose kinds read state (KindSpec.Reads)
// waits, at its first read, until B has made the previous frame visible, so
// apply always reads everything before it; a frame that reads nothing does
// not wait.
func (d *DB) commitLoop() {
	writes := make(chan *inflight, pipeDepth)
	acks := newAckQueue()
	writerDone := make(chan struct{})
	ackerDone := make(chan struct{})
	go d.writeLoop(writes, acks, writerDone)
	go d.ackLoop(acks, ackerDone)
	defer func() {
		close(writes)
		<-writerDone
		acks.close()
		<-ackerDone
		close(d.commitDone)
	}()
	var (
		props   []*wal.Proposal
		frame   wal.Frame
		enc     []byte
		scratch []byte
		err     error
	)
	encOpts := wal.EncodeOptions{Compression: d.opts.Compression, Threshold: d.opts.CompressionThreshold}
	a := &d.applier
	for {
		props, err = d.batcher.Next(props[:0])
		if len(props) == 0 && err != nil {
			return
		}
		if fe := d.fatal.Load(); fe != nil {
			fl := &inflight{props: slices.Clone(props), results: make([]wal.Result, len(props))}
			clear(props)
			fl.err = *fe
			writes <- fl
			continue
		}
		frame.Records = frame.Records[:0]
		for _, p := range props {
			frame.Records = append(frame.Records, p.Rec)
		}
		reads := a.mayRead(&frame)
		t0 := time.Now()
		fl := &inflight{props: slices.Clone(props), results: make([]wal.Result, len(props)), start: t0}
		clear(props)
		if reads && d.vis.visible() < a.index {
			// This frame may read state the previous frame wrote, which
			// stage B has not made visible yet: its first read waits for
			// it (Tx.Get, Tx.NewIter). A frame that reads nothing (hot-set
			// leases, cached acks) is applied while B writes the previous
			// one.
			prev := a.index
			a.waitPrev = func() {
				w0 := time.Now()
				d.waitVisible(prev)
				fl.waitDur += time.Since(w0)
			}
		}
		t1 := time.Now()
		frame.Time = d.opts.Now().UnixNano()
		if a.retention > 0 {
			enc, scratch, err = wal.AppendFrame(enc[:0], &frame, encOpts, scratch)
			fl.bytes = len(enc)
		}
		if err == nil {
			err = d.applyInto(fl, &frame, enc, reads)
		}
		a.waitPrev = nil
		fl.applyDur = time.Since(t1) - fl.waitDur
		if err != nil {
			d.setFatal(err)
			fl.err = *d.fatal.Load()
		}
		writes <- fl
	}
}

// applyInto applies frame at the next index into a new batch held by fl. A
// non-nil error is fatal.
func (d *DB) applyInto(fl *inflight, f *wal.Frame, enc []byte, reads bool) error {
	a := &d.applier
	// A frame whose kinds may read starts without an index too: most such
	// frames read nothing, and the first read indexes what it wrote so far
	// (Tx.beforeRead).
	var lazy *pebble.DB
	if reads {
		lazy = d.pdb
	}
	b, hooks, err := a.applyFrame(d.pdb.NewBatch(), lazy, a.index+1, f, enc, fl.results)
	if err != nil {
		b.Close()
		return err
	}
	// Keys in order make the memtable inserts cheap (batchSorter).
	b = d.sorter.sort(d.pdb, b)
	// The index is taken: the next frame follows this one whatever B does
	// (if B fails, the engine stops and no later frame is acknowledged).
	a.committed()
	fl.b, fl.index = b, a.index
	if len(hooks) > 0 {
		fl.hooks = slices.Clone(hooks)
	}
	return nil
}

func (d *DB) setFatal(err error) {
	ferr := fmt.Errorf("%w: %v", ErrFatal, err)
	if d.fatal.CompareAndSwap(nil, &ferr) {
		d.opts.Logger.Error("flowdb: commit failed; engine stopped", "err", err)
	}
}

// visible returns the last frame stage B has made visible.
func (v *visibility) visible() uint64 {
	v.Lock()
	defer v.Unlock()
	return v.index
}

// waitVisible blocks until frame index is visible in Pebble (written by B)
// or the engine has failed.
func (d *DB) waitVisible(index uint64) {
	d.vis.Lock()
	for d.vis.index < index && d.fatal.Load() == nil {
		d.vis.cond.Wait()
	}
	d.vis.Unlock()
}

// testWriteHook, set only by tests, runs before stage B writes each batch
// (to widen the window in which stage A applies ahead of it).
var testWriteHook func()

// testSyncHook, set only by tests, runs before the acker waits for each
// frame's fsync (to let stage B run ahead of it).
var testSyncHook func()

// writeLoop is stage B: it hands batches to Pebble in index order without
// waiting for their fsync.
func (d *DB) writeLoop(writes <-chan *inflight, acks *ackQueue, done chan<- struct{}) {
	defer close(done)
	for fl := range writes {
		if fl.err == nil && fl.b != nil {
			if fe := d.fatal.Load(); fe != nil {
				fl.err = *fe
			} else {
				t0 := time.Now()
				if testWriteHook != nil {
					testWriteHook()
				}
				if err := d.writeBatch(fl); err != nil {
					d.setFatal(err)
					fl.err = *d.fatal.Load()
				}
				fl.writeDur = time.Since(t0)
			}
		}
		d.vis.Lock()
		if fl.err == nil {
			d.vis.index = fl.index
		}
		d.vis.cond.Broadcast()
		d.vis.Unlock()
		acks.push(fl) // never blocks: see ackQueue
	}
}

// writeBatch writes fl's batch to Pebble, recovering Pebble's fatal-error
// panic (see pebbleLogger) into an error.
func (d *DB) writeBatch(fl *inflight) (err error) {
	defer func() {
		if r := recover(); r != nil {
			pf, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			err = pf
		}
	}()
	// In NoSync mode the WAL's fsyncs do nothing (noSyncWALFS): the sync
	// that the acker waits for then means "written to the OS".
	return d.pdb.ApplyNoSyncWait(fl.b, pebble.Sync)
}

// ackLoop waits for each frame's fsync, in commit order, then publishes the
// applied index, runs the frame's AfterCommit hooks and answers its callers.
func (d *DB) ackLoop(acks *ackQueue, done chan<- struct{}) {
	defer close(done)
	for {
		fl, ok := acks.pop()
		if !ok {
			return
		}
		err := fl.err
		if fl.b != nil && err != nil {
			fl.b.Close() // never handed to Pebble, or Pebble refused it
			fl.b = nil
		}
		if fl.b != nil {
			if testSyncHook != nil {
				testSyncHook()
			}
			t0 := time.Now()
			serr := fl.b.SyncWait()
			d.m.syncNanos.Add(uint64(time.Since(t0)))
			if serr != nil && err == nil {
				ferr := fmt.Errorf("%w: fsync: %v", ErrFatal, serr)
				d.fatal.CompareAndSwap(nil, &ferr)
				d.opts.Logger.Error("flowdb: fsync failed; engine stopped", "err", serr)
				err = *d.fatal.Load()
			}
			fl.b.Close()
		}
		if err == nil {
			if fe := d.fatal.Load(); fe != nil {
				// An earlier frame's fsync failed: nothing after it is
				// acknowledged, even if its own sync returned.
				err = *fe
			}
		}
		if err != nil {
			for _, p := range fl.props {
				p.Finish(wal.Result{Err: err})
			}
			continue
		}
		d.applied.Store(fl.index)
		for _, h := range fl.hooks {
			h()
		}
		d.m.frames.Add(1)
		d.m.records.Add(uint64(len(fl.props)))
		d.m.frameBytes.Add(uint64(fl.bytes))
		d.m.commitNanos.Add(uint64(time.Since(fl.start)))
		d.m.waitNanos.Add(uint64(fl.waitDur))
		d.m.applyNanos.Add(uint64(fl.applyDur))
		d.m.apply.Record(fl.applyDur)
		d.m.writeNanos.Add(uint64(fl.writeDur))
		for i, p := range fl.props {
			if fl.results[i].Err != nil {
				d.m.rejected.Add(1)
			}
			p.Finish(fl.results[i])
		}
	}
}

// ackQueue hands frames from stage B to the acker. Unlike a channel it
// never blocks B: the acker runs AfterCommit hooks, which may take a lock
// that an apply function holds while it waits at its first read for B
// (the queue's hooks wake waiters under its Manager's lock), so B waiting
// for the acker would close a cycle A -> B -> acker -> A. It needs no bound
// of its own: every frame holds at least one proposal whose caller waits
// for its answer, so the frames in it are at most the calls in flight.
type ackQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	q      []*inflight
	head   int
	closed bool
}

func newAckQueue() *ackQueue {
	a := &ackQueue{}
	a.cond.L = &a.mu
	return a
}

func (a *ackQueue) push(fl *inflight) {
	a.mu.Lock()
	a.q = append(a.q, fl)
	a.mu.Unlock()
	a.cond.Signal()
}

// pop returns the next frame, waiting for one; ok is false once the queue
// is closed and empty.
func (a *ackQueue) pop() (fl *inflight, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.head == len(a.q) {
		if a.closed {
			return nil, false
		}
		a.cond.Wait()
	}
	fl = a.q[a.head]
	a.q[a.head] = nil
	a.head++
	switch {
	case a.head == len(a.q):
		a.q, a.head = a.q[:0], 0
	case a.head >= 256 && 2*a.head >= len(a.q):
		// Never drained while B keeps ahead: move the rest to the front so
		// that the slice does not grow with every frame ever acknowledged.
		n := copy(a.q, a.q[a.head:])
		clear(a.q[n:])
		a.q, a.head = a.q[:n], 0
	}
	return fl, true
}

func (a *ackQueue) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cond.Broadcast()
}

// AppliedIndex returns the log index of the last durable frame.
func (d *DB) AppliedIndex() uint64 { return d.applied.Load() }

// Close stops the engine: new calls get ErrClosed, calls already inside
// finish (mutations already handed to the pipeline are applied and
// answered), open cursors are closed, and Pebble is closed. Close is safe to
// call more than once and concurrently with any other method.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		<-d.commitDone
		return nil
	}
	// Attached machines' background goroutines stop first (their calls now
	// get ErrClosed), before anything they might read is closed.
	machines := d.reg.load().machines
	for i := len(machines) - 1; i >= 0; i-- {
		if stop := machines[i].Stop; stop != nil {
			stop()
		}
	}
	// An empty critical section on purpose: taking closeMu waits for every
	// call still inside the engine (each holds it shared while inside), and
	// closed, set above, keeps new ones out, so nothing needs guarding.
	d.closeMu.Lock()
	//lint:ignore SA2001 the empty critical section waits for calls inside the engine
	d.closeMu.Unlock()
	close(d.reaperStop)
	<-d.reaperDone
	if d.batcher != nil {
		d.batcher.Close()
	}
	if d.repl != nil {
		d.closeReplica()
	}
	<-d.commitDone

	d.cursors.Lock()
	open := make([]*Cursor, 0, len(d.cursors.open))
	for c := range d.cursors.open {
		open = append(open, c)
	}
	d.cursors.Unlock()
	for _, c := range open {
		c.shut(ErrClosed)
	}

	err := d.pdb.Close()
	if lerr := d.lock.Close(); err == nil {
		err = lerr
	}
	return err
}

// pebbleFatal is the panic value of pebbleLogger.Fatalf, recovered by the
// commit loop to stop the engine instead of exiting the process.
type pebbleFatal struct{ msg string }

func (p pebbleFatal) Error() string { return p.msg }

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "src", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "src", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "src", "pebble", "fatal", true)
	panic(pebbleFatal{msg})
}
