package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flowdb/flowdb/queue"
	"github.com/spf13/cobra"
)

func (a *app) queueCmd() *cobra.Command {
	q := &cobra.Command{Use: "queue", Short: "Create, feed, drain and inspect task queues"}
	dlq := &cobra.Command{Use: "dlq", Short: "Dead letters: list, replay, purge"}
	dlq.AddCommand(a.dlqListCmd(), a.dlqOpCmd("replay"), a.dlqOpCmd("purge"))
	q.AddCommand(a.qCreateCmd(), a.qListCmd(), a.qStatsCmd(), a.qEnqueueCmd(), a.qLeaseCmd(),
		a.qAckCmd("ack"), a.qAckCmd("nack"), a.qInspectCmd(), dlq)
	return q
}

// parseID reads a task id, lease token or vector id: decimal, as --json
// prints it (a JSON string, so that tools that read numbers as float64,
// such as jq, keep all 64 bits), with or without its quotes.
func parseID(s string) (uint64, error) {
	t := s
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		t = t[1 : len(t)-1]
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, usageError{fmt.Errorf("bad id or token %q: want a decimal integer below 2^64", s)}
	}
	return v, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (a *app) qCreateCmd() *cobra.Command {
	var c queue.Config
	c2 := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a queue (no-op if it exists with the same settings)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.Name = args[0]
			return a.withStore(mayCreate, func(s *store) (output, error) {
				return output{}, s.Q.Create(cmd.Context(), c)
			})
		},
	}
	f := c2.Flags()
	f.IntVar(&c.HotCapacity, "hot", 0, "tasks held in memory (default 1000)")
	f.IntVar(&c.OverflowCapacity, "overflow", 0, "tasks held only on disk (default 10000; -1: bounded by --max-bytes)")
	f.Int64Var(&c.MaxBytes, "max-bytes", 0, "payload byte quota (0: none)")
	f.IntVar(&c.MaxAttempts, "max-attempts", 0, "leases before dead-lettering (default 5)")
	f.DurationVar(&c.LeaseDuration, "lease", 0, "default lease (default 30s)")
	f.DurationVar(&c.BackoffBase, "backoff", 0, "first retry delay (default 1s)")
	f.DurationVar(&c.BackoffMax, "backoff-max", 0, "longest retry delay (default 5m)")
	return c2
}

func (a *app) qListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List queues with their depths",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				var all []queue.Stats
				for _, n := range s.Q.Queues() {
					st, err := s.Q.Stats(n)
					if err != nil {
						return output{}, err
					}
					all = append(all, st)
				}
				return output{JSON: all, Text: func(w io.Writer) {
					fmt.Fprintf(w, "%-24s %8s %9s %8s %8s %8s %8s\n", "QUEUE", "HOT", "OVERFLOW", "DELAYED", "LEASED", "DEAD", "DONE")
					for _, st := range all {
						fmt.Fprintf(w, "%-24s %8d %9d %8d %8d %8d %8d\n", st.Name, st.Hot, st.Overflow, st.Delayed, st.Leased, st.Dead, st.Done)
					}
				}}, nil
			})
		},
	}
}

func (a *app) qStatsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats NAME",
		Short: "Depths, totals, rates and oldest task age of a queue",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				st, err := s.Q.Stats(args[0])
				if err != nil {
					return output{}, err
				}
				return output{JSON: st, Text: func(w io.Writer) {
					fmt.Fprintf(w, "queue     %s\nhot       %d\noverflow  %d\ndelayed   %d\nleased    %d\ndead      %d\ndone      %d\n",
						st.Name, st.Hot, st.Overflow, st.Delayed, st.Leased, st.Dead, st.Done)
					fmt.Fprintf(w, "capacity  %d\nbytes     %d\nenqueued  %d\nacked     %d\nretried   %d\noldest    %v\n",
						st.Capacity, st.Bytes, st.Enqueued, st.Acked, st.Retried, st.OldestAge.Round(time.Millisecond))
				}}, nil
			})
		},
	}
}

func (a *app) qEnqueueCmd() *cobra.Command {
	var t queue.Task
	var delay time.Duration
	var requires, tags string
	c := &cobra.Command{
		Use:   "enqueue NAME PAYLOAD",
		Short: "Add a task; prints its id once durable. PAYLOAD - reads standard input, @FILE a file",
		Long: "Add a task; prints its id once durable. PAYLOAD is the payload itself, hex:... for\n" +
			"bytes that are not text, - to read standard input, or @FILE to read a file (up to 4 MiB).",
		Args:        exactArgs(2, "NAME and PAYLOAD"),
		Annotations: map[string]string{valueArgs: "1"},
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.readValue(args[1])
			if err != nil {
				return err
			}
			t.Payload, t.Requires, t.Tags = p, splitList(requires), splitList(tags)
			if delay > 0 {
				t.NotBefore = time.Now().Add(delay)
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				id, err := s.Q.Enqueue(cmd.Context(), args[0], t)
				if err != nil {
					return output{}, err
				}
				return output{JSON: idJSON{id}, Text: func(w io.Writer) { fmt.Fprintln(w, id) }}, nil
			})
		},
	}
	f := c.Flags()
	f.IntVar(&t.Priority, "priority", 0, "0..9, higher first")
	f.StringVar(&t.IdempotencyKey, "key", "", "idempotency key")
	f.DurationVar(&delay, "delay", 0, "make the task ready only after this long")
	f.StringVar(&requires, "requires", "", "capabilities an agent needs, comma-separated")
	f.StringVar(&tags, "tags", "", "tags, comma-separated")
	return c
}

// idJSON is the id of a new task.
type idJSON struct {
	ID uint64 `json:"id,string"`
}

type leaseJSON struct {
	ID       uint64   `json:"id,string"`
	Token    uint64   `json:"token,string"`
	Expires  string   `json:"expires"`
	Attempt  int      `json:"attempt"`
	Priority int      `json:"priority"`
	Payload  string   `json:"payload"`
	Tags     []string `json:"tags,omitempty"`
}

func (a *app) qLeaseCmd() *cobra.Command {
	var agent, caps string
	var n int
	var leaseFor, wait time.Duration
	c := &cobra.Command{
		Use:   "lease NAME --agent A",
		Short: "Lease up to --n ready tasks; prints id, token and payload",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if agent == "" {
				return usageError{fmt.Errorf("--agent is required")}
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				ctx := cmd.Context()
				var ls []queue.Lease
				var err error
				if wait > 0 {
					wctx, cancel := context.WithTimeout(ctx, wait)
					ls, err = s.Q.LeaseWait(wctx, args[0], agent, n, splitList(caps), leaseFor)
					cancel()
					if wctx.Err() != nil && len(ls) == 0 {
						err = nil
					}
				} else {
					ls, err = s.Q.Lease(ctx, args[0], agent, n, splitList(caps), leaseFor)
				}
				if err != nil {
					return output{}, err
				}
				var out []leaseJSON
				for _, l := range ls {
					out = append(out, leaseJSON{l.ID, l.Token, l.Expires.UTC().Format(time.RFC3339Nano), l.Attempt, l.Priority, printable(l.Payload), l.Tags})
				}
				return output{JSON: out, Text: func(w io.Writer) {
					for _, l := range out {
						fmt.Fprintf(w, "%d\t%d\t%s\n", l.ID, l.Token, l.Payload)
					}
				}}, nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&agent, "agent", "", "agent id")
	f.IntVar(&n, "n", 1, "most tasks to lease")
	f.StringVar(&caps, "caps", "", "the agent's capabilities, comma-separated")
	f.DurationVar(&leaseFor, "for", 0, "lease length (default: the queue's)")
	f.DurationVar(&wait, "wait", 0, "block up to this long for a task")
	return c
}

func (a *app) qAckCmd(kind string) *cobra.Command {
	var text string
	short := map[string]string{"ack": "Complete a leased task", "nack": "Return a leased task for retry"}[kind]
	c := &cobra.Command{
		Use:   kind + " NAME ID TOKEN",
		Short: short,
		Args:  exactArgs(3, "NAME, ID and TOKEN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[1])
			if err != nil {
				return err
			}
			token, err := parseID(args[2])
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				if kind == "ack" {
					return output{}, s.Q.Ack(cmd.Context(), args[0], id, token, []byte(text))
				}
				return output{}, s.Q.Nack(cmd.Context(), args[0], id, token, text)
			})
		},
	}
	if kind == "ack" {
		c.Flags().StringVar(&text, "result", "", "result to store with the task")
	} else {
		c.Flags().StringVar(&text, "reason", "", "why the task failed")
	}
	return c
}

type taskJSON struct {
	queue.TaskInfo
	ID      uint64 `json:"id,string"` // shadows TaskInfo.ID: a string in JSON
	Payload string `json:"payload"`
	Result  string `json:"result,omitempty"`
}

// tasksOutput prints tasks one a line, or as a JSON array.
func tasksOutput(ts []queue.TaskInfo) output {
	out := []taskJSON{}
	for _, t := range ts {
		out = append(out, taskJSON{t, t.ID, printable(t.Payload), printable(t.Result)})
	}
	return output{JSON: out, Text: func(w io.Writer) {
		for _, t := range out {
			fmt.Fprintf(w, "%d\t%s\tprio %d\tattempts %d\t%s", t.ID, t.State, t.Priority, t.Attempts, t.Payload)
			if t.LastError != "" {
				fmt.Fprintf(w, "\terror: %s", t.LastError)
			}
			fmt.Fprintln(w)
		}
	}}
}

func (a *app) qInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME ID",
		Short: "Show a task",
		Args:  exactArgs(2, "NAME and ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[1])
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				t, err := s.Q.Get(cmd.Context(), args[0], id)
				if err != nil {
					return output{}, err
				}
				return tasksOutput([]queue.TaskInfo{t}), nil
			})
		},
	}
}

func (a *app) dlqListCmd() *cobra.Command {
	var limit int
	c := &cobra.Command{
		Use:   "list NAME",
		Short: "List dead letters, oldest first",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				ts, err := s.Q.Dead(cmd.Context(), args[0], limit)
				if err != nil {
					return output{}, err
				}
				return tasksOutput(ts), nil
			})
		},
	}
	c.Flags().IntVar(&limit, "limit", 100, "most to list (0: all)")
	return c
}

// countJSON is what a command that acts on many things prints.
type countJSON struct {
	OK      bool   `json:"ok"`
	Command string `json:"command"`
	Count   int    `json:"count"`
}

func (a *app) dlqOpCmd(kind string) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   kind + " NAME [ID...]",
		Short: map[string]string{"replay": "Re-enqueue dead letters", "purge": "Delete dead letters"}[kind],
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || (len(args) == 1 && !all) {
				return usageError{fmt.Errorf("%s needs NAME and task ids, or --all", cmdName(cmd))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []uint64
			for _, s := range args[1:] {
				id, err := parseID(s)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				ctx := cmd.Context()
				if all {
					ts, err := s.Q.Dead(ctx, args[0], queue.MaxBatch)
					if err != nil {
						return output{}, err
					}
					for _, t := range ts {
						ids = append(ids, t.ID)
					}
					if len(ids) == 0 {
						return output{JSON: countJSON{OK: true, Command: a.command},
							Text: func(w io.Writer) { fmt.Fprintln(w, "no dead letters") }}, nil
					}
				}
				var err error
				if kind == "replay" {
					err = s.Q.Replay(ctx, args[0], ids)
				} else {
					err = s.Q.Purge(ctx, args[0], ids)
				}
				if err != nil {
					return output{}, err
				}
				return output{JSON: countJSON{OK: true, Command: a.command, Count: len(ids)},
					Text: func(w io.Writer) { fmt.Fprintf(w, "%s: %s\n", kind, plural(len(ids), "dead letter")) }}, nil
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every dead letter (up to 10,000)")
	return c
}
