package testutil

import (
	"flag"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
)

// Main runs a package's tests from its TestMain and returns m.Run's exit
// code:
//
//	func TestMain(m *testing.M) { os.Exit(testutil.Main(m, 4)) }
//
// It sets two defaults that a test binary's command line or environment
// still overrides:
//
//   - The garbage collector runs at GOGC=400 unless GOGC is set. Test
//     heaps are small, so at the default 100 the collector runs at its 4
//     MiB floor and each cycle scans every store a test keeps open; model
//     tests spent about a third of their CPU time in it, more when two run
//     in parallel.
//   - When parallel > 0 and -test.parallel is not given, up to parallel
//     tests that call t.Parallel run at once, not GOMAXPROCS (two on a
//     two-core machine). Tests that spend their time waiting (Raft
//     elections and ticks, child processes that start and are killed, a
//     browser) keep a core busy only a fraction of their time. Under the
//     race detector such a package runs one test at a time, as before it
//     called t.Parallel: the detector slows each test several times, and
//     with two or four three-node clusters at once on a loaded host Raft
//     missed heartbeats and deadlines that the tests judge.
func Main(m *testing.M, parallel int) int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if parallel > 0 && raceEnabled {
		parallel = 1
	}
	if parallel > 0 && !set {
		if err := flag.Set("test.parallel", strconv.Itoa(parallel)); err != nil {
			panic("testutil: " + err.Error())
		}
	}
	return m.Run()
}
