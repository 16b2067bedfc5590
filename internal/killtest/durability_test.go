package killtest

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
)

const (
	childEnv = "FLOWDB_DURABILITY_CHILD"
	modeEnv  = "FLOWDB_DURABILITY_MODE"
	vecDim   = 8
)

// vecOf is the vector the child stores under id i.
func vecOf(i uint64) []float32 {
	v := make([]float32, vecDim)
	for j := range v {
		v[j] = float32((i*31+uint64(j)*7)%97) + 1
	}
	return v
}

func modeByName(t testing.TB, name string) db.Durability {
	switch name {
	case "sync":
		return db.SyncEachCommit
	case "nosync":
		return db.NoSync
	}
	t.Fatalf("unknown durability mode %q", name)
	return 0
}

// TestDurabilityChild is the workload of TestDurabilityModesSurviveSIGKILL,
// run in a child process: four goroutines write through the key-value
// space, a queue, the registry and a vector collection until killed, each
// printing one line per acknowledged write.
func TestDurabilityChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("run by TestDurabilityModesSurviveSIGKILL")
	}
	ctx := context.Background()
	var mu sync.Mutex // one line per write(2)
	say := func(format string, a ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format, a...)
		mu.Unlock()
	}
	fail := func(what string, err error) {
		say("X %s %v\n", what, err)
		os.Exit(3)
	}
	d, err := db.Open(dir, &db.Options{Logger: testutil.Quiet(), Durability: modeByName(t, os.Getenv(modeEnv))})
	if err != nil {
		fail("open", err)
	}
	qm, err := queue.Attach(d, nil)
	if err != nil {
		fail("queue", err)
	}
	reg, err := registry.Attach(d, nil)
	if err != nil {
		fail("registry", err)
	}
	vm, err := hnsw.Attach(d)
	if err != nil {
		fail("hnsw", err)
	}
	if err := qm.Create(ctx, queue.Config{Name: "kq", HotCapacity: 64, OverflowCapacity: 1_000_000}); err != nil {
		fail("create queue", err)
	}
	if err := vm.Create(ctx, hnsw.Config{Name: "kc", Dim: vecDim, TrainSize: 200}); err != nil {
		fail("create collection", err)
	}
	say("READY\n")
	var wg sync.WaitGroup
	wg.Go(func() { // sequential Sets, as in the report that found NoSync losing them
		for i := 0; ; i++ {
			if err := d.Set(ctx, "k", []byte(strconv.Itoa(i)), []byte("v"+strconv.Itoa(i))); err != nil {
				fail("set", err)
			}
			say("K %d\n", i)
		}
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			id, err := qm.Enqueue(ctx, "kq", queue.Task{Payload: []byte("p" + strconv.Itoa(i))})
			if err != nil {
				fail("enqueue", err)
			}
			say("E %d p%d\n", id, i)
		}
	})
	wg.Go(func() {
		for i := 0; ; i++ {
			if err := reg.Register(ctx, registry.AgentSpec{ID: "a" + strconv.Itoa(i), Capacity: 1, HeartbeatInterval: time.Hour}); err != nil {
				fail("register", err)
			}
			say("R %d\n", i)
		}
	})
	wg.Go(func() {
		for i := uint64(1); ; i++ {
			if err := vm.Upsert(ctx, "kc", []hnsw.Vector{{ID: i, Values: vecOf(i)}}); err != nil {
				fail("upsert", err)
			}
			say("V %d\n", i)
		}
	})
	wg.Wait()
}

// acked is what one child acknowledged before it was killed.
type acked struct {
	keys, agents []int
	vectors      []uint64
	tasks        map[uint64]string
}

func (a acked) total() int { return len(a.keys) + len(a.agents) + len(a.vectors) + len(a.tasks) }

// TestDurabilityModesSurviveSIGKILL runs the child in each durability mode,
// kills it with SIGKILL 50-450 ms into its workload, and requires every
// acknowledged write of every subsystem after reopening: both modes promise
// that a process crash loses nothing acknowledged (db.Options.Durability).
//
// Before NoSync handed frames to the OS before answering, its rounds lost
// the newest acknowledged writes (the frames still in Pebble's WAL buffer).
func TestDurabilityModesSurviveSIGKILL(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child")
	}
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_DURABILITY_KILL_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 32))
	for _, mode := range []string{"sync", "nosync"} {
		t.Run(mode, func(t *testing.T) {
			total := 0
			for round := range rounds {
				dir := filepath.Join(t.TempDir(), "store")
				a := runAndKill(t, dir, mode, time.Duration(50+rng.IntN(400))*time.Millisecond)
				verify(t, dir, round, a)
				total += a.total()
				t.Logf("round %d: %d sets, %d enqueues, %d agents, %d vectors acknowledged, all present",
					round, len(a.keys), len(a.tasks), len(a.agents), len(a.vectors))
			}
			if total == 0 {
				t.Fatal("the child acknowledged nothing: the test proved nothing")
			}
		})
	}
}

func runAndKill(t *testing.T, dir, mode string, after time.Duration) acked {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurabilityChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, modeEnv+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	lines := make(chan []string)
	go func() {
		var ls []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				close(ready)
				continue
			}
			ls = append(ls, sc.Text())
		}
		lines <- ls
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child did not start its workload within 30 s")
	}
	time.Sleep(after)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	got := <-lines
	cmd.Wait()
	a := acked{tasks: map[uint64]string{}}
	for _, l := range got {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "X":
			t.Fatalf("child failed: %s", l)
		case "K", "R", "V", "E":
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				// The kill may cut the last line short only before its
				// newline, which the scanner then returns whole: a
				// malformed line is a test bug.
				t.Fatalf("bad line %q", l)
			}
			switch f[0] {
			case "K":
				a.keys = append(a.keys, int(n))
			case "R":
				a.agents = append(a.agents, int(n))
			case "V":
				a.vectors = append(a.vectors, n)
			case "E":
				if len(f) != 3 {
					t.Fatalf("bad line %q", l)
				}
				a.tasks[n] = f[2]
			}
		}
	}
	return a
}

func verify(t *testing.T, dir string, round int, a acked) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(dir, &db.Options{Logger: testutil.Quiet(), TTLReapInterval: -1})
	if err != nil {
		t.Fatalf("round %d: reopen: %v", round, err)
	}
	defer d.Close()
	qm, err := queue.Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Attach(d, &registry.Options{CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := hnsw.Attach(d)
	if err != nil {
		t.Fatal(err)
	}
	defer qm.Close() // the managers close before d (deferred calls run last first)
	defer reg.Close()
	var lost []string
	for _, i := range a.keys {
		v, err := d.Get(ctx, "k", []byte(strconv.Itoa(i)))
		if err != nil || string(v) != "v"+strconv.Itoa(i) {
			lost = append(lost, fmt.Sprintf("set %d (%q, %v)", i, v, err))
		}
	}
	for id, p := range a.tasks {
		ti, err := qm.Get(ctx, "kq", id)
		if err != nil || string(ti.Payload) != p {
			lost = append(lost, fmt.Sprintf("task %d (%q, %v)", id, ti.Payload, err))
		}
	}
	for _, i := range a.agents {
		if _, err := reg.Get("a" + strconv.Itoa(i)); err != nil {
			lost = append(lost, fmt.Sprintf("agent %d (%v)", i, err))
		}
	}
	for _, id := range a.vectors {
		v, err := vm.Get("kc", id)
		if err != nil || !slices.Equal(v.Values, vecOf(id)) {
			lost = append(lost, fmt.Sprintf("vector %d (%v)", id, err))
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Fatalf("round %d: %d of %d acknowledged writes lost after SIGKILL, e.g. %s",
			round, len(lost), a.total(), strings.Join(lost[:min(len(lost), 8)], "; "))
	}
	rep, err := d.Check(ctx, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("round %d: check after SIGKILL: %v %+v", round, err, rep)
	}
}
