package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

func openTest(t *testing.T, o *Options) (*db.DB, *Registry, *testutil.Clock) {
	t.Helper()
	clock := testutil.NewClock()
	d := testutil.Open(t, "/t", testutil.StoreOptions(vfs.NewMem(), clock))
	if o == nil {
		o = &Options{}
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = -1
	}
	r, err := Attach(d, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); d.Close() })
	return d, r, clock
}

// TestNoReaderSeesDeregistered: readers hammer Get while agents are
// deregistered; once Deregister has returned, no Get may return the agent.
func TestNoReaderSeesDeregistered(t *testing.T) {
	_, r, _ := openTest(t, nil)
	ctx := context.Background()
	const n = 200
	for i := range n {
		if err := r.Register(ctx, AgentSpec{ID: fmt.Sprint("a", i), Capacity: 1}); err != nil {
			t.Fatal(err)
		}
	}
	var gone [n]atomic.Bool
	var bad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				i := k % n
				wasGone := gone[i].Load()
				if _, err := r.Get(fmt.Sprint("a", i)); err == nil && wasGone {
					bad.Add(1)
				}
			}
		}()
	}
	for i := range n {
		if err := r.Deregister(ctx, fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
		gone[i].Store(true)
	}
	close(stop)
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d lookups returned an agent after its deregistration was acknowledged", bad.Load())
	}
}

func TestHeartbeatExpiryAndListeners(t *testing.T) {
	_, r, clock := openTest(t, nil)
	ctx := context.Background()
	got := make(chan []string, 1)
	r.OnUnhealthy(func(ids []string) { got <- ids })
	for _, id := range []string{"x", "y"} {
		if err := r.Register(ctx, AgentSpec{ID: id, Capacity: 2, Capabilities: []string{"gpu"}, HeartbeatInterval: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Second)
	if err := r.Heartbeat(ctx, "y", 1, "busy"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(1500 * time.Millisecond) // x: 3.5s without a heartbeat; y: 1.5s
	ids, err := r.Expire(ctx)
	if err != nil || len(ids) != 1 || ids[0] != "x" {
		t.Fatalf("expired %v %v, want [x]", ids, err)
	}
	select {
	case l := <-got:
		if len(l) != 1 || l[0] != "x" {
			t.Fatalf("listener heard %v", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("listener not called")
	}
	if as := r.ByCapabilities([]string{"gpu"}); len(as) != 1 || as[0].ID != "y" {
		t.Fatalf("healthy gpu agents %v", as)
	}
	if a, _ := r.Get("x"); a.Healthy {
		t.Fatal("x still healthy")
	}
	if err := r.Heartbeat(ctx, "x", 0, ""); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.Get("x"); !a.Healthy {
		t.Fatal("x not healthy after its heartbeat")
	}
	if err := r.Heartbeat(ctx, "nobody", 0, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("heartbeat of unknown agent: %v", err)
	}
}

func TestPoolsSpawnWithBackoffAndRetire(t *testing.T) {
	var calls, fail atomic.Int64
	fail.Store(2)
	var d *db.DB
	var r *Registry
	var retired sync.Map
	spawner := func(ctx context.Context, pool string) error {
		n := calls.Add(1)
		if fail.Add(-1) >= 0 {
			return errors.New("no capacity")
		}
		return r.Register(ctx, AgentSpec{ID: fmt.Sprint(pool, "-", n), Pool: pool, Capacity: 1})
	}
	d, r, clock := openTest(t, &Options{Spawner: spawner, SpawnBackoff: time.Second,
		Retire: func(ctx context.Context, pool, id string) error {
			retired.Store(id, true)
			return r.Deregister(ctx, id)
		}})
	_ = d
	ctx := context.Background()
	if err := r.DefinePool(ctx, Pool{Name: "w", MinWarm: 2, MaxSize: 3, RetireAfter: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := r.DefinePool(ctx, Pool{Name: "bad", MinWarm: 5, MaxSize: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("min warm above max: %v", err)
	}
	waitIdle := func() {
		deadline := time.Now().Add(5 * time.Second)
		for r.PoolStats()[0].Spawning > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	r.TendPools(ctx) // two spawns, both fail
	waitIdle()
	if s := r.PoolStats()[0]; s.SpawnFailures != 2 || s.Warm != 0 {
		t.Fatalf("after failures: %+v", s)
	}
	r.TendPools(ctx) // backing off: no call
	waitIdle()
	if calls.Load() != 2 {
		t.Fatalf("spawned during backoff: %d calls", calls.Load())
	}
	clock.Advance(3 * time.Second)
	r.TendPools(ctx)
	waitIdle()
	if s := r.PoolStats()[0]; s.Warm != 2 || s.Spawned != 2 {
		t.Fatalf("after backoff: %+v", s)
	}
	// Above MaxSize: the longest idle is offered once it has idled a minute.
	for i := range 2 {
		if err := r.Register(ctx, AgentSpec{ID: fmt.Sprint("extra", i), Pool: "w", Capacity: 1}); err != nil {
			t.Fatal(err)
		}
	}
	r.TendPools(ctx)
	clock.Advance(2 * time.Minute)
	for _, a := range r.ByPool("w") {
		if err := r.Heartbeat(ctx, a.ID, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	r.TendPools(ctx)
	waitIdle()
	r.tend.inflight.Wait()
	if s := r.PoolStats()[0]; s.RetireOffers != 1 || s.Warm != 3 {
		t.Fatalf("after retire: %+v", s)
	}
}

func TestSessionsIdleOut(t *testing.T) {
	_, r, clock := openTest(t, nil)
	ctx := context.Background()
	if err := r.OpenSession(ctx, ClientSession, "s1", []byte("hello"), time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.Advance(50 * time.Second)
	if v, err := r.Session(ctx, ClientSession, "s1"); err != nil || string(v) != "hello" {
		t.Fatalf("session: %q %v", v, err)
	}
	clock.Advance(50 * time.Second) // 100s after open, 50s after the touch
	if _, err := r.Session(ctx, ClientSession, "s1"); err != nil {
		t.Fatalf("touched session expired: %v", err)
	}
	clock.Advance(61 * time.Second)
	if _, err := r.Session(ctx, ClientSession, "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("idle session: %v, want ErrNotFound", err)
	}
	if err := r.OpenSession(ctx, "robot", "s", nil, time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad kind: %v", err)
	}
}

// TestDecodersTotal: the stored-value decoders never panic on any prefix
// of a valid value or on flipped bytes.
func TestDecodersTotal(t *testing.T) {
	a := &Agent{AgentSpec: AgentSpec{ID: "a", Pool: "p", Capabilities: []string{"x", "y"}, Capacity: 3,
		Labels: map[string]string{"k": "v"}, HeartbeatInterval: time.Second}, Load: 1, Status: "ok", Healthy: true}
	for _, v := range [][]byte{encodeAgent(a), encodePool(&Pool{Name: "p", MinWarm: 1, MaxSize: 2})} {
		for i := range v {
			decodeAgent(v[:i])
			decodePool(v[:i])
			w := append([]byte(nil), v...)
			w[i] ^= 0xff
			decodeAgent(w)
			decodePool(w)
		}
	}
	if _, ok := decodeAgent(encodeAgent(a)); !ok {
		t.Fatal("valid agent rejected")
	}
}
