// Package bench holds flowdb's benchmark programs and peer comparisons. It is
// its own Go module so that peer systems used only for comparison (NATS
// server, hnswlib drivers) never enter the library's go.mod.
//
// Programs:
//
//	go run ./kvbench     durable Set throughput and latency, flowdb against
//	                     raw Pebble doing the same writes with the same sync
//
// Every program measures its peer in the same run, repeats each scenario
// (-runs, default 5) alternating which system goes first, and reports
// medians and flowdb/peer ratios, with the machine it ran on.
package bench
