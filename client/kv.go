package client

import (
	"context"
	"iter"
	"time"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
)

// Entry is a key-value pair read from the server.
type Entry struct {
	Key, Value []byte
	// ExpiresAt is the zero Time for a key without TTL.
	ExpiresAt time.Time
}

// Get returns the value under ns/key; a missing key matches db.ErrNotFound.
func (c *Client) Get(ctx context.Context, ns string, key []byte) ([]byte, error) {
	e, err := c.GetEntry(ctx, ns, key)
	return e.Value, err
}

// GetEntry is Get with the key's expiry.
func (c *Client) GetEntry(ctx context.Context, ns string, key []byte) (Entry, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.GetResponse], error) {
		return c.kv.Get(ctx, connect.NewRequest(&v1.GetRequest{Namespace: ns, Key: key}))
	})
	if err != nil {
		return Entry{}, err
	}
	return Entry{Key: key, Value: m.Value, ExpiresAt: fromNano(m.ExpiresUnixNano)}, nil
}

// Set stores value under ns/key.
func (c *Client) Set(ctx context.Context, ns string, key, value []byte) error {
	return c.SetTTL(ctx, ns, key, value, 0)
}

// SetTTL stores value under ns/key, expiring after ttl (0: never). The
// TTL travels in milliseconds.
func (c *Client) SetTTL(ctx context.Context, ns string, key, value []byte, ttl time.Duration) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.SetResponse], error) {
		return c.kv.Set(ctx, connect.NewRequest(&v1.SetRequest{Namespace: ns, Key: key, Value: value, TtlMs: ms(ttl)}))
	})
	return err
}

// Delete removes ns/key.
func (c *Client) Delete(ctx context.Context, ns string, key []byte) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DeleteResponse], error) {
		return c.kv.Delete(ctx, connect.NewRequest(&v1.DeleteRequest{Namespace: ns, Key: key}))
	})
	return err
}

// DeletePrefix removes every key of ns that begins with prefix.
func (c *Client) DeletePrefix(ctx context.Context, ns string, prefix []byte) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DeleteResponse], error) {
		return c.kv.Delete(ctx, connect.NewRequest(&v1.DeleteRequest{Namespace: ns, Key: prefix, Prefix: true}))
	})
	return err
}

// ScanOptions bounds a scan, as db.ScanOptions does. Limit 0 means every
// matching key (fetched a page at a time).
type ScanOptions struct {
	Prefix, Start, End []byte
	Reverse            bool
	Limit              int
}

// Scan returns the entries of ns in key order (or reverse), fetched a page
// at a time; a failed page's error is yielded last. Pages are separate
// reads: a long scan is not one snapshot.
func (c *Client) Scan(ctx context.Context, ns string, o ScanOptions) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		var token []byte
		left := o.Limit
		for {
			req := &v1.ScanRequest{Namespace: ns, Prefix: o.Prefix, Start: o.Start, End: o.End, Reverse: o.Reverse, PageToken: token}
			if o.Limit > 0 {
				req.Limit = int32(min(left, 1<<30))
			}
			m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.ScanResponse], error) {
				return c.kv.Scan(ctx, connect.NewRequest(req))
			})
			if err != nil {
				yield(Entry{}, err)
				return
			}
			for _, e := range m.Entries {
				if !yield(Entry{Key: e.Key, Value: e.Value, ExpiresAt: fromNano(e.ExpiresUnixNano)}, nil) {
					return
				}
				left--
				if o.Limit > 0 && left == 0 {
					return
				}
			}
			if len(m.NextPageToken) == 0 {
				return
			}
			token = m.NextPageToken
		}
	}
}

// Batch is an atomic group of key-value operations (Commit).
type Batch struct{ ops []*v1.BatchOp }

// Set adds ns/key = value.
func (b *Batch) Set(ns string, key, value []byte) { b.SetTTL(ns, key, value, 0) }

// SetTTL adds ns/key = value expiring after ttl.
func (b *Batch) SetTTL(ns string, key, value []byte, ttl time.Duration) {
	b.ops = append(b.ops, &v1.BatchOp{Op: v1.BatchOp_OP_SET, Namespace: ns, Key: key, Value: value, TtlMs: ms(ttl)})
}

// Delete adds the deletion of ns/key.
func (b *Batch) Delete(ns string, key []byte) {
	b.ops = append(b.ops, &v1.BatchOp{Op: v1.BatchOp_OP_DELETE, Namespace: ns, Key: key})
}

// DeletePrefix adds the deletion of every key of ns with prefix.
func (b *Batch) DeletePrefix(ns string, prefix []byte) {
	b.ops = append(b.ops, &v1.BatchOp{Op: v1.BatchOp_OP_DELETE_PREFIX, Namespace: ns, Key: prefix})
}

// Len is the number of operations.
func (b *Batch) Len() int { return len(b.ops) }

// Commit applies b atomically: all its operations or none. A batch is sent
// once (its outcome is unknown if the connection fails after sending).
func (c *Client) Commit(ctx context.Context, b *Batch) error {
	_, err := call(ctx, c, once, func(ctx context.Context) (*connect.Response[v1.BatchResponse], error) {
		return c.kv.Batch(ctx, connect.NewRequest(&v1.BatchRequest{Ops: b.ops}))
	})
	return err
}
