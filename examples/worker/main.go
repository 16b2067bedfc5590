package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/client"
)

// config is the worker's command line.
type config struct {
	server, token, queue, agent string
	capacity, max               int
	heartbeat, lease            time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.server, "server", "http://127.0.0.1:7300", "flowdb server URL")
	flag.StringVar(&c.token, "token", os.Getenv("FLOWDB_TOKEN"), "bearer token (default $FLOWDB_TOKEN)")
	flag.StringVar(&c.queue, "queue", "jobs", "queue to work")
	flag.StringVar(&c.agent, "agent", "worker-1", "agent id")
	flag.IntVar(&c.capacity, "capacity", 4, "tasks held at once")
	flag.IntVar(&c.max, "max", 0, "stop after this many tasks (0: run until signalled)")
	flag.DurationVar(&c.heartbeat, "heartbeat", time.Second, "heartbeat interval")
	flag.DurationVar(&c.lease, "lease", 30*time.Second, "lease length")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := run(ctx, c)
	log.Printf("worker %s: %d tasks done", c.agent, n)
	if err != nil {
		log.Fatal(err)
	}
}

// run registers the agent, heartbeats and works assigned tasks until ctx
// ends or max tasks are done; it returns how many it acked.
func run(ctx context.Context, c config) (int, error) {
	cl, err := client.New(c.server, &client.Options{Token: c.token})
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := cl.Register(ctx, client.AgentSpec{ID: c.agent, Capacity: c.capacity, HeartbeatInterval: c.heartbeat}); err != nil {
		return 0, fmt.Errorf("register: %w", err)
	}
	defer cl.Deregister(context.Background(), c.agent)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var load atomic.Int64
	go func() {
		t := time.NewTicker(c.heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := cl.Heartbeat(ctx, c.agent, int(load.Load()), "working"); err != nil && ctx.Err() == nil {
					log.Printf("heartbeat: %v", err)
				}
			}
		}
	}()
	done := 0
	for l, err := range cl.Assignments(ctx, c.agent, []string{c.queue}, c.lease) {
		if err != nil {
			return done, fmt.Errorf("assignments: %w", err)
		}
		load.Add(1)
		result := bytes.ToUpper(l.Payload)
		err := cl.Ack(ctx, l.Queue, l.ID, l.Token, result)
		load.Add(-1)
		if err != nil {
			// A lost lease (it expired, or the task was canceled) is the
			// queue's business now: log it and go on.
			log.Printf("ack %d: %v", l.ID, err)
			continue
		}
		if done++; c.max > 0 && done >= c.max {
			break
		}
	}
	return done, ctx.Err()
}
