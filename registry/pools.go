package registry

import (
	"context"
	"slices"
	"sync"
	"time"
)

// poolTending is the in-memory state of warm-pool upkeep: spawns in
// flight, their backoff, and the agents offered for retirement. It is not
// replicated state: it only decides when to call the user's callbacks.
type poolTending struct {
	mu        sync.Mutex
	spawning  map[string]int       // pool -> spawns in flight
	nextTry   map[string]time.Time // pool -> earliest next spawn after a failure
	backoff   map[string]time.Duration
	offered   map[string]bool // agent ids offered to Retire
	spawned   map[string]uint64
	failures  map[string]uint64
	retired   map[string]uint64
	inflight  sync.WaitGroup
	stopSpawn context.CancelFunc
	spawnCtx  context.Context
}

func (t *poolTending) init() {
	t.spawning, t.nextTry, t.backoff = map[string]int{}, map[string]time.Time{}, map[string]time.Duration{}
	t.offered, t.spawned, t.failures, t.retired = map[string]bool{}, map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	t.spawnCtx, t.stopSpawn = context.WithCancel(context.Background())
}

func (t *poolTending) forget(id string) {
	t.mu.Lock()
	delete(t.offered, id)
	t.mu.Unlock()
}

func (t *poolTending) wait() {
	t.stopSpawn()
	t.inflight.Wait()
}

// PoolStats describes one pool.
type PoolStats struct {
	Pool
	// Warm: healthy idle agents; Busy: healthy agents holding tasks;
	// Unhealthy: agents that missed their heartbeats.
	Warm      int `json:"warm"`
	Busy      int `json:"busy"`
	Unhealthy int `json:"unhealthy"`
	// Spawning: Spawner calls in flight. Spawned, SpawnFailures and
	// RetireOffers count since Attach.
	Spawning      int    `json:"spawning"`
	Spawned       uint64 `json:"spawned"`
	SpawnFailures uint64 `json:"spawn_failures"`
	RetireOffers  uint64 `json:"retire_offers"`
}

// PoolStats returns every defined pool's figures, sorted by name.
func (r *Registry) PoolStats() []PoolStats {
	pools := r.Pools()
	out := make([]PoolStats, len(pools))
	r.mu.RLock()
	for i, p := range pools {
		s := PoolStats{Pool: p}
		for id := range r.byPool[p.Name] {
			a := r.agents[id]
			switch {
			case !a.Healthy:
				s.Unhealthy++
			case a.Load == 0:
				s.Warm++
			default:
				s.Busy++
			}
		}
		out[i] = s
	}
	r.mu.RUnlock()
	t := &r.tend
	t.mu.Lock()
	for i := range out {
		n := out[i].Name
		out[i].Spawning, out[i].Spawned, out[i].SpawnFailures, out[i].RetireOffers = t.spawning[n], t.spawned[n], t.failures[n], t.retired[n]
	}
	t.mu.Unlock()
	return out
}

// TendPools calls Options.Spawner for pools short of warm agents and
// Options.Retire for idle agents of pools above their maximum. The
// background loop calls it every CheckInterval; callbacks run on their own
// goroutines, so it does not block on them.
func (r *Registry) TendPools(ctx context.Context) {
	now := r.d.Now()
	t := &r.tend
	for _, s := range r.PoolStats() {
		if r.opts.Spawner != nil {
			t.mu.Lock()
			short := s.MinWarm - s.Warm - t.spawning[s.Name]
			if s.MaxSize > 0 {
				short = min(short, s.MaxSize-s.Warm-s.Busy-t.spawning[s.Name])
			}
			if short > 0 && !now.Before(t.nextTry[s.Name]) {
				for range short {
					t.spawning[s.Name]++
					t.inflight.Add(1)
					go r.spawn(s.Name)
				}
			}
			t.mu.Unlock()
		}
		if r.opts.Retire != nil && s.MaxSize > 0 && s.Warm+s.Busy > s.MaxSize {
			r.offerRetire(s, now)
		}
	}
}

func (r *Registry) spawn(pool string) {
	t := &r.tend
	defer t.inflight.Done()
	err := r.opts.Spawner(t.spawnCtx, pool)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spawning[pool]--
	if err != nil {
		t.failures[pool]++
		b := t.backoff[pool]
		b = min(max(2*b, r.opts.SpawnBackoff), 30*time.Second)
		t.backoff[pool] = b
		t.nextTry[pool] = r.d.Now().Add(b)
		r.d.Logger().Warn("registry: spawn failed", "pool", pool, "err", err, "retry_in", b)
		return
	}
	t.spawned[pool]++
	t.backoff[pool] = 0
	t.nextTry[pool] = time.Time{}
}

// offerRetire offers the longest-idle agents of an oversized pool, idle
// for at least its RetireAfter, to Options.Retire (each agent once).
func (r *Registry) offerRetire(s PoolStats, now time.Time) {
	excess := s.Warm + s.Busy - s.MaxSize
	var idle []*Agent
	for _, a := range r.ByPool(s.Name) {
		if a.Load == 0 && a.idleSince != 0 && now.Sub(a.IdleSince) >= s.RetireAfter {
			idle = append(idle, a)
		}
	}
	slices.SortFunc(idle, func(a, b *Agent) int { return a.IdleSince.Compare(b.IdleSince) })
	t := &r.tend
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range idle {
		if excess == 0 {
			break
		}
		excess--
		if t.offered[a.ID] {
			continue
		}
		t.offered[a.ID] = true
		t.retired[s.Name]++
		t.inflight.Add(1)
		go func(pool, id string) {
			defer t.inflight.Done()
			if err := r.opts.Retire(t.spawnCtx, pool, id); err != nil {
				r.d.Logger().Warn("registry: retire failed", "pool", pool, "agent", id, "err", err)
				t.forget(id) // offer it again later
			}
		}(s.Name, a.ID)
	}
}

// stopContext is a context canceled when stop closes.
func stopContext(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
