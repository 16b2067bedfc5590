// Package mcp serves a flowdb store to language-model agents over the Model
// Context Protocol, built on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk). Agents reach durable tasks,
// vector memory, the agent registry and the key-value store as tool calls.
//
// NewServer(stack, options) returns an *mcp.Server of the SDK. `flowctl mcp
// --dir D` runs it on stdio for an MCP client that starts it as a
// subprocess. Mount(srv, stack, options) serves it at Path (/mcp) on a
// server.Server with the SDK's streamable HTTP transport, behind the
// server's bearer tokens; `flowctl serve` and `flowctl node start` do. Relay
// copies a stdio client's messages to such an endpoint and back (`flowctl
// mcp --node`).
//
// # The HTTP endpoint
//
//  1. Stateless: each POST is a whole exchange; GET and DELETE answer 405.
//     Bodies above MaxHTTPBody get 413. The server's Host and cross-site
//     checks apply, as to every endpoint (the SDK's own loopback Host
//     check is off: it would refuse an allowed name behind a local proxy).
//  2. A request without a valid token gets 401 before any MCP message is
//     read (the server's middleware authenticated it; auth.Caller).
//  3. Every tool call is authorized against the token of the request that
//     carries it (the SDK hands it to the handler in RequestExtra; keepExtra
//     puts that on the call's context), never the token that opened a
//     session: a revoked token stops at once. Scope maps an Access to the
//     scope the RPC API asks for the same thing: queue:NAME, vec:NAME,
//     kv:NAME, agent:ID; read or write; admin to create a queue or a
//     collection.
//  4. On a replica, a read of something another member may have just
//     created or changed (a queue's existence and stats, a collection, the
//     registry) takes a read barrier first, as the RPC API does, so an
//     agent may talk to any member.
//
// # Tools
//
//	queue_create, task_enqueue, task_lease (bounded wait), task_extend,
//	task_ack (with result), task_nack (with reason), task_get,
//	queue_stats, queue_dead_letters
//	memory_remember, memory_recall (by text or vector, tag filter),
//	memory_forget
//	agent_register, agent_heartbeat, agent_list (by capability, pool, health)
//	kv_get, kv_set (TTL), kv_scan (prefix, paging)
//	step: ack + memories + kv writes + follow-up tasks in one transaction
//
// Resources flowdb://queues, flowdb://agents and flowdb://collections give
// JSON snapshots; prompts work_queue and use_memory show an agent the loop.
//
// # Contract
//
//  1. Every tool has a description written for a model and an input schema
//     derived from its argument struct (unknown properties refused) and an
//     output schema; results are structured JSON.
//  2. Errors are tool results (isError), never protocol failures: the text
//     starts with a code (lease_lost, unknown_queue, unknown_collection,
//     queue_full, not_found, invalid_argument, wrong_dimension, not_finite,
//     zero_vector, vector_required, embedder_failed, condition_failed, cross_shard,
//     forbidden, timeout, outcome_unknown, unavailable), then the cause,
//     then what to do. Arguments are checked before anything is written:
//     sizes (MaxPayloadSize, MaxTextSize, MaxMetadataSize, MaxTags, ...),
//     vector dimensions and finiteness, unknown queues and collections.
//  3. Every tool call and resource read runs under Options.CallTimeout; a
//     lease wait is capped by Options.MaxLeaseWait (below the call
//     timeout), and the embedder runs under the call's deadline, so no call
//     blocks past its deadline.
//  4. A success is durable: task_ack, memory_remember, step and the other
//     writes answer after their commit (fsync). memory_remember writes the
//     vector and its text/metadata record in one transaction; step commits
//     everything it carries as one transaction or nothing.
//  5. Lease tokens travel as strings of digits (they exceed 2^53, where a
//     JSON number loses digits in many clients); memory ids are below 2^53.
//
// # Storage
//
// A memory is a vector in the hnsw collection named by the tool call
// (created on first remember, cosine, the embedder's or the first vector's
// dimension) plus a record in the key-value namespace "flowdb.mcp.memory":
//
//	key   collection | 0x00 | id (uint64 big-endian)
//	value JSON {"text": ..., "metadata": {...}, "tags": [...]}
//
// A memory's vector and text commit in one transaction, which on a
// replicated store lives on one shard: the text goes to
// "flowdb.mcp.memory" when that namespace is on the collection's shard
// (always on a standalone store), else to "flowdb.mcp.memory{N}" for the
// smallest N on it (memoNamespace; fixed by the names and the store's
// shard count). A step's memories, acks, keys and tasks must likewise
// share a shard there (cross_shard otherwise).
//
// Namespaces starting with "flowdb." are reserved: kv tools refuse them.
//
// # Concurrency
//
// A server serves many sessions and concurrent calls in each; it holds no
// state of its own beyond its options, so the Stack's own concurrency rules
// are the whole story. The Stack belongs to the caller, who closes it after
// the last session ends.
package mcp
