package registry

import (
	"fmt"
	"slices"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// index adds a to the view (replacing an agent with the same id).
// REQUIRES: r.mu held for writing (or no concurrent access).
func (r *Registry) index(a *Agent) {
	if old := r.agents[a.ID]; old != nil {
		r.unindex(old)
	}
	r.agents[a.ID] = a
	if a.Pool != "" {
		if r.byPool[a.Pool] == nil {
			r.byPool[a.Pool] = map[string]struct{}{}
		}
		r.byPool[a.Pool][a.ID] = struct{}{}
	}
	for _, c := range a.Capabilities {
		if r.byCap[c] == nil {
			r.byCap[c] = map[string]struct{}{}
		}
		r.byCap[c][a.ID] = struct{}{}
	}
}

func (r *Registry) unindex(a *Agent) {
	delete(r.agents, a.ID)
	if a.Pool != "" {
		delete(r.byPool[a.Pool], a.ID)
		if len(r.byPool[a.Pool]) == 0 {
			delete(r.byPool, a.Pool)
		}
	}
	for _, c := range a.Capabilities {
		delete(r.byCap[c], a.ID)
		if len(r.byCap[c]) == 0 {
			delete(r.byCap, c)
		}
	}
}

// put stores a and publishes it in the view. Agents in the view are never
// modified: a change publishes a new copy, so readers may keep pointers.
// invalidate drops the cached copies (a change that must not be seen stale).
// REQUIRES: r.mu held for writing.
func (r *Registry) put(tx *db.Tx, a *Agent, invalidate bool) error {
	a.setTimes()
	if err := tx.Set(agentKey(a.ID), encodeAgent(a)); err != nil {
		return err
	}
	r.index(a)
	if invalidate {
		r.capCache.InvalidateAll()
		r.gen.Add(1)
	}
	return nil
}

func (r *Registry) applyRegister(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	s := decodeSpec(d)
	if !d.Done() || s.HeartbeatInterval <= 0 {
		return db.Reject(errBadRecord)
	}
	defer r.lock(tx)()
	r.txnTouch(tx, s.ID)
	a := &Agent{AgentSpec: s, Healthy: true, registered: tx.Time, lastBeat: tx.Time, idleSince: tx.Time}
	if old := r.agents[s.ID]; old != nil {
		a.registered, a.Load, a.Status, a.idleSince = old.registered, old.Load, old.Status, old.idleSince
	}
	if err := r.put(tx, a, true); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: 1}, nil
}

func (r *Registry) applyDeregister(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	id := d.S(MaxIDSize)
	if !d.Done() {
		return db.Reject(errBadRecord)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.agents[id]
	if a == nil {
		return db.Reject(fmt.Errorf("%w: agent %q", ErrNotFound, id))
	}
	if err := tx.Delete(agentKey(id)); err != nil {
		return wal.Result{}, err
	}
	r.unindex(a)
	r.capCache.InvalidateAll()
	r.gen.Add(1)
	r.tend.forget(id)
	r.notifyGone(tx, []string{id})
	return wal.Result{N: 1}, nil
}

// notifyGone calls the OnUnhealthy listeners with ids once tx is durable.
func (r *Registry) notifyGone(tx *db.Tx, ids []string) {
	r.unhealthyMu.Lock()
	fns := slices.Clone(r.onUnhealthy)
	r.unhealthyMu.Unlock()
	if len(fns) == 0 {
		return
	}
	tx.AfterCommit(func() {
		for _, fn := range fns {
			go fn(ids)
		}
	})
}

func (r *Registry) applyHeartbeat(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	id, load, status := d.S(MaxIDSize), d.U(), d.S(MaxStatusSize)
	if !d.Done() || load > MaxCapacity {
		return db.Reject(errBadRecord)
	}
	defer r.lock(tx)()
	old := r.agents[id]
	if old == nil {
		return db.Reject(fmt.Errorf("%w: agent %q", ErrNotFound, id))
	}
	r.txnTouch(tx, id)
	a := *old
	a.Load, a.Status, a.lastBeat, a.Healthy = int(load), status, tx.Time, true
	switch {
	case load > 0:
		a.idleSince = 0
	case old.Load > 0 || a.idleSince == 0:
		a.idleSince = tx.Time
	}
	// Heartbeat figures may be served stale (up to Options.Staleness); a
	// return to health may not.
	if err := r.put(tx, &a, !old.Healthy); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: 1}, nil
}

// overdue reports whether a has missed missed heartbeats at time now.
func overdue(a *Agent, missed int64, now int64) bool {
	return a.Healthy && now-a.lastBeat > missed*int64(a.HeartbeatInterval)
}

func (r *Registry) applyExpire(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	missed := d.U()
	if !d.Done() || missed == 0 || missed > 1<<20 {
		return db.Reject(errBadRecord)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, a := range r.agents {
		if overdue(a, int64(missed), tx.Time) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // the result and the writes never depend on map order
	for _, id := range ids {
		a := *r.agents[id]
		a.Healthy = false
		if err := r.put(tx, &a, true); err != nil {
			return wal.Result{}, err
		}
	}
	if len(ids) > 0 {
		r.notifyGone(tx, ids)
	}
	return wal.Result{N: uint64(len(ids)), Data: codec.Enc(nil).Strings(ids)}, nil
}

func (r *Registry) applyPool(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Kind == KindPoolDelete {
		d := codec.NewDec(rec.Body)
		name := d.S(MaxLabelSize)
		if !d.Done() {
			return db.Reject(errBadRecord)
		}
		if r.pools[name] == nil {
			return db.Reject(fmt.Errorf("%w: pool %q", ErrNotFound, name))
		}
		delete(r.pools, name)
		return wal.Result{N: 1}, tx.Delete(poolKey(name))
	}
	p, ok := decodePool(rec.Body)
	if !ok {
		return db.Reject(errBadRecord)
	}
	r.pools[p.Name] = &p
	return wal.Result{N: 1}, tx.Set(poolKey(p.Name), rec.Body)
}

// loop proposes expire records when an agent is overdue and tends the
// pools.
func (r *Registry) loop() {
	defer close(r.done)
	t := time.NewTicker(r.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if !r.d.Leads(keys.CatalogShard) {
			// On a replica only the catalog shard's leader proposes
			// expiry and tends pools (one spawner call, not one per node).
			continue
		}
		now := r.d.Now().UnixNano()
		r.mu.RLock()
		due := false
		for _, a := range r.agents {
			if overdue(a, int64(r.opts.MissedHeartbeats), now) {
				due = true
				break
			}
		}
		r.mu.RUnlock()
		ctx, cancel := stopContext(r.stop)
		if due {
			if _, err := r.Expire(ctx); err != nil && ctx.Err() == nil {
				r.d.Logger().Warn("registry: expire", "err", err)
			}
		}
		r.TendPools(ctx)
		cancel()
	}
}
