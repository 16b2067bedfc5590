// Package prof starts the profiles a benchmark's flags ask for. An empty
// path starts nothing; a file that cannot be created ends the process,
// as a benchmark's bad flag does.
package prof

import (
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// CPU starts a CPU profile written to path and returns what stops it.
func CPU(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	if err := pprof.StartCPUProfile(create(path)); err != nil {
		fail(err)
	}
	return pprof.StopCPUProfile
}

// Trace starts an execution trace (go tool trace) written to path and
// returns what stops it.
func Trace(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	if err := trace.Start(create(path)); err != nil {
		fail(err)
	}
	return trace.Stop
}

// Allocs writes the allocation profile so far to path.
func Allocs(path string) {
	if path == "" {
		return
	}
	f := create(path)
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fail(err)
	}
}

func create(path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		fail(err)
	}
	return f
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "profile:", err)
	os.Exit(1)
}
