package hnsw

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/quant"
)

// reloadShard rebuilds the collections of shard after a Raft snapshot
// replaced its keys (db.Machine.Reload; every shard's apply is stopped).
func (m *Manager) reloadShard(shard uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, c := range m.colls {
		if c.shard == shard {
			delete(m.colls, name)
		}
	}
	return m.loadShard(shard)
}

// loadShard loads the collections of one shard.
func (m *Manager) loadShard(shard uint32) error {
	p := m.d.Pebble()
	{
		lo, hi := keys.TableRange(shard, TableDef)
		it, err := p.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			cfg, q, entry, err := decodeDef(it.Value())
			if err != nil {
				it.Close()
				return err
			}
			c := &coll{cfg: cfg, shard: shard}
			if q != nil || cfg.Float {
				if q != nil {
					c.qb, _ = q.MarshalBinary()
				}
				if c.g, err = m.loadGraph(p, c, q, entry); err != nil {
					it.Close()
					return err
				}
				c.coded = uint32(c.g.Slots())

				c.count = c.g.Len()
			} else {
				c.count, err = countPrefix(p, ckey(shard, TableVec, cfg.Name, nil))
				if err != nil {
					it.Close()
					return err
				}
			}
			if err := loadTags(p, c); err != nil {
				it.Close()
				return err
			}
			m.colls[cfg.Name] = c
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// loadTags rebuilds the tag bitmaps from the tag index.
func loadTags(r pebble.Reader, c *coll) error {
	prefix := ckey(c.shard, TableTag, c.cfg.Name, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) < 1 || len(k) != 1+int(k[0])+8 {
			it.Close()
			return fmt.Errorf("%w: tag entry of %q", ErrCorrupt, c.cfg.Name)
		}
		c.tag(string(k[1 : 1+k[0]])).Add(binary.BigEndian.Uint64(k[1+k[0]:]))
	}
	return it.Close()
}

func countPrefix(r pebble.Reader, prefix []byte) (int, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// loadGraph reads the node and code tables, in slot order; with
// quantization off (nil q) the vectors come from the vector table instead
// of codes.
func (m *Manager) loadGraph(r pebble.Reader, c *coll, q *quant.Quantizer, entry int32) (*Graph, error) {
	read := func(table byte) ([][]byte, error) {
		prefix := ckey(c.shard, table, c.cfg.Name, nil)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		if err != nil {
			return nil, err
		}
		var out [][]byte
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()[len(prefix):]
			if len(k) != 4 {
				it.Close()
				return nil, fmt.Errorf("%w: slot key of %q", ErrCorrupt, c.cfg.Name)
			}
			s := int(binary.BigEndian.Uint32(k))
			if s < len(out) || s > 1<<31 {
				it.Close()
				return nil, fmt.Errorf("%w: slot %d of %q", ErrCorrupt, s, c.cfg.Name)
			}
			for len(out) < s {
				out = append(out, nil)
			}
			out = append(out, slices.Clone(it.Value()))
		}
		return out, it.Close()
	}
	nodes, err := read(TableNode)
	if err != nil {
		return nil, err
	}
	var codes [][]byte
	if q != nil {
		codes, err = read(TableCode)
	} else {
		codes, err = m.liveVectors(r, c, nodes)
	}
	if err != nil {
		return nil, err
	}
	return Restore(c.cfg.params(), q, entry, nodes, codes)
}

// liveVectors returns, per slot, the stored float32 vector (4·Dim bytes)
// of each live node: the vector table read in one pass, matched to slots
// by id. Restore checks what is missing.
func (m *Manager) liveVectors(r pebble.Reader, c *coll, nodes [][]byte) ([][]byte, error) {
	slotOf := make(map[uint64]int, len(nodes))
	for s, b := range nodes {
		if len(b) >= 10 && b[9] == 0 {
			slotOf[binary.BigEndian.Uint64(b)] = s
		}
	}
	out := make([][]byte, len(nodes))
	prefix := ckey(c.shard, TableVec, c.cfg.Name, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	width := 4 * c.cfg.Dim
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) != 8 || len(it.Value()) < width {
			it.Close()
			return nil, fmt.Errorf("%w: vector entry of %q", ErrCorrupt, c.cfg.Name)
		}
		if s, ok := slotOf[binary.BigEndian.Uint64(k)]; ok {
			out[s] = slices.Clone(it.Value()[:width])
		}
	}
	return out, it.Close()
}
