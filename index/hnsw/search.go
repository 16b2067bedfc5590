package hnsw

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
)

// Hit is a search result.
type Hit struct {
	ID       uint64   `json:"id"`
	Distance float32  `json:"distance"`
	Tags     []string `json:"tags,omitempty"`
}

// SearchOptions tune Search. Zero fields take the collection's defaults.
type SearchOptions struct {
	// Ef is the candidate list size (default the collection's Ef).
	Ef int
	// Tags, if set, restrict the search to vectors that carry every one
	// of them.
	Tags []string
	// Rerank is how many of the ef candidates, best first by the int8
	// distance, are re-ranked with the float32 vectors read from Pebble
	// (at least k, at most ef). Default 2·k: on Fashion-MNIST re-ranking
	// 2·k, 3·k or all ef candidates gave the same recall@10 to four
	// decimals at ef 16 to 128 (bench/vecbench -rerank). Of these, only
	// the candidates whose exact-distance bounds let them rank are read
	// (see the package doc), each a Pebble read.
	Rerank int
}

// ExactFilterMax is the largest filtered set searched by an exact scan
// (each allowed vector read and compared) rather than through the graph.
const ExactFilterMax = 2048

// Search returns the k nearest vectors to query, nearest first, with
// their exact distances and tags: the graph is traversed on int8 codes
// with max(ef, k) candidates, and the best Rerank of them (default 2·k)
// re-ranked with the float32 vectors stored in Pebble, reading only those
// whose bounds let them rank (Rerank). Before the quantizer is trained the
// search is exact. With a tag filter, a small
// allowed set (at most ExactFilterMax) is scanned exactly; a larger one is
// searched through the graph with ef widened by the filter's selectivity,
// and scanned exactly if that finds fewer than min(k, allowed) vectors. It never returns fewer than min(k, matching
// vectors) results, nor an id twice.
func (m *Manager) Search(ctx context.Context, name string, query []float32, k int, o SearchOptions) ([]Hit, error) {
	c, err := m.get(name)
	if err != nil {
		return nil, err
	}
	if k <= 0 {
		return nil, fmt.Errorf("%w: k %d", ErrInvalid, k)
	}
	qv, err := prepare(c.cfg.Dim, c.cfg.Metric, query)
	if err != nil {
		return nil, err
	}
	ef := o.Ef
	if ef == 0 {
		ef = c.cfg.Ef
	}
	m.mu.RLock()
	g, count := c.g, c.count
	var allowed *roaring64.Bitmap
	for i, t := range o.Tags {
		b := c.tags[t]
		switch {
		case b == nil:
			allowed = roaring64.New()
		case i == 0:
			allowed = b.Clone()
		default:
			allowed.And(b)
		}
		if allowed.IsEmpty() {
			break
		}
	}
	m.mu.RUnlock()
	r := m.d.Pebble()
	prefix := ckey(c.shard, TableVec, name, nil)
	// Candidates are ranked by the exact distance to their stored vector;
	// tags stay raw until the k results are known.
	type ranked struct {
		id   uint64
		d    float32
		tags []byte
	}
	var hits []ranked
	scratch := make([]float32, c.cfg.Dim)
	add := func(id uint64, val []byte) bool {
		if len(val) < 4*c.cfg.Dim {
			return false
		}
		// The value is the iterator's until it moves: keep a copy of the tags.
		hits = append(hits, ranked{id, c.cfg.Metric.Exact(qv, floats(val, scratch)), slices.Clone(val[4*c.cfg.Dim:])})
		return true
	}
	// The search's one iterator over the collection's vectors, opened on
	// first use (an empty filter reads nothing).
	var vit *pebble.Iterator
	vecs := func() (*pebble.Iterator, error) {
		var err error
		if vit == nil {
			vit, err = r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		}
		return vit, err
	}
	defer func() {
		if vit != nil {
			vit.Close()
		}
	}()
	key := slices.Clone(prefix)
	// readOne reads the stored vector of id and ranks it; ok is false if
	// id was deleted since it was picked. The reads of one search share
	// the iterator and its prefix seeks, which skip tables by their bloom
	// filters as a point read does but keep the tables' index blocks
	// between reads. (Plain SeekGE in ascending id order measured slower:
	// its seeks loaded more blocks.)
	readOne := func(id uint64) (float32, bool, error) {
		it, err := vecs()
		if err != nil {
			return 0, false, err
		}
		key = binary.BigEndian.AppendUint64(key[:len(prefix)], id)
		if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
			return 0, false, it.Error()
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return 0, false, err
		}
		if !add(id, val) {
			return 0, false, nil
		}
		return hits[len(hits)-1].d, true, nil
	}
	rankIDs := func(ids []uint64) error {
		for _, id := range ids {
			if _, _, err := readOne(id); err != nil {
				return err
			}
		}
		return nil
	}
	exactOver := func(set *roaring64.Bitmap) error {
		hits = hits[:0]
		return rankIDs(set.ToArray())
	}
	switch {
	case allowed != nil && allowed.IsEmpty():
		return []Hit{}, nil
	case allowed != nil && (g == nil || allowed.GetCardinality() <= ExactFilterMax):
		if err := exactOver(allowed); err != nil {
			return nil, err
		}
	case g == nil:
		it, err := vecs()
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			add(binary.BigEndian.Uint64(it.Key()[len(prefix):]), it.Value())
		}
		if err := it.Error(); err != nil {
			return nil, err
		}
	default:
		width := max(ef, k)
		var allow func(uint64) bool
		if allowed != nil {
			allow = allowed.Contains
			// Widen by the selectivity: about width allowed vectors among
			// the candidates.
			width = min(width*count/max(int(allowed.GetCardinality()), 1)+width, 4*ExactFilterMax)
		}
		take := o.Rerank // int8 distances: re-rank the best
		if take <= 0 {
			take = 2 * k
		}
		take = min(max(take, k), width)
		if !g.Quantized() {
			take = k // exact already: read only the results' tags
		}
		cands, err := g.Search(qv, take, width, allow)
		if err != nil {
			return nil, err
		}
		if _, err := Rerank(cands, k, readOne); err != nil {
			return nil, err
		}
		if allowed != nil && uint64(len(hits)) < min(uint64(k), allowed.GetCardinality()) {
			if err := exactOver(allowed); err != nil { // the graph fell short: scan
				return nil, err
			}
		}
	}
	slices.SortFunc(hits, func(a, b ranked) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	out := make([]Hit, min(k, len(hits)))
	for i := range out {
		d := codec.NewDec(hits[i].tags)
		out[i] = Hit{ID: hits[i].id, Distance: hits[i].d, Tags: d.Strings(MaxTags, MaxTagSize)}
		if !d.Done() {
			return nil, fmt.Errorf("%w: vector %d of %q", ErrCorrupt, hits[i].id, name)
		}
	}
	return out, nil
}

// Rerank computes the exact distances (through exact) of the Graph.Search
// candidates that may be among the k nearest, in ascending order of their
// lower bounds, and returns how many it asked for. A candidate is asked for
// while its lower bound is at most tau, the k-th smallest of the others'
// upper bounds, where a candidate already asked for counts with its exact
// distance (at most the bound it replaces: each read can only lower tau)
// and one that exact reports gone (ok false: deleted since it was picked)
// does not count at all (which may raise tau). Every candidate left has a
// lower bound above tau: k others are nearer than it. A NaN bound is read.
func Rerank(cands []Result, k int, exact func(id uint64) (d float32, ok bool, err error)) (int, error) {
	order := slices.Clone(cands)
	slices.SortStableFunc(order, func(a, b Result) int { return cmp.Compare(a.Lo, b.Lo) }) // NaN first
	inf := float32(math.Inf(1))
	up := make([]float32, len(order))
	for i, c := range order {
		up[i] = c.Hi
		if c.Hi != c.Hi {
			up[i] = inf
		}
	}
	for i, c := range order {
		// c.Lo exceeds the k-th smallest upper value exactly when at least
		// k of them are below it (never for a NaN Lo).
		below := 0
		for _, u := range up {
			if u < c.Lo {
				below++
			}
		}
		if below >= k {
			return i, nil
		}
		d, ok, err := exact(c.ID)
		if err != nil {
			return i + 1, err
		}
		if up[i] = inf; ok {
			up[i] = d
		}
	}
	return len(order), nil
}
