package db

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
)

// ScanOptions bounds a scan of one namespace. All bounds are optional and
// combine: a key is visited if it has Prefix, is >= Start and is < End.
type ScanOptions struct {
	Prefix []byte
	// Start is the inclusive lower bound; nil means unbounded.
	Start []byte
	// End is the exclusive upper bound; nil means unbounded.
	End []byte
	// Reverse visits keys in descending order.
	Reverse bool
	// Limit stops after this many entries; 0 means no limit.
	Limit int
}

// Cursor walks a namespace in key order (or reverse order) over a consistent
// snapshot of the store taken when the cursor was created. Expired keys are
// skipped. A Cursor is not safe for concurrent use; it must be closed. DB.Close
// closes cursors still open, after which they report ErrClosed.
//
//	c, err := d.NewCursor("ns", db.ScanOptions{Prefix: p})
//	if err != nil { ... }
//	defer c.Close()
//	for ok := c.First(); ok; ok = c.Next() {
//		use(c.Key(), c.Value()) // valid until the next move
//	}
//	if err := c.Err(); err != nil { ... }
type Cursor struct {
	d       *DB
	mu      sync.Mutex // guards it and err against DB.Close
	it      *pebble.Iterator
	err     error
	ns      string
	nsLen   int // length of the shard/table/ns prefix stripped from keys
	reverse bool
	limit   int
	seen    int
	now     int64
	key     []byte // current user key (aliases the iterator)
	val     []byte
	exp     int64
	valid   bool
}

// NewCursor opens a cursor over namespace ns.
func (d *DB) NewCursor(ns string, o ScanOptions) (*Cursor, error) {
	if err := checkNS(ns); err != nil {
		return nil, err
	}
	if o.Start != nil && o.End != nil && bytes.Compare(o.Start, o.End) > 0 {
		return nil, fmt.Errorf("%w: start %q > end %q", ErrInvalidRange, o.Start, o.End)
	}
	if o.Limit < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrInvalidRange)
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	shard := d.placement.ShardFor(ns)
	base := kvKey(nil, shard, ns, nil)
	lower := kvKey(nil, shard, ns, o.Prefix)
	upper := []byte(nil)
	if len(o.Prefix) > 0 {
		upper = keys.PrefixEnd(lower)
	} else {
		upper = keys.PrefixEnd(base)
	}
	if o.Start != nil {
		if s := kvKey(nil, shard, ns, o.Start); bytes.Compare(s, lower) > 0 {
			lower = s
		}
	}
	if o.End != nil {
		if e := kvKey(nil, shard, ns, o.End); upper == nil || bytes.Compare(e, upper) < 0 {
			upper = e
		}
	}
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	c := &Cursor{d: d, it: it, ns: ns, nsLen: len(base), reverse: o.Reverse, limit: o.Limit,
		now: d.opts.Now().UnixNano()}
	d.cursors.Lock()
	d.cursors.open[c] = struct{}{}
	d.cursors.Unlock()
	return c, nil
}

// First moves to the first entry in scan order and reports whether there is
// one.
func (c *Cursor) First() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.it == nil {
		return false
	}
	c.seen = 0
	var ok bool
	if c.reverse {
		ok = c.it.Last()
	} else {
		ok = c.it.First()
	}
	return c.settleLocked(ok)
}

// Next moves to the next entry in scan order.
func (c *Cursor) Next() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.it == nil || !c.valid {
		return false
	}
	return c.settleLocked(c.stepLocked())
}

func (c *Cursor) stepLocked() bool {
	if c.reverse {
		return c.it.Prev()
	}
	return c.it.Next()
}

// settleLocked skips expired entries and decodes the current one.
// REQUIRES: c.mu held.
func (c *Cursor) settleLocked(ok bool) bool {
	c.valid = false
	if c.limit > 0 && c.seen >= c.limit {
		return false
	}
	for ; ok; ok = c.stepLocked() {
		exp, val, err := decodeValue(c.it.Value())
		if err != nil {
			c.err = fmt.Errorf("db: key %q: %w", c.it.Key(), err)
			return false
		}
		if exp != 0 && exp <= c.now {
			continue
		}
		c.key, c.val, c.exp, c.valid = c.it.Key()[c.nsLen:], val, exp, true
		c.seen++
		return true
	}
	if err := c.it.Error(); err != nil {
		c.err = err
	}
	return false
}

// Valid reports whether the cursor is at an entry.
func (c *Cursor) Valid() bool { return c.valid }

// Key returns the current key (without namespace). It is valid until the
// cursor moves or closes.
func (c *Cursor) Key() []byte { return c.key }

// Value returns the current value, valid until the cursor moves or closes.
func (c *Cursor) Value() []byte { return c.val }

// ExpiresAt returns the current entry's expiry, or the zero Time.
func (c *Cursor) ExpiresAt() time.Time {
	if c.exp == 0 {
		return time.Time{}
	}
	return time.Unix(0, c.exp)
}

// Err returns the error that stopped the cursor, if any.
func (c *Cursor) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close releases the cursor. It is safe to call more than once.
func (c *Cursor) Close() error {
	c.shut(nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == ErrClosed {
		return nil
	}
	return c.err
}

// shut closes the iterator, recording reason as the cursor's error when
// non-nil. It takes c.mu itself.
func (c *Cursor) shut(reason error) {
	c.mu.Lock()
	if c.it != nil {
		if err := c.it.Close(); err != nil && c.err == nil {
			c.err = err
		}
		c.it = nil
		c.valid = false
		if reason != nil && c.err == nil {
			c.err = reason
		}
	}
	c.mu.Unlock()
	c.d.cursors.Lock()
	delete(c.d.cursors.open, c)
	c.d.cursors.Unlock()
}

// Scan returns the entries of a scan as an iterator of copies; the error of a
// failed scan is yielded last. Stop early by breaking out of the loop.
//
//	for e, err := range d.Scan(ctx, "ns", db.ScanOptions{}) { ... }
func (d *DB) Scan(ctx context.Context, ns string, o ScanOptions) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if err := d.ReadBarrier(ctx, d.placement.ShardFor(ns)); err != nil {
			yield(Entry{}, err)
			return
		}
		c, err := d.NewCursor(ns, o)
		if err != nil {
			yield(Entry{}, err)
			return
		}
		defer c.Close()
		for ok := c.First(); ok; ok = c.Next() {
			if err := ctx.Err(); err != nil {
				yield(Entry{}, err)
				return
			}
			e := Entry{Namespace: ns, Key: append([]byte(nil), c.Key()...),
				Value: append([]byte{}, c.Value()...), ExpiresAt: c.ExpiresAt()}
			if !yield(e, nil) {
				return
			}
		}
		if err := c.Err(); err != nil {
			yield(Entry{}, err)
		}
	}
}
