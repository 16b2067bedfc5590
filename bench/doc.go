// Package bench holds flowdb's benchmark programs and peer comparisons. It is
// its own Go module so that peer systems used only for comparison (NATS
// server, hnswlib drivers) never enter the library's go.mod.
//
// Programs:
//
//	go run ./kvbench        durable Set throughput and latency, flowdb against
//	                        raw Pebble doing the same writes with the same sync
//	go run ./queuebench     task lifecycle (enqueue, lease, ack) against raw
//	                        Pebble and NATS JetStream
//	go run ./queuemem       1,000,000 queued tasks: rate, RSS, reopen time
//	go run ./registrybench  registry lookups against a map+RWMutex
//	go run ./dispatchbench  push dispatch: durable assignments/s and
//	                        steady-state balance, power-of-two-choices
//	                        against round-robin
//	go run ./erlmcpbench    erlmcp v2.1's four core micro-operations in Go
//	                        and on the BEAM (core_ops.escript) in one run
//
// Every program measures its peer in the same run, repeats each scenario
// (-runs, default 5) alternating which system goes first, and reports
// medians and flowdb/peer ratios, with the machine it ran on.
package bench
