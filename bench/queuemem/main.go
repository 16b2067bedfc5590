// Command queuemem queues a million tasks (256-byte payloads; all but the hot
// set wait in the durable overflow), reports the process's resident memory
// (peak and current, from /proc/self/status) and the Go heap, then closes the
// store and measures how long reopening it takes (db.Open + queue.Attach) and
// the memory after the reopen.
//
//	cd bench && go run ./queuemem [-tasks 1000000] [-dir /tmp]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
)

func status(field string) string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			return strings.TrimSpace(strings.TrimPrefix(l, field+":"))
		}
	}
	return "?"
}

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// openDur is how long the last open's db.Open took.
var openDur time.Duration

func open(dir string) (*db.DB, *queue.Manager) {
	t0 := time.Now()
	d, err := db.Open(dir, &db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fail(err)
	}
	openDur = time.Since(t0)
	q, err := queue.Attach(d, nil)
	if err != nil {
		fail(err)
	}
	return d, q
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "queuemem:", err)
	os.Exit(1)
}

func main() {
	n := flag.Int("tasks", 1_000_000, "tasks to queue")
	base := flag.String("dir", os.TempDir(), "where to put the store")
	flag.Parse()
	dir, err := os.MkdirTemp(*base, "queuemem-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	d, q := open(dir)
	// Headroom: the last 10% of capacity admits only high priorities.
	if err := q.Create(ctx, queue.Config{Name: "big", OverflowCapacity: 2 * *n}); err != nil {
		fail(err)
	}
	payload := make([]byte, 256)
	start := time.Now()
	const batch = 1000
	for i := 0; i < *n; i += batch {
		ts := make([]queue.Task, min(batch, *n-i))
		for j := range ts {
			ts[j] = queue.Task{Payload: payload, Priority: (i + j) % 10}
		}
		if _, err := q.EnqueueBatch(ctx, "big", ts); err != nil {
			fail(err)
		}
		if i%100_000 == 0 && i > 0 {
			fmt.Fprintf(os.Stderr, "  %d queued, RSS %s\n", i, status("VmRSS"))
		}
	}
	el := time.Since(start)
	st, _ := q.Stats("big")
	fmt.Printf("queued %d tasks in %v (%.0f tasks/s, batches of %d): hot %d, overflow %d\n",
		*n, el.Round(time.Millisecond), float64(*n)/el.Seconds(), batch, st.Hot, st.Overflow)
	fmt.Printf("RSS peak %s, now %s; Go heap in use %.1f MiB\n", status("VmHWM"), status("VmRSS"), heapMiB())
	q.Close()
	if err := d.Close(); err != nil {
		fail(err)
	}
	t0 := time.Now()
	d, q = open(dir)
	reopen := time.Since(t0)
	st, _ = q.Stats("big")
	fmt.Printf("reopen (db.Open + queue.Attach): %v (db.Open %v); hot %d, overflow %d; RSS now %s, Go heap %.1f MiB\n",
		reopen.Round(time.Millisecond), openDur.Round(time.Millisecond), st.Hot, st.Overflow, status("VmRSS"), heapMiB())
	// One lease from the reopened store, to show it is live.
	ls, err := q.Lease(ctx, "big", "a", 1, nil, 0)
	if err != nil || len(ls) != 1 || ls[0].Priority != 9 {
		fail(fmt.Errorf("lease after reopen: %v %v", ls, err))
	}
	q.Close()
	d.Close()
}
