package txntest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/registry"
)

// view is what the in-memory views answer: queue counters and hot sets,
// held counts, the registry's agents, the collections' sizes.
type view struct {
	text string
	hot  map[string][]uint64 // per queue, the hot set in dispatch order
}

func (s *stack) views(t testing.TB) view {
	t.Helper()
	var b strings.Builder
	v := view{hot: map[string][]uint64{}}
	for _, q := range s.qm.Queues() {
		st, err := s.qm.Stats(q)
		if err != nil {
			t.Fatal(err)
		}
		// The hot set may run short of its capacity between a removal and
		// the next refill (a reopened store fills it): compare ready counts
		// and, separately, that the hot set is a prefix of the dispatch order.
		fmt.Fprintf(&b, "queue %s ready=%d delayed=%d leased=%d dead=%d done=%d bytes=%d enq=%d acked=%d;\n",
			q, st.Hot+st.Overflow, st.Delayed, st.Leased, st.Dead, st.Done, st.Bytes, st.Enqueued, st.Acked)
		ready, err := s.qm.Ready(q, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range ready {
			v.hot[q] = append(v.hot[q], c.ID)
		}
	}
	held := s.qm.HeldAll()
	for _, a := range slices.Sorted(maps.Keys(held)) {
		fmt.Fprintf(&b, "held %s=%d;\n", a, held[a])
	}
	for _, a := range s.r.List(registry.Filter{}) {
		fmt.Fprintf(&b, "agent %s load=%d status=%q healthy=%v caps=%v;\n", a.ID, a.Load, a.Status, a.Healthy, a.Capabilities)
	}
	for _, c := range s.vm.Collections() {
		st, err := s.vm.Stats(c)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "coll %s n=%d trained=%v;\n", c, st.Vectors, st.Trained)
	}
	v.text = b.String()
	return v
}

// sameAs reports how v (a running store's views) differs from w (the views
// rebuilt from disk, or taken before a refused transaction), "" if in no
// way: equal text, and each hot set of v a prefix of w's.
func (v view) sameAs(w view) string {
	if v.text != w.text {
		return fmt.Sprintf("views differ:\n%s\nvs\n%s", v.text, w.text)
	}
	for q, h := range v.hot {
		if len(h) > len(w.hot[q]) || !slices.Equal(h, w.hot[q][:len(h)]) {
			return fmt.Sprintf("queue %s: hot set %v is not a prefix of %v", q, h, w.hot[q])
		}
	}
	return ""
}
