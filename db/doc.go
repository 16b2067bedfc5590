// Package db is flowdb's engine: Open, Options and DB over Pebble v2, the
// key-value API with namespaces and TTL, the commit pipeline (group commit)
// and the applier that turns log records into Pebble writes.
//
// # The write path
//
// Every mutation is a wal.Record. A call such as Set validates its input at
// the API edge (bad input gets a typed error here, before anything is
// logged), encodes a record and hands it to the wal.Batcher. One commit
// goroutine takes whatever is pending as a frame, stamps it with the proposer
// clock, applies it at the next log index into one Pebble batch together with
// the applied index (and the frame itself, in the command log table), commits
// that batch with fsync, and only then answers every caller in the frame.
// While it syncs, new submissions queue up and form the next frame: this is
// group commit, and it adds no latency to a lone writer.
//
// The applier dispatches each record by kind to the state machine that
// declared it. The key-value space attaches in Open; queues, the registry
// and vector indexes attach when their package's Attach is called. The
// replicated engine (raftsm) applies the same frames with the same applier.
//
// # Follow one write
//
// A static reader loses the path twice: at the hand-off between the
// caller and the commit goroutine (the wal.Batcher), and at the function
// value the applier calls.
// Here is DB.Set on a standalone store, hop by hop:
//
//  1. API call: DB.Set (kv.go) validates namespace, key and value
//     (Batch.add) and encodes one KindKVBatch record (Batch.record).
//  2. DB.Propose wraps it in a wal.Proposal and hands it to the store's
//     wal.Batcher (Batcher.Submit); the caller then waits in
//     Proposal.Wait.
//  3. Commit loop, stage A (DB.commitLoop, one goroutine): Batcher.Next
//     returns every pending proposal; they become one wal.Frame stamped
//     with Options.Now, applied at the next log index by DB.applyInto.
//  4. applier.applyFrame looks each record's kind up in the registry that
//     DB.Attach filled and calls that KindSpec.Apply (here
//     kvMachine.applyBatch) with a Tx over the frame's Pebble batch.
//  5. Pebble batch: the Apply writes through Tx.Set/Delete/DeleteRange;
//     applyFrame adds the applied index (and, with LogRetention, the
//     frame); batchSorter.sort puts the point writes in key order.
//  6. Stage B (DB.writeLoop, DB.writeBatch) hands the batch to Pebble
//     with ApplyNoSyncWait: written to Pebble's WAL and memtable, visible
//     to reads, not yet durable.
//  7. fsync: the acknowledger (DB.ackLoop) waits for the batch's sync
//     (Batch.SyncWait), frames in order; a failed sync is fatal (ErrFatal).
//  8. Answer: ackLoop publishes the applied index, runs the frame's
//     AfterCommit hooks, and calls Proposal.Finish with each record's
//     wal.Result; Proposal.Wait returns in Propose, and Set returns the
//     record's error (nil, or its typed rejection).
//
// On a replica, steps 3 to 8 are instead: the shard's proposer
// (DB.proposeLoop) frames the records and sends the frame through
// Options.Replicator; every replica's raftsm state machine applies it with
// ShardApplier.Apply (the same applyFrame and KindSpec.Apply) and
// ShardApplier.Commit; the proposer's caller is answered with the results
// its own replica applied.
//
// # Extending the engine
//
// A subsystem plugs in with one declaration, a Machine, handed to
// DB.Attach: its record kinds (KindSpec: Apply, Reads, Route), the
// sentinel errors its records are rejected with (db.Reject builds such a
// result), its key tables (TableSpec, checked by Check), an optional
// cross-table Check, Load and Reload to build its in-memory view of a
// shard at attach and after a Raft snapshot, and Stop, which DB.Close calls
// first so that the machine's background goroutines never read a closed
// store, whatever order the caller closes things in. Transactions use the same
// declaration (KindSpec.Txn, Machine.TxnLock; see Transactions). The extension API is public and names only public types:
// Machine, KindSpec, TableSpec, Tx, Placement (which used to be an
// internal type, now db's), Propose. Table tags, though, are allocated in
// internal/keys, so machines live inside this module today; an outside
// machine would need a tag range reserved there first.
//
// Snapshots of a replicated shard are db's too: ShardApplier.PrepareSnapshot,
// SaveSnapshot and RecoverSnapshot stream a shard's key range in the
// format drawn in snapshot.go and replace it, so raftsm sees nothing of
// Pebble. DB.Pebble is for reads only.
//
// # Replicas
//
// With Options.Replicator set (raftsm.Open sets it) the store is a replica:
// the commit pipeline does not run; Propose routes each record by
// KindSpec.Route to the shard that owns it and a per-shard proposer sends
// frames through the Replicator; every replica applies them through a
// ShardApplier, which also refuses records routed to the wrong shard
// (ErrWrongShard), deduplicates frames by Origin (DedupWindow), and keeps
// the results typed across the wire (Machine.Errors, DecodeResults).
// Reads call ReadBarrier first (a Raft read index) unless
// Options.StaleReads. All shards of a replica apply one at a time
// (ShardApplier.Exclusive); after a snapshot (ShardApplier.RecoverSnapshot)
// every machine on the shard rebuilds its in-memory view (Machine.Reload).
//
// # Transactions
//
// An agent's step (ack its task, store a memory, record a result, enqueue
// the follow-up) commits whole with DB.CommitTxn: a Txn holds key-value
// operations and conditions (Txn.Set, Delete, Require, RequireAbsent,
// RequirePresent) and the subsystems' operations, which each package adds
// (queue.Manager.TxEnqueue/TxAck/TxNack/TxExtend/TxCancel,
// hnsw.Manager.TxUpsert/TxDelete, registry.Registry.TxRegister/TxHeartbeat).
// The transaction is one record (KindTxn) in one frame. Its contract:
//
//   - Atomicity: every operation applies, or none does. The first refused
//     operation refuses the transaction: CommitTxn returns a *TxnError that
//     names it (TxnError.Op, its index in the order added; Kind) and matches
//     both ErrTxnRejected and the operation's own error
//     (errors.Is(err, queue.ErrLeaseLost)). The engine takes every write of
//     the transaction back out of the frame's batch, drops its AfterCommit
//     hooks and has each machine restore its in-memory view, so nothing of
//     it is on disk or in any view (hot sets, held counts, registry view,
//     HNSW graphs), before or after a crash. Input that fails validation
//     (Txn.Err) refuses the transaction before anything is proposed.
//   - Isolation: serializable. A shard applies one record at a time and a
//     transaction is one record; the machines' view locks (Machine.TxnLock)
//     are held across its whole apply, so no reader of a view sees it half
//     applied. As for single records, a transaction's effects become
//     readable when its frame is written, just before it is durable.
//   - Order: operations apply in the order added; each sees what the ones
//     before it wrote (a condition after a Set sees the new value). Vector
//     operations are the exception: validated in order, their changes apply
//     after every other operation passed, in their own order (no other
//     operation reads vectors).
//   - Conditions check the key-value space only: a key present, absent
//     (expired counts as absent, by the frame's time) or holding exactly a
//     value. etcd's compare is the model; there is no else branch: put the
//     conditions where they must hold and read the refusal.
//   - Timers and wake-ups: housekeeping an operation does at the frame's
//     time (due delayed tasks, expired leases) is part of the transaction
//     and is undone with it. Wake-ups (LeaseWait) and notifications run
//     after commit, and only for a transaction that committed.
//   - Exactly once: Txn.SetIdempotencyKey keeps the outcome (results or
//     refusal) under the key for TxnIdempotencyWindow (24 h, by frame time);
//     a commit with the same key within it gets that outcome and applies
//     nothing, and one with the same key but other operations gets
//     ErrIdempotencyKeyReused. Expired keys are reclaimed, 16 per later
//     keyed transaction on the shard.
//   - Placement: on a replicated store a transaction commits through one Raft
//     proposal of one shard, so all its operations must live on one shard;
//     otherwise Propose refuses it with ErrCrossShard and nothing is applied.
//     Names that are written together share a placement group ({group} in
//     the queue, collection and namespace names: Placement). The registry
//     lives on the catalog shard, so registry operations combine only with
//     each other there. A standalone store has one log: any mixture commits.
//   - Limits: MaxTxnOps (1,024) operations, MaxTxnBytes (32 MiB) of encoded
//     operations, idempotency keys up to MaxIdempotencyKeySize (256) bytes:
//     ErrTxnTooLarge; an empty transaction is ErrEmptyTxn.
//   - Cost: the record holds the operations' encoded bodies, as the single
//     calls would. A refused transaction costs a copy of its frame's batch
//     up to the transaction and, per queue it touched, re-reading that
//     queue's hot set and held counts; a committed one costs nothing extra.
//     A kept outcome is one Pebble entry (key, time, checksum, results) for
//     the window.
//
// A subsystem makes a record kind transactional with KindSpec.Txn and
// Machine.TxnLock, restoring its view on refusal with Tx.OnAbort (once per
// piece of state: Tx.FirstTouch) or holding changes back with Tx.Defer.
//
// # Invariants
//
//  1. Every mutation is a record; only the applier writes to Pebble. The
//     exceptions are store configuration written by Open before any record
//     (the data-shards marker, the command-log retention, and dropping the
//     kept frames when the log is turned off), and a replicated shard's
//     snapshot recovery (ShardApplier.RecoverSnapshot), which replaces the
//     shard's whole key range, applied index included. Both are db's code:
//     no other package writes to Pebble.
//  2. Apply is deterministic: it reads no clock (it uses the frame's time,
//     made non-decreasing as max(frame time, last applied time)), iterates no
//     map, draws no randomness. Two stores that apply the same frames hold
//     the same keys and values.
//  3. A caller is answered only after the frame holding its record is durable
//     (per Options.Durability). A failed commit (a failed fsync) is fatal:
//     that frame's callers and every later caller get ErrFatal, and nothing
//     is acknowledged until the store is reopened.
//  4. A frame applies atomically with its log index: after any crash the
//     store holds exactly the frames up to its applied index. This rests on
//     Pebble recovering a prefix of its WAL, which it does for WALs in the
//     chunk format of FormatWALSyncChunks and later; a new store's first
//     WAL is in the older format (Pebble creates it before raising the
//     store's version), so Open rotates it before the first frame
//     (TestLostWALPageKeepsPrefix).
//  5. A rejected record (a typed error in its Result) writes nothing; the
//     other records of its frame still apply. A refused transaction is a
//     rejected record (only its idempotency key's outcome is kept).
//  6. Expired keys are invisible to reads at once (reads compare expiry with
//     the clock); they are deleted later by reaper records whose apply
//     compares expiry with the record's time, so a key re-set since is kept.
//
// # Metrics
//
// Metrics reads counters and two latency histograms (internal/histo,
// log-spaced buckets of atomic counters, within 12.5% per quantile):
// Commit, one sample per Propose answered by the pipeline, from submission
// to answer (what a caller waits for: frame, Raft commit on a replica,
// apply, fsync); and Apply, one sample per frame applied (standalone
// pipeline, or every shard of a replica). The clock is read around the
// applier, never inside it, so invariant 2 holds; recording allocates
// nothing and takes no lock.
//
// # Keys and values (on-disk format)
//
// Keys follow internal/keys: shard (4 B) | table (1 B) | suffix.
//
//	meta      0 | 0x01 | "applied"           -> index (8 B BE) | time (8 B BE)
//	          0 | 0x01 | "data-shards"       -> uint32 BE
//	          0 | 0x01 | "log-retention"     -> uint32 BE
//	log       0 | 0x02 | index (8 B BE)      -> encoded wal frame
//	kv        s | 0x10 | len(ns) | ns | key  -> flags (1 B) | [expiry (8 B BE)] | value
//	kv ttl    s | 0x11 | expiry | len(ns) | ns | key -> (empty)
//	txn key   l | 0x12 | idempotency key     -> time (8 B BE) | checksum (8 B BE) | results
//	txn at    l | 0x13 | time (8 B) | key    -> (empty)
//
// s is the data shard of the namespace (Placement.ShardFor); l the shard
// whose log applied the transaction (0 standalone). With
// Options.LogRetention > 0 the command log keeps the last LogRetention frames
// (older ones are deleted by the applier itself every 64 frames) and Check
// verifies each one's checksum, decoding and contiguity up to the applied
// index. By default no frame is stored (see Choices).
//
// # Limits
//
// Namespaces up to MaxNamespaceSize (64) bytes, the empty namespace included;
// keys 1 to MaxKeySize (4096) bytes; values up to MaxValueSize (16 MiB); a
// Batch up to MaxBatchOps operations and MaxBatchBytes; TTL 0 (none) to
// MaxTTL. Each violation has its own error (ErrEmptyKey, ErrKeyTooLarge, ...).
//
// # Concurrency
//
// The commit pipeline's waits form no cycle: stage A (apply) waits for
// stage B at a frame's first read, B waits only for Pebble, and the
// acknowledger (fsync waits, AfterCommit hooks) may wait for A's locks;
// B hands frames to it through an unbounded queue (ackQueue), never
// waiting for it. TestHooksMayTakeApplyLocks deadlocked before that queue.
//
// A DB is safe for concurrent use by any number of goroutines. Close may be
// called at any time and more than once: calls already inside the engine
// finish (mutations already handed to the pipeline are applied and
// answered), later calls get ErrClosed, and open Cursors are closed. A
// Cursor and a Batch belong to one goroutine. Only one DB (in any process)
// may have a directory open; another Open gets ErrLocked.
//
// Byte slices: values returned by Get and Entry fields are copies owned by
// the caller. Cursor.Key and Cursor.Value are valid until the cursor moves or
// closes. Slices passed in are not retained after the call returns.
//
// # Choices made where the issue was silent
//
//   - Group commit takes what is pending when the committer is free
//     (BatcherOptions.Linger 0) instead of waiting a fixed timeout: a lone
//     writer pays one fsync, many writers share one.
//   - Frames above 1 MiB are stored s2-compressed; smaller ones plainly:
//     compressing runs on the single commit goroutine, and on the batched
//     write benchmark it cost more throughput than the bytes it saved.
//   - DeletePrefix is one range deletion: O(1) to apply, whatever it covers.
//   - Scans read a snapshot taken when the cursor opens.
//   - The command log table is off by default (Options.LogRetention 0).
//     Storing each frame writes every mutation twice into Pebble's WAL and
//     memtable. Measured with bench/kvbench (5 runs, medians, against raw
//     Pebble in the same run): with frames kept, 8 writers x 100-set batches
//     ran at 0.59-0.66x raw Pebble; without, 0.87x. State is still covered
//     by Pebble's block checksums, which Check verifies (CheckLevels), and by
//     the per-table checks; enable the log to audit recent frames.
//   - A frame's Pebble batch is indexed (so that records can read the
//     frame's own earlier writes) only when a record first reads: most
//     queue frames read nothing and skip the index. Measured with
//     bench/queuebench (64 producers x 16-task calls, 3 alternating pairs):
//     1.10x the lifecycle throughput of indexing every frame that may read.
//   - Flushes and compactions yield the processor before each table write
//     (yieldFS). On two cores both of Go's processors can otherwise be busy
//     with them while the commit pipeline's goroutines wait for the
//     scheduler's 10 ms preemption. Measured with queuebench at 65,000
//     tasks/s: enqueue p99 median of 7 pairs 9.9 ms against 10.6 ms; at the
//     batched peak 13.7-15.2 ms against 26.7-29.3 ms (two pairs).
//   - A frame's point writes reach Pebble grouped by shard and table, in
//     key order (batchSorter): a group that came nearly in order (as
//     records write ids and sequence numbers) is sorted, stably so that the
//     last write to a key still wins; a group that came at random keeps its
//     order, since sorting it would not help. Pebble's skiplist inserter
//     then finds most keys next to the previous one instead of searching
//     from the top. Batches with range deletions keep their order.
//     Replicas do the same (ShardApplier.Commit). Measured with queuebench
//     (64 producers x 16-task calls, 4 alternating pairs): 1.14x the
//     lifecycle throughput of writing in apply order; kvbench's batches of
//     100 random keys unchanged.
//   - NoSync durability answers after write(2) of the WAL, not after the
//     WAL writer's buffer: Pebble's NoSync commit leaves a frame in a
//     user-space block until the block fills or something syncs, and a
//     process crash lost up to 32 KiB of acknowledged frames that way. The
//     store commits as in SyncEachCommit over a WAL whose fsyncs do nothing
//     (noSyncWALFS), and a marker file lets Open cut such a WAL's torn tail
//     after a power cut (openPebble; the newest WAL only, and only if NoSync
//     wrote it). TestDurabilityModesSurviveSIGKILL
//     (internal/killtest) kills a writer of every subsystem in both modes.
//     One writer pays a write(2) per frame for it; many writers share them
//     (bench/RESULTS.md, db: durability modes).
//   - A mutation is visible to reads as soon as Pebble has applied its
//     batch, which may be shortly before the fsync completes; its caller is
//     answered only after the fsync. Pebble's own Commit(Sync) behaves the
//     same way.
package db
