// Package prof starts the profiles a benchmark's flags ask for. An empty
// path starts nothing; a file that cannot be created ends the process,
// as a benchmark's bad flag does.
package prof

import (
	"fmt"
	"os"
	"runtime"
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

// Contention starts recording where goroutines block (channel waits,
// select, sync.Cond, mutexes: the "block" profile) and which mutexes are
// contended (the "mutex" profile), and returns what writes them to
// blockPath and mutexPath (an empty path skips that profile) and stops
// recording. Every blocking event and every contended mutex is recorded
// (rate 1), which slows a program that blocks often: compare figures from
// runs without it.
func Contention(blockPath, mutexPath string) (stop func()) {
	if blockPath == "" && mutexPath == "" {
		return func() {}
	}
	if blockPath != "" {
		runtime.SetBlockProfileRate(1)
	}
	if mutexPath != "" {
		runtime.SetMutexProfileFraction(1)
	}
	return func() {
		for _, p := range []struct{ name, path string }{{"block", blockPath}, {"mutex", mutexPath}} {
			if p.path == "" {
				continue
			}
			f := create(p.path)
			if err := pprof.Lookup(p.name).WriteTo(f, 0); err != nil {
				fail(err)
			}
			f.Close()
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
	}
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
