package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

var quietLog = slog.New(slog.DiscardHandler)

// mAgent is the reference model of one agent.
type mAgent struct {
	spec                 AgentSpec
	load                 int
	status               string
	healthy              bool
	registered, lastBeat int64
	idleSince            int64
}

type regRunner struct {
	t      *testing.T
	seed   uint64
	rng    *rand.Rand
	clock  *testutil.Clock
	mem    *vfs.MemFS
	d      *db.DB
	r      *Registry
	model  map[string]*mAgent
	steps  []string
	reopen int
}

func (x *regRunner) fail(format string, args ...any) {
	x.t.Helper()
	x.t.Fatalf("seed %d, step %d (%s): %s\nsteps: %v", x.seed, len(x.steps), x.steps[len(x.steps)-1],
		fmt.Sprintf(format, args...), x.steps)
}

func (x *regRunner) open() {
	d, err := db.Open("/r", &db.Options{FS: x.mem, Logger: quietLog, Now: x.clock.Now, TTLReapInterval: -1})
	if err != nil {
		x.fail("open: %v", err)
	}
	r, err := Attach(d, &Options{CheckInterval: -1})
	if err != nil {
		x.fail("attach: %v", err)
	}
	x.d, x.r = d, r
}

var (
	modelIDs   = []string{"a", "b", "c", "d", "e", "f"}
	modelCaps  = []string{"gpu", "py", "go", "big"}
	modelPools = []string{"", "p1", "p2"}
)

func (x *regRunner) step() {
	ctx := context.Background()
	rng, now := x.rng, x.clock.Now().UnixNano()
	id := modelIDs[rng.IntN(len(modelIDs))]
	switch op := rng.IntN(100); {
	case op < 25:
		var caps []string
		for _, c := range modelCaps {
			if rng.IntN(2) == 0 {
				caps = append(caps, c)
			}
		}
		s := AgentSpec{ID: id, Pool: modelPools[rng.IntN(len(modelPools))], Capabilities: caps,
			Capacity: 1 + rng.IntN(8), HeartbeatInterval: time.Duration(1+rng.IntN(3)) * time.Second}
		if rng.IntN(3) == 0 {
			s.Labels = map[string]string{"zone": "z" + strconv.Itoa(rng.IntN(3)), "rack": "r1"}
		}
		x.steps = append(x.steps, fmt.Sprintf("register(%s,%v,%s,%d,%v)", id, caps, s.Pool, s.Capacity, s.HeartbeatInterval))
		if err := x.r.Register(ctx, s); err != nil {
			x.fail("register: %v", err)
		}
		s.Capabilities = slices.Sorted(slices.Values(caps))
		a := &mAgent{spec: s, healthy: true, registered: now, lastBeat: now, idleSince: now}
		if old := x.model[id]; old != nil {
			a.registered, a.load, a.status, a.idleSince = old.registered, old.load, old.status, old.idleSince
		}
		x.model[id] = a
	case op < 35:
		x.steps = append(x.steps, "deregister("+id+")")
		err := x.r.Deregister(ctx, id)
		if _, ok := x.model[id]; ok != (err == nil) || (!ok && !errors.Is(err, ErrNotFound)) {
			x.fail("deregister: %v (model has it: %v)", err, ok)
		}
		delete(x.model, id)
		if _, err := x.r.Get(id); !errors.Is(err, ErrNotFound) {
			x.fail("deregistered agent still found: %v", err)
		}
	case op < 65:
		load, status := rng.IntN(4), []string{"", "ok", "busy"}[rng.IntN(3)]
		x.steps = append(x.steps, fmt.Sprintf("heartbeat(%s,%d,%q)", id, load, status))
		err := x.r.Heartbeat(ctx, id, load, status)
		a := x.model[id]
		if (a != nil) != (err == nil) || (a == nil && !errors.Is(err, ErrNotFound)) {
			x.fail("heartbeat: %v (model has it: %v)", err, a != nil)
		}
		if a != nil {
			switch {
			case load > 0:
				a.idleSince = 0
			case a.load > 0 || a.idleSince == 0:
				a.idleSince = now
			}
			a.load, a.status, a.lastBeat, a.healthy = load, status, now, true
		}
	case op < 75:
		x.steps = append(x.steps, "expire")
		got, err := x.r.Expire(ctx)
		if err != nil {
			x.fail("expire: %v", err)
		}
		var want []string
		for _, id := range modelIDs {
			if a := x.model[id]; a != nil && a.healthy && now-a.lastBeat > 3*int64(a.spec.HeartbeatInterval) {
				a.healthy = false
				want = append(want, id)
			}
		}
		if !slices.Equal(got, want) {
			x.fail("expired %v, model %v", got, want)
		}
	case op < 80:
		bad := []AgentSpec{{ID: "", Capacity: 1}, {ID: id, Capacity: 0}, {ID: id, Capacity: 1, Capabilities: []string{""}},
			{ID: string(make([]byte, MaxIDSize+1)), Capacity: 1}, {ID: id, Capacity: 1, HeartbeatInterval: -1}}
		b := bad[rng.IntN(len(bad))]
		x.steps = append(x.steps, fmt.Sprintf("bad-register(%q,%d)", b.ID, b.Capacity))
		if err := x.r.Register(ctx, b); !errors.Is(err, ErrInvalid) {
			x.fail("bad register: %v, want ErrInvalid", err)
		}
		if err := x.r.Heartbeat(ctx, id, -1, ""); !errors.Is(err, ErrInvalid) {
			x.fail("bad heartbeat: %v, want ErrInvalid", err)
		}
	case op < 95:
		adv := time.Duration(rng.IntN(4000)) * time.Millisecond
		x.steps = append(x.steps, fmt.Sprintf("advance(%v)", adv))
		x.clock.Advance(adv)
	default:
		x.steps = append(x.steps, "crash+reopen")
		x.reopen++
		cfg := vfs.CrashCloneCfg{}
		if rng.IntN(2) == 0 {
			cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(x.seed, uint64(len(x.steps))))}
		}
		clone := x.mem.CrashClone(cfg)
		x.r.Close()
		x.d.Close()
		x.mem = clone
		x.open()
	}
	x.compare()
}

// compare checks every lookup against the model.
func (x *regRunner) compare() {
	x.t.Helper()
	var want []string
	for _, id := range modelIDs {
		a := x.model[id]
		got, err := x.r.Get(id)
		if a == nil {
			if !errors.Is(err, ErrNotFound) {
				x.fail("Get(%s): %v, model has none", id, err)
			}
			continue
		}
		want = append(want, id)
		if err != nil {
			x.fail("Get(%s): %v", id, err)
		}
		// Spec and health are never served stale (heartbeat figures may be).
		if got.Healthy != a.healthy || !specEqual(got.AgentSpec, a.spec) {
			x.fail("Get(%s) = %+v, model %+v", id, *got, *a)
		}
	}
	all := x.r.List(Filter{})
	var ids []string
	for _, g := range all {
		ids = append(ids, g.ID)
		a := x.model[g.ID]
		if a == nil {
			x.fail("List has %s, model does not", g.ID)
		}
		if g.Load != a.load || g.Status != a.status || g.Healthy != a.healthy || g.lastBeat != a.lastBeat ||
			g.registered != a.registered || g.idleSince != a.idleSince || !specEqual(g.AgentSpec, a.spec) {
			x.fail("List: %s = %+v, model %+v", g.ID, *g, *a)
		}
	}
	if !slices.Equal(ids, want) {
		x.fail("List ids %v, model %v", ids, want)
	}
	// Capability and pool lookups: healthy agents only, by id.
	caps := []string{modelCaps[x.rng.IntN(len(modelCaps))]}
	if x.rng.IntN(2) == 0 {
		caps = append(caps, modelCaps[x.rng.IntN(len(modelCaps))])
	}
	var wantCap, gotCap, wantPool, gotPool []string
	for _, id := range want {
		a := x.model[id]
		if a.healthy && hasAll(a.spec.Capabilities, caps) {
			wantCap = append(wantCap, id)
		}
		if a.healthy && a.spec.Pool == "p1" {
			wantPool = append(wantPool, id)
		}
	}
	for _, a := range x.r.ByCapabilities(caps) {
		gotCap = append(gotCap, a.ID)
	}
	for _, a := range x.r.ByPool("p1") {
		gotPool = append(gotPool, a.ID)
	}
	if !slices.Equal(gotCap, wantCap) || !slices.Equal(gotPool, wantPool) {
		x.fail("ByCapabilities(%v) %v, model %v; ByPool(p1) %v, model %v", caps, gotCap, wantCap, gotPool, wantPool)
	}
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func specEqual(a, b AgentSpec) bool {
	return a.ID == b.ID && a.Pool == b.Pool && slices.Equal(a.Capabilities, b.Capabilities) && a.Capacity == b.Capacity &&
		a.HeartbeatInterval == b.HeartbeatInterval && len(a.Labels) == len(b.Labels) && func() bool {
		for k, v := range a.Labels {
			if b.Labels[k] != v {
				return false
			}
		}
		return true
	}()
}

// TestModel runs seeded random sequences of registry operations (register,
// re-register, heartbeat, expiry, deregister, bad input), with clock
// advances and crash-and-reopen steps, against a reference model; every
// lookup is compared after every step. FLOWDB_MODEL_SEQS sets the number of
// sequences (default 2,000); FLOWDB_MODEL_SEED runs one.
func TestModel(t *testing.T) {
	seqs, first := 2000, uint64(0)
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_MODEL_SEQS")); err == nil && v > 0 {
		seqs = v
	}
	if v, err := strconv.ParseUint(os.Getenv("FLOWDB_MODEL_SEED"), 10, 64); err == nil {
		seqs, first = 1, v
	}
	ops, reopens := 0, 0
	for s := first; s < first+uint64(seqs); s++ {
		x := &regRunner{t: t, seed: s, rng: rand.New(rand.NewPCG(s, 7)), clock: testutil.NewClock(),
			mem: vfs.NewCrashableMem(), model: map[string]*mAgent{}}
		x.open()
		n := 10 + x.rng.IntN(30)
		for i := 0; i < n; i++ {
			x.step()
		}
		ops += n
		reopens += x.reopen
		x.r.Close()
		x.d.Close()
	}
	t.Logf("%d sequences, %d operations, %d crash-and-reopen steps: no divergence", seqs, ops, reopens)
}
