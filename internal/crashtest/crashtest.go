// Package crashtest is a power-loss test harness over Pebble's crashable
// in-memory file system. A sweep runs a workload once per crash point k =
// 1, 2, ...: the workload's file system is wrapped by vfs/errorfs, and at the
// k-th write operation the harness takes a crash clone (what a power cut
// would leave: everything synced, plus a random part of the unsynced data in
// some runs) together with a snapshot of the acknowledgements recorded so
// far. The verify function then reopens the clone and checks that every
// acknowledged operation survived.
//
// Acknowledgements and the clone are taken under one mutex, so an operation
// recorded before the clone was acknowledged before the power cut.
package crashtest

import (
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Run is one run of a sweep, crashing at write operation K.
type Run[A any] struct {
	K int64
	// Variant is K % Variants: workloads use it to alternate configurations.
	Variant int
	// FS is the file system the workload must use.
	FS vfs.FS

	mem    *vfs.MemFS
	ops    atomic.Int64
	target int64
	rng    *rand.Rand
	mu     sync.Mutex
	acks   []A // protected by mu
	// Set at the crash, protected by mu.
	crashed  bool
	clone    *vfs.MemFS
	snapshot []A
}

// Ack records an acknowledged operation. Call it only after the operation
// returned success.
func (r *Run[A]) Ack(a A) {
	r.mu.Lock()
	r.acks = append(r.acks, a)
	r.mu.Unlock()
}

// Done reports whether the workload should stop: the crash point has passed,
// or the file system has seen the sweep's target number of write operations.
// Workloads loop until Done, so a run's length is measured in file writes and
// the sweep covers its crash points however the engine groups its writes.
func (r *Run[A]) Done() bool {
	return r.Crashed() || r.ops.Load() >= r.target
}

// Crashed reports whether the crash point has passed.
func (r *Run[A]) Crashed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.crashed
}

// Clone is the crash image (valid in verify).
func (r *Run[A]) Clone() *vfs.MemFS { return r.clone }

// Acked is what was acknowledged before the crash (valid in verify).
func (r *Run[A]) Acked() []A { return r.snapshot }

func (r *Run[A]) inject(op errorfs.Op) error {
	if op.Kind.ReadOrWrite() != errorfs.OpIsWrite || r.ops.Add(1) != r.K {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg := vfs.CrashCloneCfg{}
	if r.rng != nil {
		cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: r.rng}
	}
	r.clone = r.mem.CrashClone(cfg)
	r.snapshot = append([]A(nil), r.acks...)
	r.crashed = true
	return nil
}

// Config configures a sweep.
type Config struct {
	// MinPoints is the fewest crash points the sweep must cover. Default
	// 1000. Runs last (see Run.Done) until 10% more write operations than
	// that, so the sweep covers about 1.1 x MinPoints crash points.
	MinPoints int
	// Variants is how many workload configurations alternate (by K). Each
	// must run to completion once before the sweep ends. Default 1.
	Variants int
	// LimitEnv names an environment variable that caps the crash points
	// (for slow modes such as -race); the cap also lowers MinPoints.
	LimitEnv string
	// EveryWrite crashes at every write in the default run too, not at
	// every third (for sweeps whose crash-point count is a requirement of
	// the default run).
	EveryWrite bool
	// Shards and Shard split one sweep over parallel tests, each calling
	// Sweep with the same Config but its own Shard in [0, Shards): a call
	// visits every Shards-th pair of the sweep's crash points, from pair
	// Shard (a pair holds an odd and an even K), and must cover MinPoints
	// / Shards of them, so the shards together visit the points one sweep
	// would. Default 1 and 0. Only for a sweep of one variant (Variants
	// 0 or 1).
	Shards, Shard int
}

// Sweep runs workload for k = 1, 2, ... and verify after every crash. The
// workload loops until r.Done() and then returns normally, whether or not
// the crash happened. Odd K keep half of the unsynced data in the
// crash image. It returns the number of crash points and fails t if they
// are fewer than MinPoints.
//
// By default it crashes at every third write only (k = 1, 4, 7, ...: the
// same workload, the same span of writes, odd and even K alternating), a
// third of the time; FLOWDB_FULL=1 crashes at every write.
func Sweep[A any](t *testing.T, cfg Config, workload func(r *Run[A]), verify func(r *Run[A])) int {
	t.Helper()
	if cfg.MinPoints == 0 {
		cfg.MinPoints = 1000
	}
	if cfg.Variants == 0 {
		cfg.Variants = 1
	}
	if cfg.Shards == 0 {
		cfg.Shards = 1
	}
	if cfg.Shard < 0 || cfg.Shard >= cfg.Shards {
		t.Fatalf("crashtest: shard %d of %d", cfg.Shard, cfg.Shards)
	}
	limit := 1 << 30
	if cfg.LimitEnv != "" {
		if v, err := strconv.Atoi(os.Getenv(cfg.LimitEnv)); err == nil && v > 0 {
			limit, cfg.MinPoints = v, min(v, cfg.MinPoints)
		}
	}
	target := int64(min(cfg.MinPoints+cfg.MinPoints/10, limit))
	stride := int64(3)
	if v := os.Getenv("FLOWDB_FULL"); (v != "" && v != "0") || cfg.EveryWrite {
		stride = 1
	}
	// An odd stride coprime with Variants visits every variant and both
	// parities of K.
	for stride > 1 && gcd(stride, int64(cfg.Variants)) != 1 {
		stride += 2
	}
	if cfg.Shards > 1 && cfg.Variants > 1 {
		// A shard visits K in pairs every 2*Shards*stride: with Variants
		// sharing a factor with that, some variants never come up and the
		// sweep would look for them for ever.
		t.Fatalf("crashtest: Shards (%d) with Variants (%d) is not supported", cfg.Shards, cfg.Variants)
	}
	cfg.MinPoints = max(cfg.MinPoints/int(stride)/cfg.Shards, 1)
	limit = max((limit+cfg.Shards-1)/cfg.Shards, 1)
	completed := make([]bool, cfg.Variants)
	remaining := cfg.Variants
	points := 0
	for k := int64(1); remaining > 0 && points < limit; k += stride {
		if int((k-1)/stride/2)%cfg.Shards != cfg.Shard {
			continue
		}
		v := int(k % int64(cfg.Variants))
		if completed[v] {
			continue
		}
		mem := vfs.NewCrashableMem()
		r := &Run[A]{K: k, Variant: v, mem: mem, target: target}
		if k%2 == 1 {
			r.rng = rand.New(rand.NewPCG(uint64(k), 7))
		}
		r.FS = errorfs.Wrap(mem, errorfs.InjectorFunc(r.inject))
		workload(r)
		if !r.Crashed() {
			completed[v] = true
			remaining--
			continue
		}
		points++
		verify(r)
		if t.Failed() {
			break
		}
	}
	if !t.Failed() && points < cfg.MinPoints {
		t.Fatalf("only %d crash points; the sweep must cover at least %d", points, cfg.MinPoints)
	}
	return points
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
