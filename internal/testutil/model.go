package testutil

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
)

// Model tests run seeded random sequences of operations against a small
// reference model; Seq holds what every such sequence needs, and RunModel
// runs the sequences.

// ModelSeeds returns the seeds a model test runs: FLOWDB_MODEL_SEQS
// sequences (def when unset or not a positive number) from seed 0, or the
// one seed FLOWDB_MODEL_SEED when that is set.
func ModelSeeds(def int) (first uint64, n int) {
	n = def
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_MODEL_SEQS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.ParseUint(os.Getenv("FLOWDB_MODEL_SEED"), 10, 64); err == nil {
		first, n = v, 1
	}
	return first, n
}

// Seq is one seeded sequence of a model test.
type Seq struct {
	T    *testing.T
	Seed uint64
	// Rng draws every choice of the sequence; its stream is fixed per test.
	Rng   *rand.Rand
	Clock *Clock
	// Mem holds the store; Crash replaces it by a crash clone.
	Mem *vfs.MemFS
	// Steps describes each step taken, for the failure report.
	Steps []string
	// Reopens counts crash-and-reopen steps.
	Reopens int
}

// Step records a step, described by a format and its arguments.
func (s *Seq) Step(format string, args ...any) {
	s.Steps = append(s.Steps, fmt.Sprintf(format, args...))
}

// TakeSteps calls step between least and least+span-1 times, the count
// drawn from Rng, and returns the count.
func (s *Seq) TakeSteps(least, span int, step func()) int {
	n := least + s.Rng.IntN(span)
	for range n {
		step()
	}
	return n
}

// Advance takes a step that moves the clock forward by d.
func (s *Seq) Advance(d time.Duration) {
	s.Step("advance(%v)", d)
	s.Clock.Advance(d)
}

// Fail ends the test, naming the seed (rerun it alone with
// FLOWDB_MODEL_SEED), the step that failed and every step before it.
func (s *Seq) Fail(format string, args ...any) {
	s.T.Helper()
	last := ""
	if len(s.Steps) > 0 {
		last = s.Steps[len(s.Steps)-1]
	}
	s.T.Fatalf("seed %d, step %d (%s): %s\nsteps: %v", s.Seed, len(s.Steps), last,
		fmt.Sprintf(format, args...), s.Steps)
}

// Open opens the store in dir on Mem with StoreOptions and the sequence's
// clock; a failure fails the sequence.
func (s *Seq) Open(dir string) *db.DB {
	s.T.Helper()
	d, err := db.Open(dir, StoreOptions(s.Mem, s.Clock))
	if err != nil {
		s.Fail("open: %v", err)
	}
	return d
}

// Crash takes a crash-and-reopen step: it records the step, takes a crash
// clone of Mem (on every other draw keeping a random half of the data
// not yet synced), calls closeAll to close what runs on Mem, and puts the
// clone in Mem's place. The caller then opens the store again.
func (s *Seq) Crash(closeAll func()) {
	s.Step("crash+reopen")
	s.Reopens++
	cfg := vfs.CrashCloneCfg{}
	if s.Rng.IntN(2) == 0 {
		cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(s.Seed, uint64(len(s.Steps))))}
	}
	clone := s.Mem.CrashClone(cfg)
	closeAll()
	s.Mem = clone
}

// ModelRun sums what RunModel ran.
type ModelRun struct {
	Seqs, Steps, Reopens int
}

// String gives the sums for a test's log line.
func (r ModelRun) String() string {
	return fmt.Sprintf("%d sequences, %d operations, %d crash-and-reopen steps", r.Seqs, r.Steps, r.Reopens)
}

// RunModel runs run once per seed of ModelSeeds(def), each on a fresh Seq
// whose Rng is a PCG on (seed, stream), with a new Clock and an empty
// crashable in-memory file system. run returns the number of steps it took.
func RunModel(t *testing.T, def int, stream uint64, run func(s *Seq) int) ModelRun {
	t.Helper()
	first, n := ModelSeeds(def)
	return runSeeds(t, first, first+uint64(n), stream, run)
}

func runSeeds(t *testing.T, first, end, stream uint64, run func(s *Seq) int) ModelRun {
	sum := ModelRun{Seqs: int(end - first)}
	for seed := first; seed < end; seed++ {
		s := &Seq{T: t, Seed: seed, Rng: rand.New(rand.NewPCG(seed, stream)), Clock: NewClock(), Mem: vfs.NewCrashableMem()}
		sum.Steps += run(s)
		sum.Reopens += s.Reopens
	}
	return sum
}

// RunModelParallel runs the seeds RunModel would run, the same sequences,
// split into shards consecutive ranges, each in a parallel subtest named
// after its range ("seeds-0-2499"), which logs what it ran. Sequences share
// nothing, so a model test that keeps a core busy spreads over two.
func RunModelParallel(t *testing.T, def int, stream uint64, shards int, run func(s *Seq) int) {
	t.Helper()
	first, n := ModelSeeds(def)
	shards = max(min(shards, n), 1)
	for i := range shards {
		lo, hi := first+uint64(i*n/shards), first+uint64((i+1)*n/shards)
		t.Run(fmt.Sprintf("seeds-%d-%d", lo, hi-1), func(t *testing.T) {
			t.Parallel()
			t.Logf("%v", runSeeds(t, lo, hi, stream, run))
		})
	}
}
