// Package sched is flowdb's load-aware scheduler: Dispatch assigns a
// queue's ready tasks to the agents of the registry (push), alongside agents
// that Lease for themselves (pull).
//
// # Contract
//
//   - Capability match first: a task goes only to a healthy agent that has
//     every capability the task requires.
//   - Then load, by the Policy:
//   - PowerOfTwo (default) samples two eligible agents, each with
//     probability proportional to its capacity, and takes the one with
//     the lower load, tasks held / capacity; on equal loads, the one this
//     scheduler has given less work per unit of capacity (its share, a
//     per-process tally), so ties do not fall on the same agents draw
//     after draw. After four samples that find no room it takes the least
//     loaded agent with room.
//   - LeastLoaded takes the eligible agent with room whose load after the
//     task, (held+1) / capacity, is lowest (ties: share, then id). It is
//     exact: one heap per capability set per Dispatch, built from every
//     eligible agent's held count. Its time-averaged
//     balance at steady state is near-perfect when capacities are
//     comparable (0.99 min/max utilization in dispatchbench, capacities
//     8-32, against PowerOfTwo's 0.87); but with very small capacities
//     it under-uses them: a capacity-1 agent gets a task only once every
//     other would be full after its next one, and a capacity-2 agent its
//     second only at 1/2 (TestBalance: 0.79 against PowerOfTwo's 0.88 with
//     capacities 2-16 and random service times). Hence PowerOfTwo stays
//     the default; choose LeastLoaded for fleets of capacities ≥ 4 or so.
//   - RoundRobin (the baseline) takes the next agent with room in id
//     order.
//   - Affinity, bounded: a task with an affinity key (queue.Task.Affinity)
//     goes to the agent that last ran a task with that key if that agent
//     is healthy, fit and has room, and would be at most one of its own
//     tasks more loaded than the policy's choice after taking it
//     (home.held/home.cap ≤ (choice.held+1)/choice.cap); otherwise to the
//     policy's choice, which the key then names. Unbounded affinity let a
//     home agent run well above the rest: with a tenth of the tasks keyed,
//     least-loaded balance fell from 0.98 to 0.93 in a simulation of
//     dispatchbench's workload. The affinity table is per process (an otter
//     cache of Options.AffinityEntries keys); losing it costs only
//     locality.
//   - Never beyond capacity: the proposer counts what each agent holds
//     (queue.Manager.Held, across all queues, pull leases included) plus
//     what its own proposals in flight give it; apply checks again, against
//     the capacity carried in the assign record, and refuses an assignment
//     that would exceed it (ErrAtCapacity). A pull Lease is not
//     capacity-checked: an agent that pulls decides its own load, and the
//     dispatcher counts what it pulled.
//   - The proposer decides; only the outcome is logged: one queue assign
//     record per Dispatch, applied by the queue's apply like any record, so
//     a crash, a restart or a replica never loses or duplicates an
//     assignment. A task already taken when the record applies is skipped
//     (ErrNotReady) and stays where it is.
//   - Dispatch returns the leases with their agents; delivering them is the
//     caller's (a lease that is never delivered expires, and the task is
//     retried).
//   - Dispatch considers the queue's hot set only (its first HotCapacity
//     ready tasks, in dispatch order); overflow tasks wait until they enter
//     it. A hot set full of tasks that no healthy agent can run therefore
//     blocks the tasks behind it: size HotCapacity for the mix of
//     requirements, or let such agents Lease (which looks up to 4,096
//     entries past the hot set).
//   - An agent that turns unhealthy (missed heartbeats) or deregisters has
//     its leases released through queue release records: each task returns
//     to its queue's ready set at once (the lease still counts as an
//     attempt). The release is triggered by the registry's OnUnhealthy
//     notification; a reconcile pass at New and every ReconcileInterval
//     catches any it missed (a crash between the expire record and the
//     release, or a Dispatch decided just before the agent turned
//     unhealthy) for registered unhealthy agents. Agents that lease
//     without ever registering are never released (their leases expire).
//
// # Determinism
//
// Nothing in the scheduler runs inside apply: the random choices, the
// affinity table and the pending counts are the proposer's. What apply sees
// is the assign record: task, rank, agent and capacity, checked against
// replicated state only.
//
// # Memory
//
// The affinity table (up to AffinityEntries keys, about 100 bytes each);
// per registered agent that was ever looked at, its pick (load, share:
// about 64 bytes, dropped when the agent is released); per capability set,
// its cached list of eligible agents; while a Dispatch is in flight, its
// tasks and, under LeastLoaded, a heap of 32 bytes per eligible agent.
//
// # Concurrency
//
// A Scheduler is safe for concurrent use. Decisions are serialized by
// Scheduler.mu (microseconds per task); the assign records of concurrent
// Dispatch calls are in flight together, and never name the same task.
// Close stops the reconcile loop and waits for releases in progress; it
// must precede closing the queue manager, the registry and the DB.
package sched
