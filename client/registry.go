package client

import (
	"context"
	"iter"
	"time"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
)

// AgentSpec is what an agent registers with, as registry.AgentSpec.
type AgentSpec struct {
	ID                string
	Pool              string
	Capabilities      []string
	Capacity          int
	Labels            map[string]string
	HeartbeatInterval time.Duration
}

// Register adds (or redefines) an agent.
func (c *Client) Register(ctx context.Context, a AgentSpec) error {
	spec := &v1.AgentSpec{Id: a.ID, Pool: a.Pool, Capabilities: a.Capabilities, Capacity: int32(a.Capacity), Labels: a.Labels,
		HeartbeatIntervalMs: ms(a.HeartbeatInterval)}
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.RegisterResponse], error) {
		return c.reg.Register(ctx, connect.NewRequest(&v1.RegisterRequest{Agent: spec}))
	})
	return err
}

// Heartbeat reports an agent alive with its load and status.
func (c *Client) Heartbeat(ctx context.Context, id string, load int, status string) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.HeartbeatResponse], error) {
		return c.reg.Heartbeat(ctx, connect.NewRequest(&v1.HeartbeatRequest{Id: id, Load: int32(load), Status: status}))
	})
	return err
}

// Deregister removes an agent.
func (c *Client) Deregister(ctx context.Context, id string) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DeregisterResponse], error) {
		return c.reg.Deregister(ctx, connect.NewRequest(&v1.DeregisterRequest{Id: id}))
	})
	return err
}

// Agent returns one agent.
func (c *Client) Agent(ctx context.Context, id string) (*v1.Agent, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.GetAgentResponse], error) {
		return c.reg.GetAgent(ctx, connect.NewRequest(&v1.GetAgentRequest{Id: id}))
	})
	if err != nil {
		return nil, err
	}
	return m.Agent, nil
}

// Agents lists the agents of a pool ("" for all) that offer caps, by health
// ("healthy", "unhealthy" or "" for both).
func (c *Client) Agents(ctx context.Context, pool string, caps []string, health string) ([]*v1.Agent, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.ListAgentsResponse], error) {
		return c.reg.ListAgents(ctx, connect.NewRequest(&v1.ListAgentsRequest{Pool: pool, Capabilities: caps, Health: health}))
	})
	if err != nil {
		return nil, err
	}
	return m.Agents, nil
}

// DefinePool creates or changes a warm pool.
func (c *Client) DefinePool(ctx context.Context, name string, minWarm, maxSize int, retireAfter time.Duration) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DefinePoolResponse], error) {
		return c.reg.DefinePool(ctx, connect.NewRequest(&v1.DefinePoolRequest{Pool: &v1.Pool{Name: name, MinWarm: int32(minWarm),
			MaxSize: int32(maxSize), RetireAfterMs: ms(retireAfter)}}))
	})
	return err
}

// DeletePool removes a pool definition.
func (c *Client) DeletePool(ctx context.Context, name string) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DeletePoolResponse], error) {
		return c.reg.DeletePool(ctx, connect.NewRequest(&v1.DeletePoolRequest{Name: name}))
	})
	return err
}

// Pools returns the pools' figures.
func (c *Client) Pools(ctx context.Context) ([]*v1.PoolStats, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.ListPoolsResponse], error) {
		return c.reg.ListPools(ctx, connect.NewRequest(&v1.ListPoolsRequest{}))
	})
	if err != nil {
		return nil, err
	}
	return m.Pools, nil
}

// Assignments streams the tasks of queues leased on behalf of agent (a
// registered agent) within its capacity, until ctx ends or the stream
// fails (its error is yielded last). Ack each lease as usual; one not
// acked in time expires back to ready.
func (c *Client) Assignments(ctx context.Context, agent string, queues []string, leaseFor time.Duration) iter.Seq2[Lease, error] {
	return func(yield func(Lease, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := c.reg.Assignments(ctx, connect.NewRequest(&v1.AssignmentsRequest{Agent: agent, Queues: queues, LeaseMs: ms(leaseFor)}))
		if err != nil {
			yield(Lease{}, fromConnect(err))
			return
		}
		defer st.Close()
		for st.Receive() {
			if !yield(fromLease(st.Msg()), nil) {
				return
			}
		}
		if err := st.Err(); err != nil && ctx.Err() == nil {
			yield(Lease{}, fromConnect(err))
		}
	}
}
