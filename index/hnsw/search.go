package hnsw

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/quant"
)

// Hit is a search result.
type Hit struct {
	ID       uint64   `json:"id"`
	Distance float32  `json:"distance"`
	Tags     []string `json:"tags,omitempty"`
}

// SearchOptions tune Search. Zero fields take the collection's defaults.
type SearchOptions struct {
	// Ef is the candidate list size (default the collection's Ef). A
	// search explores max(Ef, k) candidates, and on a quantized graph
	// ⌈k/4⌉ more (Graph.Beam): int8 distances misorder candidates whose
	// exact distances are close, and without the extra places recall@10
	// at Ef 10 fell 0.006 short of the float32 graph's on Fashion-MNIST
	// under cosine (bench/recallgap).
	Ef int
	// Tags, if set, restrict the search to vectors that carry every one
	// of them.
	Tags []string
	// Rerank is how many of the candidates, best first by the int8
	// estimate, are re-ranked with the float32 vectors read from Pebble
	// (at least k, at most the candidates explored). Default 2·k: on
	// Fashion-MNIST and scikit-learn's digits, re-ranking 2·k, 3·k, 4·k
	// or every candidate gave the same recall@10 at every ef
	// (bench/recallgap): where the int8 graph falls short, the missing
	// neighbors are not among its candidates at all. Of these, only the
	// candidates whose exact-distance bounds let them rank are read (see
	// the package doc), each a Pebble read.
	Rerank int
}

// ExactFilterMax is the largest filtered set searched by an exact scan
// (each allowed vector read and compared) rather than through the graph.
const ExactFilterMax = 2048

// Search returns the k nearest vectors to query, nearest first, with
// their exact distances and tags: the graph is traversed on int8 codes
// with Graph.Beam(ef, k) candidates, and the best Rerank of them (default 2·k)
// re-ranked with the float32 vectors stored in Pebble, reading only those
// whose bounds let them rank (Rerank). Before the quantizer is trained the
// search is exact. With a tag filter, a small allowed set (at most
// ExactFilterMax) is scanned exactly; a larger one is searched through the
// graph with ef widened by the filter's selectivity, and scanned exactly
// if that finds fewer than min(k, allowed) vectors. It never returns fewer
// than min(k, matching vectors) results, nor an id twice.
func (m *Manager) Search(ctx context.Context, name string, query []float32, k int, o SearchOptions) ([]Hit, error) {
	c, err := m.getFresh(ctx, name)
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
	t0 := time.Now() // Stats.Search: from here, after the checks, to the hits
	ef := o.Ef
	if ef == 0 {
		ef = c.cfg.Ef
	}
	g, count, allowed := m.searchView(c, o.Tags)
	if allowed != nil && allowed.IsEmpty() {
		m.searchLatency(name).Since(t0)
		return []Hit{}, nil
	}
	s := newSearcher(m.d, c, qv)
	defer s.close()
	switch {
	case allowed != nil && (g == nil || allowed.GetCardinality() <= ExactFilterMax):
		err = s.exactOver(allowed)
	case g == nil:
		err = s.scan()
	default:
		err = s.walk(g, count, allowed, k, ef, o.Rerank)
	}
	if err != nil {
		return nil, err
	}
	hits, err := s.top(k)
	if err == nil {
		m.searchLatency(name).Since(t0)
	}
	return hits, err
}

// searchView returns what a search of c needs from the in-memory state,
// read under the lock: the graph (nil until the quantizer is trained), the
// number of stored vectors and, if tags is not empty, the ids that carry
// every one of them (a new bitmap the caller owns; empty if none does).
func (m *Manager) searchView(c *coll, tags []string) (g *Graph, count int, allowed *roaring64.Bitmap) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i, t := range tags {
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
	return c.g, c.count, allowed
}

// A searcher is the state of one Search: the prepared query, the search's
// one iterator over the collection's stored vectors, and the candidates
// ranked so far. Its methods are the ways a search finds candidates (an
// exact scan of a set or of the whole collection, a walk of the graph);
// each ranks them by the exact distance to their stored vector, and top
// returns the k best. Not safe for concurrent use; close releases the
// iterator.
type searcher struct {
	d      *db.DB
	name   string // the collection, for errors
	metric quant.Metric
	dim    int
	qv     []float32 // the prepared query
	prefix []byte    // the collection's vector table: prefix | id (be64)
	key    []byte    // the key read last (prefix | id), reused by read
	// scratch holds a stored vector whose bytes cannot be read in place
	// (see floats).
	scratch []float32
	// vit is the search's one iterator over prefix, opened on first use
	// (an empty filter reads nothing); nil until then.
	vit  *pebble.Iterator
	hits []ranked
}

// ranked is a candidate ranked by the exact distance to its stored vector;
// its tags stay raw until the k results are known.
type ranked struct {
	id   uint64
	d    float32
	tags []byte
}

func newSearcher(d *db.DB, c *coll, qv []float32) searcher {
	prefix := ckey(c.shard, TableVec, c.cfg.Name, nil)
	return searcher{
		d: d, name: c.cfg.Name, metric: c.cfg.Metric, dim: c.cfg.Dim, qv: qv,
		prefix: prefix, key: slices.Clone(prefix), scratch: make([]float32, c.cfg.Dim),
	}
}

// iter returns the search's iterator over the stored vectors, opening it
// on first use. (It is opened on Pebble's concrete type: through the
// pebble.Reader interface the IterOptions would escape, one more
// allocation per search.)
func (s *searcher) iter() (*pebble.Iterator, error) {
	var err error
	if s.vit == nil {
		s.vit, err = s.d.Pebble().NewIter(&pebble.IterOptions{LowerBound: s.prefix, UpperBound: keys.PrefixEnd(s.prefix)})
	}
	return s.vit, err
}

// close closes the iterator if it was opened.
func (s *searcher) close() {
	if s.vit != nil {
		s.vit.Close()
	}
}

// add ranks id by its stored value val; false if val is too short to hold
// a vector.
func (s *searcher) add(id uint64, val []byte) bool {
	if len(val) < 4*s.dim {
		return false
	}
	// The value is the iterator's until it moves: keep a copy of the tags.
	s.hits = append(s.hits, ranked{id, s.metric.Exact(s.qv, floats(val, s.scratch)), slices.Clone(val[4*s.dim:])})
	return true
}

// read reads the stored vector of id and ranks it; ok is false if
// id was deleted since it was picked. The reads of one search share
// the iterator and its prefix seeks, which skip tables by their bloom
// filters as a point read does but keep the tables' index blocks
// between reads. (Plain SeekGE in ascending id order measured slower:
// its seeks loaded more blocks.)
func (s *searcher) read(id uint64) (d float32, ok bool, err error) {
	it, err := s.iter()
	if err != nil {
		return 0, false, err
	}
	s.key = binary.BigEndian.AppendUint64(s.key[:len(s.prefix)], id)
	if !it.SeekPrefixGE(s.key) || !bytes.Equal(it.Key(), s.key) {
		return 0, false, it.Error()
	}
	val, err := it.ValueAndErr()
	if err != nil {
		return 0, false, err
	}
	if !s.add(id, val) {
		return 0, false, nil
	}
	return s.hits[len(s.hits)-1].d, true, nil
}

// exactOver ranks exactly the vectors of set, in place of any ranked so
// far.
func (s *searcher) exactOver(set *roaring64.Bitmap) error {
	s.hits = s.hits[:0]
	for _, id := range set.ToArray() {
		if _, _, err := s.read(id); err != nil {
			return err
		}
	}
	return nil
}

// scan ranks every stored vector (the exact search of a collection whose
// graph is not built yet).
func (s *searcher) scan() error {
	it, err := s.iter()
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		s.add(binary.BigEndian.Uint64(it.Key()[len(s.prefix):]), it.Value())
	}
	return it.Error()
}

// walk searches the graph g (holding count vectors) for the k nearest
// among allowed (nil: all): Graph.Beam(ef, k) candidates, widened by the
// filter's selectivity, of which the best rerank (default 2·k) by their
// graph estimate are re-ranked (Rerank). If a filtered walk ranks fewer than
// min(k, allowed) vectors, it scans allowed instead.
func (s *searcher) walk(g *Graph, count int, allowed *roaring64.Bitmap, k, ef, rerank int) error {
	width := g.Beam(ef, k)
	var allow func(uint64) bool
	if allowed != nil {
		allow = allowed.Contains
		// Widen by the selectivity: about width allowed vectors among
		// the candidates.
		width = min(width*count/max(int(allowed.GetCardinality()), 1)+width, 4*ExactFilterMax)
	}
	take := rerank // int8 distances: re-rank the best
	if take <= 0 {
		take = 2 * k
	}
	take = min(max(take, k), width)
	if !g.Quantized() {
		take = k // exact already: read only the results' tags
	}
	cands, err := g.Search(s.qv, take, width, allow)
	if err != nil {
		return err
	}
	if _, err := Rerank(cands, k, s.read); err != nil {
		return err
	}
	if allowed != nil && uint64(len(s.hits)) < min(uint64(k), allowed.GetCardinality()) {
		return s.exactOver(allowed) // the graph fell short: scan
	}
	return nil
}

// top returns the k nearest of the ranked candidates, nearest first (ties
// by id), with their tags decoded.
func (s *searcher) top(k int) ([]Hit, error) {
	slices.SortFunc(s.hits, compareRanked)
	out := make([]Hit, min(k, len(s.hits)))
	for i := range out {
		h := &s.hits[i]
		d := codec.NewDec(h.tags)
		out[i] = Hit{ID: h.id, Distance: h.d, Tags: d.Strings(MaxTags, MaxTagSize)}
		if !d.Done() {
			return nil, fmt.Errorf("%w: vector %d of %q", ErrCorrupt, h.id, s.name)
		}
	}
	return out, nil
}

// compareRanked orders candidates by distance, then by id.
func compareRanked(a, b ranked) int {
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
