package mcp_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAgentLoopKill: several simulated agents lease tasks, recall, remember
// and ack (half of them through step) through MCP while the server process
// is SIGKILLed and restarted: the `flowctl mcp` subprocess on stdio, and
// `flowctl serve` with the agents on streamable HTTP. Every ack and every
// memory the server answered with success is found after the restarts, and
// every task is done in the end (leases held by a killed server expire and
// are leased again). FLOWDB_MCP_SEED picks the seed, FLOWDB_MCP_KILLS the
// number of kills per transport (default 3).
func TestAgentLoopKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills a subprocess several times")
	}
	for _, tr := range transports[:2] { // stdio, http (the relay adds nothing here)
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			agentLoopKill(t, tr)
		})
	}
}

func agentLoopKill(t *testing.T, tr transport) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLOWDB_MCP_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	kills := 3
	if s := os.Getenv("FLOWDB_MCP_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (FLOWDB_MCP_SEED), %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 1))
	const tasks, agents = 400, 4
	dir := t.TempDir()

	p := tr.start(t, dir)
	ok(t, p.cs, "queue_create", map[string]any{"queue": "work", "lease_seconds": 1.5, "max_attempts": 1000})
	for i := range tasks {
		ok(t, p.cs, "task_enqueue", map[string]any{"queue": "work", "payload": fmt.Sprintf("task-%d", i)})
	}

	var mu sync.Mutex
	acked := map[uint64]string{}      // task id -> result, acknowledged by the server
	remembered := map[uint64]string{} // memory id -> text, acknowledged
	var nextMemory atomic.Uint64      // memory ids: one per remember, so none repairs another
	// ackOnce records an acknowledged ack. REQUIRES: mu held. A task acked
	// once is done for good: no lease can ack it again, so a second
	// acknowledged ack means the first was lost.
	ackOnce := func(id uint64, result string) {
		if prev, dup := acked[id]; dup {
			t.Errorf("task %d acknowledged twice: %q, then %q", id, prev, result)
		}
		acked[id] = result
	}

	// round runs the agents on p until the session breaks (the kill) or,
	// with deadline set, until every task is acked.
	round := func(p *proc, r int, until time.Time) {
		var wg sync.WaitGroup
		for a := range agents {
			wg.Go(func() {
				agent := fmt.Sprintf("agent-%d", a)
				for n := 0; ; n++ {
					if !until.IsZero() && time.Now().After(until) {
						return
					}
					lr, err := callErr(p.cs, "task_lease", map[string]any{"queue": "work", "agent": agent, "wait_seconds": 0.3})
					if err != nil {
						return // the server died
					}
					if lr.isError {
						t.Errorf("lease: %s", lr.text)
						return
					}
					ls, _ := lr.out["tasks"].([]any)
					if len(ls) == 0 {
						if !until.IsZero() {
							// Done when every task is done: some were acked by a
							// server killed before it could answer.
							st, err := callErr(p.cs, "queue_stats", map[string]any{"queue": "work"})
							if err != nil || num(st.out["acked"]) == tasks {
								return
							}
						}
						continue
					}
					l := ls[0].(map[string]any)
					id := num(l["id"])
					text := fmt.Sprintf("%s solved %s in round %d turn %d", agent, l["payload"], r, n)
					mid := nextMemory.Add(1)
					tag := fmt.Sprintf("m-%d", mid)
					result := fmt.Sprintf("result of %s by %s in round %d turn %d", l["payload"], agent, r, n)
					if _, err := callErr(p.cs, "memory_recall", map[string]any{"collection": "mem", "text": text, "k": 3}); err != nil {
						return
					}
					if (a+n)%2 == 0 {
						res, err := callErr(p.cs, "step", map[string]any{
							"ack":      map[string]any{"queue": "work", "id": l["id"], "token": l["token"], "result": result},
							"memories": []any{map[string]any{"collection": "mem", "text": text, "tags": []string{tag}, "id": mid}},
						})
						if err != nil {
							return
						}
						if !res.isError {
							mu.Lock()
							ackOnce(id, result)
							remembered[mid] = text
							mu.Unlock()
						}
						continue
					}
					res, err := callErr(p.cs, "memory_remember", map[string]any{"collection": "mem", "text": text, "tags": []string{tag}, "id": mid})
					if err != nil {
						return
					}
					if !res.isError {
						mu.Lock()
						remembered[mid] = text
						mu.Unlock()
					}
					res, err = callErr(p.cs, "task_ack", map[string]any{"queue": "work", "id": l["id"], "token": l["token"], "result": result})
					if err != nil {
						return
					}
					if !res.isError {
						mu.Lock()
						ackOnce(id, result)
						mu.Unlock()
					}
				}
			})
		}
		if until.IsZero() {
			time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
			p.kill()
		}
		wg.Wait()
	}

	for r := range kills {
		round(p, r, time.Time{})
		mu.Lock()
		t.Logf("round %d: killed with %d acked, %d remembered", r, len(acked), len(remembered))
		mu.Unlock()
		p = tr.start(t, dir)
	}
	round(p, kills, time.Now().Add(60*time.Second))
	p.close()

	// Verify on a fresh process.
	p = tr.start(t, dir)
	defer p.close()
	mu.Lock()
	defer mu.Unlock()
	for id, want := range acked {
		// Once an ack was answered the task is done for good: no later
		// lease can ack it again, so its result is the acknowledged one.
		g := ok(t, p.cs, "task_get", map[string]any{"queue": "work", "id": id})
		if g["state"] != "done" || g["result"] != want {
			t.Errorf("acked task %d is %v with result %q, want done with %q", id, g["state"], g["result"], want)
		}
	}
	for id, text := range remembered {
		rc := ok(t, p.cs, "memory_recall", map[string]any{"collection": "mem", "text": text, "tags": []string{fmt.Sprintf("m-%d", id)}, "k": 1})
		ms := rc["memories"].([]any)
		if len(ms) != 1 || num(ms[0].(map[string]any)["id"]) != id {
			t.Errorf("remembered memory %d lost: %v", id, rc)
		}
	}
	st := ok(t, p.cs, "queue_stats", map[string]any{"queue": "work"})
	if num(st["acked"]) != tasks {
		t.Errorf("queue stats: %v", st)
	}
	if len(acked) < tasks*3/4 {
		t.Errorf("only %d of %d tasks acknowledged to the agents", len(acked), tasks)
	}
	t.Logf("verified %d acked tasks, %d memories after %d kills", len(acked), len(remembered), kills)
}
