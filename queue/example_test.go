package queue_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
)

// A queue on an embedded store: enqueue two tasks, lease the more urgent
// one, acknowledge it.
func Example() {
	dir, err := os.MkdirTemp("", "flowdb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := db.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	q, err := queue.Attach(d, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close() // before d.Close (defers run last-in first-out)

	ctx := context.Background()
	if err := q.Create(ctx, queue.Config{Name: "jobs", MaxAttempts: 3}); err != nil {
		log.Fatal(err)
	}
	// Enqueue returns once the task is durable.
	if _, err := q.Enqueue(ctx, "jobs", queue.Task{Payload: []byte("resize image"), Priority: 1}); err != nil {
		log.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, "jobs", queue.Task{Payload: []byte("answer user"), Priority: 9}); err != nil {
		log.Fatal(err)
	}
	leases, err := q.Lease(ctx, "jobs", "agent-1", 1, nil, time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	l := leases[0]
	fmt.Printf("leased %q (priority %d, attempt %d)\n", l.Payload, l.Priority, l.Attempt)
	// The lease's token proves the agent still holds it.
	if err := q.Ack(ctx, "jobs", l.ID, l.Token, []byte("done")); err != nil {
		log.Fatal(err)
	}
	st, err := q.Stats("jobs")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready %d, leased %d, done %d\n", st.Hot+st.Overflow, st.Leased, st.Done)
	// Output:
	// leased "answer user" (priority 9, attempt 1)
	// ready 1, leased 0, done 1
}
