package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server"
)

// serve starts a real server on loopback and returns its URL and the queue
// manager behind it.
func serve(t *testing.T) (string, *queue.Manager) {
	t.Helper()
	d := testutil.OpenMem(t, nil)
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
	hs := server.HTTPServer(s.Handler(), nil)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close(); r.Close(); q.Close(); d.Close() })
	return "http://" + l.Addr().String(), q
}

// load creates queue and enqueues n tasks through the client.
func load(t *testing.T, url, queueName string, n int) []uint64 {
	t.Helper()
	c, _ := client.New(url, nil)
	defer c.Close()
	ctx := context.Background()
	if err := c.CreateQueue(ctx, client.QueueConfig{Name: queueName}); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := range n {
		id, err := c.Enqueue(ctx, queueName, client.Task{Payload: fmt.Appendf(nil, "task %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkDone requires every task done with its upper-cased payload.
func checkDone(t *testing.T, q *queue.Manager, queueName string, ids []uint64) {
	t.Helper()
	for i, id := range ids {
		ti, err := q.Get(context.Background(), queueName, id)
		if err != nil || ti.State != "done" || string(ti.Result) != fmt.Sprintf("TASK %d", i) {
			t.Fatalf("task %d: %+v %v", id, ti, err)
		}
	}
}

func TestGoWorker(t *testing.T) {
	url, q := serve(t)
	ids := load(t, url, "jobs", 25)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := run(ctx, config{server: url, queue: "jobs", agent: "w1", capacity: 3, max: len(ids), heartbeat: 100 * time.Millisecond, lease: time.Minute})
	if err != nil || n != len(ids) {
		t.Fatalf("worker did %d tasks: %v", n, err)
	}
	checkDone(t, q, "jobs", ids)
}

func TestPythonWorker(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	url, q := serve(t)
	ids := load(t, url, "py", 20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "../python/worker.py", "--server", url, "--queue", "py", "--agent", "py-1",
		"--max", fmt.Sprint(len(ids)), "--wait-ms", "1000").CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d tasks done", len(ids))) {
		t.Fatalf("python worker: %v\n%s", err, out)
	}
	checkDone(t, q, "py", ids)
}

// The Python client sees the server's typed errors: code and classes.
func TestPythonErrors(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	url, _ := serve(t)
	load(t, url, "e", 0)
	script := `
import sys
sys.path.insert(0, "../python")
from worker import Client, FlowdbError
c = Client(sys.argv[1])
try:
    c.call("QueueService", "Ack", {"queue": "e", "id": 1, "token": 1})
except FlowdbError as e:
    print(e.status, e.code, e.classes)
`
	out, err := exec.Command(py, "-c", script, url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "404 not_found") || !strings.Contains(string(out), "queue: not found") {
		t.Fatalf("python error: %v\n%s", err, out)
	}
}
