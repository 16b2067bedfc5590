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
// reported as db.ErrOutcomeUnknown, never as failed.
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
// Node.AddReplica and RemoveReplica change every shard's membership,
// TransferLeader moves a shard's leadership, Status reports each shard's
// leader, term, applied index and members, WaitReady waits for leaders.
// Mutual TLS between nodes comes from PEM files (Config.TLS); without it a
// node refuses a non-loopback address unless Config.Insecure is set. The
// node directory and the Raft directory are created 0700 and the store's
// files 0600 (Dragonboat creates its own files inside the 0700 directory).
//
// Config.Gossip turns on Dragonboat's gossip node registry: members are
// named by stable NodeHost IDs, and a node may come back on another Raft
// address (TestGossipAddressChange).
//
// flowctl node start runs a node with an admin HTTP endpoint on loopback;
// flowctl cluster status|add|remove|transfer go through it, and so does
// every data command (kv, queue, agent, pool, sched, vec, stats) given
// --node: the node runs the same command against its replicated store
// (tools/flowctl/exec.go).
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
