// Package killtest holds no code: its tests kill a child process with
// SIGKILL while it writes through every subsystem (key-value, queue,
// registry, vector collection) in each durability mode, then reopen the
// store and require every acknowledged write to be there.
//
// The child is the test binary itself, run with FLOWDB_DURABILITY_CHILD set.
// FLOWDB_DURABILITY_KILL_ROUNDS sets the rounds per mode (default 5).
package killtest
