package raftsm

import (
	"os"
	"testing"

	"github.com/flowdb/flowdb/internal/testutil"
)

// Most tests here start a cluster of NodeHosts and then wait on Raft:
// elections, ticks, a fault's settle time, a stopped node's return. They
// call t.Parallel and run four at a time (one at a time under -race), so
// that those waits overlap; -test.parallel on the command line still
// decides. Serial tests end before any parallel one starts, and these stay
// serial: TestReplicatedDB and TestThreeReplicas judge the package-wide
// count of snapshot recoveries, which a parallel test would move;
// TestPreVoteIsolatedFollower (no election while a follower is cut off)
// and TestClusterOps (no-quorum calls end at a 2 s deadline) judge timing
// that a starved host misses.
func TestMain(m *testing.M) { os.Exit(testutil.Main(m, 4)) }
