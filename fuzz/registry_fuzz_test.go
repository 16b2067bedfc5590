package fuzz

import (
	"context"
	"testing"

	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/wal"
)

// FuzzRegistryRecord applies an arbitrary body of a registry record kind to
// a fresh copy of a store holding one agent (harness): it is applied or
// rejected with a typed error, never a panic, the engine keeps working, the
// store passes Check and the registry still lists.
func FuzzRegistryRecord(f *testing.F) {
	h := newHarness(f, func(ctx context.Context, e *env) error {
		return e.r.Register(ctx, registry.AgentSpec{ID: "a", Capacity: 2, Capabilities: []string{"gpu"}})
	})
	f.Add(uint8(0), []byte("\x01b\x00\x01\x03gpu\x02\x00\x80\x94\xeb\xdc\x07")) // register
	f.Add(uint8(1), []byte("\x01a"))                                            // deregister
	f.Add(uint8(2), []byte("\x01a\x01\x02ok"))                                  // heartbeat
	f.Add(uint8(3), []byte("\x03"))                                             // expire
	f.Add(uint8(4), []byte("\x01p\x01\x02\x00"))                                // pool
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		e := h.fresh(t)
		e.apply(t, registry.KindRegister+wal.Kind(kind%6), body, registry.ErrNotFound)
		e.r.List(registry.Filter{})
	})
}
