package hnsw

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/wal"
)

// persist writes the graph nodes changed by the current record, their
// codes (new nodes) and the definition (entry point).
// REQUIRES: m.mu held for writing.
func (m *Manager) persist(tx *db.Tx, c *coll) error {
	if c.g != nil {
		for _, s := range c.g.TakeDirty() {
			nb := c.g.EncodeNode(s)
			if err := tx.Set(ckey(c.shard, TableNode, c.cfg.Name, be32(s)), nb); err != nil {
				return err
			}
			if !c.g.Quantized() {
				continue // the vector table holds its vector
			}
			ck := ckey(c.shard, TableCode, c.cfg.Name, be32(s))
			if nb[9] == 1 { // deleted: its code goes
				if err := tx.Delete(ck); err != nil {
					return err
				}
				continue
			}
			if s < c.coded {
				continue // its code is stored; only its links changed
			}
			if err := tx.Set(ck, c.g.StoredCode(s)); err != nil {
				return err
			}
		}
		c.coded = uint32(c.g.Slots())
	}
	return tx.Set(ckey(c.shard, TableDef, c.cfg.Name, nil), encodeDef(c))
}

func (m *Manager) applyCreate(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	cfg := decodeConfig(d)
	if !d.Done() || cfg.validate() != nil {
		return db.Reject(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.colls[cfg.Name]; c != nil {
		if c.cfg != cfg {
			return db.Reject(fmt.Errorf("%w: %q", ErrExists, cfg.Name))
		}
		return wal.Result{}, nil
	}
	c := &coll{cfg: cfg, shard: tx.Placement.ShardFor(cfg.Name)}
	if cfg.Float {
		g, err := NewGraph(cfg.params(), nil)
		if err != nil {
			return db.Reject(err)
		}
		c.g = g
	}
	if err := m.persist(tx, c); err != nil {
		return wal.Result{}, err
	}
	m.colls[cfg.Name] = c
	return wal.Result{N: 1}, nil
}

func (m *Manager) applyInsert(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	name, items, ok := decodeInsert(rec.Body)
	if !ok {
		return db.Reject(errBadRecord)
	}
	defer m.lock(tx)()
	c, err := m.collLocked(name)
	if err != nil {
		return db.Reject(err)
	}
	// Validate every vector before changing anything: a batch applies whole
	// or not at all.
	prepared := make([][]float32, len(items))
	for i, it := range items {
		v, err := prepare(c.cfg.Dim, c.cfg.Metric, it.v)
		if err != nil {
			return db.Reject(fmt.Errorf("vector %d (id %d): %w", i, it.id, err))
		}
		prepared[i] = v
	}
	// Inside a transaction the changes wait until every operation passed
	// (a graph insert cannot be taken back cheaply).
	return tx.Defer(func() (wal.Result, error) { return m.insert(tx, c, name, items, prepared) })
}

// insert writes validated vectors and links them into the graph.
// REQUIRES: m.mu held for writing.
func (m *Manager) insert(tx *db.Tx, c *coll, name string, items []insItem, prepared [][]float32) (wal.Result, error) {
	for i, it := range items {
		vk := ckey(c.shard, TableVec, name, be64(it.id))
		old, cl, err := tx.Get(vk)
		var oldTags []string
		switch {
		case err == nil: // a replacement: the count is unchanged
			_, oldTags, _ = decodeVec(old, c.cfg.Dim)
			cl.Close()
		case errors.Is(err, pebble.ErrNotFound):
			c.count++
		default:
			return wal.Result{}, err
		}
		if err := tx.Set(vk, encodeVec(prepared[i], it.tags)); err != nil {
			return wal.Result{}, err
		}
		if err := c.setTags(tx, it.id, oldTags, it.tags); err != nil {
			return wal.Result{}, err
		}
	}
	if c.g != nil {
		ids := make([]uint64, len(items))
		for i, it := range items {
			ids[i] = it.id
		}
		if err := c.g.InsertBatch(ids, prepared); err != nil {
			return wal.Result{}, err
		}
	}
	return wal.Result{N: uint64(len(items))}, m.persist(tx, c)
}

func (m *Manager) applyDelete(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	name, n := d.S(MaxNameSize), d.U()
	if !d.OK || n == 0 || n > MaxBatch || n > uint64(len(d.P)) {
		return db.Reject(errBadRecord)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.U64()
	}
	if !d.Done() {
		return db.Reject(errBadRecord)
	}
	defer m.lock(tx)()
	c, err := m.collLocked(name)
	if err != nil {
		return db.Reject(err)
	}
	return tx.Defer(func() (wal.Result, error) { return m.delete(tx, c, name, ids) })
}

// delete removes vectors by id (absent ones are skipped).
// REQUIRES: m.mu held for writing.
func (m *Manager) delete(tx *db.Tx, c *coll, name string, ids []uint64) (wal.Result, error) {
	var done uint64
	for _, id := range ids {
		vk := ckey(c.shard, TableVec, name, be64(id))
		old, cl, err := tx.Get(vk)
		if errors.Is(err, pebble.ErrNotFound) {
			continue // absent: nothing to delete
		}
		if err != nil {
			return wal.Result{}, err
		}
		_, oldTags, _ := decodeVec(old, c.cfg.Dim)
		cl.Close()
		if err := tx.Delete(vk); err != nil {
			return wal.Result{}, err
		}
		if err := c.setTags(tx, id, oldTags, nil); err != nil {
			return wal.Result{}, err
		}
		c.count--
		done++
		if c.g != nil {
			if err := c.g.Delete(id); err != nil {
				return wal.Result{}, err
			}
		}
	}
	return wal.Result{N: done}, m.persist(tx, c)
}

func (m *Manager) applyTrain(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	name, qb := d.S(MaxNameSize), d.B(1<<20)
	if !d.Done() {
		return db.Reject(errBadRecord)
	}
	q, err := quant.Unmarshal(qb)
	if err != nil {
		return db.Reject(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.collLocked(name)
	if err != nil {
		return db.Reject(err)
	}
	if c.g != nil {
		return wal.Result{}, nil // trained already: the first train record wins
	}
	if q.Dim() != c.cfg.Dim || c.cfg.Float {
		return db.Reject(errBadRecord)
	}
	g, err := NewGraph(c.cfg.params(), q)
	if err != nil {
		return db.Reject(err)
	}
	// Build from the stored vectors in id order.
	prefix := ckey(c.shard, TableVec, name, nil)
	it, err := tx.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return wal.Result{}, err
	}
	var ids []uint64
	var vs [][]float32
	for ok := it.First(); ok; ok = it.Next() {
		id := binary.BigEndian.Uint64(it.Key()[len(prefix):])
		v, _, ok := decodeVec(it.Value(), c.cfg.Dim)
		if !ok {
			it.Close()
			return wal.Result{}, fmt.Errorf("%w: vector %d of %q", ErrCorrupt, id, name)
		}
		ids, vs = append(ids, id), append(vs, v)
	}
	if err := it.Close(); err != nil {
		return wal.Result{}, err
	}
	if err := g.InsertBatch(ids, vs); err != nil {
		return wal.Result{}, err
	}
	c.g, c.qb = g, qb
	return wal.Result{N: 1}, m.persist(tx, c)
}

func (m *Manager) applyDrop(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	name := d.S(MaxNameSize)
	if !d.Done() {
		return db.Reject(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.collLocked(name)
	if err != nil {
		return db.Reject(err)
	}
	for _, table := range []byte{TableDef, TableVec, TableNode, TableCode, TableTag} {
		prefix := ckey(c.shard, table, name, nil)
		if table == TableDef {
			if err := tx.Delete(prefix); err != nil {
				return wal.Result{}, err
			}
			continue
		}
		if err := tx.DeleteRange(prefix, keys.PrefixEnd(prefix)); err != nil {
			return wal.Result{}, err
		}
	}
	delete(m.colls, name)
	return wal.Result{N: 1}, nil
}

// collLocked returns the collection called name, or ErrNoCollection.
// REQUIRES: m.mu held.
func (m *Manager) collLocked(name string) (*coll, error) {
	if c := m.colls[name]; c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
}
