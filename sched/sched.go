package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/maypok86/otter/v2"
)

// Policy chooses among the agents eligible for a task.
type Policy int

const (
	// PowerOfTwo samples two eligible agents with room and takes the less
	// loaded (tasks held / capacity). The default.
	PowerOfTwo Policy = iota
	// RoundRobin takes the next eligible agent with room, in id order. It
	// ignores load; it is here as the baseline the others are measured
	// against.
	RoundRobin
	// LeastLoaded takes the eligible agent with room whose load after the
	// task, (held+1) / capacity, is the lowest (ties: the smaller share of
	// this scheduler's work per unit of capacity, then the smaller id). It
	// looks at every eligible agent once per Dispatch (a heap), where
	// PowerOfTwo looks at two per task.
	LeastLoaded
)

func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "round-robin"
	case LeastLoaded:
		return "least-loaded"
	}
	return "power-of-two"
}

// ErrInvalid reports a bad argument.
var ErrInvalid = errors.New("sched: invalid argument")

// Options configures New. Zero fields take the documented defaults.
type Options struct {
	// Policy: PowerOfTwo (default), LeastLoaded or RoundRobin.
	Policy Policy
	// BatchSize bounds the assignments one Dispatch proposes (one record).
	// Default 512; at most queue.MaxBatch.
	BatchSize int
	// LeaseFor is the lease of a dispatched task; 0 takes the queue's
	// LeaseDuration.
	LeaseFor time.Duration
	// AffinityEntries bounds the affinity table (key -> agent that last ran
	// a task with that key), an otter cache. Default 100,000.
	AffinityEntries int
	// ReconcileInterval is how often the scheduler looks for registered
	// agents that are unhealthy yet still hold leases (a release that was
	// missed: a crash between the expire record and the release, or a
	// Dispatch decided just before the agent turned unhealthy) and releases
	// them. Default 1s; negative disables the loop (New still reconciles
	// once).
	ReconcileInterval time.Duration
	// Seed seeds the random choices of PowerOfTwo; 0 draws one.
	Seed uint64
	// Logger receives failed releases; default slog.Default().
	Logger *slog.Logger
}

// Stats are the scheduler's figures. The counters are this process's since
// New; the agent figures are computed from the registry and the queues when
// Stats is called.
type Stats struct {
	Policy     string `json:"policy"`
	Dispatches uint64 `json:"dispatches"`
	// Assigned tasks; NotReady and AtCapacity: assignments the record
	// refused (the task was taken meanwhile; the agent filled up by pull
	// leases); NoAgent: tasks passed over because no healthy agent with the
	// capabilities had room.
	Assigned   uint64 `json:"assigned"`
	NotReady   uint64 `json:"not_ready"`
	AtCapacity uint64 `json:"at_capacity"`
	NoAgent    uint64 `json:"no_agent"`
	// AffinityHits: tasks given to the agent their affinity key named;
	// AffinityMisses: tasks with a key whose agent was gone, unfit, full,
	// or more loaded than the policy's choice by more than one of its
	// tasks.
	AffinityHits   uint64 `json:"affinity_hits"`
	AffinityMisses uint64 `json:"affinity_misses"`
	// Released: tasks returned to their queues from agents that turned
	// unhealthy or deregistered.
	Released uint64 `json:"released"`

	// Agents: healthy agents; Capacity: their total capacity; Held: the
	// tasks they hold.
	Agents   int `json:"agents"`
	Capacity int `json:"capacity"`
	Held     int `json:"held"`
	// Utilization (held/capacity) of the healthy agents: min, mean, max,
	// and Balance = min/max (1 when all are equally loaded; 1 when idle).
	UtilMin  float64 `json:"util_min"`
	UtilMean float64 `json:"util_mean"`
	UtilMax  float64 `json:"util_max"`
	Balance  float64 `json:"balance"`
	// UnhealthyHolding: unhealthy agents that still hold tasks (released
	// by the next reconcile).
	UnhealthyHolding int `json:"unhealthy_holding"`
}

// Scheduler dispatches ready tasks to registered agents.
type Scheduler struct {
	q    *queue.Manager
	r    *registry.Registry
	opts Options
	aff  *otter.Cache[string, string]

	mu       sync.Mutex
	rng      *rand.Rand
	inflight map[uint64]bool  // task ids in a proposed assignment, per process
	pending  map[string]int   // agent -> tasks in proposed assignments
	rr       map[string]int   // round-robin cursor per capability set
	agents   map[string]*pick // agent -> its load (per Dispatch) and share, kept across Dispatches
	dropped  uint64           // picks dropped from agents so far: a group's resolved picks are stale when it changes
	epoch    uint64           // Dispatch count: a pick whose epoch differs has a stale load
	groups   map[string]*group
	st       Stats

	stop, done chan struct{}
	wg         sync.WaitGroup
}

// New starts a scheduler over q and r: it subscribes to r's unhealthy and
// deregistered agents to release their leases, reconciles once, and starts
// the reconcile loop. Close it before q, r and their DB.
func New(q *queue.Manager, r *registry.Registry, o *Options) (*Scheduler, error) {
	s := &Scheduler{q: q, r: r, inflight: map[uint64]bool{}, pending: map[string]int{}, rr: map[string]int{}, agents: map[string]*pick{}, groups: map[string]*group{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if o != nil {
		s.opts = *o
	}
	if s.opts.BatchSize == 0 {
		s.opts.BatchSize = 512
	}
	if s.opts.BatchSize < 0 || s.opts.BatchSize > queue.MaxBatch || s.opts.LeaseFor < 0 ||
		s.opts.Policy < PowerOfTwo || s.opts.Policy > LeastLoaded {
		return nil, fmt.Errorf("%w: options %+v", ErrInvalid, s.opts)
	}
	if s.opts.AffinityEntries == 0 {
		s.opts.AffinityEntries = 100_000
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.Default()
	}
	if s.opts.ReconcileInterval == 0 {
		s.opts.ReconcileInterval = time.Second
	}
	seed := s.opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.st.Policy = s.opts.Policy.String()
	var err error
	s.aff, err = otter.New(&otter.Options[string, string]{MaximumSize: s.opts.AffinityEntries})
	if err != nil {
		return nil, err
	}
	r.OnUnhealthy(func(ids []string) {
		s.mu.Lock() // Close closes stop under mu: no Add after its Wait
		if s.closed() {
			s.mu.Unlock()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		ctx, cancel := s.stopContext()
		defer cancel()
		for _, id := range ids {
			s.release(ctx, id, "agent unhealthy or deregistered")
		}
	})
	s.Reconcile(context.Background())
	if s.opts.ReconcileInterval > 0 {
		go s.loop()
	} else {
		close(s.done)
	}
	return s, nil
}

// Close stops the reconcile loop and waits for releases in progress.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.mu.Unlock()
	<-s.done
	s.wg.Wait()
	return nil
}

func (s *Scheduler) closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// stopContext is a context canceled when the scheduler closes.
func (s *Scheduler) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (s *Scheduler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := s.stopContext()
		s.Reconcile(ctx)
		cancel()
	}
}

func (s *Scheduler) release(ctx context.Context, agent, reason string) {
	n, err := s.q.Release(ctx, agent, reason)
	s.mu.Lock()
	if _, ok := s.agents[agent]; ok {
		delete(s.agents, agent)
		s.dropped++
	}
	s.st.Released += uint64(n)
	s.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		s.opts.Logger.Warn("sched: release", "agent", agent, "err", err)
	}
}

// Reconcile releases the tasks held by registered agents that are
// unhealthy. Agents that lease without registering are left alone (their
// leases expire as usual).
func (s *Scheduler) Reconcile(ctx context.Context) {
	held := s.q.HeldAll()
	agents := make([]string, 0, len(held))
	for a := range held {
		agents = append(agents, a)
	}
	slices.Sort(agents)
	for _, a := range agents {
		if ag, err := s.r.Get(a); err == nil && !ag.Healthy {
			s.release(ctx, a, "agent unhealthy")
		}
	}
}

// pick is one agent under consideration during a Dispatch.
// It lives across Dispatches in Scheduler.agents (dropped when the agent
// is released as unhealthy or deregistered).
type pick struct {
	a     *registry.Agent
	load  int     // held + pending, read once per Dispatch (epoch)
	epoch uint64  // the Dispatch load was read in
	share float64 // tasks this scheduler gave the agent / its capacity
}

// Dispatch assigns up to max (at most BatchSize) of queue's ready tasks,
// taken from its hot set in dispatch order, to healthy agents that have
// every capability the task requires and room below their capacity:
// the agent its affinity key last ran on if that one qualifies, else by
// the Policy. The decision is made here, by the proposer; one assign
// record logs its outcome, and apply leases each task only if it is still
// ready and the agent still has room, so a crash, a replica or a racing
// Lease never loses or duplicates an assignment. It returns the leases
// made, each with its Agent, for the caller to deliver (an undelivered
// lease expires and the task is retried). Tasks no agent can take stay
// ready. Concurrent Dispatch calls never pick the same task.
func (s *Scheduler) Dispatch(ctx context.Context, queueName string, max int) ([]queue.Lease, error) {
	if max < 1 {
		return nil, fmt.Errorf("%w: dispatch of %d tasks", ErrInvalid, max)
	}
	max = min(max, s.opts.BatchSize)
	as, err := s.decide(queueName, max)
	if err != nil || len(as) == 0 {
		return nil, err
	}
	leases, errs, err := s.q.Assign(ctx, queueName, s.opts.LeaseFor, as)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range as {
		delete(s.inflight, a.Task.ID)
		if s.pending[a.Agent]--; s.pending[a.Agent] <= 0 {
			delete(s.pending, a.Agent)
		}
	}
	if err != nil {
		return nil, err
	}
	s.st.Dispatches++
	for i, a := range as {
		switch {
		case errs[i] == nil:
			s.st.Assigned++
			if a.Task.Affinity != "" {
				s.aff.Set(a.Task.Affinity, a.Agent)
			}
		case errors.Is(errs[i], queue.ErrAtCapacity):
			s.st.AtCapacity++
		default:
			s.st.NotReady++
		}
	}
	return leases, nil
}

// decide chooses an agent for each of up to max ready tasks and reserves
// them (inflight, pending) until the record is answered.
func (s *Scheduler) decide(queueName string, max int) ([]queue.Assignment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cands, err := s.q.Ready(queueName, max, func(id uint64) bool { return s.inflight[id] })
	if err != nil {
		return nil, err
	}
	// Per Dispatch: the load of each agent looked at, read once (epoch).
	// The eligible agents of each capability set come from the registry's
	// cached lists (rebuilt only when the registry changes).
	s.epoch++
	groups := map[string]*group{}
	full := map[string]bool{}       // capability sets with no room left
	heaps := map[string]*loadHeap{} // LeastLoaded: per capability set
	var out []queue.Assignment
	for _, c := range cands {
		key := strings.Join(c.Requires, "\x00")
		if full[key] {
			s.st.NoAgent++
			continue
		}
		g := groups[key]
		if g == nil {
			g = s.group(key, c.Requires)
			groups[key] = g
		}
		var home *pick
		keyed := false // the affinity key names an agent
		if c.Affinity != "" {
			var id string
			if id, keyed = s.aff.GetIfPresent(c.Affinity); keyed {
				if a, err := s.r.Get(id); err == nil && a.Healthy && a.Has(c.Requires) {
					if hp := s.pickOf(a); hp.load < a.Capacity {
						home = hp
					}
				}
			}
		}
		var p *pick
		if s.opts.Policy == LeastLoaded {
			h := heaps[key]
			if h == nil {
				h = s.newLoadHeap(g)
				heaps[key] = h
			}
			p = h.least()
		} else {
			p = s.choose(key, g)
		}
		// The home agent, unless the policy's choice would be less loaded
		// than it by more than one of the home's tasks after taking this
		// one: home.load/home.cap <= (p.load+1)/p.cap.
		if home != nil && (p == nil || home.load*p.a.Capacity <= (p.load+1)*home.a.Capacity) {
			p = home
			s.st.AffinityHits++
		} else if keyed {
			s.st.AffinityMisses++
		}
		if p == nil {
			full[key] = true
			s.st.NoAgent++
			continue
		}
		p.load++
		p.share += 1 / float64(p.a.Capacity)
		s.pending[p.a.ID]++
		s.inflight[c.ID] = true
		out = append(out, queue.Assignment{Task: c, Agent: p.a.ID, Capacity: p.a.Capacity})
	}
	return out, nil
}

// pickOf returns a's pick with its load read in this Dispatch.
// REQUIRES: s.mu held.
func (s *Scheduler) pickOf(a *registry.Agent) *pick {
	p := s.agents[a.ID]
	if p == nil {
		p = &pick{}
		s.agents[a.ID] = p
	}
	s.refresh(p, a)
	return p
}

// refresh reads p's load (a's) if it was not read in this Dispatch.
// REQUIRES: s.mu held.
func (s *Scheduler) refresh(p *pick, a *registry.Agent) {
	if p.epoch != s.epoch {
		p.a, p.load, p.epoch = a, s.q.Held(a.ID)+s.pending[a.ID], s.epoch
	}
}

// group is the healthy agents eligible for one capability set (the
// registry's list, sorted by id), with their cumulative capacities for
// weighted sampling.
type group struct {
	gen    uint64 // registry generation of agents
	agents []*registry.Agent
	picks  []*pick // LeastLoaded: agents[i]'s pick, resolved once per group and Scheduler.dropped
	picked uint64  // Scheduler.dropped when picks were resolved
	cum    []int
	total  int
}

// group returns the eligible agents of a capability set, from the cache
// while the registry's generation is unchanged.
// REQUIRES: s.mu held.
func (s *Scheduler) group(key string, requires []string) *group {
	gen := s.r.Generation()
	if g := s.groups[key]; g != nil && g.gen == gen {
		return g
	}
	as := s.r.ByCapabilities(requires)
	g := &group{agents: as, cum: make([]int, len(as)), gen: gen}
	for i, a := range as {
		g.total += a.Capacity
		g.cum[i] = g.total
	}
	if len(s.groups) > 4096 {
		clear(s.groups)
	}
	s.groups[key] = g
	return g
}

// sample draws an agent with probability proportional to its capacity.
func (g *group) sample(rng *rand.Rand) *registry.Agent {
	x := rng.IntN(g.total)
	i, _ := slices.BinarySearch(g.cum, x+1)
	return g.agents[i]
}

// choose picks an agent with room in g by PowerOfTwo or RoundRobin, or nil.
// REQUIRES: s.mu held.
func (s *Scheduler) choose(key string, g *group) *pick {
	n := len(g.agents)
	if n == 0 {
		return nil
	}
	room := func(p *pick) bool { return p.load < p.a.Capacity }
	if s.opts.Policy == RoundRobin {
		start := s.rr[key] % n
		for i := range n {
			if p := s.pickOf(g.agents[(start+i)%n]); room(p) {
				s.rr[key] = (start + i + 1) % n
				return p
			}
		}
		return nil
	}
	// Power of two choices, each drawn with probability proportional to
	// capacity (uniform draws would send a small agent as many tasks as a
	// large one whenever both draws are small agents); when sampling keeps
	// hitting full agents, the least loaded agent with room, by a scan.
	for range 4 {
		a, b := s.pickOf(g.sample(s.rng)), s.pickOf(g.sample(s.rng))
		switch ra, rb := room(a), room(b); {
		case ra && rb:
			return s.lessLoaded(a, b)
		case ra:
			return a
		case rb:
			return b
		}
	}
	var best *pick
	for _, a := range g.agents {
		if p := s.pickOf(a); room(p) && (best == nil || p.load*best.a.Capacity < best.load*p.a.Capacity) {
			best = p
		}
	}
	return best
}

// loadHeap orders a capability set's agents with room for LeastLoaded, by
// (load+1)/capacity, then share, then id. Loads only grow during a Dispatch
// (an assignment through this heap, another set's heap or affinity), so
// an entry whose recorded load is stale is too early, never too late: least
// refreshes it and sifts it down before trusting the top.
type loadHeap struct{ e []heapEntry }

type heapEntry struct {
	p     *pick
	load  int     // p.load when the entry was placed
	share float64 // the agent's share then (it grows only with its load)
}

// newLoadHeap builds the heap of g's agents with room.
// REQUIRES: s.mu held.
func (s *Scheduler) newLoadHeap(g *group) *loadHeap {
	if g.picks == nil || g.picked != s.dropped {
		g.picks, g.picked = make([]*pick, len(g.agents)), s.dropped
		for i, a := range g.agents {
			g.picks[i] = s.pickOf(a)
		}
	}
	h := &loadHeap{e: make([]heapEntry, 0, len(g.agents))}
	for i, p := range g.picks {
		s.refresh(p, g.agents[i])
		if p.load < p.a.Capacity {
			h.e = append(h.e, heapEntry{p, p.load, p.share})
		}
	}
	for i := len(h.e)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	return h
}

// least returns the agent with room and the lowest load after one more
// task, or nil when none has room.
func (h *loadHeap) least() *pick {
	for len(h.e) > 0 {
		top := &h.e[0]
		switch {
		case top.p.load >= top.p.a.Capacity:
			h.e[0] = h.e[len(h.e)-1]
			h.e = h.e[:len(h.e)-1]
			h.down(0)
		case top.load != top.p.load:
			top.load, top.share = top.p.load, top.p.share
			h.down(0)
		default:
			return top.p
		}
	}
	return nil
}

// down sifts entry i down to its place (container/heap's down, without
// the interface calls: this runs over every eligible agent per Dispatch).
func (h *loadHeap) down(i int) {
	n := len(h.e)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && h.less(c+1, c) {
			c++
		}
		if !h.less(c, i) {
			return
		}
		h.e[i], h.e[c] = h.e[c], h.e[i]
		i = c
	}
}

func (h *loadHeap) less(i, j int) bool {
	a, b := &h.e[i], &h.e[j]
	// (a.load+1)/a.cap vs (b.load+1)/b.cap without division.
	if la, lb := (a.load+1)*b.p.a.Capacity, (b.load+1)*a.p.a.Capacity; la != lb {
		return la < lb
	}
	if a.share != b.share {
		return a.share < b.share
	}
	return a.p.a.ID < b.p.a.ID
}

// lessLoaded returns the one of a and b with the lower load, held /
// capacity; on equal loads, the one with the smaller share (tasks this
// scheduler gave it per unit of capacity), so that ties do not fall on the
// same agents draw after draw.
// REQUIRES: s.mu held.
func (s *Scheduler) lessLoaded(a, b *pick) *pick {
	// a.load/a.cap vs b.load/b.cap without division.
	la, lb := a.load*b.a.Capacity, b.load*a.a.Capacity
	if la < lb || la == lb && a.share <= b.share {
		return a
	}
	return b
}

// Stats returns the counters and the current load of the healthy agents.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	return s.fill(st, recordedHealth)
}

func (s *Scheduler) fill(st Stats, healthy func(*registry.Agent) bool) Stats {
	held := s.q.HeldAll()
	st.UtilMin = -1
	for _, a := range s.r.List(registry.Filter{}) {
		if !healthy(a) {
			if held[a.ID] > 0 {
				st.UnhealthyHolding++
			}
			continue
		}
		h := held[a.ID]
		u := float64(h) / float64(a.Capacity)
		st.Agents++
		st.Capacity += a.Capacity
		st.Held += h
		st.UtilMean += u
		if st.UtilMin < 0 || u < st.UtilMin {
			st.UtilMin = u
		}
		st.UtilMax = max(st.UtilMax, u)
	}
	st.UtilMin = max(st.UtilMin, 0)
	st.Balance = 1
	if st.Agents > 0 {
		st.UtilMean /= float64(st.Agents)
		if st.UtilMax > 0 {
			st.Balance = st.UtilMin / st.UtilMax
		}
	}
	return st
}

// AgentStats computes the agent figures of Stats (not the counters) from
// q and r alone, for tools that open a store without running a scheduler.
func AgentStats(q *queue.Manager, r *registry.Registry) Stats {
	return AgentStatsWith(q, r, recordedHealth)
}

// AgentStatsWith is AgentStats with each agent's health decided by healthy
// (a tool that runs no expiry loop may judge health as of now).
func AgentStatsWith(q *queue.Manager, r *registry.Registry, healthy func(*registry.Agent) bool) Stats {
	return (&Scheduler{q: q, r: r}).fill(Stats{}, healthy)
}

// recordedHealth is the health the registry recorded.
func recordedHealth(a *registry.Agent) bool { return a.Healthy }
