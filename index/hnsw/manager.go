package hnsw

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/wal"
)

func (m *Manager) propose(ctx context.Context, kind wal.Kind, body []byte) (wal.Result, error) {
	return m.d.Propose(ctx, wal.Record{Kind: kind, Body: body})
}

// Create creates a collection (idempotent for the same config).
func (m *Manager) Create(ctx context.Context, c Config) error {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	_, err := m.propose(ctx, KindCreate, encodeConfig(c))
	return err
}

func (m *Manager) get(name string) (*coll, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := m.colls[name]
	if c == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	return c, nil
}

// Await makes collection name known to this replica if it exists: on a
// replica that has not seen it yet, it waits for a read index of the
// collection's shard (nothing when the collection is known, or on a
// standalone store). Call it before TxUpsert or TxDelete, which cannot
// wait, on a replica; Upsert, Delete, Drop, Compact and Search do it
// themselves. ErrNoCollection if there is no such collection.
func (m *Manager) Await(ctx context.Context, name string) error {
	_, err := m.getFresh(ctx, name)
	return err
}

// getFresh is get for calls that can wait: on a replica that has not seen
// the collection yet, it waits for a read index of the collection's shard
// and looks again, so a collection created through another node is found
// once its creation was acknowledged.
func (m *Manager) getFresh(ctx context.Context, name string) (*coll, error) {
	c, err := m.get(name)
	if err != nil && errors.Is(err, ErrNoCollection) && m.d.Replicated() {
		if berr := m.d.ReadBarrier(ctx, m.d.Placement().ShardFor(name)); berr != nil {
			return nil, berr
		}
		c, err = m.get(name)
	}
	return c, err
}

// Vector is a vector to insert.
type Vector struct {
	ID     uint64
	Values []float32
	Tags   []string
}

// Upsert inserts vectors, replacing any with the same id, in one record (all
// or none). Once the collection holds TrainSize vectors, the quantizer is
// trained on the first TrainSize of them (by id) and the graph built.
func (m *Manager) Upsert(ctx context.Context, name string, vs []Vector) error {
	c, err := m.getFresh(ctx, name)
	if err != nil {
		return err
	}
	rec, err := insertRecord(c.cfg, name, vs)
	if err != nil {
		return err
	}
	if _, err := m.d.Propose(ctx, rec); err != nil {
		return err
	}
	return m.maybeTrain(ctx, name)
}

// insertRecord validates vs for a collection of cfg and encodes a
// KindInsert record.
func insertRecord(cfg Config, name string, vs []Vector) (wal.Record, error) {
	if len(vs) == 0 || len(vs) > MaxBatch {
		return wal.Record{}, fmt.Errorf("%w: batch of %d", ErrInvalid, len(vs))
	}
	e := codec.Enc(nil).S(name).U(uint64(cfg.Dim)).U(uint64(len(vs)))
	for i, v := range vs {
		if _, err := prepare(cfg.Dim, cfg.Metric, v.Values); err != nil {
			return wal.Record{}, fmt.Errorf("vector %d (id %d): %w", i, v.ID, err)
		}
		if len(v.Tags) > MaxTags {
			return wal.Record{}, fmt.Errorf("%w: %d tags", ErrInvalid, len(v.Tags))
		}
		raw := make([]byte, 0, 4*len(v.Values))
		for _, x := range v.Values {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
		}
		tags := make([][]byte, len(v.Tags))
		for j, t := range v.Tags {
			if t == "" || len(t) > MaxTagSize {
				return wal.Record{}, fmt.Errorf("%w: tag of %d bytes", ErrInvalid, len(t))
			}
			tags[j] = []byte(t)
		}
		e = e.U64(v.ID).B(raw).List(tags)
	}
	return wal.Record{Kind: KindInsert, Body: e}, nil
}

// maybeTrain trains the quantizer once the collection is big enough: the
// proposer reads the sample and trains; the parameters travel in a train
// record, so every replica builds the same graph.
func (m *Manager) maybeTrain(ctx context.Context, name string) error {
	m.mu.RLock()
	c := m.colls[name]
	need := c != nil && c.g == nil && c.count >= c.cfg.TrainSize
	m.mu.RUnlock()
	if !need {
		return nil
	}
	prefix := ckey(c.shard, TableVec, name, nil)
	it, err := m.d.Pebble().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	var sample [][]float32
	for ok := it.First(); ok && len(sample) < c.cfg.TrainSize; ok = it.Next() {
		if v, _, ok := decodeVec(it.Value(), c.cfg.Dim); ok {
			sample = append(sample, v)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	q, err := quant.Train(sample, quant.Options{})
	if err != nil {
		return err
	}
	qb, _ := q.MarshalBinary()
	_, err = m.propose(ctx, KindTrain, codec.Enc(nil).S(name).B(qb))
	return err
}

// Delete removes vectors by id (absent ids are ignored); it returns how
// many it removed.
func (m *Manager) Delete(ctx context.Context, name string, ids []uint64) (int, error) {
	if _, err := m.getFresh(ctx, name); err != nil {
		return 0, err
	}
	rec, err := deleteRecord(name, ids)
	if err != nil {
		return 0, err
	}
	res, err := m.d.Propose(ctx, rec)
	return int(res.N), err
}

func deleteRecord(name string, ids []uint64) (wal.Record, error) {
	if len(ids) == 0 || len(ids) > MaxBatch {
		return wal.Record{}, fmt.Errorf("%w: %d ids", ErrInvalid, len(ids))
	}
	e := codec.Enc(nil).S(name).U(uint64(len(ids)))
	for _, id := range ids {
		e = e.U64(id)
	}
	return wal.Record{Kind: KindDelete, Body: e}, nil
}

// Stats describes a collection.
type Stats struct {
	Config  Config `json:"config"`
	Vectors int    `json:"vectors"`
	Trained bool   `json:"trained"`
	// Search is the distribution of this node's Search latency on the
	// collection since the Manager was attached (one sample per search
	// that answered, from after its checks to its hits): Quantile(0.99).
	Search histo.Snapshot `json:"search"`
}

// Stats returns a collection's config, size and search latency.
func (m *Manager) Stats(name string) (Stats, error) {
	m.mu.RLock()
	c := m.colls[name]
	if c == nil {
		m.mu.RUnlock()
		return Stats{}, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	st := Stats{Config: c.cfg, Vectors: c.count, Trained: c.g != nil}
	m.mu.RUnlock()
	m.lat.RLock()
	if h := m.lat.m[name]; h != nil {
		h.SnapshotInto(&st.Search)
	}
	m.lat.RUnlock()
	return st, nil
}

// searchLatency returns the search histogram of collection name, creating
// it on first use.
func (m *Manager) searchLatency(name string) *histo.Histogram {
	m.lat.RLock()
	h := m.lat.m[name]
	m.lat.RUnlock()
	if h != nil {
		return h
	}
	m.lat.Lock()
	defer m.lat.Unlock()
	if h = m.lat.m[name]; h == nil {
		h = new(histo.Histogram)
		m.lat.m[name] = h
	}
	return h
}

// Collections lists the collection names, sorted.
func (m *Manager) Collections() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.colls))
	for n := range m.colls {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// graphBytes is the canonical encoding of a collection's graph (tests).
func (m *Manager) graphBytes(name string) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if c := m.colls[name]; c != nil && c.g != nil {
		return c.g.Marshal()
	}
	return nil
}

// Compact compacts the collection's tables (vectors, graph nodes, codes,
// tags) into the LSM's last level (db.DB.Compact). Search reads a stored
// vector for every candidate it re-ranks; after a bulk load those are
// spread over tables in several levels, each a probe per read. Once
// compacted a read probes one table: on Fashion-MNIST (bench/vecbench)
// search ran faster by about a tenth (see the package doc). It changes no
// data; `flowctl vec import` calls it when the import ends.
func (m *Manager) Compact(ctx context.Context, name string) error {
	c, err := m.getFresh(ctx, name)
	if err != nil {
		return err
	}
	for _, table := range []byte{TableVec, TableNode, TableCode, TableTag} {
		prefix := ckey(c.shard, table, name, nil)
		if err := m.d.Compact(ctx, prefix, keys.PrefixEnd(prefix)); err != nil {
			return err
		}
	}
	return nil
}

// Drop deletes a collection and everything in it.
func (m *Manager) Drop(ctx context.Context, name string) error {
	if _, err := m.getFresh(ctx, name); err != nil {
		return err
	}
	_, err := m.propose(ctx, KindDrop, codec.Enc(nil).S(name))
	if err == nil {
		m.lat.Lock()
		delete(m.lat.m, name) // a collection created again starts afresh
		m.lat.Unlock()
	}
	return err
}

// Get returns the stored vector (normalized under cosine) and tags of id.
func (m *Manager) Get(name string, id uint64) (Vector, error) {
	c, err := m.get(name)
	if err != nil {
		return Vector{}, err
	}
	val, cl, err := m.d.Pebble().Get(ckey(c.shard, TableVec, name, be64(id)))
	if errors.Is(err, pebble.ErrNotFound) {
		return Vector{}, fmt.Errorf("%w: vector %d in %q", ErrNotFound, id, name)
	}
	if err != nil {
		return Vector{}, err
	}
	defer cl.Close()
	v, tags, ok := decodeVec(val, c.cfg.Dim)
	if !ok {
		return Vector{}, fmt.Errorf("%w: vector %d of %q", ErrCorrupt, id, name)
	}
	return Vector{ID: id, Values: v, Tags: tags}, nil
}
