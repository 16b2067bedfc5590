package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowdb/flowdb/db"
)

// SessionKind separates client sessions from agent sessions.
type SessionKind string

const (
	ClientSession SessionKind = "client"
	AgentSession  SessionKind = "agent"
)

func (k SessionKind) ns() (string, error) {
	if k != ClientSession && k != AgentSession {
		return "", fmt.Errorf("%w: session kind %q", ErrInvalid, k)
	}
	return "session." + string(k), nil
}

// OpenSession stores a session that expires after idle without use. It
// is a key-value entry with a TTL (namespace "session.client" or
// "session.agent"), so it is durable and replicated like any other.
func (r *Registry) OpenSession(ctx context.Context, kind SessionKind, id string, data []byte, idle time.Duration) error {
	ns, err := kind.ns()
	if err != nil {
		return err
	}
	if idle <= 0 {
		return fmt.Errorf("%w: session idle timeout must be positive", ErrInvalid)
	}
	// The idle timeout is kept in front of the data so that a touch can
	// renew it.
	v := append(binaryDuration(idle), data...)
	return r.d.SetTTL(ctx, ns, []byte(id), v, idle)
}

// Session returns a session's data and touches it: its idle timeout starts
// again. A session that idled out is ErrNotFound.
func (r *Registry) Session(ctx context.Context, kind SessionKind, id string) ([]byte, error) {
	ns, err := kind.ns()
	if err != nil {
		return nil, err
	}
	v, err := r.d.Get(ctx, ns, []byte(id))
	if err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return nil, fmt.Errorf("%w: session %q", ErrNotFound, id)
		}
		return nil, err
	}
	if len(v) < 8 {
		return nil, fmt.Errorf("%w: session %q", ErrInvalid, id)
	}
	idle := durationOf(v[:8])
	if err := r.d.SetTTL(ctx, ns, []byte(id), v, idle); err != nil {
		return nil, err
	}
	return v[8:], nil
}

// CloseSession deletes a session.
func (r *Registry) CloseSession(ctx context.Context, kind SessionKind, id string) error {
	ns, err := kind.ns()
	if err != nil {
		return err
	}
	return r.d.Delete(ctx, ns, []byte(id))
}
