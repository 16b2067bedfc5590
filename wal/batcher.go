package wal

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Submit after Close, and by Next once the Batcher is
// closed and drained.
var ErrClosed = errors.New("wal: batcher closed")

// Result is the outcome of one proposal, filled in by the consumer that
// applied it.
type Result struct {
	// Index is the log index of the frame that held the record.
	Index uint64
	// N and Data carry the owning state machine's answer (a task id, a
	// previous value); their meaning is defined by the record kind.
	N    uint64
	Data []byte
	// Err is the record's rejection by its state machine (the record changed
	// nothing), or the failure of the whole frame.
	Err error
}

// Proposal is one record waiting to be framed and applied. A proposal is used
// once: Submit it, then Wait for it.
type Proposal struct {
	Rec    Record
	Result Result
	done   chan struct{}
}

// NewProposal returns a proposal for rec.
func NewProposal(rec Record) *Proposal {
	return &Proposal{Rec: rec, done: make(chan struct{})}
}

// Finish records the result and wakes the waiter. The consumer calls it
// exactly once per proposal.
func (p *Proposal) Finish(r Result) {
	p.Result = r
	close(p.done)
}

// Wait blocks until the proposal is finished or ctx is done. It returns
// ctx.Err() in the latter case; the record may still be applied later.
func (p *Proposal) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done reports whether the proposal has been finished.
func (p *Proposal) Done() <-chan struct{} { return p.done }

// BatcherOptions configures a Batcher. The zero value is usable: see each
// field's default.
type BatcherOptions struct {
	// MaxFrameBytes caps the plain payload of one frame; a single record larger
	// than this still forms a frame of its own. Default 4 MiB.
	MaxFrameBytes int
	// MaxRecords caps the records in one frame. Default 16384.
	MaxRecords int
	// Linger is how long Next waits for more records after the first one
	// arrives, unless the frame fills first. Default 0: take whatever is
	// pending as soon as the consumer asks, which groups naturally while the
	// consumer is busy syncing the previous frame (adaptive group commit)
	// and adds no latency to a lone writer.
	Linger time.Duration
}

func (o *BatcherOptions) withDefaults() BatcherOptions {
	c := *o
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 4 << 20
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 16384
	}
	return c
}

// Batcher groups concurrently submitted proposals into frames: many
// submitters, one consumer (the commit loop) calling Next.
type Batcher struct {
	opts   BatcherOptions
	signal chan struct{} // capacity 1: "pending may be non-empty or closed"

	mu struct {
		sync.Mutex
		pending      []*Proposal // protected by mu
		pendingBytes int
		closed       bool
	}
}

// NewBatcher returns a Batcher with opts (defaults filled in).
func NewBatcher(opts BatcherOptions) *Batcher {
	return &Batcher{opts: opts.withDefaults(), signal: make(chan struct{}, 1)}
}

// Submit queues p for the next frame. It never blocks on the consumer.
func (b *Batcher) Submit(p *Proposal) error {
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.mu.pending = append(b.mu.pending, p)
	b.mu.pendingBytes += RecordSize(&p.Rec)
	b.mu.Unlock()
	b.notify()
	return nil
}

func (b *Batcher) notify() {
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

// Pending returns the number of proposals waiting for a frame.
func (b *Batcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mu.pending)
}

// Next blocks until at least one proposal is pending, then appends up to one
// frame's worth of proposals to dst (in submission order) and returns it.
// After Close it keeps returning what is still pending, then ErrClosed.
// Only one goroutine may call Next.
func (b *Batcher) Next(dst []*Proposal) ([]*Proposal, error) {
	for {
		b.mu.Lock()
		n := len(b.mu.pending)
		if n > 0 {
			if b.opts.Linger > 0 && !b.mu.closed &&
				n < b.opts.MaxRecords && b.mu.pendingBytes < b.opts.MaxFrameBytes {
				b.mu.Unlock()
				b.linger()
				b.mu.Lock()
			}
			dst = b.takeLocked(dst)
			more := len(b.mu.pending) > 0
			b.mu.Unlock()
			if more {
				b.notify()
			}
			return dst, nil
		}
		if b.mu.closed {
			b.mu.Unlock()
			return dst, ErrClosed
		}
		b.mu.Unlock()
		<-b.signal
	}
}

// popLocked moves the first n pending proposals (bytes in all) to dst.
// REQUIRES: b.mu held.
func (b *Batcher) popLocked(dst []*Proposal, n, bytes int) []*Proposal {
	dst = append(dst, b.mu.pending[:n]...)
	rest := copy(b.mu.pending, b.mu.pending[n:])
	clear(b.mu.pending[rest:])
	b.mu.pending = b.mu.pending[:rest]
	b.mu.pendingBytes -= bytes
	return dst
}

// linger waits up to Linger for the pending set to fill.
func (b *Batcher) linger() {
	t := time.NewTimer(b.opts.Linger)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-b.signal:
			b.mu.Lock()
			full := b.mu.closed || len(b.mu.pending) >= b.opts.MaxRecords ||
				b.mu.pendingBytes >= b.opts.MaxFrameBytes
			b.mu.Unlock()
			if full {
				return
			}
		}
	}
}

// takeLocked moves up to one frame's worth of proposals to dst.
// REQUIRES: b.mu held.
func (b *Batcher) takeLocked(dst []*Proposal) []*Proposal {
	bytes, i := 0, 0
	for ; i < len(b.mu.pending) && i < b.opts.MaxRecords; i++ {
		sz := RecordSize(&b.mu.pending[i].Rec)
		if i > 0 && bytes+sz > b.opts.MaxFrameBytes {
			break
		}
		bytes += sz
	}
	return b.popLocked(dst, i, bytes)
}

// Close stops accepting proposals. Proposals already submitted are still
// returned by Next.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.mu.closed = true
	b.mu.Unlock()
	b.notify()
}
