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
// and ack (half of them through step) through MCP while the `flowctl mcp`
// subprocess is SIGKILLed and restarted. Every ack and every memory the
// server answered with success is found after the restarts, and every task
// is done in the end (leases held by a killed server expire and are leased
// again). FLOWDB_MCP_SEED picks the seed, FLOWDB_MCP_KILLS the number of
// kills (default 4).
func TestAgentLoopKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a subprocess several times")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLOWDB_MCP_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	kills := 4
	if s := os.Getenv("FLOWDB_MCP_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (FLOWDB_MCP_SEED), %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 1))
	const tasks, agents = 400, 4
	dir := t.TempDir()

	p := startProc(t, dir)
	ok(t, p.cs, "queue_create", map[string]any{"queue": "work", "lease_seconds": 1.5, "max_attempts": 1000})
	for i := range tasks {
		ok(t, p.cs, "task_enqueue", map[string]any{"queue": "work", "payload": fmt.Sprintf("task-%d", i)})
	}

	var mu sync.Mutex
	acked := map[uint64]string{}      // task id -> result, acknowledged by the server
	remembered := map[uint64]string{} // memory id -> text, acknowledged
	var nextMemory atomic.Uint64      // memory ids: one per remember, so none repairs another

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
					result := fmt.Sprintf("result of %s by %s", l["payload"], agent)
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
							acked[id], remembered[mid] = result, text
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
						acked[id] = result
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
		p = startProc(t, dir)
	}
	round(p, kills, time.Now().Add(60*time.Second))
	p.cs.Close()

	// Verify on a fresh process.
	p = startProc(t, dir)
	defer p.cs.Close()
	mu.Lock()
	defer mu.Unlock()
	for id, want := range acked {
		g := ok(t, p.cs, "task_get", map[string]any{"queue": "work", "id": id})
		if g["state"] != "done" {
			t.Errorf("acked task %d is %v", id, g["state"])
		}
		_ = want // a retried task may be acked by a later lease with another agent's result
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
