package raftsm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/lni/dragonboat/v4"
)

// Errors of cluster operations (Status, AddReplica, RemoveReplica,
// TransferLeader). Each operation ends within its context's deadline
// (OpTimeout when the context has none) with one of them, or with
// db.ErrOutcomeUnknown when a change was sent and not confirmed.
var (
	// ErrNotMember: the replica id is not a member of the shard.
	ErrNotMember = errors.New("raftsm: not a member")
	// ErrAlreadyMember: the replica id is a member already (perhaps at
	// another address), or the address is another member's.
	ErrAlreadyMember = errors.New("raftsm: already a member")
	// ErrRemovedID: the replica id was removed from the cluster; Raft never
	// lets a removed id return (use a new id).
	ErrRemovedID = errors.New("raftsm: a removed replica id cannot return")
	// ErrNoQuorum: the shard could not answer before the deadline: no
	// leader with a quorum of live members.
	ErrNoQuorum = errors.New("raftsm: no quorum")
	// ErrRejected: Raft refused the change (for example removing the only
	// member). Not retried.
	ErrRejected = errors.New("raftsm: membership change rejected")
	// ErrUnknownShard: no such shard on this node.
	ErrUnknownShard = errors.New("raftsm: unknown shard")
)

// OpTimeout bounds a cluster operation whose context has no deadline.
const OpTimeout = 10 * time.Second

// withDeadline gives ctx the OpTimeout deadline if it has none.
func withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, OpTimeout)
}

// ShardStatus is one shard as this node sees it.
type ShardStatus struct {
	Shard    uint32            `json:"shard"`
	Leader   uint64            `json:"leader"`
	Term     uint64            `json:"term"`
	IsLeader bool              `json:"is_leader"`
	Applied  uint64            `json:"applied"`
	Members  map[uint64]string `json:"members"`
}

// membership reads shard's membership (a linearizable read: it needs a
// quorum), retrying while the shard is not ready, until ctx ends: then
// ErrNoQuorum.
func (n *Node) membership(ctx context.Context, shard uint64) (*dragonboat.Membership, error) {
	for i := 0; ; i++ {
		if err := n.removedErr(); err != nil {
			return nil, err
		}
		actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
		m, err := n.nh.SyncGetShardMembership(actx, shard)
		cancel()
		if err == nil {
			return m, nil
		}
		if err := n.closedErr(err, shard); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: membership of shard %d not read within the deadline: %w", ErrNoQuorum, shard, err)
		}
		if retry, _ := retryable(err); !retry {
			return nil, fmt.Errorf("raftsm: membership of shard %d: %w", shard, err)
		}
		if backoff(ctx, i) != nil {
			return nil, fmt.Errorf("%w: membership of shard %d not read within the deadline: %w", ErrNoQuorum, shard, err)
		}
	}
}

// closedErr maps the errors that mean this node (or its replica of shard)
// is gone: ErrRemoved once removed, db.ErrClosed after Close.
func (n *Node) closedErr(err error, shard uint64) error {
	if rerr := n.removedErr(); rerr != nil {
		return rerr
	}
	switch {
	case errors.Is(err, dragonboat.ErrClosed), errors.Is(err, dragonboat.ErrShardClosed):
		return fmt.Errorf("%w: shard %d: %w", db.ErrClosed, shard, err)
	case errors.Is(err, dragonboat.ErrShardNotFound):
		return fmt.Errorf("%w: shard %d: %w", ErrUnknownShard, shard, err)
	}
	return nil
}

// Status reports every shard: leader and term as this node knows them,
// the applied index of its replica, and the members (a linearizable
// membership read: without a quorum it fails with ErrNoQuorum at ctx's
// deadline, OpTimeout if ctx has none). A removed node answers ErrRemoved.
func (n *Node) Status(ctx context.Context) ([]ShardStatus, error) {
	if err := n.removedErr(); err != nil {
		return nil, err
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	var out []ShardStatus
	for _, s := range n.shards {
		st := ShardStatus{Shard: s}
		leader, term, ok, err := n.nh.GetLeaderID(uint64(s))
		if err != nil {
			if cerr := n.closedErr(err, uint64(s)); cerr != nil {
				return nil, cerr
			}
			return nil, err
		}
		if ok {
			st.Leader, st.Term, st.IsLeader = leader, term, leader == n.cfg.ReplicaID
		}
		v, err := n.nh.StaleRead(uint64(s), nil)
		if err != nil {
			if cerr := n.closedErr(err, uint64(s)); cerr != nil {
				return nil, cerr
			}
			return nil, err
		}
		st.Applied = v.(uint64)
		m, err := n.membership(ctx, uint64(s))
		if err != nil {
			return nil, err
		}
		st.Members = m.Nodes
		out = append(out, st)
	}
	return out, nil
}

// changeMembership runs one membership change on every shard. On each, it
// first reads the membership: check says whether the change is already
// there (done) or can never be made (a typed error); otherwise the change
// is requested, and after a request that failed without an answer the
// membership is read again, so a retry never repeats a change that was
// applied. It returns how many shards it changed.
func (n *Node) changeMembership(ctx context.Context, what string, check func(m *dragonboat.Membership) (done bool, err error), req func(ctx context.Context, shard uint64) error) (int, error) {
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	changed := 0
	for _, s := range n.shards {
		maybe := false // a request went out and was not answered
		for i := 0; ; i++ {
			m, err := n.membership(ctx, uint64(s))
			if err != nil {
				if maybe {
					return changed, fmt.Errorf("%w: %s on shard %d: %w", db.ErrOutcomeUnknown, what, s, err)
				}
				return changed, err
			}
			done, err := check(m)
			if err != nil {
				return changed, fmt.Errorf("%s on shard %d: %w", what, s, err)
			}
			if done {
				if maybe {
					changed++
				}
				break
			}
			actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
			err = req(actx, uint64(s))
			cancel()
			if err == nil {
				changed++
				break
			}
			if cerr := n.closedErr(err, uint64(s)); cerr != nil {
				return changed, cerr
			}
			if errors.Is(err, dragonboat.ErrRejected) {
				return changed, fmt.Errorf("%w: %s on shard %d", ErrRejected, what, s)
			}
			retry, mp := retryable(err)
			if !retry {
				return changed, fmt.Errorf("raftsm: %s on shard %d: %w", what, s, err)
			}
			maybe = maybe || mp
			if backoff(ctx, i) != nil {
				if maybe {
					return changed, fmt.Errorf("%w: %s on shard %d: %w", db.ErrOutcomeUnknown, what, s, err)
				}
				return changed, fmt.Errorf("%w: %s on shard %d: %w", ErrNoQuorum, what, s, err)
			}
		}
	}
	return changed, nil
}

// AddReplica adds replica id at addr (a Raft address, or a NodeHost ID
// with Config.Gossip) to every shard. Start the new node with Config.Join
// afterwards (or before: it waits to be contacted). It fails with
// ErrRemovedID for an id removed earlier, ErrAlreadyMember for a member's
// id or address (a retry after a partial add completes it instead),
// ErrNoQuorum when a shard cannot answer within ctx's deadline.
func (n *Node) AddReplica(ctx context.Context, id uint64, addr string) error {
	if id == 0 || addr == "" {
		return fmt.Errorf("%w: replica id and address are required", ErrConfig)
	}
	changed, err := n.changeMembership(ctx, "add replica", func(m *dragonboat.Membership) (bool, error) {
		if _, ok := m.Removed[id]; ok {
			return false, fmt.Errorf("%w: replica %d was removed", ErrRemovedID, id)
		}
		if a, ok := m.Nodes[id]; ok {
			if a == addr {
				return true, nil
			}
			return false, fmt.Errorf("%w: replica %d is a member at %s", ErrAlreadyMember, id, a)
		}
		for _, other := range slices.Sorted(maps.Keys(m.Nodes)) {
			if m.Nodes[other] == addr {
				return false, fmt.Errorf("%w: %s is replica %d's address", ErrAlreadyMember, addr, other)
			}
		}
		return false, nil
	}, func(ctx context.Context, s uint64) error {
		return n.nh.SyncRequestAddReplica(ctx, s, id, addr, 0)
	})
	if err == nil && changed == 0 {
		return fmt.Errorf("%w: replica %d at %s", ErrAlreadyMember, id, addr)
	}
	return err
}

// RemoveReplica removes replica id from every shard. A removed replica id
// can never join again. It fails with ErrNotMember for an id that is not a
// member (never was, or was removed already), ErrRejected for the only
// member, ErrNoQuorum when a shard cannot answer within ctx's deadline.
func (n *Node) RemoveReplica(ctx context.Context, id uint64) error {
	changed, err := n.changeMembership(ctx, "remove replica", func(m *dragonboat.Membership) (bool, error) {
		if _, ok := m.Nodes[id]; !ok {
			if _, ok := m.Removed[id]; ok {
				return true, nil
			}
			return false, fmt.Errorf("%w: replica %d", ErrNotMember, id)
		}
		if len(m.Nodes) == 1 {
			return false, fmt.Errorf("%w: replica %d is the only member", ErrRejected, id)
		}
		return false, nil
	}, func(ctx context.Context, s uint64) error {
		return n.nh.SyncRequestDeleteReplica(ctx, s, id, 0)
	})
	if err == nil && changed == 0 {
		return fmt.Errorf("%w: replica %d was removed already", ErrNotMember, id)
	}
	return err
}

// TransferLeader asks shard's leader to hand leadership to replica target,
// repeating the request every half second (Raft may drop it, for example
// while target catches up), until target leads or ctx ends (OpTimeout if
// it has no deadline). An unknown shard is ErrUnknownShard, a target that
// is not a member ErrNotMember.
func (n *Node) TransferLeader(ctx context.Context, shard uint32, target uint64) error {
	if !slices.Contains(n.shards, shard) {
		return fmt.Errorf("%w: %d", ErrUnknownShard, shard)
	}
	ctx, cancel := withDeadline(ctx)
	defer cancel()
	m, err := n.membership(ctx, uint64(shard))
	if err != nil {
		return err
	}
	if _, ok := m.Nodes[target]; !ok {
		return fmt.Errorf("%w: replica %d of shard %d", ErrNotMember, target, shard)
	}
	var last time.Time
	for i := 0; ; i++ {
		if l, _, ok, _ := n.nh.GetLeaderID(uint64(shard)); ok && l == target {
			return nil
		}
		if time.Since(last) > 500*time.Millisecond {
			if err := n.nh.RequestLeaderTransfer(uint64(shard), target); err != nil {
				if cerr := n.closedErr(err, uint64(shard)); cerr != nil {
					return cerr
				}
				return fmt.Errorf("raftsm: transfer shard %d: %w", shard, err)
			}
			last = time.Now()
		}
		if err := backoff(ctx, min(i, 5)); err != nil {
			return fmt.Errorf("raftsm: transfer shard %d to %d: replica %d did not take over within the deadline: %w", shard, target, target, err)
		}
	}
}
