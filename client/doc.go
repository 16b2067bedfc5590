// Package client is the Go client of flowdb's server (package server). It
// depends on the API schema (package api), not on the engine: a program
// that only talks to a server does not link Pebble or Raft.
//
// Its methods mirror the embedded API's shapes (Enqueue, Lease, Ack, Set,
// Scan, Search, ...) and its errors match the engine's sentinels with
// errors.Is: errors.Is(err, queue.ErrLeaseLost) works across the wire,
// because the server sends the texts of the sentinels an error matches and
// Error.Is compares texts (each sentinel's text is unique).
//
// # Connections and retries
//
// A Client keeps a pool of HTTP connections (Options.MaxConns) and is safe
// for concurrent use. It asks for uncompressed responses unless
// Options.Compress (on loopback and fast links gzip costs more CPU than it
// saves). A call whose connection could not be made never left
// and is retried whatever it is. A call that may have reached the server
// is retried only if repeating it changes nothing: reads, sets, deletes,
// registrations, heartbeats, upserts, extends, and enqueues and
// transactions that carry an idempotency key. Any other call (an enqueue
// or a transaction without a key, a lease, an ack, a batch commit) is sent
// once; if its connection fails after sending, or its context ends while
// it is in flight, it fails with an error matching ErrOutcomeUnknown (and
// db.ErrOutcomeUnknown): it may or may not have been applied.
//
// # Transactions
//
// Client.NewTxn returns a Txn whose methods mirror db.Txn and the
// subsystems' Tx* functions (Set, Require, Enqueue, Ack, Upsert, Heartbeat,
// ...); Client.CommitTxn sends it in one TxnService.Commit call, all or
// nothing. A refusal is a *TxnError (Op: the refused operation's index)
// that matches db.ErrTxnRejected and the operation's own sentinel. A
// transaction is retried after a connection failure only when it carries
// an idempotency key (Txn.SetIdempotencyKey), which makes the retry answer
// the first outcome; without one, a failure after sending is
// ErrOutcomeUnknown.
//
// # Coalescing
//
// Concurrent single-task Enqueue and Ack calls on one queue leave together
// in EnqueueBatch and AckBatch requests (see coalesce.go for the rules and
// for how each caller still gets its own outcome), so that code written
// one task per call gets the throughput of batches. Options.NoCoalesce
// turns it off.
package client
