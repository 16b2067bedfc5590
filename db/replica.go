package db

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Replicator carries frames to replicated shards. Package raftsm implements
// it over a Dragonboat NodeHost; a DB opened with Options.Replicator set is a
// replica: it runs no standalone commit pipeline, every record is proposed
// to the shard that owns it (KindSpec.Route), and the shard's state
// machine applies it through a ShardApplier on every replica.
type Replicator interface {
	// Propose replicates one encoded frame on shard and returns the
	// results of its records as applied on this replica (decode them with
	// DB.DecodeResults). It retries while the shard is not ready, within
	// ctx. An error wrapping ErrOutcomeUnknown means the frame may or may
	// not have been applied; a frame carries an Origin, so a retry of the
	// same bytes is applied at most once.
	Propose(ctx context.Context, shard uint32, frame []byte) ([]byte, error)
	// ReadIndex returns once this replica of shard has applied every entry
	// committed before the call (a Raft read index), so that local reads
	// are linearizable.
	ReadIndex(ctx context.Context, shard uint32) error
	// Leads reports whether this replica leads shard, as far as it knows.
	Leads(shard uint32) bool
}

// ErrCrossShard rejects a record whose effects span shards (a key-value
// batch over namespaces placed on different shards) on a replicated store,
// where each shard is its own Raft group.
var ErrCrossShard = errors.New("db: record spans shards")

// ErrWrongShard marks a record applied on a shard that does not own it
// (a proposer that routed it wrongly); it is rejected and changes nothing.
var ErrWrongShard = errors.New("db: record applied on a shard that does not own it")

// RouteByName routes records whose body begins with a length-prefixed name
// (a queue or a collection): the name's data shard.
func RouteByName(p Placement, body []byte) (uint32, error) {
	name, _, ok := codec.LenBytes(body, 1<<16)
	if !ok {
		return 0, fmt.Errorf("%w: no name to route by", ErrBadRecord)
	}
	return p.ShardForBytes(name), nil
}

// RouteCatalog routes records kept on the catalog shard (the registry).
func RouteCatalog(Placement, []byte) (uint32, error) { return keys.CatalogShard, nil }

// route returns the shard rec applies on (KindSpec.Route).
func (d *DB) route(rec wal.Record) (uint32, error) {
	spec := d.reg.load().kinds[rec.Kind]
	if spec == nil {
		return 0, fmt.Errorf("%w: %d", ErrUnknownKind, rec.Kind)
	}
	if spec.Route == nil {
		return keys.CatalogShard, nil
	}
	return spec.Route(d.placement, rec.Body)
}

// Leads reports whether this store should run shard's background
// proposals (timers, expiry, the TTL reaper, pool tending): always on a
// standalone store; on a replica, only while it leads the shard, so that
// replicas do not propose the same work (and call a spawner) each.
func (d *DB) Leads(shard uint32) bool {
	if d.opts.Replicator == nil {
		return true
	}
	return d.opts.Replicator.Leads(shard)
}

// Replicated reports whether the store is a replica (Options.Replicator).
func (d *DB) Replicated() bool { return d.opts.Replicator != nil }

// ReadBarrier makes the reads that follow linearizable on a replicated
// store: it returns once this replica of shard has applied everything
// committed before the call. It does nothing on a standalone store or with
// Options.StaleReads.
func (d *DB) ReadBarrier(ctx context.Context, shard uint32) error {
	if d.opts.Replicator == nil || d.opts.StaleReads {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.opts.Replicator.ReadIndex(ctx, shard)
}

// shardProposer frames one replicated shard's records: a batcher gathers
// concurrent proposals while earlier frames are in flight.
type shardProposer struct {
	shard uint32
	b     *wal.Batcher
	done  chan struct{}
}

// replicaState is the proposer side of a replica.
type replicaState struct {
	origin uint64        // this open's proposer id (random)
	slots  chan struct{} // Options.MaxInflight over all shards
	mu     sync.Mutex
	seq    uint64
	shards map[uint32]*shardProposer
	ctx    context.Context
	cancel context.CancelFunc
}

func (d *DB) startReplica() error {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	r := &replicaState{origin: binary.LittleEndian.Uint64(b[:]) | 1, shards: map[uint32]*shardProposer{},
		slots: make(chan struct{}, d.opts.MaxInflight)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	d.repl = r
	return nil
}

// proposer returns shard's proposer, starting it on first use.
func (d *DB) proposer(shard uint32) *shardProposer {
	r := d.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	sp := r.shards[shard]
	if sp == nil {
		sp = &shardProposer{shard: shard, b: wal.NewBatcher(d.opts.Batcher), done: make(chan struct{})}
		r.shards[shard] = sp
		go d.proposeLoop(sp)
	}
	return sp
}

// proposeLoop frames sp's proposals and proposes each frame, up to
// Options.MaxShardInflight at once (and Options.MaxInflight over all
// shards); every caller is answered with its record's
// result as applied on this replica.
func (d *DB) proposeLoop(sp *shardProposer) {
	defer close(sp.done)
	r := d.repl
	sem := make(chan struct{}, d.opts.MaxShardInflight)
	release := func() { <-r.slots; <-sem }
	var wg sync.WaitGroup
	defer wg.Wait()
	encOpts := wal.EncodeOptions{Compression: d.opts.Compression, Threshold: d.opts.CompressionThreshold}
	var props []*wal.Proposal
	for {
		// Take a slot first: while every slot is in Raft, proposals gather
		// in the batcher and the next frame carries them all.
		sem <- struct{}{}
		r.slots <- struct{}{}
		var err error
		props, err = sp.b.Next(props[:0])
		if len(props) == 0 && err != nil {
			release()
			return
		}
		batch := slices.Clone(props)
		clear(props)
		r.mu.Lock()
		r.seq++
		f := wal.Frame{Origin: wal.Origin{ID: r.origin, Seq: r.seq}, Time: d.opts.Now().UnixNano()}
		r.mu.Unlock()
		for _, p := range batch {
			f.Records = append(f.Records, p.Rec)
		}
		enc, _, err := wal.AppendFrame(nil, &f, encOpts, nil)
		if err != nil {
			for _, p := range batch {
				p.Finish(wal.Result{Err: err})
			}
			release()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { release(); wg.Done() }()
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(r.ctx, d.opts.ProposeTimeout)
			data, err := d.opts.Replicator.Propose(ctx, sp.shard, enc)
			cancel()
			var results []wal.Result
			if err == nil {
				results, err = d.DecodeResults(data)
				if err == nil && len(results) != len(batch) {
					err = fmt.Errorf("%w: %d results for %d records", wal.ErrCorrupt, len(results), len(batch))
				}
			}
			if err != nil {
				for _, p := range batch {
					p.Finish(wal.Result{Err: err})
				}
				return
			}
			d.m.frames.Add(1)
			d.m.records.Add(uint64(len(batch)))
			d.m.frameBytes.Add(uint64(len(enc)))
			d.m.commitNanos.Add(uint64(time.Since(t0)))
			for i, p := range batch {
				if results[i].Err != nil {
					d.m.rejected.Add(1)
				}
				p.Finish(results[i])
			}
		}()
	}
}

// closeReplica stops the shard proposers after answering what they hold.
func (d *DB) closeReplica() {
	r := d.repl
	r.mu.Lock()
	sps := make([]*shardProposer, 0, len(r.shards))
	for _, sp := range r.shards {
		sps = append(sps, sp)
	}
	r.mu.Unlock()
	for _, sp := range sps {
		sp.b.Close()
	}
	// Frames still in Raft get until ProposeTimeout; after Close of the
	// NodeHost they fail at once.
	for _, sp := range sps {
		<-sp.done
	}
	r.cancel()
}

// Results travel from a replica's state machine to the proposer (and are
// kept for deduplicated retries) as bytes: per record uvarint N | bytes Data
// | error classes | error text. The classes are the texts of the sentinel
// errors (the engine's own, then those registered through Machine.Errors,
// in registration order) that the error matches with errors.Is, so that
// the proposer's errors.Is works as on a standalone store.

// resultError is a rejection decoded from a replica's results.
type resultError struct {
	msg     string
	classes []error
}

func (e *resultError) Error() string   { return e.msg }
func (e *resultError) Unwrap() []error { return e.classes }

// engineErrors are the engine's own sentinels a record may be rejected with.
var engineErrors = []error{ErrBadRecord, ErrUnknownKind, ErrWrongShard, ErrCrossShard,
	ErrEmptyKey, ErrKeyTooLarge, ErrNamespaceTooLarge, ErrValueTooLarge, ErrBatchTooLarge,
	ErrEmptyBatch, ErrInvalidTTL, ErrNotFound, wal.ErrCorrupt,
	ErrConditionFailed, ErrTxnTooLarge, ErrEmptyTxn, ErrNotTransactional, ErrIdempotencyKeyReused}

// errorClasses returns the class texts of err.
func errorClasses(reg *registry, err error) [][]byte {
	var out [][]byte
	for _, list := range [][]error{engineErrors, reg.errors} {
		for _, s := range list {
			if errors.Is(err, s) {
				out = append(out, []byte(s.Error()))
			}
		}
	}
	return out
}

// apiErrors are the engine's sentinels a call may fail with that no record
// is rejected with (so results never carry them), which a remote API must
// still carry: above all ErrOutcomeUnknown, which tells a client not to
// assume that a write it did not see confirmed failed.
var apiErrors = []error{ErrOutcomeUnknown, ErrClosed, ErrFatal, ErrReadOnly, ErrInvalidRange, ErrNotExist, ErrLocked, ErrTxnRejected}

// ErrorClasses returns the sentinel errors err matches among those the
// engine carries across the wire: its own (those records are rejected with,
// then those only calls fail with), then those every attached machine
// registered (Machine.Errors), in registration order. A remote API
// sends their texts with an error so that errors.Is works on the other
// side (a sentinel's text is unique: it starts with its package's name).
func (d *DB) ErrorClasses(err error) []error {
	var out []error
	for _, list := range [][]error{engineErrors, apiErrors, d.reg.load().errors} {
		for _, s := range list {
			if errors.Is(err, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// encodeResults encodes the results of one frame's records.
func encodeResults(reg *registry, rs []wal.Result) []byte {
	e := codec.Enc(nil).U(uint64(len(rs)))
	for _, r := range rs {
		e = e.U(r.N).B(r.Data)
		if r.Err == nil {
			e = e.U(0)
			continue
		}
		e = e.U(1).List(errorClasses(reg, r.Err)).S(r.Err.Error())
	}
	return e
}

// DecodeResults decodes the results of one frame's records, as a
// ShardApplier encodes them (ShardApplier.Apply); errors match their
// sentinels with errors.Is. Bytes that do not decode give wal.ErrCorrupt.
func (d *DB) DecodeResults(b []byte) ([]wal.Result, error) { return decodeResults(d.reg.load(), b) }

func decodeResults(reg *registry, b []byte) ([]wal.Result, error) {
	dec := codec.NewDec(b)
	n := dec.U()
	if !dec.OK || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: results", wal.ErrCorrupt)
	}
	out := make([]wal.Result, 0, n)
	for i := uint64(0); i < n; i++ {
		var r wal.Result
		r.N = dec.U()
		if data := dec.B(wal.MaxRecordBody); len(data) > 0 {
			r.Data = slices.Clone(data)
		}
		if failed := dec.U(); failed == 1 {
			classes, msg := dec.List(64, 1<<12), dec.S(1<<16)
			re := &resultError{msg: msg}
			for _, c := range classes {
				if s := sentinel(reg, string(c)); s != nil {
					re.classes = append(re.classes, s)
				}
			}
			r.Err = re
		} else if failed != 0 {
			dec.OK = false
		}
		if !dec.OK {
			return nil, fmt.Errorf("%w: results", wal.ErrCorrupt)
		}
		out = append(out, r)
	}
	if !dec.Done() {
		return nil, fmt.Errorf("%w: results", wal.ErrCorrupt)
	}
	return out, nil
}

func sentinel(reg *registry, class string) error {
	for _, s := range engineErrors {
		if s.Error() == class {
			return s
		}
	}
	for _, s := range reg.errors {
		if s.Error() == class {
			return s
		}
	}
	return nil
}

// Deduplication of retried proposals (replicated shards only). A frame with
// a non-zero Origin is applied once: its results are kept under
//
//	shard | meta | 'o' | origin id (8) | seq (8)  ->  encoded results
//	shard | meta | 'x' | frame time (8) | origin id (8) | seq (8)  ->  (expiry index)
//
// and a later frame with the same Origin changes nothing and answers with
// the kept results. Entries older than DedupWindow of frame time are
// dropped every 64 indexes, deterministically (frame time is the
// proposer's stamp, so every replica drops the same ones).

// DedupWindow is how long, in frame time, a proposal's retry is recognized.
const DedupWindow = 10 * time.Minute

func dedupKey(shard uint32, o wal.Origin) []byte {
	k := append(keys.Prefix(shard, keys.TableMeta), 'o')
	k = binary.BigEndian.AppendUint64(k, o.ID)
	return binary.BigEndian.AppendUint64(k, o.Seq)
}

func dedupExpiryKey(shard uint32, t int64, o wal.Origin) []byte {
	k := append(keys.Prefix(shard, keys.TableMeta), 'x')
	k = keys.AppendInt64(k, t)
	k = binary.BigEndian.AppendUint64(k, o.ID)
	return binary.BigEndian.AppendUint64(k, o.Seq)
}

// dedupSeen returns the kept results of origin, if any.
func (a *applier) dedupSeen(b *pebble.Batch, o wal.Origin) ([]byte, bool, error) {
	v, c, err := b.Get(dedupKey(a.shard, o))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	return slices.Clone(v), true, nil
}

// dedupKeep records origin's results, and every 64 indexes drops entries
// past the window.
func (a *applier) dedupKeep(b *pebble.Batch, index uint64, t int64, o wal.Origin, results []byte) error {
	if err := b.Set(dedupKey(a.shard, o), results, nil); err != nil {
		return err
	}
	if err := b.Set(dedupExpiryKey(a.shard, t, o), nil, nil); err != nil {
		return err
	}
	if index%64 != 0 {
		return nil
	}
	lo := append(keys.Prefix(a.shard, keys.TableMeta), 'x')
	hi := keys.AppendInt64(slices.Clone(lo), t-int64(DedupWindow))
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(lo)+24 {
			continue
		}
		old := wal.Origin{ID: binary.BigEndian.Uint64(k[len(lo)+8:]), Seq: binary.BigEndian.Uint64(k[len(lo)+16:])}
		if err := b.Delete(dedupKey(a.shard, old), nil); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	return b.DeleteRange(lo, hi, nil)
}
