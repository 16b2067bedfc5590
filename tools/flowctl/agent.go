package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/flowdb/flowdb/registry"
	"github.com/spf13/cobra"
)

func (a *app) agentCmd() *cobra.Command {
	c := &cobra.Command{Use: "agent", Short: "The agent registry: list, inspect, register, deregister, heartbeat, expire"}
	c.AddCommand(a.agentListCmd(), a.agentInspectCmd(), a.agentRegisterCmd(), a.agentDeregisterCmd(),
		a.agentHeartbeatCmd(), a.agentExpireCmd())
	return c
}

func (a *app) agentListCmd() *cobra.Command {
	var f registry.Filter
	var caps string
	c := &cobra.Command{
		Use:   "list",
		Short: "List agents (filters: --pool, --caps, --health)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.Health != "" && f.Health != "healthy" && f.Health != "unhealthy" {
				return usageError{fmt.Errorf("--health must be healthy or unhealthy")}
			}
			f.Capabilities = splitList(caps)
			want := f.Health
			f.Health = "" // filtered below, on the health as of now
			return a.withStore(mustExist, func(s *store) (output, error) {
				var as []registry.Agent
				now := time.Now()
				for _, p := range s.R.List(f) {
					ag := *p // the registry's view: read-only
					ag.Healthy = healthyNow(&ag, now)
					if want == "" || (want == "healthy") == ag.Healthy {
						as = append(as, ag)
					}
				}
				return output{JSON: as, Text: func(w io.Writer) {
					fmt.Fprintf(w, "%-24s %-12s %-8s %8s %-24s %s\n", "ID", "POOL", "HEALTH", "LOAD", "LAST HEARTBEAT", "CAPABILITIES")
					for _, ag := range as {
						h := "healthy"
						if !ag.Healthy {
							h = "unhealthy"
						}
						fmt.Fprintf(w, "%-24s %-12s %-8s %4d/%-3d %-24s %s\n", ag.ID, ag.Pool, h, ag.Load, ag.Capacity,
							ag.LastHeartbeat.UTC().Format(time.RFC3339), strings.Join(ag.Capabilities, ","))
					}
				}}, nil
			})
		},
	}
	c.Flags().StringVar(&f.Pool, "pool", "", "only agents of this pool")
	c.Flags().StringVar(&caps, "caps", "", "only agents with all of these capabilities (comma-separated)")
	c.Flags().StringVar(&f.Health, "health", "", "healthy or unhealthy")
	return c
}

// healthyNow is an agent's health as of now: the registry marks an agent
// unhealthy only when an expiry runs (a running engine runs it every
// second; the CLI runs no loops), so an agent that has missed its
// heartbeats since is shown unhealthy here without running `agent expire`
// (the rule is the registry's: more than missedHeartbeats intervals).
func healthyNow(ag *registry.Agent, now time.Time) bool {
	return ag.Healthy && now.Sub(ag.LastHeartbeat) <= time.Duration(missedHeartbeats)*ag.HeartbeatInterval
}

func (a *app) agentInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect ID",
		Short: "Show one agent",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				p, err := s.R.Get(args[0])
				if err != nil {
					return output{}, err
				}
				ag := *p // the registry's view: read-only
				ag.Healthy = healthyNow(&ag, time.Now())
				return output{JSON: ag, Text: func(w io.Writer) {
					fmt.Fprintf(w, "id: %s\npool: %s\ncapabilities: %s\ncapacity: %d\nload: %d\nstatus: %s\nhealthy: %v\n",
						ag.ID, ag.Pool, strings.Join(ag.Capabilities, ","), ag.Capacity, ag.Load, ag.Status, ag.Healthy)
					fmt.Fprintf(w, "heartbeat interval: %v\nregistered: %s\nlast heartbeat: %s\n", ag.HeartbeatInterval,
						ag.Registered.UTC().Format(time.RFC3339Nano), ag.LastHeartbeat.UTC().Format(time.RFC3339Nano))
					for k, v := range ag.Labels {
						fmt.Fprintf(w, "label %s=%s\n", k, v)
					}
				}}, nil
			})
		},
	}
}

func (a *app) agentRegisterCmd() *cobra.Command {
	var spec registry.AgentSpec
	var caps string
	var labels []string
	c := &cobra.Command{
		Use:   "register ID",
		Short: "Register an agent (or redefine a registered one)",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.ID, spec.Capabilities = args[0], splitList(caps)
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return usageError{fmt.Errorf("label %q is not key=value", l)}
				}
				if spec.Labels == nil {
					spec.Labels = map[string]string{}
				}
				spec.Labels[k] = v
			}
			return a.withStore(mayCreate, func(s *store) (output, error) {
				return output{}, s.R.Register(cmd.Context(), spec)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&spec.Pool, "pool", "", "warm pool")
	f.StringVar(&caps, "caps", "", "capabilities (comma-separated)")
	f.IntVar(&spec.Capacity, "capacity", 1, "tasks the agent may hold at once")
	f.StringArrayVar(&labels, "label", nil, "key=value (repeatable)")
	f.DurationVar(&spec.HeartbeatInterval, "heartbeat", 0, "heartbeat interval (default 1s)")
	return c
}

func (a *app) agentDeregisterCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "deregister ID",
		Short: "Remove an agent",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				return output{}, s.R.Deregister(cmd.Context(), args[0])
			})
		},
	}
}

func (a *app) agentHeartbeatCmd() *cobra.Command {
	var load int
	var status string
	c := &cobra.Command{
		Use:   "heartbeat ID",
		Short: "Record a heartbeat (load and status) for an agent",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				return output{}, s.R.Heartbeat(cmd.Context(), args[0], load, status)
			})
		},
	}
	c.Flags().IntVar(&load, "load", 0, "tasks the agent holds")
	c.Flags().StringVar(&status, "status", "", "free-form status")
	return c
}

func (a *app) agentExpireCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "expire",
		Short: "Mark unhealthy the agents that missed their heartbeats (a running engine does this itself)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				ids, err := s.R.Expire(cmd.Context())
				if err != nil {
					return output{}, err
				}
				return output{JSON: ids, Text: func(w io.Writer) {
					fmt.Fprintf(w, "%s turned unhealthy", plural(len(ids), "agent"))
					if len(ids) > 0 {
						fmt.Fprintf(w, ": %s", strings.Join(ids, ","))
					}
					fmt.Fprintln(w)
				}}, nil
			})
		},
	}
}

// poolStatsNow is the registry's pool figures with health as of now
// (healthyNow): an agent that missed its heartbeats since the last expiry
// counts as unhealthy, not as warm or busy.
func poolStatsNow(r *registry.Registry, now time.Time) []registry.PoolStats {
	st := r.PoolStats()
	for i := range st {
		p := &st[i]
		for _, ag := range r.List(registry.Filter{Pool: p.Name}) {
			if ag.Healthy && !healthyNow(ag, now) {
				p.Unhealthy++
				if ag.Load > 0 {
					p.Busy--
				} else {
					p.Warm--
				}
			}
		}
	}
	return st
}

func (a *app) poolCmd() *cobra.Command {
	c := &cobra.Command{Use: "pool", Short: "Warm pools: define, list, stats"}
	var p registry.Pool
	def := &cobra.Command{
		Use:   "define NAME",
		Short: "Create or change a warm pool",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			return a.withStore(mayCreate, func(s *store) (output, error) {
				return output{}, s.R.DefinePool(cmd.Context(), p)
			})
		},
	}
	def.Flags().IntVar(&p.MinWarm, "min-warm", 0, "healthy idle agents to keep ready")
	def.Flags().IntVar(&p.MaxSize, "max", 0, "most healthy agents (0: unbounded)")
	def.Flags().DurationVar(&p.RetireAfter, "retire-after", 5*time.Minute, "idle time before an agent above max is offered for retirement")
	list := func(use, short string, args cobra.PositionalArgs) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.withStore(mustExist, func(s *store) (output, error) {
					st := poolStatsNow(s.R, time.Now())
					if len(args) == 1 {
						i := slices.IndexFunc(st, func(p registry.PoolStats) bool { return p.Name == args[0] })
						if i < 0 {
							return output{}, fmt.Errorf("pool %q: %w", args[0], registry.ErrNotFound)
						}
						st = st[i : i+1]
					}
					return output{JSON: st, Text: func(w io.Writer) {
						fmt.Fprintf(w, "%-16s %8s %8s %6s %6s %9s %8s\n", "POOL", "MIN WARM", "MAX", "WARM", "BUSY", "UNHEALTHY", "SPAWNING")
						for _, x := range st {
							fmt.Fprintf(w, "%-16s %8d %8d %6d %6d %9d %8d\n", x.Name, x.MinWarm, x.MaxSize, x.Warm, x.Busy, x.Unhealthy, x.Spawning)
						}
					}}, nil
				})
			},
		}
	}
	c.AddCommand(def, list("list", "List pools", exactArgs(0, "no arguments")),
		list("stats [NAME]", "Warm, busy, unhealthy and spawning agents per pool (or of pool NAME)", maxArgs(1, "at most one pool NAME")))
	return c
}
