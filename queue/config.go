package queue

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by queue operations. Match them with errors.Is.
var (
	// ErrNotFound: no such queue, task, or dead letter.
	ErrNotFound = errors.New("queue: not found")
	// ErrExists: Create of a queue that exists with a different config.
	ErrExists = errors.New("queue: exists with a different config")
	// ErrFull: the queue is at capacity (or the task's priority is below the
	// reserve); the task was not accepted and the caller keeps it.
	ErrFull = errors.New("queue: full")
	// ErrLeaseLost: the lease token is stale or wrong, or the lease expired.
	ErrLeaseLost = errors.New("queue: lease lost")
	// ErrCanceled: the task was canceled; its Ack is refused.
	ErrCanceled = errors.New("queue: task canceled")
	// ErrInvalid: an invalid argument (name, priority, sizes, durations).
	ErrInvalid = errors.New("queue: invalid argument")
)

// Limits.
const (
	MaxNameSize     = 128
	MaxPayloadSize  = 4 << 20
	MaxResultSize   = 4 << 20
	MaxIdemKeySize  = 256
	MaxCapabilities = 32
	MaxTags         = 32
	MaxLabelSize    = 128
	MaxBatch        = 10_000
	// MaxPriority is the highest priority; higher runs first.
	MaxPriority = 9
)

// Config describes a queue. Zero fields take the defaults below.
type Config struct {
	Name string
	// HotCapacity: tasks held in memory for fast dispatch. Default 1,000.
	HotCapacity int
	// OverflowCapacity: tasks beyond the hot set, held only in Pebble.
	// Default 10,000. Negative means unbounded by count (bounded by MaxBytes).
	OverflowCapacity int
	// MaxBytes bounds the payload bytes of outstanding tasks. Default 0: no
	// byte bound (required when OverflowCapacity is negative).
	MaxBytes int64
	// ReserveFraction: the last slice of capacity admits only tasks with
	// priority >= HighPriority. Default 0.10.
	ReserveFraction float64
	// HighPriority: the lowest priority admitted into the reserve. Default 7.
	HighPriority int
	// MaxAttempts before a task is dead-lettered. Default 5.
	MaxAttempts int
	// LeaseDuration: default lease length. Default 30s.
	LeaseDuration time.Duration
	// BackoffBase and BackoffMax: retry k waits min(Base*2^(k-1), Max) plus
	// up to JitterFraction of it (the jitter is drawn by the proposer).
	// Defaults 1s, 5m, 0.2; a negative JitterFraction means no jitter.
	BackoffBase    time.Duration
	BackoffMax     time.Duration
	JitterFraction float64
	// ResultRetention: how long acked tasks (their state and result, not
	// their payload: Ack deletes the body) are kept. Default 1h.
	ResultRetention time.Duration
	// DeadRetention: how long dead letters are kept. Default 7 days.
	DeadRetention time.Duration
	// IdempotencyWindow: how long an idempotency key maps to its task.
	// Default 24h.
	IdempotencyWindow time.Duration
}

func (c Config) withDefaults() Config {
	if c.HotCapacity == 0 {
		c.HotCapacity = 1000
	}
	if c.OverflowCapacity == 0 {
		c.OverflowCapacity = 10_000
	}
	if c.ReserveFraction == 0 {
		c.ReserveFraction = 0.10
	}
	if c.HighPriority == 0 {
		c.HighPriority = 7
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = 30 * time.Second
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Minute
	}
	switch {
	case c.JitterFraction == 0:
		c.JitterFraction = 0.2
	case c.JitterFraction < 0:
		c.JitterFraction = -1 // stored as "none"
	}
	if c.ResultRetention == 0 {
		c.ResultRetention = time.Hour
	}
	if c.DeadRetention == 0 {
		c.DeadRetention = 7 * 24 * time.Hour
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = 24 * time.Hour
	}
	return c
}

func (c Config) validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, a...)...) }
	switch {
	case c.Name == "" || len(c.Name) > MaxNameSize:
		return bad("queue name of %d bytes (want 1..%d)", len(c.Name), MaxNameSize)
	case c.HotCapacity < 1:
		return bad("HotCapacity %d", c.HotCapacity)
	case c.OverflowCapacity < 0 && c.MaxBytes <= 0:
		return bad("unbounded OverflowCapacity needs MaxBytes")
	case c.MaxBytes < 0:
		return bad("MaxBytes %d", c.MaxBytes)
	case c.ReserveFraction < 0 || c.ReserveFraction >= 1:
		return bad("ReserveFraction %v (want [0, 1))", c.ReserveFraction)
	case c.HighPriority < 0 || c.HighPriority > MaxPriority:
		return bad("HighPriority %d", c.HighPriority)
	case c.MaxAttempts < 1:
		return bad("MaxAttempts %d", c.MaxAttempts)
	case c.LeaseDuration <= 0 || c.BackoffBase <= 0 || c.BackoffMax < c.BackoffBase:
		return bad("lease/backoff durations")
	case (c.JitterFraction < 0 && c.JitterFraction != -1) || c.JitterFraction > 1:
		return bad("JitterFraction %v", c.JitterFraction)
	case c.ResultRetention < 0 || c.DeadRetention < 0 || c.IdempotencyWindow < 0:
		return bad("negative retention")
	}
	return nil
}

// capacity is the most outstanding (ready + delayed + leased) tasks
// admitted, or -1 when only MaxBytes bounds the queue.
func (c Config) capacity() int64 {
	if c.OverflowCapacity < 0 {
		return -1
	}
	return int64(c.HotCapacity + c.OverflowCapacity)
}
