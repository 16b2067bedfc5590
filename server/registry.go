package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server/auth"
)

// registryService serves flowdb.v1.RegistryService over the registry.
type registryService struct{ s *Server }

func (r *registryService) Register(ctx context.Context, req *connect.Request[v1.RegisterRequest]) (*connect.Response[v1.RegisterResponse], error) {
	a := req.Msg.Agent
	if err := need("agent", a != nil); err != nil {
		return nil, err
	}
	if err := r.s.allow(ctx, auth.Agent, a.Id, auth.Write); err != nil {
		return nil, err
	}
	hb, err := ms("heartbeat_interval_ms", a.HeartbeatIntervalMs)
	if err != nil {
		return nil, err
	}
	spec := registry.AgentSpec{ID: a.Id, Pool: a.Pool, Capabilities: a.Capabilities, Capacity: int(a.Capacity), Labels: a.Labels, HeartbeatInterval: hb}
	if err := r.s.o.Registry.Register(ctx, spec); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.RegisterResponse{}), nil
}

func (r *registryService) Heartbeat(ctx context.Context, req *connect.Request[v1.HeartbeatRequest]) (*connect.Response[v1.HeartbeatResponse], error) {
	m := req.Msg
	if err := r.s.allow(ctx, auth.Agent, m.Id, auth.Write); err != nil {
		return nil, err
	}
	if err := r.s.o.Registry.Heartbeat(ctx, m.Id, int(m.Load), m.Status); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.HeartbeatResponse{}), nil
}

func (r *registryService) Deregister(ctx context.Context, req *connect.Request[v1.DeregisterRequest]) (*connect.Response[v1.DeregisterResponse], error) {
	m := req.Msg
	if err := r.s.allow(ctx, auth.Agent, m.Id, auth.Write); err != nil {
		return nil, err
	}
	if err := r.s.o.Registry.Deregister(ctx, m.Id); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DeregisterResponse{}), nil
}

func toAgent(a *registry.Agent) *v1.Agent {
	return &v1.Agent{
		Spec: &v1.AgentSpec{Id: a.ID, Pool: a.Pool, Capabilities: a.Capabilities, Capacity: int32(a.Capacity), Labels: a.Labels,
			HeartbeatIntervalMs: a.HeartbeatInterval.Milliseconds()},
		Load: int32(a.Load), Status: a.Status, Healthy: a.Healthy, RegisteredUnixNano: toNano(a.Registered),
		LastHeartbeatUnixNano: toNano(a.LastHeartbeat), IdleSinceUnixNano: toNano(a.IdleSince),
	}
}

func (r *registryService) GetAgent(ctx context.Context, req *connect.Request[v1.GetAgentRequest]) (*connect.Response[v1.GetAgentResponse], error) {
	m := req.Msg
	if err := r.s.allow(ctx, auth.Agent, m.Id, auth.Read); err != nil {
		return nil, err
	}
	if err := r.s.catalogBarrier(ctx); err != nil {
		return nil, err
	}
	a, err := r.s.o.Registry.Get(m.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetAgentResponse{Agent: toAgent(a)}), nil
}

// ListAgents lists the agents the caller may read (agent scopes name agent
// ids).
func (r *registryService) ListAgents(ctx context.Context, req *connect.Request[v1.ListAgentsRequest]) (*connect.Response[v1.ListAgentsResponse], error) {
	m := req.Msg
	switch m.Health {
	case "", "healthy", "unhealthy":
	default:
		return nil, fmt.Errorf("%w: health %q: want healthy, unhealthy or empty", ErrBadRequest, m.Health)
	}
	tok := caller(ctx)
	if err := r.s.catalogBarrier(ctx); err != nil {
		return nil, err
	}
	resp := &v1.ListAgentsResponse{}
	for _, a := range r.s.o.Registry.List(registry.Filter{Pool: m.Pool, Capabilities: m.Capabilities, Health: m.Health}) {
		if tok.Allows(auth.Agent, a.ID, auth.Read) {
			resp.Agents = append(resp.Agents, toAgent(a))
		}
	}
	return connect.NewResponse(resp), nil
}

func (r *registryService) DefinePool(ctx context.Context, req *connect.Request[v1.DefinePoolRequest]) (*connect.Response[v1.DefinePoolResponse], error) {
	p := req.Msg.Pool
	if err := need("pool", p != nil); err != nil {
		return nil, err
	}
	if err := r.s.allow(ctx, auth.Agent, p.Name, auth.Admin); err != nil {
		return nil, err
	}
	ra, err := ms("retire_after_ms", p.RetireAfterMs)
	if err != nil {
		return nil, err
	}
	if err := r.s.o.Registry.DefinePool(ctx, registry.Pool{Name: p.Name, MinWarm: int(p.MinWarm), MaxSize: int(p.MaxSize), RetireAfter: ra}); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DefinePoolResponse{}), nil
}

func (r *registryService) DeletePool(ctx context.Context, req *connect.Request[v1.DeletePoolRequest]) (*connect.Response[v1.DeletePoolResponse], error) {
	m := req.Msg
	if err := r.s.allow(ctx, auth.Agent, m.Name, auth.Admin); err != nil {
		return nil, err
	}
	if err := r.s.o.Registry.DeletePool(ctx, m.Name); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DeletePoolResponse{}), nil
}

func (r *registryService) ListPools(ctx context.Context, req *connect.Request[v1.ListPoolsRequest]) (*connect.Response[v1.ListPoolsResponse], error) {
	tok := caller(ctx)
	if err := r.s.catalogBarrier(ctx); err != nil {
		return nil, err
	}
	resp := &v1.ListPoolsResponse{}
	for _, p := range r.s.o.Registry.PoolStats() {
		if tok.Allows(auth.Agent, p.Name, auth.Read) {
			resp.Pools = append(resp.Pools, &v1.PoolStats{
				Pool: &v1.Pool{Name: p.Name, MinWarm: int32(p.MinWarm), MaxSize: int32(p.MaxSize), RetireAfterMs: p.RetireAfter.Milliseconds()},
				Warm: int32(p.Warm), Busy: int32(p.Busy), Unhealthy: int32(p.Unhealthy)})
		}
	}
	return connect.NewResponse(resp), nil
}

// assignPoll is how often an Assignments stream looks again at an agent
// that holds its full capacity.
const assignPoll = 20 * time.Millisecond

// Assignments streams to one registered agent the tasks of its queues,
// leased on its behalf within its capacity (registry Capacity less the
// tasks it holds in every queue) and its capabilities: push dispatch to an
// agent in another process. Each queue is served by one goroutine that
// waits without polling for ready tasks (queue.Manager.LeaseWait). A lease
// the stream could not deliver (the agent went away as it was sent)
// expires back to ready after its lease time, like any lease not acked.
func (r *registryService) Assignments(ctx context.Context, req *connect.Request[v1.AssignmentsRequest], stream *connect.ServerStream[v1.Lease]) error {
	m := req.Msg
	if err := r.s.allow(ctx, auth.Agent, m.Agent, auth.Write); err != nil {
		return err
	}
	if len(m.Queues) == 0 {
		return fmt.Errorf("%w: queues is required", ErrBadRequest)
	}
	for _, q := range m.Queues {
		if err := r.s.allow(ctx, auth.Queue, q, auth.Write); err != nil {
			return err
		}
		if _, err := r.s.o.Queues.Config(q); err != nil {
			return err
		}
	}
	leaseFor, err := ms("lease_ms", m.LeaseMs)
	if err != nil {
		return err
	}
	if err := r.s.catalogBarrier(ctx); err != nil {
		return err
	}
	if _, err := r.s.o.Registry.Get(m.Agent); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan queue.Lease)
	errc := make(chan error, len(m.Queues))
	for _, q := range m.Queues {
		go func() { errc <- r.feed(ctx, q, m.Agent, leaseFor, out) }()
	}
	for {
		select {
		case l := <-out:
			if err := stream.Send(toLease(l)); err != nil {
				return err
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// feed leases tasks of one queue for agent and hands them to out until ctx
// ends.
func (r *registryService) feed(ctx context.Context, q, agent string, leaseFor time.Duration, out chan<- queue.Lease) error {
	for ctx.Err() == nil {
		a, err := r.s.o.Registry.Get(agent)
		if err != nil {
			return err
		}
		room := a.Capacity - r.s.o.Queues.Held(agent)
		if room <= 0 {
			select {
			case <-time.After(assignPoll):
			case <-ctx.Done():
			}
			continue
		}
		ls, err := r.s.o.Queues.LeaseWait(ctx, q, agent, room, a.Capabilities, leaseFor)
		if err != nil {
			if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				return nil
			}
			return err
		}
		for _, l := range ls {
			select {
			case out <- l:
			case <-ctx.Done():
				return nil // undelivered: the lease expires back to ready
			}
		}
	}
	return nil
}
