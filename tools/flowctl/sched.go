package main

import (
	"fmt"
	"io"
	"time"

	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/spf13/cobra"
)

func (a *app) schedCmd() *cobra.Command {
	c := &cobra.Command{Use: "sched", Short: "The scheduler: stats"}
	c.AddCommand(a.schedStatsCmd())
	return c
}

// schedStatsOut is what `sched stats` prints: the agents' load as the
// registry and the queues hold it, and the ready tasks waiting for them.
type schedStatsOut struct {
	sched.Stats
	Ready map[string]int64 `json:"ready"`
}

func (a *app) schedStatsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Agents, capacity, tasks held, utilization and balance; ready tasks per queue",
		Long: "Computed from the store: the healthy agents, their capacity and the tasks they hold\n" +
			"(pull leases and dispatched ones), utilization min/mean/max and balance (min/max),\n" +
			"unhealthy agents still holding tasks, and the ready tasks of each queue. Dispatch\n" +
			"counters (assigned, affinity hits) belong to the process that dispatches.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				now := time.Now()
				healthy := func(ag *registry.Agent) bool { return healthyNow(ag, now) }
				out := schedStatsOut{Stats: sched.AgentStatsWith(s.Q, s.R, healthy), Ready: map[string]int64{}}
				out.Policy = ""
				queues := s.Q.Queues()
				for _, name := range queues {
					st, err := s.Q.Stats(name)
					if err != nil {
						return output{}, err
					}
					out.Ready[name] = st.Hot + st.Overflow
				}
				return output{JSON: out, Text: func(w io.Writer) {
					st := out.Stats
					fmt.Fprintf(w, "agents            %d healthy, capacity %d, holding %d\n", st.Agents, st.Capacity, st.Held)
					fmt.Fprintf(w, "utilization       min %.2f  mean %.2f  max %.2f  balance %.2f\n", st.UtilMin, st.UtilMean, st.UtilMax, st.Balance)
					fmt.Fprintf(w, "unhealthy holding %d agents\n", st.UnhealthyHolding)
					for _, name := range queues {
						fmt.Fprintf(w, "ready             %-20s %d\n", name, out.Ready[name])
					}
				}}, nil
			})
		},
	}
}
