package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/maypok86/otter/v2"
)

// The lookup benchmarks compare an otter cache in front of the view with
// the view alone (its map under Registry.mu read-locked), for Get and for
// ByCapabilities, with every lookup a hit. Run:
//
//	go test -run '^$' -bench 'Lookup' -count 5 ./registry

const benchAgents = 1000

func benchRegistry(b *testing.B) *Registry {
	b.Helper()
	d := testutil.OpenMem(b, nil)
	r, err := Attach(d, &Options{CheckInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(); d.Close() })
	caps := []string{"gpu", "py", "go", "big"}
	for i := range benchAgents {
		spec := AgentSpec{ID: fmt.Sprint("agent-", i), Capacity: 4, Capabilities: []string{caps[i%len(caps)], caps[(i/4)%len(caps)]}}
		if err := r.Register(context.Background(), spec); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

func benchIDs() []string {
	ids := make([]string, benchAgents)
	for i := range ids {
		ids[i] = fmt.Sprint("agent-", (i*7919)%benchAgents)
	}
	return ids
}

// BenchmarkLookupGet: Get by id, from an otter cache filled with every
// agent (the options Attach gives its cache) or from the view's map.
func BenchmarkLookupGet(b *testing.B) {
	r := benchRegistry(b)
	ids := benchIDs()
	cache, err := otter.New(&otter.Options[string, *Agent]{MaximumSize: 1 << 16,
		ExpiryCalculator: otter.ExpiryWriting[string, *Agent](r.opts.Staleness)})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.StopAllGoroutines()
	fromMap := func(id string) *Agent {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.agents[id]
	}
	fromCache := func(id string) *Agent {
		if a, ok := cache.GetIfPresent(id); ok {
			return a
		}
		a := fromMap(id)
		cache.Set(id, a)
		return a
	}
	for _, bc := range []struct {
		name string
		get  func(string) *Agent
	}{{"otter", fromCache}, {"map", fromMap}} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if bc.get(ids[i%len(ids)]) == nil {
					b.Fatal("miss")
				}
				i++
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if bc.get(ids[i%len(ids)]) == nil {
						b.Fatal("miss")
					}
					i++
				}
			})
		})
	}
}

// BenchmarkLookupByCapabilities: ByCapabilities with the registry's otter
// cache in front, or matching in the view each time.
func BenchmarkLookupByCapabilities(b *testing.B) {
	r := benchRegistry(b)
	queries := [][]string{{"gpu"}, {"py"}, {"go", "gpu"}, {"big", "py"}}
	fromView := func(caps []string) []*Agent {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.matchLocked(caps, "")
	}
	for _, bc := range []struct {
		name string
		get  func([]string) []*Agent
	}{{"otter", r.ByCapabilities}, {"view", fromView}} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if len(bc.get(queries[i%len(queries)])) == 0 {
					b.Fatal("none: " + strings.Join(queries[i%len(queries)], ","))
				}
				i++
			}
		})
	}
}
