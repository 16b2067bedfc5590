package raftsm

import (
	"os"
	"testing"

	"github.com/flowdb/flowdb/internal/testutil"
)

// Most tests here start a cluster of NodeHosts and then wait on Raft:
// elections, ticks, a fault's settle time, a stopped node's return. They
// call t.Parallel and run six at a time (not GOMAXPROCS at a time), so that
// those waits overlap; -test.parallel on the command line still decides.
// TestReplicatedDB and TestThreeReplicas stay serial: they judge the
// package-wide count of snapshot recoveries, which a parallel test would
// move. Serial tests end before any parallel one starts.
func TestMain(m *testing.M) { os.Exit(testutil.RunParallel(m, 6)) }
