// Package bench holds flowdb's benchmark programs and peer comparisons. It is
// its own Go module so that peer systems used only for comparison (NATS
// server, hnswlib drivers) never enter the library's go.mod.
//
// Programs (each documents its flags in its package comment):
//
//	go run ./kvbench        durable Set throughput and latency, flowdb against
//	                        raw Pebble doing the same writes with the same sync
//	go run ./queuebench     task lifecycle (enqueue, lease, ack) against raw
//	                        Pebble and NATS JetStream
//	go run ./netbench       task lifecycle through the network API (Go
//	                        client, loopback; with and without coalescing)
//	                        against the embedded library and NATS JetStream;
//	                        -vec: remote vector search against embedded
//	go run ./queuemem       1,000,000 queued tasks: rate, RSS, reopen time
//	go run ./registrybench  registry lookups against a map+RWMutex
//	go run ./dispatchbench  push dispatch: durable assignments/s and
//	                        steady-state balance, power-of-two-choices
//	                        against round-robin
//	go run ./erlmcpbench    erlmcp v2.1's four core micro-operations in Go
//	                        and on the BEAM (core_ops.escript) in one run
//	go run ./replbench      replicated enqueues on three Dragonboat nodes,
//	                        operations per Raft proposal against the
//	                        one-operation baseline and raw Pebble, CPU
//	                        per operation; -half: latency at half the
//	                        peak, open loop
//	go run ./vecbench       HNSW queries/s, recall and build time against
//	                        hnswlib (hnswlib_peer.py) on Fashion-MNIST
//	go run ./vecload        reopen time of a persisted vector collection
//	go run ./quantbench     recall of int8 quantization on Fashion-MNIST,
//	                        one global range against a range per dimension
//	go run ./pointread      cost of a Pebble point read of a stored vector,
//	                        by block cache, index block size and compression
//	go run ./agentstep      an agent's step (ack, memory vector, key,
//	                        follow-up task) as one transaction against four
//	                        separate calls, at 1 and 64 agents
//
// Programs with a peer measure it in the same run, repeat each scenario
// (-runs) alternating which system goes first, and report medians and
// flowdb/peer ratios, with the machine they ran on. Medians and
// percentiles come from package internal/stats, so every program picks
// them the same way; raw Pebble baselines open Pebble with
// db.PebbleOptions, the tuning flowdb itself gives Pebble.
package bench
