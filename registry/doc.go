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
// # Transactions
//
// TxRegister and TxHeartbeat add the same records as Register and
// Heartbeat to a db.Txn (db/doc.go states the contract). If a later
// operation refuses the transaction, each agent it touched is put back in
// the view as it was (the same *Agent), and the lookup caches are dropped.
// The registry lives on the catalog shard: on a replicated store a
// transaction with registry operations may hold no other operations
// (db.ErrCrossShard). Deregister, expiry and pools are not transactional.
//
// # Invariants
//
//  1. Every change to agents and pools is one of this package's records
//     (KindRegister ... KindPoolDelete), applied on the catalog shard; the
//     view, the cache and the tables change only in apply.
//  2. Apply is deterministic: times come from the record (db.Tx.Time), the
//     expire record carries its MissedHeartbeats, labels are encoded in key
//     order and expired ids are processed in id order, so no map order
//     reaches a record, a table or a result.
//  3. The view equals the tables: Attach loads it from them, and after a
//     Raft snapshot replaced the catalog shard it is rebuilt from them
//     (db.DB.OnShardReload). Every stored agent and pool decodes, passes
//     validation and is keyed by its own id or name (db.Check verifies
//     each entry).
//  4. A stored agent's capabilities are sorted and unique; its capacity is
//     1..MaxCapacity and its load 0..MaxCapacity; its heartbeat interval is
//     positive (Register fills in the default before proposing).
//  5. An agent is healthy after Register and after each Heartbeat, and
//     unhealthy only through an expire record; idle since is 0 while its
//     load is above 0.
//  6. Sessions are not in the registry's tables: they are key-value entries
//     with a TTL, written through db's key-value API.
//
// # Tables (catalog shard, keys.CatalogShard)
//
// Keys are shard (4 B) | table (1 B) | the id or name's bytes (no length:
// the id is the rest of the key):
//
//	0x30 agent  id   -> agent (below)
//	0x31 pool   name -> pool (below)
//
// # Encodings (wire format)
//
// Record bodies and table values use internal/codec: uvarint (U), zig-zag
// varint (I), and strings as uvarint length | bytes (S); a list is a
// uvarint count then its items. Times are Unix nanoseconds of record time
// (I); durations are nanoseconds (I). Decoders accept only the minimal
// encoding of each number and no trailing bytes, and reject what fails
// validation (db.ErrBadRecord for a record, wal.ErrCorrupt for a stored
// value).
//
//	spec      id S | pool S | capabilities count U, each S | capacity U |
//	          labels count U, each key S | value S (keys sorted) | heartbeat interval I
//	agent     spec | load U | status S | healthy U (0 or 1) | registered I |
//	          last heartbeat I | idle since I (0: busy)
//	pool      name S | min warm U | max size U (0: unbounded) | retire after I
//
//	record                 kind  body                                     result (wal.Result)
//	KindRegister           200   spec                                     N 1
//	KindDeregister         201   id S                                     N 1
//	KindHeartbeat          202   id S | load U | status S                 N 1
//	KindExpire             203   missed heartbeats U (1..2^20)            N ids turned unhealthy, Data their ids (count U, each S)
//	KindPoolDefine         204   pool (stored as it is)                   N 1
//	KindPoolDelete         205   name S                                   N 1
//
// Limits (MaxIDSize, MaxLabelSize, MaxCapabilities, MaxLabels,
// MaxCapacity, MaxStatusSize) bound every string and count on decode as on
// Register. The kinds' numbers, the field order and the encodings are the
// log and on-disk format: changing any of them needs new record kinds or
// a migration of the tables.
//
// A session's value (namespaces session.client and session.agent, key the
// session id) is idle timeout (8 B, big-endian nanoseconds) | data, with
// the entry's TTL set to the idle timeout at each touch.
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
