// Package testutil holds helpers shared by tests of several packages: a
// settable clock, an in-memory store opened with the usual test options, a
// quiet logger, and the runner of seeded model tests. It is imported only
// from _test files (TestOnlyTestsImport checks it).
package testutil

import (
	"sync/atomic"
	"time"
)

// Clock is a settable clock for db.Options.Now, safe for concurrent use. It
// starts at 2026-01-01T00:00:00Z.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock at 2026-01-01T00:00:00Z.
func NewClock() *Clock {
	c := &Clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
