package sched

import (
	"os"
	"testing"

	"github.com/flowdb/flowdb/internal/testutil"
)

// TestMain runs the tests with the collector at GOGC=400 (testutil.Main):
// the long tests here are CPU-bound, and small heaps made the collector
// run at its floor.
func TestMain(m *testing.M) { os.Exit(testutil.Main(m, 0)) }
