// Package queue implements flowdb's durable task queues: priorities, a
// bounded in-memory hot set with a durable overflow, leases, retries with
// backoff, dead letters, idempotent enqueue and priority-aware admission.
// Every change is a record applied through db's one write path, so no
// acknowledged task is ever lost and replicas apply the same records to the
// same state.
//
// # Contract
//
//   - Enqueue (single or batch; a batch is one record, accepted whole or not
//     at all) returns task ids only once the tasks are durable. A task with
//     an IdempotencyKey seen within the queue's IdempotencyWindow returns the
//     first task's id and adds nothing.
//   - Admission: a queue holds at most HotCapacity + OverflowCapacity
//     outstanding (ready, delayed or leased) tasks, and MaxBytes of their
//     payloads if set. The last ReserveFraction of that capacity admits only
//     tasks with Priority >= HighPriority. A refused Enqueue gets ErrFull
//     and changes nothing: the caller keeps its task. An accepted task is
//     never dropped or evicted: a task that returns from a lease (Nack,
//     expiry) always re-enters, even above capacity.
//   - Hot set and overflow: the hot set is exactly the first HotCapacity
//     ready tasks in dispatch order (priority descending, then FIFO), held
//     in memory; the rest wait in the overflow, only in Pebble, costing no
//     memory. When the hot set drains it refills from the overflow in the
//     same order. A task outranking the hot set's last entry displaces it to
//     the overflow (it stays queued).
//   - Lease(agent, n, caps) hands out up to n ready tasks in dispatch order,
//     skipping tasks whose required capabilities are not all in caps (it
//     looks past the hot set, up to 4096 overflow entries, when the hot set
//     has too few matches). Each lease has a token and an expiry. LeaseWait
//     blocks until a task is leased or its context ends, woken by the
//     records that make tasks ready: it never polls. It writes a lease
//     record only when it may find a task (ready tasks beyond what this
//     process's leases in flight asked for, or something due), so a task
//     arriving for many waiting consumers of one process costs one lease
//     record, not one per consumer (TestLeaseWaitNoHerd). Not covered:
//     waiters in other processes (another node's), ready tasks that no
//     waiter's capabilities match (each waiter tries once per wake-up),
//     and the time after an open, a snapshot reload or a refused
//     transaction until the next record has told when something is due
//     (every waiter tries, as before).
//   - Extend renews a lease; Ack completes the task: its state and result
//     are kept for ResultRetention, its body (payload, tags, requirements,
//     enqueue time) is deleted at once, as a work queue deletes an acked
//     message (see Tables for why); Nack, or an expired lease, returns it after backoff
//     min(BackoffBase*2^(attempt-1), BackoffMax) plus jitter; after
//     MaxAttempts leases it becomes a dead letter (kept DeadRetention), which
//     can be listed, inspected, replayed (attempts reset) or purged.
//   - Cancel removes a ready or delayed task; a leased one is marked so that
//     its Ack is refused with ErrCanceled, and it is dropped when its lease
//     ends.
//   - A stale or wrong token gets ErrLeaseLost; unknown queues and tasks
//     ErrNotFound; bad arguments ErrInvalid (validated before anything is
//     logged).
//
// # Transactions
//
// TxEnqueue, TxAck, TxNack, TxExtend and TxCancel add the same records as
// Enqueue, Ack, Nack, Extend and Cancel to a db.Txn (db/doc.go states the
// transaction contract). Inside a transaction each applies exactly as
// alone, refusals included (ErrLeaseLost, ErrFull counted against the
// tasks the transaction enqueued before, ErrNotFound); Manager.mu is held
// by the engine across the whole transaction. If a later operation refuses
// the transaction, each queue it touched gets back its counters as they
// were, its hot set and held counts read again from the store (as after a
// reopen, so the hot set may be fuller than before, never different in
// order), an empty leased-state cache and an unknown due hint; its
// wake-ups are dropped. Queue creation, leases, ticks, dead-letter replay
// and purge, and assignments are not transactional (db.ErrNotTransactional).
// The ids of tasks enqueued in a transaction are in the Enqueued that
// TxEnqueue returned, once CommitTxn returned nil.
//
// # Time and determinism
//
// Apply never reads a clock. Every record applies at its frame's time
// (db.Tx.Time, stamped by the proposer), and before its own change each queue
// record (except replay and purge) processes the timers due at that time:
// delayed tasks whose not-before has passed become ready, expired leases are
// retried. A background ticker proposes tick records for queues with
// something due, so idle queues progress too. Jitter comes from a seed the
// proposer draws and puts in the record, hashed with the task id. Lease
// tokens are a hash of the log index, task id and attempt. The hot set is a
// deterministic function of the applied state (rebuilt from Pebble on open
// and compared with it by the model test), so apply may use it to pick.
//
// # Tables (on-disk format)
//
// All keys begin with the queue's data shard (db.Placement), a table tag,
// and len(name) | name:
//
//	0x20 def      -> config
//	0x21 task     id (8 B)                       -> task body (immutable; task.encodeBody);
//	              deleted by Ack
//	0x2A state    id (8 B)                       -> task state (task.encodeState);
//	              absent for a task enqueued ready and unchanged since
//	0x22 ready    255-priority (1 B) | seq (8 B) -> id (8 B) | attempts | required capabilities
//	0x23 delayed  not-before (8 B) | id          -> (empty)
//	0x24 lease    expiry (8 B) | id              -> (empty)
//	0x25 dead     dead-at (8 B) | id             -> (empty)
//	0x26 done     done-at (8 B) | id             -> (empty)
//	0x27 idem     key                            -> id (8 B) | time (8 B)
//	0x28 meta                                    -> counters
//	0x29 idem_at  time (8 B) | key               -> (empty)
//	0x2B held     reserved: older stores indexed leased tasks by agent here;
//	              nothing writes it now (see below)
//
// Tasks leased to an agent are not indexed by agent: a lease and an ack
// would each pay an extra key for a lookup only an agent's release needs.
// Release (a rare record: the agent died or left) instead reads every
// leased task of the queue through the lease index, and opening a store
// counts each agent's leased tasks the same way (one state read per leased
// task).
//
// Ticks reclaim done tasks after ResultRetention, dead letters after
// DeadRetention, and idempotency keys after IdempotencyWindow. db.Check runs
// a cross-table check (queue/verify.go): every index entry matches a task in
// that state and vice versa, idempotency keys match their time entries, and
// the counters equal what the task records add up to.
//
// Times are order-preserving int64 (keys.AppendInt64). Task ids and
// sequence numbers share one per-queue counter.
//
// A task is two records: its body (priority, enqueue time, requires, tags,
// idempotency key, payload), written once, and its state (state, attempts,
// times, token, payload size, agent, result, last error), rewritten on each
// change, so a lease or an ack never rewrites the payload. A task enqueued
// ready gets no state record until it first changes: until then its state
// is implied by its body (ready at rank (priority, id+1), no attempts), so
// an enqueue writes one key fewer per task. An Ack deletes the body: most
// tasks are acked within seconds, so the body and its tombstone usually sit
// in the same memtable, whose flush drops the body (only the small
// tombstone goes on down the tree). Kept for ResultRetention (an hour by
// default), the bodies were most of what flushes and compactions wrote:
// with incompressible 256-byte payloads, deleting them cut the tables
// flushed to about a fifth (bench/RESULTS.md, queue). A Lease writes
// the new state whole from the ready entry and the body without reading the
// old state; the last error of an earlier attempt is therefore shown only
// until the task is leased again.
//
// # Memory
//
// Per queue: its config and counters, plus about 80 bytes per hot-set entry,
// its required capabilities and, for payloads up to 4 KiB, a copy of its
// body (so that leasing from the hot set reads nothing from Pebble): about
// 350 KiB for the default HotCapacity of 1,000 and 256-byte payloads, at
// most about 4 MiB. Apply also keeps the stored state of up to 16,384 leased
// tasks per queue (about 120 bytes each, at most about 2 MiB), written
// through with every state change, so that Ack, Nack and Extend read no
// state from Pebble; tasks leased beyond that are read from Pebble.
// Overflow, delayed, done and dead tasks cost no memory.
//
// # Throughput
//
// Every call is one record, answered once the frame holding it is durable;
// concurrent calls share frames and fsyncs (group commit). A lifecycle's
// rate is therefore set by the records per task. With one task per Enqueue
// and leases of 32, producers are bound by their own round trips (each
// waits for its fsync), somewhat below raw Pebble doing the same writes;
// with many producers, EnqueueBatch and large leases (and a HotCapacity
// above the tasks in flight, so that leases come from memory) a queue has
// run above raw Pebble making the same writes call by call, since
// concurrent calls share frames and fsyncs. On two cores the tail latency
// at high rates comes from the commit pipeline queueing for a processor
// while a flush or compaction holds one. Measured rates, ratios and
// percentiles, with their dates and commands: bench/RESULTS.md (queue) and
// bench/BENCHMARKS.md (bench/queuebench against raw Pebble and
// NATS JetStream). A record that reads nothing from Pebble (a lease from
// the hot set, an ack of a cached lease, an enqueue without an idempotency
// key) is applied while the previous frame is still being written (db.Tx).
//
// # Concurrency
//
// A Manager is safe for concurrent use. Manager.mu guards the in-memory
// queue state; apply functions (on db's commit goroutine) hold it while they
// run, readers (Stats, Lease argument checks) briefly. Close stops the
// ticker and must precede closing the DB.
package queue
