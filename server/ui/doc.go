// Package ui is flowdb's web dashboard: server-rendered pages at /ui/ on
// the network server (package server), embedded in the binary, with a
// small script that refreshes each page's figures every 1.5 s without a
// reload. `flowctl serve` and `flowctl node start` mount it with Mount.
//
// # Pages and their JSON
//
// Every page /ui/NAME has a JSON twin /ui/api/NAME built from the same
// value (Overview, Queues, QueueView, TaskView, Agents, SchedulerView,
// Vectors, ClusterView):
//
//	/ui/            overview: durable operations/s, commit p50/p99, tasks
//	                enqueued/acked/dead per second, memory, disk, block cache
//	                hit rate, and on a node Raft commit p50/p99 and
//	                proposals, each against Options.Targets, with sparklines
//	/ui/queues      every queue's depth by state, rates, oldest ready task
//	/ui/queue       one queue: ?name=Q&state=leased|delayed|dead|done; leases
//	                soonest to expire first; dead letters with replay and purge
//	/ui/task        one task: ?queue=Q&id=N, its payload shown as text
//	/ui/agents      warm pools and agents (?pool=P&health=...): health, load
//	                against capacity, held tasks, capabilities, heartbeat age
//	/ui/scheduler   balance, affinity hit rate, outcomes
//	/ui/vectors     collections (size, estimated memory, searches and their
//	                p50/p99 latency since start) and a search by id
//	/ui/cluster     per shard: leader, term, this replica's applied index and
//	                the members (on a node; members when Options.Cluster is
//	                also a MemberLister, as flowctl's node adapter is), and
//	                each member's applied index and lag when it is also an
//	                AppliedLister
//
// The script asks for the page again with the X-FlowDB-Fragment header
// and swaps in the live region the server rendered.
//
// # Contract
//
//  1. Nothing loads a whole table: every list is one page (Options.PageSize,
//     default 50) after a cursor (?after=), and the queue pages read one
//     index range with queue.Manager.Page. A million tasks or ten thousand
//     agents cost one page per request (agents are listed from the
//     registry's in-memory view, sorted; only a page is rendered).
//  2. Every page but the login page and the static assets needs an
//     authenticated caller: the server's middleware found a bearer token,
//     or the login form's cookie (CookieName: HttpOnly, SameSite=Strict,
//     Path /ui) names one in Options.Tokens. Otherwise pages answer 401
//     with the login form and /ui/api/ 401 with a JSON error.
//  3. Each view checks its own scopes, as the RPCs do: the overview and
//     scheduler need server:stats:read, the cluster server:cluster:read, a
//     queue queue:Q:read, an agent agent:ID:read (or its pool's), a
//     collection vec:C:read; lists show only what the token may read.
//     Replay and purge need queue:Q:admin.
//  4. Actions (POST /ui/api/replay and /ui/api/purge, {"queue": Q, "ids":
//     ["N", ...]}) pass the server's browser-forgery checks (same origin,
//     no form or text/plain content type) and must carry the page's
//     per-session CSRF token in CSRFHeader: an HMAC, under a key drawn at
//     New, of the secret that authenticated the request. The pages ask for
//     a confirmation before sending them.
//  5. Everything a user stored (payloads, tags, errors, agent ids,
//     capabilities, names) reaches the page through html/template's
//     escaping, and the Content-Security-Policy allows scripts from the
//     server only: a payload holding <script> shows as text.
//  6. Figures are read when a page asks (no goroutine; an idle dashboard
//     costs nothing). Rates are differences between two polls at least
//     500 ms apart. Latencies are true quantiles of the engine's
//     histograms (internal/histo, within 12.5%): commit p50/p99 of
//     db.Metrics.Commit (every record, submission to answer) and, on a
//     node whose Cluster is a server.RaftLatency, Raft commit p50/p99 of
//     the node's proposals (raftsm.Node.CommitLatency, shards merged),
//     both over the last minute: the difference between the latest poll's
//     histogram and the oldest one kept within a minute (since start at
//     the first poll); each sparkline point is one interval's own
//     quantile. Targets.CommitP99 and Targets.RaftCommit judge the p99s.
//     A collection's search p50/p99 are since start (hnsw Stats.Search).
//  7. Replica lag: Dragonboat does not expose a leader's view of its
//     followers, so the cluster page asks each member for its applied
//     index (AppliedLister; flowctl's node asks the admin address given by
//     --peers, GET /v1/status) within one second, and shows per shard and
//     member how many entries it is behind the most advanced member that
//     answered, "unreachable" for one that did not answer, and "no admin
//     address" for one it cannot ask.
//
// Methods of Dashboard are safe for concurrent use.
package ui
