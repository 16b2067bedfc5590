// Command worker is an example flowdb agent in another process: it
// registers with a flowdb server, heartbeats, receives the tasks assigned
// to it over the Assignments stream (push dispatch), does them (here:
// upper-cases the payload) and acks each with its result.
//
//	go run ./examples/worker --server http://127.0.0.1:7300 --queue jobs --agent w1
//
// With --token it authenticates (agent:ID:write and queue:QUEUE:write are
// the scopes it needs). It deregisters on SIGINT/SIGTERM; --max N stops it
// after N tasks (the tests use it).
package main
