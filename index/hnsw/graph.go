package hnsw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/flowdb/flowdb/quant"
)

// Errors.
var (
	ErrDimension = quant.ErrDimension
	ErrNotFinite = quant.ErrNotFinite
	// ErrZeroVector: a zero vector under cosine.
	ErrZeroVector = errors.New("hnsw: zero vector under cosine")
	// ErrInvalid: a bad parameter (k <= 0, M < 2, ...).
	ErrInvalid = errors.New("hnsw: invalid argument")
	// ErrNotFound: no live vector with that id.
	ErrNotFound = errors.New("hnsw: not found")
)

// Params are a graph's construction parameters.
type Params struct {
	Dim    int
	Metric quant.Metric
	// M is the number of neighbors per node above level 0 (2·M at level
	// 0). Default 16.
	M int
	// EfConstruction is the candidate list size while inserting. Default
	// 200.
	EfConstruction int
}

func (p Params) withDefaults() Params {
	if p.M == 0 {
		p.M = 16
	}
	if p.EfConstruction == 0 {
		p.EfConstruction = 200
	}
	return p
}

func (p Params) validate() error {
	switch {
	case p.Dim < 1 || p.Dim > quant.MaxDim:
		return fmt.Errorf("%w: dimension %d", ErrInvalid, p.Dim)
	case p.M < 2 || p.M > 256:
		return fmt.Errorf("%w: M %d not in 2..256", ErrInvalid, p.M)
	case p.EfConstruction < 1 || p.EfConstruction > 10_000:
		return fmt.Errorf("%w: efConstruction %d", ErrInvalid, p.EfConstruction)
	case p.Metric > quant.Cosine:
		return fmt.Errorf("%w: metric %d", ErrInvalid, p.Metric)
	}
	return nil
}

// maxLevel caps node levels (a level is drawn from the id's hash).
const maxLevel = 16

// node is one vector in the graph. Its level-0 links live in the graph's
// flat l0 array (one fixed-size record per slot, so that search reads a
// node's neighbors with one memory access); up holds levels 1..level.
type node struct {
	id      uint64
	level   int
	up      [][]uint32 // up[lv-1]: neighbor slots at level lv
	deleted bool
}

// Graph is an HNSW graph over int8 codes, or over float32 vectors when it
// has no quantizer. Every change is a deterministic function of the
// operations applied to it, in order: a node's level comes from the hash of
// its id, distances come from the quantizer (whose parameters are fixed
// before the first insert) or the float32 vectors, and ties break on slot
// order, so two graphs that apply the same operations are identical
// (Marshal). Insert and Delete take the write lock; Search the read lock.
type Graph struct {
	p  Params
	q  *quant.Quantizer // nil: quantization off, the graph keeps vecs
	mL float64

	mu    sync.RWMutex
	nodes []node
	codes slab[int8] // per slot: its code (quantized)
	terms []float32  // per slot: the code's Term (quantized)
	// resid holds per slot the quantization error's quant.Residual (R
	// +Inf when unknown, for codes stored before it was kept), and xn,
	// under inner products, the decoded vector's squared norm: with them
	// Search bounds the exact distance around the quantized one
	// (Result.Lo, Result.Hi).
	resid []quant.Residual
	xn    []float32
	// l0 holds each slot's level-0 links: stride 2·M+1 words, a count
	// then up to 2·M slots. A deleted slot's count is 0.
	l0    slab[uint32]
	dead  []uint64      // bitset of deleted slots (search's hot loop reads it, not the nodes)
	vecs  slab[float32] // per slot: its vector (quantization off)
	slot  map[uint64]uint32
	entry int32 // entry point slot, -1 when empty
	live  int
	// dirty holds the slots changed since the last TakeDirty (a set; read
	// out sorted), so that a collection persists exactly what changed.
	dirty map[uint32]struct{}
	// indeg counts per slot the level-0 links that point at it (from live
	// nodes: a deleted node has none); deadCount counts deleted slots.
	// orphans lists the slots whose count fell to 0, or that are new, since
	// the last settle, which gives each that is live an incoming link
	// (reach.go). scratch is setLinks' buffer.
	indeg     []uint32
	deadCount int
	orphans   []uint32
	scratch   []uint32
}

// NewGraph returns an empty graph quantizing with q, or, with a nil q, one
// that keeps the float32 vectors themselves (quantization off: exact
// distances, 4·Dim bytes per vector instead of Dim).
func NewGraph(p Params, q *quant.Quantizer) (*Graph, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return nil, err
	}
	if q != nil && q.Dim() != p.Dim {
		return nil, fmt.Errorf("%w: quantizer of %d dims for a graph of %d", ErrDimension, q.Dim(), p.Dim)
	}
	return &Graph{p: p, q: q, mL: 1 / math.Log(float64(p.M)), slot: map[uint64]uint32{}, entry: -1,
		dirty: map[uint32]struct{}{}, codes: newSlab[int8](p.Dim), vecs: newSlab[float32](p.Dim),
		l0: newSlab[uint32](2*p.M + 1)}, nil
}

// Len is the number of live vectors.
func (g *Graph) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.live
}

// levelOf draws a node's level from the hash of its id: floor(-ln(u)·mL)
// with u uniform in (0, 1].
func (g *Graph) levelOf(id uint64) int {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	u := (float64(xxhash.Sum64(b[:])>>11) + 1) / (1 << 53)
	return min(int(-math.Log(u)*g.mL), maxLevel)
}

// Prepare checks v and returns the vector the graph stores for it (a
// normalized copy under cosine).
func (g *Graph) Prepare(v []float32) ([]float32, error) { return prepare(g.p.Dim, g.p.Metric, v) }

func prepare(dim int, m quant.Metric, v []float32) ([]float32, error) {
	if len(v) != dim {
		return nil, fmt.Errorf("%w: %d components, want %d", ErrDimension, len(v), dim)
	}
	if err := quant.CheckFinite(v); err != nil {
		return nil, err
	}
	if m != quant.Cosine {
		return v, nil
	}
	// A scalar float64 sum in index order (each product exact), not a SIMD
	// kernel: the normalized vector is stored by apply, so it must be the
	// same bits on every CPU and build.
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	n := math.Sqrt(ss)
	if n == 0 {
		return nil, ErrZeroVector
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out, nil
}

func (g *Graph) code(s uint32) []int8 { return g.codes.at(s) }

func (g *Graph) vec(s uint32) []float32 { return g.vecs.at(s) }

// Quantized reports whether the graph keeps int8 codes (false: float32
// vectors).
func (g *Graph) Quantized() bool { return g.q != nil }

// query is a prepared query: asymmetric over codes, or a float32 vector
// when quantization is off.
type query struct {
	q *quant.Query
	f []float32
}

// dist is the distance from q to the vector at slot s.
func (g *Graph) dist(q query, s uint32) float32 {
	if q.q == nil {
		return g.p.Metric.Exact(q.f, g.vec(s))
	}
	return q.q.DistanceNorm(g.code(s), float64(g.terms[s]))
}

// sym is the distance between the vectors at slots a and b: symmetric on
// codes (quant.SymDistance, no preparation), or exact with quantization
// off.
func (g *Graph) sym(a, b uint32) float32 {
	if g.q == nil {
		return g.p.Metric.Exact(g.vec(a), g.vec(b))
	}
	return g.q.SymDistance(g.p.Metric, g.code(a), float64(g.terms[a]), g.code(b), float64(g.terms[b]))
}

// prefetchSlot starts fetching what dist reads of slot s (its code and
// Term, or its vector) into the CPU's caches.
func (g *Graph) prefetchSlot(s uint32) {
	if g.q == nil {
		v := g.vec(s)
		prefetch(unsafe.Pointer(unsafe.SliceData(v)), uintptr(len(v))*4)
		return
	}
	c := g.code(s)
	prefetch(unsafe.Pointer(unsafe.SliceData(c)), uintptr(len(c)))
	prefetch(unsafe.Pointer(&g.terms[s]), 4)
	prefetch(unsafe.Pointer(&g.resid[s]), 8)
}

// linksOf returns n's neighbors at lv (empty above its level or once it
// is deleted). The slice aliases the graph: change links through setLinks
// and addLink only.
func (g *Graph) linksOf(n uint32, lv int) []uint32 {
	if lv == 0 {
		r := g.l0.at(n)
		return r[1 : 1+r[0] : 1+r[0]]
	}
	up := g.nodes[n].up
	if lv > len(up) {
		return nil
	}
	return up[lv-1]
}

// setLinks replaces n's neighbors at lv (at most maxLinks(lv); ls may
// alias the current links).
func (g *Graph) setLinks(n uint32, lv int, ls []uint32) {
	if lv == 0 {
		r := g.l0.at(n)
		old := append(g.scratch[:0], r[1:1+r[0]]...) // ls may alias r
		for _, o := range old {
			g.unref(o)
		}
		for _, o := range ls {
			g.indeg[o]++
		}
		g.scratch = old
		copy(r[1:1+len(ls)], ls)
		r[0] = uint32(len(ls))
		return
	}
	g.nodes[n].up[lv-1] = ls
}

// addLink appends s to n's neighbors at lv (which has room).
func (g *Graph) addLink(n uint32, lv int, s uint32) {
	if lv == 0 {
		r := g.l0.at(n)
		r[1+r[0]] = s
		r[0]++
		g.indeg[s]++
		return
	}
	g.nodes[n].up[lv-1] = append(g.nodes[n].up[lv-1], s)
}

// newNode appends a node for id at level lvl, with no links yet.
// REQUIRES: g.mu held for writing.
func (g *Graph) newNode(id uint64, lvl int) uint32 {
	s := uint32(len(g.nodes))
	var up [][]uint32
	if lvl > 0 {
		up = make([][]uint32, lvl)
	}
	g.nodes = append(g.nodes, node{id: id, level: lvl, up: up})
	g.l0.add()
	g.indeg = append(g.indeg, 0)
	g.orphans = append(g.orphans, s) // until a neighbor links to it (settle)
	return s
}

func (g *Graph) isDead(s uint32) bool { return g.dead[s>>6]&(1<<(s&63)) != 0 }

func (g *Graph) setDead(s uint32) {
	g.dead[s>>6] |= 1 << (s & 63)
	g.deadCount++
}

// newQuery prepares a checked (and, under cosine, normalized) vector.
func (g *Graph) newQuery(v []float32) (query, error) {
	if g.q == nil {
		return query{f: v}, nil
	}
	q, err := g.q.Prepare(g.p.Metric, v)
	return query{q: q}, err
}

// store appends a new slot's code or vector (its node is appended by the
// caller first). REQUIRES: g.mu held for writing.
func (g *Graph) store(p prepped) {
	for len(g.dead)*64 < len(g.nodes) {
		g.dead = append(g.dead, 0)
	}
	if g.q == nil {
		copy(g.vecs.add(), p.pq.f)
		return
	}
	copy(g.codes.add(), p.code)
	g.terms = append(g.terms, float32(g.q.Term(g.p.Metric, p.code)))
	g.resid = append(g.resid, p.resid)
	if g.p.Metric != quant.L2 {
		g.xn = append(g.xn, float32(g.q.DecodedNorm2(p.code)))
	}
}

// cand is a slot at a distance.
type cand struct {
	d float32
	s uint32
}

func less(a, b cand) bool { return a.d < b.d || (a.d == b.d && a.s < b.s) }

// sortCands sorts candidates nearest first (ties by slot).
func sortCands(cs []cand) {
	slices.SortFunc(cs, func(a, b cand) int {
		if less(a, b) {
			return -1
		}
		return 1
	})
}

// pq is a binary heap of candidates; before(a, b) puts a nearer the top.
type pq struct {
	h   []cand
	max bool // a max-heap (farthest on top) instead of a min-heap
}

func (q *pq) before(a, b cand) bool {
	if q.max {
		return less(b, a)
	}
	return less(a, b)
}

func (q *pq) push(c cand) {
	q.h = append(q.h, c)
	for i := len(q.h) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.before(q.h[i], q.h[p]) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *pq) pop() cand {
	top := q.h[0]
	last := len(q.h) - 1
	q.h[0] = q.h[last]
	q.h = q.h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && q.before(q.h[l], q.h[m]) {
			m = l
		}
		if r < last && q.before(q.h[r], q.h[m]) {
			m = r
		}
		if m == i {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}

// visits marks visited slots for one search: a slot is visited when its
// mark equals the current stamp, so starting a new search is O(1).
type visits struct {
	marks []uint32
	stamp uint32
}

var visitPool = sync.Pool{New: func() any { return &visits{} }}

// newVisits returns a cleared visit set for n slots (release it with
// visitPool.Put).
func newVisits(n int) *visits {
	v := visitPool.Get().(*visits)
	if len(v.marks) < n {
		v.marks = append(v.marks, make([]uint32, n-len(v.marks))...)
	}
	v.stamp++
	if v.stamp == 0 { // wrapped: clear
		clear(v.marks)
		v.stamp = 1
	}
	return v
}

// visit marks s and reports whether it was unvisited.
func (v *visits) visit(s uint32) bool {
	if v.marks[s] == v.stamp {
		return false
	}
	v.marks[s] = v.stamp
	return true
}

// searchLayer returns up to ef nearest slots to the query (dist) at level
// lv, starting from eps, sorted nearest first. Links to deleted nodes are
// stepped over; an entry in eps is never deleted.
func (g *Graph) searchLayer(dist func(uint32) float32, eps []cand, ef, lv int) []cand {
	vis := newVisits(len(g.nodes))
	defer visitPool.Put(vis)
	cands := pq{h: make([]cand, 0, 2*ef)}
	best := pq{h: make([]cand, 0, ef+1), max: true}
	next := make([]uint32, 0, g.maxLinks(0))
	for _, e := range eps {
		vis.visit(e.s)
		cands.push(e)
		best.push(e)
		if len(best.h) > ef {
			best.pop()
		}
	}
	for len(cands.h) > 0 {
		c := cands.pop()
		if len(best.h) >= ef && less(best.h[0], c) {
			break
		}
		// First the neighbors to measure, their codes fetched into the
		// caches together (each is a random read of Dim bytes from a
		// large array), then their distances, in link order as before.
		next = next[:0]
		for _, n := range g.linksOf(c.s, lv) { // none for a deleted node (unreachable once repaired)
			if !vis.visit(n) || g.isDead(n) {
				continue // a dangling link to a deleted node: step over it
			}
			next = append(next, n)
			g.prefetchSlot(n)
		}
		for _, n := range next {
			nc := cand{dist(n), n}
			if len(best.h) < ef || less(nc, best.h[0]) {
				cands.push(nc)
				best.push(nc)
				if len(best.h) > ef {
					best.pop()
				}
			}
		}
	}
	out := make([]cand, len(best.h))
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = best.pop()
	}
	return out
}

// selectNeighbors is the HNSW heuristic (Malkov & Yashunin, algorithm 4):
// take candidates nearest first, keeping one only if it is closer to the
// base than to every neighbor kept so far; cs is sorted nearest first.
func (g *Graph) selectNeighbors(cs []cand, m int) []cand {
	if len(cs) <= m {
		return cs
	}
	out := make([]cand, 0, m)
	kept := make([]uint32, 0, m)
	for _, c := range cs {
		if len(out) == m {
			break
		}
		keep := true
		for _, k := range kept {
			if g.sym(k, c.s) < c.d {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, c)
			kept = append(kept, c.s)
		}
	}
	return out
}

func (g *Graph) maxLinks(lv int) int {
	if lv == 0 {
		return 2 * g.p.M
	}
	return g.p.M
}

// Insert adds (or replaces) the vector v under id. v is checked and, under
// cosine, normalized; its code is what the graph keeps.
func (g *Graph) Insert(id uint64, v []float32) error {
	p, err := g.prep(id, v)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	before := g.opCount()
	g.insertLocked(p)
	g.settle(before)
	return nil
}

// insertLocked inserts one prepared vector. REQUIRES: g.mu held for writing.
func (g *Graph) insertLocked(p prepped) {
	id, pq, lvl := p.id, p.pq, p.lvl
	if s, ok := g.slot[id]; ok && !g.nodes[s].deleted {
		g.deleteLocked(s)
	}
	s := g.newNode(id, lvl)
	g.dirty[s] = struct{}{}
	g.store(p)
	g.slot[id] = s
	g.live++
	if g.entry < 0 {
		g.entry = int32(s)
		return
	}
	dist := func(n uint32) float32 { return g.dist(pq, n) }
	ep := []cand{{dist(uint32(g.entry)), uint32(g.entry)}}
	top := g.nodes[g.entry].level
	for lv := top; lv > lvl; lv-- {
		ep = g.searchLayer(dist, ep, 1, lv)[:1]
	}
	for lv := min(top, lvl); lv >= 0; lv-- {
		cs := g.searchLayer(dist, ep, g.p.EfConstruction, lv)
		g.connect(s, lv, cs)
		ep = cs
	}
	if lvl > top {
		g.entry = int32(s)
	}
}

// connect gives the new node s its neighbors at lv, chosen by the heuristic
// among cs (sorted nearest first), and links each of them back to s.
func (g *Graph) connect(s uint32, lv int, cs []cand) {
	nb := g.selectNeighbors(cs, g.p.M)
	links := make([]uint32, len(nb))
	for i, c := range nb {
		links[i] = c.s
	}
	g.setLinks(s, lv, links)
	for _, c := range nb {
		g.link(c.s, s, c.d, lv)
	}
}

// link adds s to n's neighbors at lv (d is their distance), pruning n's
// list with the heuristic when it overflows.
func (g *Graph) link(n, s uint32, d float32, lv int) {
	ls := g.linksOf(n, lv)
	if len(ls) < g.maxLinks(lv) {
		g.addLink(n, lv, s)
		g.dirty[n] = struct{}{}
		return
	}
	cs := make([]cand, 0, len(ls)+1)
	cs = append(cs, cand{d, s})
	for _, o := range ls {
		cs = append(cs, cand{g.sym(n, o), o})
	}
	sortCands(cs)
	nb := g.selectNeighbors(cs, g.maxLinks(lv))
	out := make([]uint32, len(nb))
	for i, c := range nb {
		out[i] = c.s
	}
	g.setLinks(n, lv, out)
	g.dirty[n] = struct{}{}
}

// Delete removes id, repairing its neighbors' links so that the graph
// stays navigable: each neighbor that linked to it is offered the deleted
// node's other neighbors, chosen by the same heuristic.
func (g *Graph) Delete(id uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.slot[id]
	if !ok || g.nodes[s].deleted {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	before := g.opCount()
	g.deleteLocked(s)
	g.settle(before)
	return nil
}

func (g *Graph) deleteLocked(s uint32) {
	dn := &g.nodes[s]
	dn.deleted = true
	g.setDead(s)
	g.dirty[s] = struct{}{}
	delete(g.slot, dn.id)
	g.live--
	for lv := 0; lv <= dn.level; lv++ {
		for _, n := range g.linksOf(s, lv) {
			if g.nodes[n].deleted {
				continue
			}
			g.repair(n, s, lv)
		}
	}
	// Nodes that link to s without s linking back (links are not symmetric
	// after pruning) are looked for among s's neighbors' neighbors, where
	// nearly all of them are: a delete costs O(M²), not a scan of the graph.
	// One that is missed keeps a link to a deleted node, which search steps
	// over; it costs that node one neighbor slot until its list is next
	// pruned or repaired.
	for lv := 0; lv <= dn.level; lv++ {
		var near []uint32
		seen := map[uint32]bool{s: true}
		for _, n := range g.linksOf(s, lv) {
			for _, m := range g.linksOf(n, lv) { // none for a deleted n
				if !seen[m] && !g.nodes[m].deleted {
					seen[m] = true
					near = append(near, m)
				}
			}
		}
		for _, m := range near {
			g.repair(m, s, lv)
		}
	}
	for _, o := range g.linksOf(s, 0) {
		g.unref(o)
	}
	g.l0.at(s)[0] = 0
	dn.up = nil
	if g.entry == int32(s) {
		g.entry = -1
		best := -1
		for n := range g.nodes {
			if !g.nodes[n].deleted && g.nodes[n].level > best {
				best, g.entry = g.nodes[n].level, int32(n)
			}
		}
	}
}

// repair replaces s in n's links at lv with the best of n's other
// neighbors and s's live neighbors.
func (g *Graph) repair(n, s uint32, lv int) {
	ls := g.linksOf(n, lv)
	if !slices.Contains(ls, s) {
		return
	}
	seen := map[uint32]bool{n: true, s: true}
	var cs []cand
	add := func(o uint32) {
		if !seen[o] && !g.nodes[o].deleted {
			seen[o] = true
			cs = append(cs, cand{g.sym(n, o), o})
		}
	}
	for _, o := range ls {
		add(o)
	}
	for _, o := range g.linksOf(s, lv) {
		add(o)
	}
	sortCands(cs)
	nb := g.selectNeighbors(cs, g.maxLinks(lv))
	out := make([]uint32, len(nb))
	for i, c := range nb {
		out[i] = c.s
	}
	g.setLinks(n, lv, out)
	g.dirty[n] = struct{}{}
}

// estimate is Search's estimate of the exact distance from q to the vector
// x at slot s: on a quantized graph under L2 or cosine, the asymmetric
// distance to the decoded vector x̂ less what the code's residual e = x − x̂
// is known to add to it. Under L2, ‖v−x‖² = ‖v−x̂‖² − R² − 2⟨v−x, e⟩; under
// cosine (unit vectors), 1 − ⟨v, x⟩ = 1 − ⟨v, x̂⟩ − (K + R²) − ⟨v−x, e⟩.
// What is left, ⟨v−x, e⟩, shrinks with the distance to the query, so it
// is small exactly for the near candidates whose order decides a search
// (the raw distance errs by ⟨v, e⟩ in full). Under inner products the
// near candidates need not be near the query, and the raw distance is
// kept; so it is for a code without a known residual, and with
// quantization off (exact).
func (g *Graph) estimate(q query, s uint32) float32 {
	d := g.dist(q, s)
	if q.q == nil || g.p.Metric == quant.InnerProduct {
		return d
	}
	r := g.resid[s]
	if math.IsInf(float64(r.R), 1) {
		return d
	}
	c := r.R * r.R
	if g.p.Metric == quant.Cosine {
		c += r.K
	}
	return d - c
}

// Beam is the candidate list size of a search for the k nearest at ef (as
// Manager.Search makes it, and as Search should be given it to match):
// max(ef, k), and on a quantized graph ⌈k/4⌉ more. The int8 distances
// misorder candidates whose exact distances are close, so a beam of
// exactly ef keeps some true neighbors out where the float32 graph's
// would not; the few extra places make up for it at small ef, where each
// place counts most, and cost little at large ef.
func (g *Graph) Beam(ef, k int) int {
	w := max(ef, k)
	if g.q != nil {
		w += (k + 3) / 4
	}
	return w
}

// Result is one search hit.
type Result struct {
	ID       uint64
	Distance float32
	// Lo and Hi bound the exact distance (quant.Metric.Exact of the query
	// and the original vector): quant.Query.Bounds around a quantized
	// Distance, Distance itself when quantization is off.
	Lo, Hi float32
}

// Search returns the k nearest live vectors to query, exploring ef
// candidates (ef < k means k; Beam gives the ef a collection uses), nearest
// first, among those allow accepts (nil accepts all), each with bounds on
// its exact distance. With quantization off the distances are exact. On a
// quantized graph the traversal and the order of the results follow the
// int8 estimate of the exact distance (the asymmetric distance corrected
// by each code's residual, see estimate), while Distance, Lo and Hi are the
// asymmetric distance and its bounds (quant.Query.Bounds).
func (g *Graph) Search(query []float32, k, ef int, allow func(id uint64) bool) ([]Result, error) {
	if k <= 0 {
		return nil, fmt.Errorf("%w: k %d", ErrInvalid, k)
	}
	v, err := g.Prepare(query)
	if err != nil {
		return nil, err
	}
	pq, err := g.newQuery(v)
	if err != nil {
		return nil, err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.entry < 0 {
		return nil, nil
	}
	dist := func(n uint32) float32 { return g.estimate(pq, n) }
	ep := []cand{{dist(uint32(g.entry)), uint32(g.entry)}}
	for lv := g.nodes[g.entry].level; lv > 0; lv-- {
		ep = g.searchLayer(dist, ep, 1, lv)[:1]
	}
	cs := g.searchLayer(dist, ep, max(ef, k), 0)
	out := make([]Result, 0, k)
	for _, c := range cs {
		n := &g.nodes[c.s]
		if n.deleted || (allow != nil && !allow(n.id)) {
			continue
		}
		lo, hi := c.d, c.d
		if pq.q != nil {
			c.d = g.dist(pq, c.s) // the asymmetric distance, which Bounds takes
			var xn float64
			if g.xn != nil {
				xn = float64(g.xn[c.s])
			}
			lo, hi = pq.q.Bounds(c.d, float64(g.terms[c.s]), xn, g.resid[c.s])
		}
		out = append(out, Result{n.id, c.d, lo, hi})
		if len(out) == k {
			break
		}
	}
	return out, nil
}

// Marshal encodes the whole graph (nodes, links, live nodes' codes or
// vectors, entry point) in a canonical form: two graphs that applied the
// same operations marshal to the same bytes.
func (g *Graph) Marshal() []byte {
	g.mu.RLock()
	defer g.mu.RUnlock()
	b := binary.AppendVarint(nil, int64(g.entry))
	b = binary.AppendUvarint(b, uint64(len(g.nodes)))
	for i, n := range g.nodes {
		b = binary.AppendUvarint(b, n.id)
		b = binary.AppendUvarint(b, uint64(n.level))
		if n.deleted {
			b = append(b, 1)
			continue
		}
		b = append(b, 0)
		for lv := 0; lv <= n.level; lv++ {
			ls := g.linksOf(uint32(i), lv)
			b = binary.AppendUvarint(b, uint64(len(ls)))
			for _, s := range ls {
				b = binary.AppendUvarint(b, uint64(s))
			}
		}
		b = append(b, g.slotBytes(uint32(i))...)
	}
	return b
}

// slotBytes is the stored form of slot s's code (Dim bytes, then its
// residual's R and K as little-endian float32s) or, with quantization
// off, its vector (Dim float32, little-endian).
func (g *Graph) slotBytes(s uint32) []byte {
	if g.q == nil {
		b := make([]byte, 0, 4*g.p.Dim)
		for _, x := range g.vec(s) {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		return b
	}
	c := g.code(s)
	b := make([]byte, len(c), len(c)+8)
	for i, x := range c {
		b[i] = byte(x)
	}
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(g.resid[s].R))
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(g.resid[s].K))
}

// TakeDirty returns the slots changed since the last call, sorted, and
// forgets them. REQUIRES: no concurrent Insert or Delete.
func (g *Graph) TakeDirty() []uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]uint32, 0, len(g.dirty))
	for s := range g.dirty {
		out = append(out, s)
	}
	clear(g.dirty)
	slices.Sort(out)
	return out
}

// Entry is the entry point slot (-1 when the graph is empty).
func (g *Graph) Entry() int32 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.entry
}

// StoredCode is the stored form of slot s's code: Dim bytes, then its
// quant.Residual's R and K as little-endian float32s; nil with
// quantization off.
func (g *Graph) StoredCode(s uint32) []byte {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.q == nil {
		return nil
	}
	return g.slotBytes(s)
}

// Code returns a copy of the code at slot s (nil with quantization off).
func (g *Graph) Code(s uint32) []int8 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.q == nil {
		return nil
	}
	return slices.Clone(g.code(s))
}

// EncodeNode encodes the node at slot s (its code is stored apart: it
// never changes, while links change as neighbors arrive):
//
//	id (8) | level (1) | deleted (1) | per level: n | n slots (4 each)
//
// A deleted node keeps only its id and level.
func (g *Graph) EncodeNode(s uint32) []byte {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := &g.nodes[s]
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 10+4*3*g.p.M), n.id)
	if n.deleted {
		return append(b, byte(n.level), 1)
	}
	b = append(b, byte(n.level), 0)
	for lv := 0; lv <= n.level; lv++ {
		ls := g.linksOf(s, lv)
		b = binary.AppendUvarint(b, uint64(len(ls)))
		for _, l := range ls {
			b = binary.BigEndian.AppendUint32(b, l)
		}
	}
	return b
}

// ErrCorrupt reports stored graph data that does not decode.
var ErrCorrupt = errors.New("hnsw: corrupt graph data")

// Restore rebuilds a graph from its encoded nodes and their codes (nil for
// deleted nodes), in slot order, and its entry point. With a nil q
// (quantization off) codes holds the vectors instead: Dim float32,
// little-endian. It never panics on bad bytes (ErrCorrupt).
func Restore(p Params, q *quant.Quantizer, entry int32, nodes, codes [][]byte) (*Graph, error) {
	g, err := NewGraph(p, q)
	if err != nil {
		return nil, err
	}
	dim := g.p.Dim
	width := dim
	g.nodes = make([]node, len(nodes))
	g.l0.alloc(len(nodes))
	g.dead = make([]uint64, (len(nodes)+63)/64)
	if q == nil {
		width = 4 * dim
		g.vecs.alloc(len(nodes))
	} else {
		g.codes.alloc(len(nodes))
		g.terms = make([]float32, len(nodes))
		g.resid = make([]quant.Residual, len(nodes))
		if p.Metric != quant.L2 {
			g.xn = make([]float32, len(nodes))
		}
	}

	for s, b := range nodes {
		if len(b) < 10 || b[8] > maxLevel || b[9] > 1 {
			return nil, fmt.Errorf("%w: node %d header", ErrCorrupt, s)
		}
		n := node{id: binary.BigEndian.Uint64(b), level: int(b[8]), deleted: b[9] == 1}
		if n.deleted {
			if len(b) != 10 {
				return nil, fmt.Errorf("%w: deleted node %d", ErrCorrupt, s)
			}
			g.nodes[s] = n
			g.setDead(uint32(s))
			continue
		}
		rest := b[10:]
		// A code may lack its residual (stored before it was kept).
		if s >= len(codes) || (len(codes[s]) != width && (q == nil || len(codes[s]) != width+8)) {
			return nil, fmt.Errorf("%w: node %d code", ErrCorrupt, s)
		}
		if q == nil {
			for i := range dim {
				x := math.Float32frombits(binary.LittleEndian.Uint32(codes[s][4*i:]))
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					return nil, fmt.Errorf("%w: node %d vector", ErrCorrupt, s)
				}
				g.vecs.at(uint32(s))[i] = x
			}
		} else {
			for i, c := range codes[s][:dim] {
				g.codes.at(uint32(s))[i] = int8(c)
			}
			g.terms[s] = float32(q.Term(g.p.Metric, g.code(uint32(s))))
			if g.xn != nil {
				g.xn[s] = float32(q.DecodedNorm2(g.code(uint32(s))))
			}
			g.resid[s] = quant.Residual{R: float32(math.Inf(1))}
			if len(codes[s]) == width+8 {
				r := math.Float32frombits(binary.LittleEndian.Uint32(codes[s][dim:]))
				k := math.Float32frombits(binary.LittleEndian.Uint32(codes[s][dim+4:]))
				// R: NaN or negative is damage (+Inf means unknown); K finite.
				if !(r >= 0) || math.IsNaN(float64(k)) || math.IsInf(float64(k), 0) {
					return nil, fmt.Errorf("%w: node %d residual", ErrCorrupt, s)
				}
				g.resid[s] = quant.Residual{R: r, K: k}
			}
		}
		if n.level > 0 {
			n.up = make([][]uint32, n.level)
		}
		for lv := 0; lv <= n.level; lv++ {
			cnt, k := binary.Uvarint(rest)
			if k <= 0 || cnt > uint64(g.maxLinks(lv)) || uint64(len(rest)-k) < 4*cnt {
				return nil, fmt.Errorf("%w: node %d links", ErrCorrupt, s)
			}
			rest = rest[k:]
			ls := make([]uint32, cnt)
			for i := range ls {
				ls[i] = binary.BigEndian.Uint32(rest[4*i:])
				if int(ls[i]) >= len(nodes) {
					return nil, fmt.Errorf("%w: node %d links to slot %d", ErrCorrupt, s, ls[i])
				}
			}
			rest = rest[4*cnt:]
			if lv == 0 {
				r := g.l0.at(uint32(s))
				r[0] = uint32(cnt)
				copy(r[1:], ls)
			} else {
				n.up[lv-1] = ls
			}
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: node %d trailing bytes", ErrCorrupt, s)
		}
		if _, dup := g.slot[n.id]; dup {
			return nil, fmt.Errorf("%w: id %d live twice", ErrCorrupt, n.id)
		}
		g.nodes[s] = n
		g.slot[n.id] = uint32(s)
		g.live++
	}
	if entry < -1 || int(entry) >= len(nodes) || (entry >= 0 && g.nodes[entry].deleted) || (entry < 0 && g.live > 0) {
		return nil, fmt.Errorf("%w: entry point %d", ErrCorrupt, entry)
	}
	// Links may only point at live nodes or at deleted ones (traversal skips
	// their links): both are in range, checked above.
	g.entry = entry
	g.indeg = make([]uint32, len(nodes))
	for s := range g.nodes {
		for _, o := range g.linksOf(uint32(s), 0) {
			g.indeg[o]++
		}
	}
	return g, nil
}

// batchStep is the sub-batch InsertBatch searches in parallel: its vectors
// find their candidates in the graph as it stood before the sub-batch, and
// each other in phase B.
const batchStep = 128

// prepped is a vector ready to insert.
type prepped struct {
	id    uint64
	code  []int8 // nil with quantization off (pq.f is the vector)
	resid quant.Residual
	pq    query
	lvl   int
}

func (g *Graph) prep(id uint64, v []float32) (prepped, error) {
	v, err := g.Prepare(v)
	if err != nil {
		return prepped{}, err
	}
	var code []int8
	var resid quant.Residual
	if g.q != nil {
		if code, err = g.q.Encode(nil, v); err != nil {
			return prepped{}, err
		}
		resid = g.q.Residual(v, code)
	}
	pq, err := g.newQuery(v)
	if err != nil {
		return prepped{}, err
	}
	return prepped{id: id, code: code, resid: resid, pq: pq, lvl: g.levelOf(id)}, nil
}

// InsertBatch inserts vectors (all checked first: on a bad one nothing is
// inserted), deterministically: in sub-batches of batchStep, each vector's
// neighbor candidates are searched in parallel in the graph as it stood
// before the sub-batch (phase A, read-only), then the vectors are linked in
// order (phase B), each also considering the sub-batch's earlier vectors.
// The result depends only on the graph and the batch, never on the number
// of goroutines or their timing. A sub-batch that replaces a live id, or
// repeats one, is inserted one vector at a time.
func (g *Graph) InsertBatch(ids []uint64, vs [][]float32) error {
	if len(ids) != len(vs) {
		return fmt.Errorf("%w: %d ids for %d vectors", ErrInvalid, len(ids), len(vs))
	}
	ps := make([]prepped, len(ids))
	for i := range ids {
		p, err := g.prep(ids[i], vs[i])
		if err != nil {
			return fmt.Errorf("vector %d (id %d): %w", i, ids[i], err)
		}
		ps[i] = p
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	before := g.opCount()
	defer func() { g.settle(before) }()
	for lo := 0; lo < len(ps); lo += batchStep {
		sub := ps[lo:min(lo+batchStep, len(ps))]
		seen := make(map[uint64]bool, len(sub))
		simple := true
		for _, p := range sub {
			if s, ok := g.slot[p.id]; (ok && !g.nodes[s].deleted) || seen[p.id] {
				simple = false
			}
			seen[p.id] = true
		}
		if !simple {
			for _, p := range sub {
				g.insertLocked(p)
			}
			continue
		}
		g.insertSub(sub)
	}
	return nil
}

// insertSub inserts a sub-batch of new ids (phase A in parallel, phase B in
// order). REQUIRES: g.mu held for writing.
func (g *Graph) insertSub(sub []prepped) {
	// Phase A: candidates per vector and level, from the graph as it is.
	cands := make([][][]cand, len(sub))
	if g.entry >= 0 {
		workers := min(runtime.GOMAXPROCS(0), len(sub))
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(sub); i += workers {
					cands[i] = g.candidates(sub[i])
				}
			}()
		}
		wg.Wait()
	}
	// Phase B: link in order.
	first := uint32(len(g.nodes))
	for i, p := range sub {
		s := g.newNode(p.id, p.lvl)
		g.dirty[s] = struct{}{}
		g.store(p)
		g.slot[p.id] = s
		g.live++
		if g.entry < 0 {
			g.entry = int32(s)
			continue
		}
		top := g.nodes[g.entry].level
		for lv := min(top, p.lvl); lv >= 0; lv-- {
			var cs []cand
			if lv < len(cands[i]) {
				cs = append(cs, cands[i][lv]...)
			}
			for j := first; j < s; j++ { // the sub-batch's earlier vectors
				if g.nodes[j].level >= lv {
					cs = append(cs, cand{g.dist(p.pq, j), j})
				}
			}
			sortCands(cs)
			if len(cs) > g.p.EfConstruction {
				cs = cs[:g.p.EfConstruction]
			}
			g.connect(s, lv, cs)
		}
		if p.lvl > top {
			g.entry = int32(s)
		}
	}
}

// candidates searches p's neighbor candidates per level (index = level, up
// to min(p.lvl, top)) in the graph. Read-only: safe to run in parallel
// while the caller holds the write lock and changes nothing.
func (g *Graph) candidates(p prepped) [][]cand {
	dist := func(n uint32) float32 { return g.dist(p.pq, n) }
	ep := []cand{{dist(uint32(g.entry)), uint32(g.entry)}}
	top := g.nodes[g.entry].level
	for lv := top; lv > p.lvl; lv-- {
		ep = g.searchLayer(dist, ep, 1, lv)[:1]
	}
	out := make([][]cand, min(top, p.lvl)+1)
	for lv := min(top, p.lvl); lv >= 0; lv-- {
		out[lv] = g.searchLayer(dist, ep, g.p.EfConstruction, lv)
		ep = out[lv]
	}
	return out
}

// Slots is the number of slots, live or deleted (a deleted node's slot is
// never reused).
func (g *Graph) Slots() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.nodes)
}
