package sched_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
)

// Dispatch ready tasks to the healthy agents that have the capabilities
// each task requires and room for it.
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
	defer q.Close()
	r, err := registry.Attach(d, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	s, err := sched.New(q, r, &sched.Options{Policy: sched.LeastLoaded})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	must(r.Register(ctx, registry.AgentSpec{ID: "gpu-1", Capabilities: []string{"gpu"}, Capacity: 1}))
	must(r.Register(ctx, registry.AgentSpec{ID: "cpu-1", Capabilities: []string{"cpu"}, Capacity: 8}))
	must(q.Create(ctx, queue.Config{Name: "work"}))
	for _, t := range []queue.Task{
		{Payload: []byte("train"), Requires: []string{"gpu"}},
		{Payload: []byte("parse"), Requires: []string{"cpu"}},
		{Payload: []byte("render"), Requires: []string{"gpu"}}, // gpu-1 is full: stays ready
	} {
		_, err := q.Enqueue(ctx, "work", t)
		must(err)
	}
	leases, err := s.Dispatch(ctx, "work", 10)
	must(err)
	for _, l := range leases {
		fmt.Printf("%s -> %s\n", l.Payload, l.Agent)
	}
	st, err := q.Stats("work")
	must(err)
	fmt.Println("still ready:", st.Hot+st.Overflow)
	// Output:
	// train -> gpu-1
	// parse -> cpu-1
	// still ready: 1
}
