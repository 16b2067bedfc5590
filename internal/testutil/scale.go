package testutil

import (
	"os"
	"strconv"
)

// The longest randomized tests (crash sweeps, the queue model test, the
// lost-WAL-page stores, the linearizability schedules, SIGKILL rounds) run
// at a quick scale by default, so that `go test ./...` stays within a few
// minutes on two cores, and at full scale with FLOWDB_FULL=1 (.ci/run sets
// it). Each test's own variable (FLOWDB_MODEL_SEQS, ...) still overrides
// both. TESTING.md lists both scales.

// Full reports whether FLOWDB_FULL asks for the full scale.
func Full() bool {
	v := os.Getenv("FLOWDB_FULL")
	return v != "" && v != "0"
}

// Scale returns the value of the environment variable env when it is a
// positive number, else full under FLOWDB_FULL, else quick.
func Scale(env string, quick, full int) int {
	if env != "" {
		if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
			return v
		}
	}
	if Full() {
		return full
	}
	return quick
}
