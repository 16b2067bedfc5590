// Package server is flowdb's network API: the services of
// api/flowdb/v1/flowdb.proto (key-value, queues, registry with an
// assignment stream, vector collections, health and stats) served over any
// *db.DB, embedded or a replicated node's, with authentication, limits and
// Prometheus metrics. `flowctl serve` and `flowctl node start` run it.
//
// # Protocol
//
// The services are served with connectrpc.com/connect: one port speaks
// the Connect protocol (HTTP/1.1 or HTTP/2, JSON or binary protobuf),
// gRPC and gRPC-Web, so that agents in any language reach them, and curl
// does too:
//
//	curl -H 'Content-Type: application/json' -d '{"queue":"jobs","task":{"payload":"aGk="}}' \
//	     http://127.0.0.1:7300/flowdb.v1.QueueService/Enqueue
//
// HTTP/2 is served in clear text too (h2c) for gRPC clients on loopback.
//
// # Contract
//
//  1. A call does what the embedded API does with the same arguments, and
//     answers only once the embedded call returned: an acknowledged write
//     is durable (per the store's Durability; on a node, committed by Raft).
//  2. A rejected call carries the texts of the sentinel errors it matches
//     (db.DB.ErrorClasses, and auth's), in an ErrorDetail, and a Connect
//     code by class (not found, invalid argument, failed precondition for a
//     lost lease, resource exhausted for a full queue, unknown for
//     db.ErrOutcomeUnknown). Package client turns them back into errors
//     that errors.Is matches against the engine's sentinels.
//  3. Authorization happens before the store is touched: a caller without
//     a valid token gets 401 (Unauthenticated), one outside its scopes 403
//     (PermissionDenied), and the store is unchanged (package auth has the
//     tokens file and the scopes). Health is open to everyone; /metrics
//     needs server:metrics:read.
//  4. Every request passes the browser-forgery checks first (Handler):
//     its Host must be an IP literal, localhost or an AllowedHosts name
//     (DNS rebinding); a request other than GET and HEAD must not come
//     cross-site (Sec-Fetch-Site, Origin) and must not have a content type
//     an HTML form or a simple fetch can send (text/plain, form encodings,
//     none): Connect and gRPC use application/json, application/proto and
//     application/grpc, which a browser sends cross-site only after a CORS
//     preflight this server never grants. Refused requests get 403.
//  5. A request body is bounded by MaxRequestBytes (413 or
//     resource_exhausted); the engine's own limits (key, value, batch
//     sizes, vector dimensions) answer with their typed errors. A response
//     is gzip-compressed only for a client that accepts it and only from
//     CompressMinBytes (8 KiB) up.
//  6. Listening (CheckListen): loopback needs nothing; any other address
//     needs a tokens file, and TLS (TLSConfig: certificate files,
//     optionally a client CA for mutual TLS) unless the operator says
//     insecure. Secrets never reach a log.
//  7. A Lease with wait_ms waits in the server (queue.Manager.LeaseWait),
//     bounded by MaxLeaseWait and the caller's deadline. A caller that
//     disconnects mid-wait cancels it: if no lease was proposed, none is
//     granted; if one was, it is undelivered and expires back to ready.
//  8. Methods of Server are safe for concurrent use; Handle mounts must
//     happen before serving.
//
// # Mounting more endpoints
//
// The MCP endpoint, the web dashboard and a node's cluster administration
// mount on the same server with Handle, behind the same middleware: they
// find their caller with auth.Caller and guard themselves with Require
// (or their own per-request scope checks), so that one tokens file and one
// set of scopes cover every door.
//
// # Transactions
//
// TxnService.Commit (txn.go) commits one transaction (db.DB.CommitTxn) of
// key-value sets and deletes, conditions, queue enqueues, acks, nacks,
// extends and cancels, vector upserts and deletes, and registry
// registrations and heartbeats, with an optional idempotency key. Each
// operation of the request carries the request message of the single call
// it mirrors, so its JSON is that call's body. Its contract:
//
//  1. Every operation is authorized before anything is built, with the
//     scope its single call needs (a condition: read on its namespace;
//     everything else: write). One outside the caller's scopes refuses the
//     transaction (permission denied) and nothing runs.
//  2. Operations are added in request order with the subsystems' Tx*
//     functions, one operation of the engine's transaction per operation
//     of the request, so the engine's operation index is the request's.
//  3. Every refusal is a *db.TxnError: the server's own (scope, an
//     operation with no body, a duration that overflows) and the engine's
//     (validation, apply). Its Connect code is the refused operation's own
//     error's code (failed precondition for a lost lease or a failed
//     condition), its classes include db.ErrTxnRejected's and the
//     operation's, and a TxnErrorDetail carries the operation's index,
//     record kind, code and message; the client's CommitTxn makes a
//     *client.TxnError of it.
//  4. The answer has one result per operation (an enqueue's task ids) and
//     the log index on a standalone store. An idempotent repeat answers the
//     first outcome's results (its index is the repeat's own).
//  5. On a replicated node any member commits; a transaction spanning
//     shards is refused with db.ErrCrossShard (invalid argument) and
//     nothing applies. The engine checks a vector operation's collection
//     against the member's view while building, so a collection the member
//     does not know yet is awaited first (hnsw.Manager.Await: a read index
//     only then), as the single Upsert and Delete do inside hnsw.
//
// # Metrics
//
// /metrics (Prometheus text format) has RPC counts by procedure and code
// and latency histograms by procedure (flowdb_rpc_*), requests refused by
// the middleware, and, read at scrape time, the engine's figures (frames,
// records, Pebble's cache, compactions, read amplification), queue depths
// by state with totals and rates, registry health and pools, scheduler
// outcomes and balance (with a Scheduler), collection sizes, and on a node
// each shard's Raft figures (leader, term, applied index) and the node's
// proposal counters.
//
// Latency distributions come from the engine's own histograms
// (internal/histo) as Prometheus histograms in seconds, built at scrape
// time with cumulative buckets at the powers of two of nanoseconds from
// 2^10 (1 µs) to 2^36 (69 s), each count exact:
//
//	flowdb_commit_seconds                     db.Metrics.Commit: per record, submission to answer
//	flowdb_apply_seconds                      db.Metrics.Apply: per frame applied
//	flowdb_vector_search_seconds{collection}  hnsw Stats.Search: per search that returned hits
//	flowdb_raft_commit_seconds{shard}         on a node whose Cluster is a RaftLatency:
//	                                          per frame it proposed, proposal to applied
//
// flowdb_commit_stage_mean_seconds{stage} keeps the means of the pipeline
// stages that have no histogram (visibility_wait, write, sync_wait).
package server
