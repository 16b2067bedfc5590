package registry

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

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
	*testutil.Seq
	d     *db.DB
	r     *Registry
	model map[string]*mAgent
}

func (x *regRunner) open() {
	d := x.Open("/r")
	r, err := Attach(d, &Options{CheckInterval: -1})
	if err != nil {
		x.Fail("attach: %v", err)
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
	rng, now := x.Rng, x.Clock.Now().UnixNano()
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
		x.Step("register(%s,%v,%s,%d,%v)", id, caps, s.Pool, s.Capacity, s.HeartbeatInterval)
		if err := x.r.Register(ctx, s); err != nil {
			x.Fail("register: %v", err)
		}
		s.Capabilities = slices.Sorted(slices.Values(caps))
		a := &mAgent{spec: s, healthy: true, registered: now, lastBeat: now, idleSince: now}
		if old := x.model[id]; old != nil {
			a.registered, a.load, a.status, a.idleSince = old.registered, old.load, old.status, old.idleSince
		}
		x.model[id] = a
	case op < 35:
		x.Step("deregister(%s)", id)
		err := x.r.Deregister(ctx, id)
		if _, ok := x.model[id]; ok != (err == nil) || (!ok && !errors.Is(err, ErrNotFound)) {
			x.Fail("deregister: %v (model has it: %v)", err, ok)
		}
		delete(x.model, id)
		if _, err := x.r.Get(id); !errors.Is(err, ErrNotFound) {
			x.Fail("deregistered agent still found: %v", err)
		}
	case op < 65:
		load, status := rng.IntN(4), []string{"", "ok", "busy"}[rng.IntN(3)]
		x.Step("heartbeat(%s,%d,%q)", id, load, status)
		err := x.r.Heartbeat(ctx, id, load, status)
		a := x.model[id]
		if (a != nil) != (err == nil) || (a == nil && !errors.Is(err, ErrNotFound)) {
			x.Fail("heartbeat: %v (model has it: %v)", err, a != nil)
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
		x.Step("expire")
		got, err := x.r.Expire(ctx)
		if err != nil {
			x.Fail("expire: %v", err)
		}
		var want []string
		for _, id := range modelIDs {
			if a := x.model[id]; a != nil && a.healthy && now-a.lastBeat > 3*int64(a.spec.HeartbeatInterval) {
				a.healthy = false
				want = append(want, id)
			}
		}
		if !slices.Equal(got, want) {
			x.Fail("expired %v, model %v", got, want)
		}
	case op < 80:
		bad := []AgentSpec{{ID: "", Capacity: 1}, {ID: id, Capacity: 0}, {ID: id, Capacity: 1, Capabilities: []string{""}},
			{ID: string(make([]byte, MaxIDSize+1)), Capacity: 1}, {ID: id, Capacity: 1, HeartbeatInterval: -1}}
		b := bad[rng.IntN(len(bad))]
		x.Step("bad-register(%q,%d)", b.ID, b.Capacity)
		if err := x.r.Register(ctx, b); !errors.Is(err, ErrInvalid) {
			x.Fail("bad register: %v, want ErrInvalid", err)
		}
		if err := x.r.Heartbeat(ctx, id, -1, ""); !errors.Is(err, ErrInvalid) {
			x.Fail("bad heartbeat: %v, want ErrInvalid", err)
		}
	case op < 95:
		adv := time.Duration(rng.IntN(4000)) * time.Millisecond
		x.Advance(adv)
	default:
		x.Crash(func() {
			x.r.Close()
			x.d.Close()
		})
		x.open()
	}
	x.compare()
}

// compare checks every lookup against the model.
func (x *regRunner) compare() {
	x.T.Helper()
	var want []string
	for _, id := range modelIDs {
		a := x.model[id]
		got, err := x.r.Get(id)
		if a == nil {
			if !errors.Is(err, ErrNotFound) {
				x.Fail("Get(%s): %v, model has none", id, err)
			}
			continue
		}
		want = append(want, id)
		if err != nil {
			x.Fail("Get(%s): %v", id, err)
		}
		// Spec and health are never served stale (heartbeat figures may be).
		if got.Healthy != a.healthy || !specEqual(got.AgentSpec, a.spec) {
			x.Fail("Get(%s) = %+v, model %+v", id, *got, *a)
		}
	}
	all := x.r.List(Filter{})
	var ids []string
	for _, g := range all {
		ids = append(ids, g.ID)
		a := x.model[g.ID]
		if a == nil {
			x.Fail("List has %s, model does not", g.ID)
		}
		if g.Load != a.load || g.Status != a.status || g.Healthy != a.healthy || g.lastBeat != a.lastBeat ||
			g.registered != a.registered || g.idleSince != a.idleSince || !specEqual(g.AgentSpec, a.spec) {
			x.Fail("List: %s = %+v, model %+v", g.ID, *g, *a)
		}
	}
	if !slices.Equal(ids, want) {
		x.Fail("List ids %v, model %v", ids, want)
	}
	// Capability and pool lookups: healthy agents only, by id.
	caps := []string{modelCaps[x.Rng.IntN(len(modelCaps))]}
	if x.Rng.IntN(2) == 0 {
		caps = append(caps, modelCaps[x.Rng.IntN(len(modelCaps))])
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
		x.Fail("ByCapabilities(%v) %v, model %v; ByPool(p1) %v, model %v", caps, gotCap, wantCap, gotPool, wantPool)
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
// sequences (default 2,000); FLOWDB_MODEL_SEED runs one. The sequences
// run in two parallel shards of consecutive seeds.
func TestModel(t *testing.T) {
	testutil.RunModelParallel(t, 2000, 7, 2, func(s *testutil.Seq) int {
		x := &regRunner{Seq: s, model: map[string]*mAgent{}}
		x.open()
		n := x.TakeSteps(10, 30, x.step)
		x.r.Close()
		x.d.Close()
		return n
	})
}
