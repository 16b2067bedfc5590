package server_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server"
)

const (
	killChildEnv  = "FLOWDB_SERVER_KILL_CHILD"
	killRoundsEnv = "FLOWDB_SERVER_KILL_ROUNDS"
)

// TestKillChild is the server of TestServerSIGKILL, run in a child process
// over the store in $FLOWDB_SERVER_KILL_CHILD: it prints its address and
// serves until killed.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("child of TestServerSIGKILL")
	}
	d := testutil.Open(t, dir, testutil.StoreOptions(nil, nil))
	q, err := queue.Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := hnsw.Attach(d)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Options{DB: d, Queues: q, Registry: r, Vectors: v, Logger: testutil.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("serving %s\n", l.Addr())
	server.HTTPServer(s.Handler(), nil).Serve(l)
}

// TestServerSIGKILL kills the server with SIGKILL while Go clients enqueue
// (coalesced and one by one), lease and ack over the network, restarts it,
// and requires every operation the client saw acknowledged to be there:
// each acknowledged enqueue's task with its payload (or done), each
// acknowledged ack's task done. FLOWDB_SERVER_KILL_ROUNDS sets the rounds
// (default 20).
func TestServerSIGKILL(t *testing.T) {
	t.Parallel()
	if os.Getenv(killChildEnv) != "" {
		t.Skip("in the child")
	}
	rounds := 20
	if s := os.Getenv(killRoundsEnv); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	type enq struct {
		id      uint64
		payload string
	}
	var enqueued []enq
	var acked []uint64
	// After each restart the operations acknowledged since the previous
	// restart are checked; after the last one, all of them (an earlier
	// acknowledgement must survive every later crash too).
	var seenEnq, seenAck int
	ctx := context.Background()
	for round := range rounds + 1 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addrc := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if a, ok := strings.CutPrefix(sc.Text(), "serving "); ok {
					addrc <- a
				}
			}
		}()
		var addr string
		select {
		case addr = <-addrc:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: the server never started", round)
		}
		c, err := client.New("http://"+addr, &client.Options{Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		// Everything acknowledged before the last kill is there.
		if round == rounds {
			seenEnq, seenAck = 0, 0
		}
		for _, e := range enqueued[seenEnq:] {
			ti, err := c.GetTask(ctx, "kq", e.id)
			if err != nil {
				cmd.Process.Kill()
				t.Fatalf("round %d: acknowledged enqueue %d lost: %v", round, e.id, err)
			}
			if ti.State != "done" && string(ti.Payload) != e.payload {
				cmd.Process.Kill()
				t.Fatalf("round %d: task %d payload %q, want %q", round, e.id, ti.Payload, e.payload)
			}
		}
		for _, id := range acked[seenAck:] {
			ti, err := c.GetTask(ctx, "kq", id)
			if err != nil || ti.State != "done" {
				cmd.Process.Kill()
				t.Fatalf("round %d: acknowledged ack of %d lost: %+v %v", round, id, ti, err)
			}
		}
		seenEnq, seenAck = len(enqueued), len(acked)
		if round == rounds {
			cmd.Process.Kill()
			cmd.Wait()
			t.Logf("%d rounds: %d acknowledged enqueues and %d acknowledged acks all survived", rounds, len(enqueued), len(acked))
			return
		}
		if err := c.CreateQueue(ctx, client.QueueConfig{Name: "kq", HotCapacity: 100000, OverflowCapacity: -1, MaxBytes: 1 << 30}); err != nil {
			cmd.Process.Kill()
			t.Fatal(err)
		}
		// The load: producers (coalesced and single), and workers that
		// lease and ack, until the kill breaks their connections.
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		single, _ := client.New("http://"+addr, &client.Options{Retries: -1, NoCoalesce: true})
		for g := range 12 {
			cl := c
			if g%3 == 0 {
				cl = single
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					p := fmt.Sprintf("r%d-g%d-%d", round, g, i)
					id, err := cl.Enqueue(ctx, "kq", client.Task{Payload: []byte(p)})
					if err != nil {
						return
					}
					mu.Lock()
					enqueued = append(enqueued, enq{id, p})
					mu.Unlock()
				}
			}()
		}
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ls, err := c.Lease(ctx, "kq", fmt.Sprintf("w%d", w), 16, nil, time.Minute)
					if err != nil {
						return
					}
					var awg sync.WaitGroup
					for _, l := range ls {
						awg.Add(1)
						go func() {
							defer awg.Done()
							if err := c.Ack(ctx, "kq", l.ID, l.Token, nil); err == nil {
								mu.Lock()
								acked = append(acked, l.ID)
								mu.Unlock()
							}
						}()
					}
					awg.Wait()
				}
			}()
		}
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		close(stop)
		wg.Wait()
		c.Close()
		single.Close()
	}
}
