// Package raftsm replicates a flowdb shard through Dragonboat
// (github.com/lni/dragonboat/v4): StateMachine is Dragonboat's on-disk
// state machine (statemachine.IOnDiskStateMachine) over one shard of a
// store, applying each Raft entry's frame with the same applier, record
// kinds and Apply functions as the standalone engine (db.ShardApplier).
//
// A Node (Open) is a running member: one NodeHost with a replica of the
// catalog shard (keys.CatalogShard: the registry) and of every data shard
// (keys.FirstData...: queues, collections and key-value namespaces, placed
// by xxhash of their name), over one store whose *db.DB the caller uses
// exactly as a standalone one (Node.DB). Config.Attach registers the state
// machines (queue.Attach, registry.Attach, hnsw.Attach) before any shard
// applies, on every node.
//
// # Writes
//
// A replica runs no standalone commit pipeline. db.DB.Propose routes each
// record to the shard that owns it (db.KindSpec.Route; a key-value batch
// over namespaces on two shards is refused with db.ErrCrossShard), and a
// per-shard proposer packs concurrent records into frames (wal.Batcher,
// up to db.Options.Batcher.MaxRecords each), with at most
// db.Options.MaxShardInflight frames in Raft per shard (default 4) and
// db.Options.MaxInflight per node (default 8); while every slot is taken,
// the next frame gathers everything that arrives. A caller is answered once its frame is committed and
// applied on its node, with its own record's result; rejections keep their
// types across the wire (db.Machine.Errors), so errors.Is works as on a
// standalone store.
//
// # Exactly once
//
// On-disk state machines must use Dragonboat's no-op sessions, so each
// frame carries an Origin (a random proposer id per open, and a sequence
// number) and the applier keeps each applied Origin's results for
// db.DedupWindow of frame time (in the shard's meta table, dropped
// deterministically): a retried frame changes nothing and answers with the
// first application's results. Node.Propose retries with backoff while a
// shard is not ready or busy, and after a lost request (timeout, aborted by
// a leader change), within the frame's time (db.Options.ProposeTimeout,
// default 30s); a frame that may have reached Raft and was not confirmed is
// reported as db.ErrOutcomeUnknown, never as failed. A follower forwards
// proposals to the leader, and a leader that died never answers them: when
// a shard's leader changes (Dragonboat's LeaderUpdated event), the
// attempts in flight on it are canceled and made again at once, so a
// write waits for the election, not for its attempt's timeout. An answer
// that is a refusal (Dragonboat's ErrRejected) is not retried.
//
// # Reads
//
// Reads are linearizable by default: key-value Get and Scan, and queue Get
// and Dead, first take a Raft read index of the shard (db.DB.ReadBarrier),
// so they see every write acknowledged anywhere before they began. A queue
// or collection not yet known to this replica is looked up again after a
// read index. db.Options.StaleReads serves reads from local state without
// it. In-memory views (queue Stats, registry lookups) are this replica's
// and may lag the leader by the replication delay.
//
// # In-memory views
//
// Each replica applies every record, so queue hot sets, the registry view
// and HNSW graphs are kept on every node by the same apply functions. A
// replica's shards apply one at a time (db.ShardApplier.Exclusive), as the
// standalone engine's single applier does. After a snapshot replaced a
// shard's keys, every state machine rebuilds its view of that shard
// (db.Machine.Reload).
//
// # Cluster operations
//
// Open starts a node from Config (Raft address, data directory, data
// shards, initial members or Join); a node that restarts uses its
// bootstrap record, so membership changes made since need no config edit.
// A replica id that is not among the initial members is refused
// (ErrConfig) unless the node joins. A start that fails in a directory
// that did not exist or was empty leaves it as it was.
//
// Node.AddReplica and RemoveReplica change every shard's membership,
// TransferLeader moves a shard's leadership, Status reports each shard's
// leader, term, applied index and members, WaitReady waits for leaders.
// Each ends within its context's deadline (OpTimeout when it has none)
// with a typed error that says what is wrong:
//
//   - ErrNotMember: removing, or transferring to, an id that is not a
//     member; removing an id removed already.
//   - ErrAlreadyMember: adding a member's id (at any address) or an
//     address a member has.
//   - ErrRemovedID: adding an id removed earlier (Raft never lets one
//     return).
//   - ErrRejected: a change Raft refuses, such as removing the only member.
//   - ErrUnknownShard: a shard this node does not have.
//   - ErrNoQuorum: the membership could not be read (a linearizable read)
//     before the deadline: no leader with a quorum.
//   - db.ErrOutcomeUnknown: a change was sent and not confirmed.
//
// Each change first reads the shard's membership: a change already made
// on a shard (a retry after a partial one) is skipped there, and a change
// that can never be made is refused before anything is proposed, so a
// mistyped remove uses up no id.
//
// A node whose replica is removed (Dragonboat's NodeDeleted event) stops
// serving: proposals, reads and Status fail with ErrRemoved, a marker in
// the Raft directory records it, and Open refuses to start it again. Local
// reads of in-memory views (queue stats, registry lookups) through Node.DB
// are not guarded: a server above this package checks Node.Removed.
//
// # Figures
//
// Counters counts the frames this node proposed, their retries and
// timed-out attempts; CommitLatency holds per shard the distribution
// (internal/histo) of their Raft commit times, from Propose's call to its
// answer: committed by a quorum and applied by this replica, retries
// included, one sample per frame that succeeded. The store's own
// db.Metrics.Commit (per record, from submission) contains it, plus the
// wait for a frame. Status gives this replica's applied index per shard.
//
// Dragonboat v4 does not expose how far each follower is behind: the
// leader's per-follower match index lives in its internal raft package,
// and NodeHost.GetNodeHostInfo's ShardInfo carries only the leader, term,
// members and config change index. A member's lag is therefore read from
// that member (its Status, through its admin endpoint): the dashboard's
// cluster page asks every member whose admin address it knows.
//
// # Elections and failover
//
// Every shard runs with PreVote and CheckQuorum: a candidate first asks
// whether it could win, so a node cut off from the others does not drive
// terms up and force an election when it returns
// (TestPreVoteIsolatedFollower), and a leader that loses its quorum steps
// down within an election timeout. With the default timing (20 ms RTT,
// elections after 25 to 50 RTTs without a leader, heartbeats every 5), a
// SIGKILLed leader's shard takes its next write on a new leader after
// about 0.8 s (TestFailover with FLOWDB_FAILOVER_KILLS=N kills three node
// processes' leaders in turn and reports the median and maximum).
//
// # Disk
//
// Dragonboat's log store (LogDB) is by default one Pebble instance per
// LogDB shard, each preallocating a write-ahead log file of 110% of its
// memtable for the Raft shards it holds. Config.LogDB picks its size
// (LogDBSize): by default 8 MiB memtables, about 9 MiB of disk per Raft
// shard on an idle node (TestIdleDiskUse: under 64 MiB for three shards),
// against 141 MiB per shard with Dragonboat's own default ("large").
// Config.LogStore = LogStoreTan runs Dragonboat's append-only log instead
// (plugin/tan: per Raft shard a log file appended to and fsynced for each
// Raft update that carries entries or a new term or vote, with an index;
// no memtables, flushes or compactions; a file is dropped once the log
// was compacted past it). Tan would preallocate 64 MiB per shard; this
// package hands it files it cannot preallocate, so a log file takes the
// blocks its entries fill (TestIdleDiskUseTan: under 64 MiB for three
// shards, with room to spare; it logs the figure). Pebble stays the
// default: bench/BENCHMARKS.md holds the A/B runs that decided it. A node
// keeps the log store it was created with (recorded in the Raft
// directory; a node from before the setting used Pebble): an empty
// LogStore reopens it with its own, and another is refused with
// ErrLogStoreChanged, since neither store reads the other's log
// (Dragonboat would also refuse it, untyped). The store's own WAL
// is preallocated at 110% of its memtable, a quarter of
// db.Options.CacheSize (35 MiB with the default 128 MiB cache; Pebble
// keeps one spare WAL for reuse), so a node that must be smaller on disk
// lowers Store.CacheSize.
// Mutual TLS between nodes comes from PEM files (Config.TLS); without it a
// node refuses a non-loopback address unless Config.Insecure is set. The
// node directory and the Raft directory are created 0700 and the store's
// files 0600. Dragonboat creates its own files 0644 and directories 0750
// (it takes no mode), inside the 0700 Raft directory, so no other user can
// reach them; flowctl node start also sets the process umask to 077, which
// makes them 0600 and 0700.
//
// Config.Gossip turns on Dragonboat's gossip node registry: members are
// named by stable NodeHost IDs, and a node may come back on another Raft
// address (TestGossipAddressChange).
//
// flowctl node start runs a node with an admin HTTP endpoint on loopback;
// flowctl cluster status|add|remove|transfer go through it, and so does
// every data command (kv, queue, agent, pool, sched, vec, stats) given
// --node: the node runs the same command against its replicated store
// (tools/flowctl/exec.go). The endpoint answers a removed node's every call
// with 410, an outcome unknown with 504, and carries the sentinels above
// in a Flowdb-Error-Class header; flowctl exits 3 when a write's outcome is
// unknown (including when the node died before it answered).
//
// # Throughput on three machines
//
// bench/replbench measures the replicated rate of three replicas in one
// process on one machine beside a ceiling: raw Pebble doing the least the
// three replicas must write per operation (the entry in a synced Raft log
// store and in an unsynced state store, per replica), with no Raft and no
// flowdb, in the same run. On one machine the three replicas share its
// disk and cores, so that ceiling is the machine's, for all three. On
// three machines each replica has a machine's disk and cores to itself,
// so the ceiling of a deployment is about three times the one-machine
// figure (each machine writes one replica's share), and flowdb should
// reach the same fraction of it as replbench reports on one machine at the
// same records per proposal. A deployment of three machines like the
// benchmark's should therefore reach about
//
//	3 x (replbench's raw Pebble ceiling) x (replbench's ratio to it)
//
// replicated operations per second at 100 records per proposal, bounded by
// the leader's machine, which alone sends every entry to two followers,
// receives the proposals followers forward and answers its own clients
// (with -queues data shards, leadership and so this extra work spread over
// the machines). Every commit is one network round trip longer than on
// loopback: hidden at the peak by the frames in flight
// (db.Options.MaxShardInflight), added in full to a single operation's
// commit latency. replbench also prints the CPU time per operation of
// both: on a machine whose cores are the limit (other work on it, or
// small cores), the ratio follows the ceiling's CPU per operation divided
// by flowdb's (Raft's transport, log store and apply loop, flowdb's
// framing and apply, three times over, against Pebble's writes alone); on
// a machine whose disk is the limit it is higher. bench/BENCHMARKS.md
// holds the ceilings, ratios and CPU figures measured, with the machine
// and its load.
//
// The tail below the peak follows the disk. On one machine the three
// replicas' six LSMs (three state stores, three Pebble log stores) share
// it and flush and compact at the same moments, since they apply the same
// records; replbench -half prints, beside flowdb's latency at half its
// peak, the raw ceiling offered the same rate open loop: the disk's own
// p50 and p99 for the least those operations must write, with nothing
// else running. flowdb's p99 at that load is the disk's plus Raft's round
// trips and a frame's wait, so it is not expected below the ceiling's,
// and where the ceiling's own p99 is above a target, no change in flowdb
// meets that target on that machine. On three machines each disk carries
// one replica's two stores, a third of the one-machine writes at the same
// rate, so a deployment's p99 at half its peak should be well under the
// one-machine figure; it is measured, not derived, as below.
//
// To measure it: run the ceiling on one of the machines (cd bench && go
// run ./replbench -ops 100: its raw Pebble line, times three), then open
// one node per machine (flowctl node start, or Open with the three Raft
// addresses as Members) and drive enqueues from producers in each node's
// process, on every node (a follower forwards proposals to the leader),
// with -queues shards so that leadership spreads over the machines;
// compare the acknowledged operations per second with three times the
// ceiling. For the tail, offer half the rate reached at a fixed pace, open
// loop (each operation's latency counted from the time it was due, as
// replbench -half does), and read p50 and p99; for the single-operation
// latency, one producer with one operation in flight.
//
// # Testing under faults
//
// The linearizability test (TestLinearizable, porcupine, 50 seeded
// schedules; FLOWDB_LIN_SCHEDULES for more) runs its nodes behind a
// loopback TCP proxy (faultNet in the tests) that reads Dragonboat's
// frames, learns each connection's sender, and per directed link drops,
// duplicates, delays or blocks whole frames and cuts connections: leader
// partitions both ways and one way, follower partitions, a lossy network,
// cut connections, beside node restarts, snapshot catch-up, membership
// changes and leadership transfers.
//
// # Dragonboat's rules, and how this adapter keeps them
//
//   - Open returns the index of the last entry whose state is on disk: the
//     shard's applied index, read from the store (db.ShardApplier.Applied).
//     Update and Lookup are not called before Open returns.
//   - Update receives consecutive committed entries; Raft indexes that
//     carry no frame (elections, membership changes) never reach it, so an
//     index need only exceed the applied one. All entries of a call apply
//     into one Pebble batch that also holds the new applied index, so the
//     state and its index are atomic (invariant 4 of package db: a crash
//     leaves exactly the entries up to the applied index). An entry at or
//     below the applied index (re-delivered after a restart) is skipped.
//   - Update commits without a sync; Sync syncs Pebble's log. Pebble's log
//     is written in order, so a crash can lose a suffix of applied entries,
//     never one in the middle: Dragonboat re-applies the suffix from its own
//     log, as its contract allows.
//   - Update is deterministic: the frame's records and the time the
//     proposer stamped are its only inputs (apply never reads the clock).
//     Each entry's Result is Value = records applied without rejection,
//     Data = per record its N and error text.
//   - An applied index that went backwards is refused: Sync (and each
//     snapshot recovery) records the durable applied index in a high-water
//     marker kept beside the Raft log (markDir, not in the store: a Pebble
//     vfs/atomicfs marker, through the store's vfs.FS); Open returns
//     ErrIndexBehind when the store holds less, as it would if an older
//     copy of the store were put in its place.
//   - Concurrency: Dragonboat serializes Update, Sync, PrepareSnapshot,
//     RecoverFromSnapshot and Close; Lookup and SaveSnapshot may run during
//     Update. Lookup returns the applied index; SaveSnapshot reads a
//     snapshot taken in PrepareSnapshot (db.ShardSnapshot), so it never
//     sees a half-applied batch.
//   - Snapshots are the store's (db.ShardApplier.PrepareSnapshot,
//     SaveSnapshot, RecoverSnapshot): the shard's key range, keys in order
//     (the same state always streams the same bytes), in the format drawn
//     in db/snapshot.go. Recovery deletes the range and writes the keys,
//     the applied index last (a recovery cut short leaves none, so
//     Dragonboat asks for the snapshot again), syncs, and rebuilds the
//     in-memory views; this adapter then records the high-water mark.
//     Bytes that do not decode, keys outside the shard and a missing or
//     malformed applied index are refused with ErrBadSnapshot (which is
//     db.ErrBadSnapshot) before anything is committed (for snapshots under
//     64 MiB; larger ones commit in steps, still with the applied index
//     last). This package never writes to Pebble, nor sees it: the
//     batches it applies frames into are opaque (db.ShardBatch).
//
// A StateMachine holds no goroutines and owns neither the store nor the
// NodeHost: Close releases nothing.
package raftsm
