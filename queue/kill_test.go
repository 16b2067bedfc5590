package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

// TestKillChild is the workload of TestSIGKILL, run in a child process: it
// enqueues, leases and acks until killed, printing a line to stdout after
// each acknowledged operation.
func TestKillChild(t *testing.T) {
	dir := os.Getenv("FLOWDB_KILL_CHILD")
	if dir == "" {
		t.Skip("run by TestSIGKILL")
	}
	round := os.Getenv("FLOWDB_KILL_ROUND")
	ctx := context.Background()
	d, err := db.Open(dir, &db.Options{Logger: testutil.Quiet()})
	if err != nil {
		fmt.Printf("X open %v\n", err)
		os.Exit(3)
	}
	m, err := Attach(d, nil)
	if err != nil {
		fmt.Printf("X attach %v\n", err)
		os.Exit(3)
	}
	if err := m.Create(ctx, Config{Name: "kq", HotCapacity: 64, OverflowCapacity: 1_000_000}); err != nil {
		fmt.Printf("X create %v\n", err)
		os.Exit(3)
	}
	var mu sync.Mutex // one line per write(2)
	say := func(format string, a ...any) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, format, a...)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; ; i++ {
				payload := fmt.Sprintf("r%s-p%d-%d", round, p, i)
				id, err := m.Enqueue(ctx, "kq", Task{Payload: []byte(payload), Priority: i % 10})
				if err != nil {
					say("X enqueue %v\n", err)
					return
				}
				say("E %d %s\n", id, payload)
			}
		}(p)
	}
	for c := 0; c < 2; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for {
				ls, err := m.Lease(ctx, "kq", "c"+strconv.Itoa(c), 8, nil, 0)
				if err != nil {
					say("X lease %v\n", err)
					return
				}
				for _, l := range ls {
					if err := m.Ack(ctx, "kq", l.ID, l.Token, l.Payload); err != nil { // see content
						say("X ack %v\n", err)
						return
					}
					say("A %d\n", l.ID)
				}
			}
		}(c)
	}
	wg.Wait()
}

// TestSIGKILL runs the workload in a child process and kills it with SIGKILL
// at a random moment, 10 times (20 with FLOWDB_FULL=1; FLOWDB_KILL_ROUNDS
// sets it). After each
// kill it reopens the store and checks that every acknowledged enqueue is
// present exactly once (pending, leased or done) and every acknowledged Ack
// is still done.
func TestSIGKILL(t *testing.T) {
	t.Parallel()
	if os.Getenv("FLOWDB_KILL_CHILD") != "" {
		t.Skip("child")
	}
	rounds := testutil.Scale("FLOWDB_KILL_ROUNDS", 10, 20)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	enqueued := map[uint64]string{} // every acknowledged enqueue, all rounds
	acked := map[uint64]bool{}
	totalE, totalA := 0, 0
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FLOWDB_KILL_CHILD="+dir, "FLOWDB_KILL_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []string)
		first := make(chan struct{}) // the child's first acknowledged operation
		go func() {
			var ls []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if len(ls) == 0 {
					close(first)
				}
				ls = append(ls, sc.Text())
			}
			if len(ls) == 0 {
				close(first)
			}
			lines <- ls
		}()
		// The kill comes 100-500 ms into the workload, not into the
		// child's start: under the race detector on a loaded machine the
		// child may take longer than that to open the store.
		select {
		case <-first:
		case <-time.After(60 * time.Second):
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		got := <-lines
		cmd.Wait()
		e, a := 0, 0
		for _, l := range got {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "E":
				id, _ := strconv.ParseUint(f[1], 10, 64)
				enqueued[id] = f[2]
				e++
			case len(f) == 2 && f[0] == "A":
				id, _ := strconv.ParseUint(f[1], 10, 64)
				acked[id] = true
				a++
			case len(f) > 0 && f[0] == "X":
				t.Fatalf("round %d: child failed: %s", round, l)
			}
		}
		totalE, totalA = totalE+e, totalA+a
		verifyKilled(t, dir, round, enqueued, acked)
	}
	t.Logf("%d SIGKILLs: %d acknowledged enqueues and %d acknowledged acks, all intact", rounds, totalE, totalA)
	if totalE == 0 || totalA == 0 {
		t.Fatal("the child acknowledged nothing: the test proved nothing")
	}
}

func verifyKilled(t *testing.T, dir string, round int, enqueued map[uint64]string, acked map[uint64]bool) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(dir, testutil.StoreOptions(nil, nil))
	if err != nil {
		t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
	}
	defer d.Close()
	m, err := Attach(d, &Options{TickInterval: -1})
	if err != nil {
		t.Fatalf("round %d: attach: %v", round, err)
	}
	defer m.Close()
	if len(enqueued) > 0 && len(m.Queues()) == 0 {
		t.Fatalf("round %d: queue lost", round)
	}
	for id, payload := range enqueued {
		info, err := m.Get(ctx, "kq", id)
		if err != nil || content(info) != payload {
			t.Fatalf("round %d: acknowledged task %d (%s) lost: %+v %v", round, id, payload, info, err)
		}
		if acked[id] && info.State != "done" {
			t.Fatalf("round %d: acknowledged Ack of task %d came back as %s", round, id, info.State)
		}
	}
	// Exactly once: no payload stored twice, and the counters agree with
	// what is stored.
	st, _ := m.Stats("kq")
	total := st.Hot + st.Overflow + st.Delayed + st.Leased + st.Done + st.Dead
	seen := map[string]bool{}
	found := int64(0)
	// Ids share the sequence counter with ready ranks: an enqueue takes two
	// numbers and every return to ready (a lease that expired while a later
	// round ran) one more.
	for id := uint64(1); id <= 2*st.Enqueued+st.Retried+2; id++ {
		info, err := m.Get(ctx, "kq", id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil || seen[content(info)] {
			t.Fatalf("round %d: task %d duplicated or unreadable: %q %v", round, id, content(info), err)
		}
		seen[content(info)] = true
		found++
	}
	if found != total {
		t.Fatalf("round %d: %d tasks stored, counters say %d", round, found, total)
	}
	if rep, err := d.Check(ctx, nil); err != nil || !rep.OK() {
		t.Fatalf("round %d: check: %v %+v", round, err, rep.Problems)
	}
}
