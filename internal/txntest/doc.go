// Package txntest holds the tests of transactions across subsystems (the
// key-value space, queues, the registry and vector collections): an agent
// step committed whole, refusals part-way with every in-memory view checked
// against the view rebuilt from disk, a seeded model test with crashes and
// reopens, a crash sweep and the determinism of apply. It has no code of its
// own: only tests, which need every subsystem and so cannot live in any one
// of them.
package txntest
