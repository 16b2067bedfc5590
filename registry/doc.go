// Package registry is flowdb's agent registry: agents with their pool,
// capabilities, capacity and labels; heartbeats with load and status;
// health from missed heartbeats; warm pools kept topped up by a
// user-supplied spawner; and client and agent sessions.
//
// # Contract
//
//   - Register adds an agent or replaces a registered agent's definition
//     (its load and status are kept). Deregister removes it. Heartbeat
//     records the agent's load (tasks it holds) and status and makes it
//     healthy.
//   - An agent that has gone MissedHeartbeats (default 3) of its heartbeat
//     intervals without a heartbeat turns unhealthy when the next expire
//     record applies; the background loop proposes one as soon as some
//     agent is overdue by the proposer's clock. The decision itself is taken
//     in apply on the record's time and the multiplier carried in the
//     record, so replicas and replays agree. OnUnhealthy listeners hear of
//     each newly unhealthy or deregistered agent once the record is durable
//     (the scheduler, package sched, releases the agent's leases through
//     queue records).
//   - Lookups (Get, ByCapabilities, ByPool, List) are served from an
//     in-memory view that apply keeps, fronted for ByCapabilities by an
//     otter cache (github.com/maypok86/otter/v2); Get reads the view's map
//     directly, which is faster than a cache in front of it. Registration,
//     deregistration and health changes invalidate the cache inside apply,
//     before the caller is answered: once Deregister returns, no lookup
//     returns the agent. Heartbeat figures (load, status, last heartbeat)
//     in a ByCapabilities result may be up to Options.Staleness (default
//     100ms) old.
//   - ByCapabilities and ByPool return healthy agents only; List filters on
//     pool, capabilities and health. Every listing is sorted by id.
//   - Pools: when a pool has fewer healthy idle agents (warm) than MinWarm,
//     counting spawns in flight, Options.Spawner is called once per missing
//     agent on its own goroutine; a failure delays the pool's next spawn by
//     an exponential backoff (SpawnBackoff doubling up to 30s). When a pool
//     has more healthy agents than MaxSize, its agents idle for at least
//     RetireAfter are offered, longest idle first, to Options.Retire (each
//     once). Spawning, spawned, failures and offers are in PoolStats; they
//     are per-process figures, not replicated state.
//   - Sessions are key-value entries with a TTL (namespaces session.client
//     and session.agent); reading a session touches it (its idle timeout
//     starts again).
//   - Bad arguments get ErrInvalid before anything is logged; unknown agents
//     and pools ErrNotFound.
//
// # Tables (catalog shard, keys.CatalogShard)
//
//	0x30 agent  id   -> spec | load | status | healthy | registered | last heartbeat | idle since
//	0x31 pool   name -> name | min warm | max size | retire after
//
// # Memory
//
// The view holds every agent (about 300 bytes plus its capabilities and
// labels, and an entry per capability and pool index) and every pool. The
// ByCapabilities cache holds up to CacheSize results (default 4,096), each
// a slice of pointers into the view.
//
// # Concurrency
//
// A Registry is safe for concurrent use. Registry.mu guards the view: apply
// functions (on db's commit goroutine) take it to write, lookups take it to
// read; a ByCapabilities that misses the cache fills it while holding it,
// so an invalidation can never be undone by a concurrent fill. Agents in
// the view are never modified in place: a change publishes a new copy, so
// a returned *Agent stays valid (and must not be modified). Close stops
// the background loop and waits for spawner and retire callbacks; it must
// precede closing the DB.
package registry
