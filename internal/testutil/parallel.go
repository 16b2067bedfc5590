package testutil

import (
	"flag"
	"strconv"
	"testing"
)

// Tests that spend their time waiting (Raft elections and ticks, lease
// expiry, child processes that start and are killed) call t.Parallel, so
// that their waits overlap. The testing package runs at most -test.parallel
// of them at once, GOMAXPROCS by default: two on a two-core machine,
// although such tests keep a core busy only a fraction of their time.

// RunParallel runs m with -test.parallel at n when the command line does
// not set it, and returns m.Run's exit code. A package whose parallel tests
// mostly wait calls it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testutil.RunParallel(m, 6)) }
func RunParallel(m *testing.M, n int) int {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", strconv.Itoa(n)); err != nil {
			panic("testutil: " + err.Error())
		}
	}
	return m.Run()
}
