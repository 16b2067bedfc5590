package hnsw

import (
	"slices"
)

// Reachability. HNSW's neighbor heuristic prunes links without regard to
// who else links to the pruned node, so a node can lose every incoming
// link and become unreachable from the entry point: a search can then
// never return it, at any ef. hnswlib and most HNSW libraries accept this;
// an agent that stores a memory and can never recall it does not. The
// graph keeps, after every Insert, InsertBatch and Delete:
//
//	every live node is reachable from the entry point by links (any level)
//
// in two steps, both deterministic (they depend only on the graph and the
// operation, so replicas stay identical):
//
//  1. settle gives each live node whose count of incoming level-0 links
//     (indeg) fell to 0 during the operation, and each new node no
//     neighbor kept, an incoming link (attach): from the nearest node that a
//     search for it reaches from the entry point, into a free place in that
//     node's list, or else in place of that node's farthest neighbor that
//     has another incoming link. This is the case that happens: a node no
//     other node links to.
//  2. A node can also be cut off with others (a set that links only among
//     itself). Every time the operations on the graph (slots created plus
//     slots deleted) pass a multiple of max(1024, live/4), settle walks the
//     whole graph from the entry point and attaches every live node it did
//     not reach, repeating until it reaches all (reconnect). The walk costs
//     O(live·M); spread over live/4 operations it is a few link reads each.
//
// Unreachable reports the nodes a walk does not reach (Check runs it);
// TestReachableUnderChurn requires none, and every live vector found as its
// own nearest neighbor, after every step of seeded churn.

// unref removes one incoming level-0 link of o, noting o if it has none
// left.
func (g *Graph) unref(o uint32) {
	g.indeg[o]--
	if g.indeg[o] == 0 {
		g.orphans = append(g.orphans, o)
	}
}

// opCount is the number of slots created plus slots deleted: it only
// grows, and is a function of the graph's state (Restore recomputes it).
func (g *Graph) opCount() int { return len(g.nodes) + g.deadCount }

// reconnectStep is how many operations pass between two full walks.
func (g *Graph) reconnectStep() int { return max(1024, g.live/4) }

// settle restores reachability after an operation that began at opCount
// before. REQUIRES: g.mu held for writing.
func (g *Graph) settle(before int) {
	if len(g.orphans) > 0 {
		os := g.orphans
		g.orphans = nil
		slices.Sort(os)
		os = slices.Compact(os)
		for _, x := range os {
			if g.needsLink(x) {
				g.attach(x)
			}
		}
	}
	if step := g.reconnectStep(); before/step != g.opCount()/step {
		g.reconnect()
	}
}

// needsLink reports whether x is live, not the entry point, and has no
// incoming level-0 link.
func (g *Graph) needsLink(x uint32) bool {
	return int(x) < len(g.nodes) && !g.nodes[x].deleted && int32(x) != g.entry && g.indeg[x] == 0
}

// attach gives x an incoming level-0 link from a node reachable from the
// entry point: the nearest such node (a search for x's own vector from the
// entry point, as an insert does) that has room, or else the nearest whose
// farthest neighbor with another incoming link x can replace. It reports
// whether it linked x. REQUIRES: g.mu held for writing; x live, not the
// entry point.
func (g *Graph) attach(x uint32) bool {
	if g.entry < 0 {
		return false
	}
	dist := func(n uint32) float32 { return g.sym(x, n) }
	ep := []cand{{dist(uint32(g.entry)), uint32(g.entry)}}
	for lv := g.nodes[g.entry].level; lv > 0; lv-- {
		ep = g.searchLayer(dist, ep, 1, lv)[:1]
	}
	cs := g.searchLayer(dist, ep, g.p.EfConstruction, 0)
	for _, c := range cs {
		if c.s != x && g.linkInto(c.s, x) {
			return true
		}
	}
	// Every node the search found is full of neighbors that have no other
	// incoming link (never seen in practice): try every live node, in slot
	// order.
	for n := range g.nodes {
		if s := uint32(n); s != x && !g.nodes[s].deleted && g.linkInto(s, x) {
			return true
		}
	}
	return false
}

// linkInto adds x to n's level-0 links if there is room, or replaces the
// farthest of n's neighbors that keeps another incoming link. It reports
// whether it did.
func (g *Graph) linkInto(n, x uint32) bool {
	ls := g.linksOf(n, 0)
	if slices.Contains(ls, x) {
		return true
	}
	if len(ls) < g.maxLinks(0) {
		g.addLink(n, 0, x)
		g.dirty[n] = struct{}{}
		return true
	}
	victim, vd := -1, float32(0)
	for i, y := range ls {
		if g.isDead(y) { // a dangling link: the best place of all
			victim = i
			break
		}
		if g.indeg[y] < 2 {
			continue
		}
		if d := g.sym(n, y); victim < 0 || d > vd || (d == vd && y > ls[victim]) {
			victim, vd = i, d
		}
	}
	if victim < 0 {
		return false
	}
	out := slices.Clone(ls)
	out[victim] = x
	g.setLinks(n, 0, out)
	g.dirty[n] = struct{}{}
	return true
}

// reach marks in seen every slot reachable from start by links at any
// level (seen has a bit per slot).
func (g *Graph) reach(seen []uint64, start uint32) {
	mark := func(s uint32) bool {
		if seen[s>>6]&(1<<(s&63)) != 0 {
			return false
		}
		seen[s>>6] |= 1 << (s & 63)
		return true
	}
	if !mark(start) {
		return
	}
	stack := []uint32{start}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if g.nodes[s].deleted {
			continue
		}
		for lv := 0; lv <= g.nodes[s].level; lv++ {
			for _, n := range g.linksOf(s, lv) {
				if mark(n) {
					stack = append(stack, n)
				}
			}
		}
	}
}

// unreachable lists the live slots a walk from the entry point misses,
// and returns the walk's bitset.
func (g *Graph) unreachable() ([]uint32, []uint64) {
	seen := make([]uint64, (len(g.nodes)+63)/64)
	if g.entry >= 0 {
		g.reach(seen, uint32(g.entry))
	}
	var out []uint32
	for s := range g.nodes {
		if !g.nodes[s].deleted && seen[s>>6]&(1<<(uint(s)&63)) == 0 {
			out = append(out, uint32(s))
		}
	}
	return out, seen
}

// reconnect attaches the live nodes a walk from the entry point misses, in
// slot order, skipping those that an earlier attach made reachable; then
// walks again until it misses none (an attach that replaced a neighbor may
// cut off what only that link reached; each round attaches at least one
// node, so a few rounds suffice). REQUIRES: g.mu held for writing.
func (g *Graph) reconnect() {
	for round := 0; round < 8; round++ {
		miss, seen := g.unreachable()
		if len(miss) == 0 {
			return
		}
		for _, x := range miss {
			if seen[x>>6]&(1<<(x&63)) != 0 {
				continue
			}
			if g.attach(x) {
				g.reach(seen, x)
			}
		}
	}
}

// Unreachable returns the ids of the live vectors that no path of links
// from the entry point reaches (none, if the graph's invariant holds).
func (g *Graph) Unreachable() []uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var ids []uint64
	miss, _ := g.unreachable()
	for _, s := range miss {
		ids = append(ids, g.nodes[s].id)
	}
	return ids
}
