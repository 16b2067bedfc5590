package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server/ui"
)

// TestScale measures the pages over large tables: FLOWDB_UI_SCALE_TASKS
// leased tasks (the figure is 1,000,000) and FLOWDB_UI_SCALE_AGENTS
// agents (10,000). Each answer must be one page, and come within a second
// (loading the tables would take far longer at these sizes). It runs only
// when FLOWDB_UI_SCALE_TASKS is set: filling the store takes a while.
func TestScale(t *testing.T) {
	nTasks, _ := strconv.Atoi(os.Getenv("FLOWDB_UI_SCALE_TASKS"))
	if nTasks <= 0 {
		t.Skip("set FLOWDB_UI_SCALE_TASKS=1000000 (and FLOWDB_UI_SCALE_AGENTS=10000) to run")
	}
	nAgents, _ := strconv.Atoi(os.Getenv("FLOWDB_UI_SCALE_AGENTS"))
	if nAgents <= 0 {
		nAgents = 10000
	}
	e := start(t, 50)
	ctx := context.Background()
	if err := e.q.Create(ctx, queue.Config{Name: "big", HotCapacity: 10000, OverflowCapacity: 2 * nTasks, LeaseDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	fill := time.Now()
	payload := make([]byte, 64)
	for done := 0; done < nTasks; {
		n := min(queue.MaxBatch, nTasks-done)
		tasks := make([]queue.Task, n)
		for i := range tasks {
			tasks[i] = queue.Task{Payload: payload}
		}
		if _, err := e.q.EnqueueBatch(ctx, "big", tasks); err != nil {
			t.Fatal(err)
		}
		ls, err := e.q.Lease(ctx, "big", "w", n, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		done += len(ls)
		if len(ls) == 0 {
			t.Fatal("nothing to lease")
		}
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < nAgents; i += 8 {
				if err := e.r.Register(ctx, registry.AgentSpec{ID: fmt.Sprintf("agent-%06d", i), Capacity: 4, Capabilities: []string{"x"}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("filled %d leased tasks and %d agents in %v", nTasks, nAgents, time.Since(fill))

	timed := func(url string, v any) time.Duration {
		start := time.Now()
		getJSON(t, e.url+url, e.read, v)
		d := time.Since(start)
		if d > time.Second {
			t.Errorf("GET %s took %v", url, d)
		}
		return d
	}
	var qv ui.QueueView
	d1 := timed("/ui/api/queue?name=big&state=leased", &qv)
	if len(qv.Tasks) != 50 || qv.Next == "" || qv.Stats.Leased != int64(nTasks) {
		t.Fatalf("first page: %d tasks, next %q, leased %d", len(qv.Tasks), qv.Next, qv.Stats.Leased)
	}
	d2 := timed("/ui/api/queue?name=big&state=leased&after="+qv.Next, &qv)
	if len(qv.Tasks) != 50 {
		t.Errorf("second page: %d tasks", len(qv.Tasks))
	}
	var ag ui.Agents
	d3 := timed("/ui/api/agents", &ag)
	if len(ag.Agents) != 50 || ag.Total != nAgents {
		t.Errorf("agents page: %d of %d", len(ag.Agents), ag.Total)
	}
	d4 := timed("/ui/api/agents?after="+ag.Next, &ag)
	var ov ui.Overview
	d5 := timed("/ui/api/overview", &ov)
	var qs ui.Queues
	d6 := timed("/ui/api/queues", &qs)
	code, _, _ := req(t, http.MethodGet, e.url+"/ui/queue?name=big&state=leased", e.read, "", nil)
	if code != http.StatusOK {
		t.Errorf("queue page: %d", code)
	}
	t.Logf("leases page 1: %v, page 2: %v; agents page 1: %v, page 2: %v; overview %v; queues %v",
		d1, d2, d3, d4, d5, d6)
}
