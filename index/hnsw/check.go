package hnsw

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
)

// maxUnreachableShown caps the ids one problem lists.
const maxUnreachableShown = 10

// check is the machine's cross-table check (db.Check): it loads each
// collection's graph from the snapshot Check walks (not the in-memory one,
// so that it verifies what a reopen would load) and reports a collection
// whose graph does not load, or that holds live vectors no path of links
// from the entry point reaches (the graph's reachability invariant,
// reach.go), as a warning (db.ErrCheckWarning), not as damage. It holds
// one collection's graph at a time, as large again as the live one.
func (m *Manager) check(ctx context.Context, r pebble.Reader) []error {
	var probs []error
	for shard := range m.d.Placement().Data() {
		lo, hi := keys.TableRange(shard, TableDef)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return append(probs, err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			if ctx.Err() != nil {
				it.Close()
				return append(probs, ctx.Err())
			}
			cfg, q, entry, err := decodeDef(it.Value())
			if err != nil || (q == nil && !cfg.Float) {
				continue // the def table's own check reports a bad definition; no graph yet
			}
			c := &coll{cfg: cfg, shard: shard}
			g, err := m.loadGraph(r, c, q, entry)
			if err != nil {
				probs = append(probs, fmt.Errorf("collection %q: graph does not load: %w", cfg.Name, err))
				continue
			}
			if miss := g.Unreachable(); len(miss) > 0 {
				// Not damage: a graph written before the graph kept every
				// vector reachable may hold such vectors, and a set cut off
				// together waits for the next full walk (reach.go).
				probs = append(probs, fmt.Errorf("%w: collection %q: %d live vectors unreachable from the entry point (ids %v)",
					db.ErrCheckWarning, cfg.Name, len(miss), miss[:min(len(miss), maxUnreachableShown)]))
			}
		}
		if err := it.Close(); err != nil {
			probs = append(probs, err)
		}
	}
	return probs
}
