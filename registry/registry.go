package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
)

// Record kinds of this package (wal kinds 200-299). Their values are part
// of the log format.
const (
	KindRegister   wal.Kind = 200
	KindDeregister wal.Kind = 201
	KindHeartbeat  wal.Kind = 202
	KindExpire     wal.Kind = 203
	KindPoolDefine wal.Kind = 204
	KindPoolDelete wal.Kind = 205
)

// Errors. Each is matched with errors.Is.
var (
	// ErrNotFound: no such agent or pool.
	ErrNotFound = errors.New("registry: not found")
	// ErrInvalid: an argument is out of range (checked before anything is
	// logged).
	ErrInvalid = errors.New("registry: invalid argument")
)

// AgentSpec is what an agent registers with.
type AgentSpec struct {
	// ID names the agent (1-256 bytes).
	ID string `json:"id"`
	// Pool is the warm pool the agent belongs to ("" for none).
	Pool string `json:"pool,omitempty"`
	// Capabilities the agent offers; stored sorted and without duplicates.
	Capabilities []string `json:"capabilities,omitempty"`
	// Capacity is how many tasks the agent may hold at once (>= 1).
	Capacity int `json:"capacity"`
	// Labels are free-form key/value pairs.
	Labels map[string]string `json:"labels,omitempty"`
	// HeartbeatInterval is how often the agent promises to heartbeat; 0
	// takes Options.HeartbeatInterval. It misses its heartbeats, and turns
	// unhealthy, after Options.MissedHeartbeats intervals without one.
	HeartbeatInterval time.Duration `json:"heartbeat_interval_ns"`
}

func (s *AgentSpec) validate() error {
	switch {
	case s.ID == "" || len(s.ID) > MaxIDSize:
		return fmt.Errorf("%w: agent id must be 1-%d bytes", ErrInvalid, MaxIDSize)
	case len(s.Pool) > MaxLabelSize:
		return fmt.Errorf("%w: pool name over %d bytes", ErrInvalid, MaxLabelSize)
	case len(s.Capabilities) > MaxCapabilities:
		return fmt.Errorf("%w: over %d capabilities", ErrInvalid, MaxCapabilities)
	case s.Capacity < 1 || s.Capacity > MaxCapacity:
		return fmt.Errorf("%w: capacity %d not in 1-%d", ErrInvalid, s.Capacity, MaxCapacity)
	case len(s.Labels) > MaxLabels:
		return fmt.Errorf("%w: over %d labels", ErrInvalid, MaxLabels)
	case s.HeartbeatInterval < 0:
		return fmt.Errorf("%w: negative heartbeat interval", ErrInvalid)
	}
	for _, c := range s.Capabilities {
		if c == "" || len(c) > MaxLabelSize {
			return fmt.Errorf("%w: capability must be 1-%d bytes", ErrInvalid, MaxLabelSize)
		}
	}
	if !slices.IsSorted(s.Capabilities) || len(slices.Compact(slices.Clone(s.Capabilities))) != len(s.Capabilities) {
		return fmt.Errorf("%w: capabilities not sorted and unique", ErrInvalid)
	}
	for k, v := range s.Labels {
		if k == "" || len(k) > MaxLabelSize || len(v) > MaxLabelSize {
			return fmt.Errorf("%w: label key must be 1-%d bytes, value at most %d", ErrInvalid, MaxLabelSize, MaxLabelSize)
		}
	}
	return nil
}

// Agent is a registered agent as the registry sees it. Values returned by
// lookups are shared and must not be modified.
type Agent struct {
	AgentSpec
	// Load is the number of tasks the agent reported holding in its last
	// heartbeat.
	Load int `json:"load"`
	// Status is the free-form status of its last heartbeat.
	Status string `json:"status,omitempty"`
	// Healthy is false once the agent has missed its heartbeats; its next
	// heartbeat makes it healthy again.
	Healthy bool `json:"healthy"`
	// Registered, LastHeartbeat and IdleSince (load 0 since; zero while
	// busy) are record times.
	Registered    time.Time `json:"registered"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	IdleSince     time.Time `json:"idle_since,omitzero"`

	registered, lastBeat, idleSince int64
}

func (a *Agent) setTimes() {
	a.Registered, a.LastHeartbeat = time.Unix(0, a.registered), time.Unix(0, a.lastBeat)
	a.IdleSince = time.Time{}
	if a.idleSince != 0 {
		a.IdleSince = time.Unix(0, a.idleSince)
	}
}

// Utilization is Load/Capacity.
func (a *Agent) Utilization() float64 { return float64(a.Load) / float64(a.Capacity) }

// Has reports whether the agent offers every capability in caps.
func (a *Agent) Has(caps []string) bool {
	for _, c := range caps {
		if _, ok := slices.BinarySearch(a.Capabilities, c); !ok {
			return false
		}
	}
	return true
}

// Pool is a warm pool: flowdb keeps at least MinWarm healthy idle agents in
// it by calling Options.Spawner, and offers idle agents beyond MaxSize to
// Options.Retire once idle for RetireAfter.
type Pool struct {
	Name    string `json:"name"`
	MinWarm int    `json:"min_warm"`
	// MaxSize bounds the healthy agents of the pool (0: unbounded).
	MaxSize     int           `json:"max_size"`
	RetireAfter time.Duration `json:"retire_after_ns"`
}

func (p *Pool) validate() error {
	switch {
	case p.Name == "" || len(p.Name) > MaxLabelSize:
		return fmt.Errorf("%w: pool name must be 1-%d bytes", ErrInvalid, MaxLabelSize)
	case p.MinWarm < 0 || p.MinWarm > MaxCapacity || p.MaxSize < 0 || p.MaxSize > MaxCapacity:
		return fmt.Errorf("%w: pool sizes out of range", ErrInvalid)
	case p.MaxSize > 0 && p.MinWarm > p.MaxSize:
		return fmt.Errorf("%w: min warm %d above max size %d", ErrInvalid, p.MinWarm, p.MaxSize)
	case p.RetireAfter < 0:
		return fmt.Errorf("%w: negative retire delay", ErrInvalid)
	}
	return nil
}

// Options configures Attach. Zero values take the documented defaults.
type Options struct {
	// HeartbeatInterval is the default interval of agents that register
	// without one. Default 1s.
	HeartbeatInterval time.Duration
	// MissedHeartbeats is how many intervals without a heartbeat make an
	// agent unhealthy. Default 3. It travels in the expire records, so
	// replicas and replays agree whatever their options.
	MissedHeartbeats int
	// CheckInterval is how often the background loop looks for agents that
	// missed their heartbeats (and proposes an expire record) and tends the
	// warm pools. Default 200ms; negative disables the loop (tests call
	// Expire and TendPools).
	CheckInterval time.Duration
	// CacheSize bounds the ByCapabilities cache (entries, one per distinct
	// capability set). Default 4,096.
	CacheSize int
	// Staleness bounds how old the heartbeat figures (load, status, last
	// heartbeat) of the agents in a cached ByCapabilities result may be.
	// Registration, deregistration and health changes invalidate the cache
	// before they are acknowledged, so they are never stale. Default 100ms.
	Staleness time.Duration
	// Spawner is called, in the background, when a pool has fewer healthy
	// idle agents than its MinWarm (once per missing agent). It should
	// start an agent that registers itself in the pool. Failures are
	// retried with exponential backoff (SpawnBackoff, doubling to 30s).
	Spawner func(ctx context.Context, pool string) error
	// SpawnBackoff is the first retry delay after a failed spawn. Default
	// 100ms.
	SpawnBackoff time.Duration
	// Retire is offered an idle agent of a pool above its MaxSize once the
	// agent has been idle for the pool's RetireAfter; it should stop the
	// agent (which then deregisters). An agent is offered once.
	Retire func(ctx context.Context, pool, agent string) error
}

// Registry is the agent registry of one DB. Its methods are safe for
// concurrent use.
type Registry struct {
	d    *db.DB
	opts Options

	mu     sync.RWMutex // guards the view; apply holds it to write
	agents map[string]*Agent
	byPool map[string]map[string]struct{}
	byCap  map[string]map[string]struct{}
	pools  map[string]*Pool

	// capCache fronts ByCapabilities. Get has no cache: the view's map
	// under mu read-locked is faster than an otter cache for a lookup by
	// id (registry's BenchmarkLookupGet).
	capCache *otter.Cache[string, []*Agent]
	// gen counts the changes that alter which agents a capability query
	// returns (registration, deregistration, health).
	gen     atomic.Uint64
	counter *stats.Counter

	unhealthyMu sync.Mutex
	onUnhealthy []func(ids []string)

	tend poolTending

	stop     chan struct{}
	stopOnce sync.Once // closes stop: Close may run twice at once (db.Machine.Stop)
	done     chan struct{}
}

// Attach attaches the registry's state machine to d (db.DB.Attach: its
// record kinds and tables, the view loaded from Pebble) and starts the
// background loop. Close stops it; closing d closes it too.
func Attach(d *db.DB, o *Options) (*Registry, error) {
	r := &Registry{d: d, agents: map[string]*Agent{}, byPool: map[string]map[string]struct{}{},
		byCap: map[string]map[string]struct{}{}, pools: map[string]*Pool{},
		stop: make(chan struct{}), done: make(chan struct{}), counter: stats.NewCounter()}
	if o != nil {
		r.opts = *o
	}
	def := func(v *time.Duration, x time.Duration) {
		if *v == 0 {
			*v = x
		}
	}
	def(&r.opts.HeartbeatInterval, time.Second)
	def(&r.opts.CheckInterval, 200*time.Millisecond)
	def(&r.opts.Staleness, 100*time.Millisecond)
	def(&r.opts.SpawnBackoff, 100*time.Millisecond)
	if r.opts.MissedHeartbeats <= 0 {
		r.opts.MissedHeartbeats = 3
	}
	if r.opts.CacheSize <= 0 {
		r.opts.CacheSize = 4096
	}
	var err error
	r.capCache, err = otter.New(&otter.Options[string, []*Agent]{MaximumSize: r.opts.CacheSize,
		ExpiryCalculator: otter.ExpiryWriting[string, []*Agent](r.opts.Staleness), StatsRecorder: r.counter})
	if err != nil {
		return nil, err
	}
	r.tend.init()
	err = d.Attach(db.Machine{
		Name:    "registry",
		Catalog: true,
		Kinds: []db.KindSpec{
			{Kind: KindRegister, Name: "registry.register", Apply: r.applyRegister, Route: db.RouteCatalog, Txn: true},
			{Kind: KindDeregister, Name: "registry.deregister", Apply: r.applyDeregister, Route: db.RouteCatalog},
			{Kind: KindHeartbeat, Name: "registry.heartbeat", Apply: r.applyHeartbeat, Route: db.RouteCatalog, Txn: true},
			{Kind: KindExpire, Name: "registry.expire", Apply: r.applyExpire, Route: db.RouteCatalog},
			{Kind: KindPoolDefine, Name: "registry.pool", Apply: r.applyPool, Route: db.RouteCatalog},
			{Kind: KindPoolDelete, Name: "registry.pooldelete", Apply: r.applyPool, Route: db.RouteCatalog},
		},
		Errors:  []error{ErrNotFound, ErrInvalid},
		Tables:  tableSpecs(),
		Load:    func(uint32) error { return r.load() },
		Reload:  r.reloadShard,
		Stop:    func() { r.Close() },
		TxnLock: &r.mu,
	})
	if err != nil {
		// No loop runs: Close (which DB.Close calls through Stop if the
		// machine was registered before its Load failed) must not wait.
		close(r.done)
		return nil, err
	}
	if r.opts.CheckInterval > 0 {
		go r.loop()
	} else {
		close(r.done)
	}
	return r, nil
}

func tableSpecs() []db.TableSpec {
	return []db.TableSpec{
		{Table: keys.TableAgent, Name: "registry.agent", Check: func(k, v []byte) error {
			if a, ok := decodeAgent(v); !ok || a.ID != string(k) {
				return fmt.Errorf("%w: agent %q", wal.ErrCorrupt, k)
			}
			return nil
		}},
		{Table: keys.TablePool, Name: "registry.pool", Check: func(k, v []byte) error {
			if p, ok := decodePool(v); !ok || p.Name != string(k) {
				return fmt.Errorf("%w: pool %q", wal.ErrCorrupt, k)
			}
			return nil
		}},
	}
}

func agentKey(id string) []byte {
	return append(keys.Prefix(keys.CatalogShard, keys.TableAgent), id...)
}

func poolKey(name string) []byte {
	return append(keys.Prefix(keys.CatalogShard, keys.TablePool), name...)
}

// reloadShard rebuilds the view after a Raft snapshot replaced the
// catalog shard's keys (db.Machine.Reload; the registry lives on the
// catalog shard only).
func (r *Registry) reloadShard(uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.agents)
	clear(r.byPool)
	clear(r.byCap)
	clear(r.pools)
	r.capCache.InvalidateAll()
	r.gen.Add(1)
	return r.load()
}

// load rebuilds the view from Pebble.
func (r *Registry) load() error {
	pdb := r.d.Pebble()
	for _, t := range []byte{keys.TableAgent, keys.TablePool} {
		lo, hi := keys.TableRange(keys.CatalogShard, t)
		it, err := pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			v := slices.Clone(it.Value())
			if t == keys.TableAgent {
				a, ok := decodeAgent(v)
				if !ok {
					it.Close()
					return fmt.Errorf("registry: %w: agent %q", wal.ErrCorrupt, it.Key()[keys.PrefixLen:])
				}
				r.index(a)
			} else {
				p, ok := decodePool(v)
				if !ok {
					it.Close()
					return fmt.Errorf("registry: %w: pool %q", wal.ErrCorrupt, it.Key()[keys.PrefixLen:])
				}
				r.pools[p.Name] = &p
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the background loop. It does not close the DB.
func (r *Registry) Close() error {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
	r.tend.wait()
	r.capCache.StopAllGoroutines()
	return nil
}

// ---- writes ----------------------------------------------------------------

func (r *Registry) propose(ctx context.Context, kind wal.Kind, body []byte) (wal.Result, error) {
	res, err := r.d.Propose(ctx, wal.Record{Kind: kind, Body: body})
	if err != nil {
		return res, err
	}
	return res, res.Err
}

// Register adds an agent, or replaces the definition of a registered one
// (its load and status are kept). The agent is healthy from this moment and
// owes its first heartbeat one interval later.
func (r *Registry) Register(ctx context.Context, s AgentSpec) error {
	s.Capabilities = slices.Compact(slices.Sorted(slices.Values(s.Capabilities)))
	if err := s.validate(); err != nil {
		return err
	}
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = r.opts.HeartbeatInterval
	}
	_, err := r.propose(ctx, KindRegister, encodeSpec(nil, &s))
	return err
}

// Deregister removes an agent. Once it returns, no lookup returns the agent.
func (r *Registry) Deregister(ctx context.Context, id string) error {
	if id == "" || len(id) > MaxIDSize {
		return fmt.Errorf("%w: agent id must be 1-%d bytes", ErrInvalid, MaxIDSize)
	}
	_, err := r.propose(ctx, KindDeregister, codec.Enc(nil).S(id))
	return err
}

// Heartbeat reports an agent alive with its current load (tasks held) and
// a free-form status.
func (r *Registry) Heartbeat(ctx context.Context, id string, load int, status string) error {
	if err := checkHeartbeat(id, load, status); err != nil {
		return err
	}
	_, err := r.propose(ctx, KindHeartbeat, codec.Enc(nil).S(id).U(uint64(load)).S(status))
	return err
}

func checkHeartbeat(id string, load int, status string) error {
	switch {
	case id == "" || len(id) > MaxIDSize:
		return fmt.Errorf("%w: agent id must be 1-%d bytes", ErrInvalid, MaxIDSize)
	case load < 0 || load > MaxCapacity:
		return fmt.Errorf("%w: load %d", ErrInvalid, load)
	case len(status) > MaxStatusSize:
		return fmt.Errorf("%w: status over %d bytes", ErrInvalid, MaxStatusSize)
	}
	return nil
}

// Expire marks unhealthy every agent that has missed its heartbeats as of
// now (the record's time) and returns their ids. The background loop calls
// it when some agent is overdue.
func (r *Registry) Expire(ctx context.Context) ([]string, error) {
	res, err := r.propose(ctx, KindExpire, codec.Enc(nil).U(uint64(r.opts.MissedHeartbeats)))
	if err != nil {
		return nil, err
	}
	d := codec.NewDec(res.Data)
	return d.Strings(math.MaxInt32, MaxIDSize), nil
}

// DefinePool creates or changes a warm pool.
func (r *Registry) DefinePool(ctx context.Context, p Pool) error {
	if err := p.validate(); err != nil {
		return err
	}
	_, err := r.propose(ctx, KindPoolDefine, encodePool(&p))
	return err
}

// DeletePool removes a pool definition (its agents stay registered).
func (r *Registry) DeletePool(ctx context.Context, name string) error {
	if name == "" || len(name) > MaxLabelSize {
		return fmt.Errorf("%w: pool name must be 1-%d bytes", ErrInvalid, MaxLabelSize)
	}
	_, err := r.propose(ctx, KindPoolDelete, codec.Enc(nil).S(name))
	return err
}

// OnUnhealthy registers fn to be called, on its own goroutine, with the ids
// of agents an expire record has just made unhealthy, or of an agent just
// deregistered (after the record is durable): agents that can no longer do
// their work. The scheduler (package sched) uses it to release their
// leases.
func (r *Registry) OnUnhealthy(fn func(ids []string)) {
	r.unhealthyMu.Lock()
	r.onUnhealthy = append(r.onUnhealthy, fn)
	r.unhealthyMu.Unlock()
}

// ---- lookups ---------------------------------------------------------------

// Get returns the agent with id, from the view.
func (r *Registry) Get(id string) (*Agent, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a := r.agents[id]
	if a == nil {
		return nil, fmt.Errorf("%w: agent %q", ErrNotFound, id)
	}
	return a, nil
}

// Generation changes whenever a registration, deregistration or health
// change may have changed what ByCapabilities and ByPool return; a caller
// may keep their results while it stays the same.
func (r *Registry) Generation() uint64 { return r.gen.Load() }

// ByCapabilities returns the healthy agents that offer every capability in
// caps, sorted by id (all healthy agents for none).
func (r *Registry) ByCapabilities(caps []string) []*Agent {
	caps = slices.Compact(slices.Sorted(slices.Values(caps)))
	key := strings.Join(caps, "\x00")
	if as, ok := r.capCache.GetIfPresent(key); ok {
		return as
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	as := r.matchLocked(caps, "")
	r.capCache.Set(key, as)
	return as
}

// matchLocked lists healthy agents with caps (and in pool, if set), by id.
// REQUIRES: r.mu held.
func (r *Registry) matchLocked(caps []string, pool string) []*Agent {
	var ids []string
	switch {
	case pool != "":
		for id := range r.byPool[pool] {
			ids = append(ids, id)
		}
	case len(caps) > 0:
		// Start from the rarest capability.
		small := r.byCap[caps[0]]
		for _, c := range caps[1:] {
			if len(r.byCap[c]) < len(small) {
				small = r.byCap[c]
			}
		}
		for id := range small {
			ids = append(ids, id)
		}
	default:
		for id := range r.agents {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]*Agent, 0, len(ids))
	for _, id := range ids {
		if a := r.agents[id]; a.Healthy && a.Has(caps) {
			out = append(out, a)
		}
	}
	return out
}

// ByPool returns the healthy agents of a pool, sorted by id.
func (r *Registry) ByPool(pool string) []*Agent {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.matchLocked(nil, pool)
}

// Filter selects agents for List. Zero fields match everything.
type Filter struct {
	Pool         string
	Capabilities []string
	// Health: "healthy", "unhealthy" or "" for both.
	Health string
}

// List returns the agents that match f, sorted by id.
func (r *Registry) List(f Filter) []*Agent {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.agents))
	for id := range r.agents {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []*Agent
	for _, id := range ids {
		a := r.agents[id]
		if (f.Pool == "" || a.Pool == f.Pool) && a.Has(f.Capabilities) &&
			(f.Health == "" || (f.Health == "healthy") == a.Healthy) {
			out = append(out, a)
		}
	}
	return out
}

// Unhealthy returns the ids of unhealthy agents, sorted.
func (r *Registry) Unhealthy() []string {
	var out []string
	for _, a := range r.List(Filter{Health: "unhealthy"}) {
		out = append(out, a.ID)
	}
	return out
}

// Pools returns the pool definitions, sorted by name.
func (r *Registry) Pools() []Pool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Pool, 0, len(r.pools))
	for _, p := range r.pools {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Pool) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// CacheStats reports the ByCapabilities cache's hits and misses since
// Attach.
type CacheStats struct {
	Hits     uint64  `json:"hits"`
	Misses   uint64  `json:"misses"`
	HitRatio float64 `json:"hit_ratio"`
	Size     int     `json:"size"`
}

// CacheStats returns the ByCapabilities cache's figures.
func (r *Registry) CacheStats() CacheStats {
	s := r.counter.Snapshot()
	return CacheStats{Hits: s.Hits, Misses: s.Misses, HitRatio: s.HitRatio(), Size: r.capCache.EstimatedSize()}
}
