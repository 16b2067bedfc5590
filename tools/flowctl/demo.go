package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/spf13/cobra"
)

// step is one measured stage of the demo.
type step struct {
	Name     string  `json:"name"`
	What     string  `json:"what"`
	Ops      int     `json:"ops"`
	Seconds  float64 `json:"seconds"`
	OpsPerS  float64 `json:"ops_per_s"`
	P50Micro float64 `json:"p50_us,omitempty"`
	P99Micro float64 `json:"p99_us,omitempty"`
}

type demoReport struct {
	Dir             string  `json:"dir"`
	Steps           []step  `json:"steps"`
	GroupCommitGain float64 `json:"group_commit_gain"`
	RecordsPerFrame float64 `json:"records_per_frame"`
	Frames          uint64  `json:"frames"`
	Records         uint64  `json:"records"`
	CheckedKeys     int     `json:"checked_keys"`
	CheckOK         bool    `json:"check_ok"`
	DiskBytes       uint64  `json:"disk_bytes"`
}

func pct(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := int(float64(len(lat)-1) * p)
	return float64(lat[i]) / 1e3
}

// timed runs fn(worker, i) for n operations over `workers` goroutines and
// returns the measured step.
func timed(name, what string, workers, n int, fn func(w, i int) error) (step, error) {
	lat := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				t0 := time.Now()
				if err := fn(w, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lat...)
	return step{Name: name, What: what, Ops: n, Seconds: el.Seconds(), OpsPerS: float64(n) / el.Seconds(),
		P50Micro: pct(all, 0.50), P99Micro: pct(all, 0.99)}, firstErr
}

func (a *app) demoCmd() *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run a short realistic workload on an embedded store and print what it measured",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := a.dir
			if dir == "" {
				tmp, err := os.MkdirTemp("", "flowdb-demo-")
				if err != nil {
					return err
				}
				dir = tmp
				if !keep {
					defer os.RemoveAll(tmp)
				}
			}
			rep, err := runDemo(cmd.Context(), dir, a)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(rep)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary store directory")
	return c
}

func runDemo(ctx context.Context, dir string, a *app) (*demoReport, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	say := func(format string, args ...any) {
		if !a.json {
			fmt.Fprintf(a.out, format, args...)
		}
	}
	d, err := db.Open(dir, &db.Options{Logger: a.logger()})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rep := &demoReport{Dir: dir}
	say("flowdb demo: embedded store in %s (durability: fsync before every acknowledgement)\n\n", dir)
	show := func(s step) {
		rep.Steps = append(rep.Steps, s)
		lat := "            -              -"
		if s.P50Micro > 0 {
			lat = fmt.Sprintf("p50 %7.1f µs  p99 %8.1f µs", s.P50Micro, s.P99Micro)
		}
		say("  %-20s %7d ops %9.0f ops/s  %s   %s\n", s.Name, s.Ops, s.OpsPerS, lat, s.What)
	}

	// 1. One agent writing its session alone: every write pays its own fsync.
	s1, err := timed("session, 1 writer", "agent session upserts, one durable write at a time", 1, 300,
		func(w, i int) error {
			return d.SetTTL(ctx, "sessions", fmt.Appendf(nil, "solo/%d", i), []byte(`{"state":"active"}`), time.Hour)
		})
	if err != nil {
		return nil, err
	}
	show(s1)
	// 2. 64 agents at once: group commit shares each fsync.
	s2, err := timed("session, 64 writers", "the same from 64 agents at once (group commit)", 64, 6400,
		func(w, i int) error {
			return d.SetTTL(ctx, "sessions", fmt.Appendf(nil, "agent-%02d/%d", w, i), []byte(`{"state":"active"}`), time.Hour)
		})
	if err != nil {
		return nil, err
	}
	show(s2)
	rep.GroupCommitGain = s2.OpsPerS / s1.OpsPerS
	// 3. Bulk memory import in atomic batches of 100.
	const agents, perAgent = 50, 400
	s3, err := timed("memory import", "agent memories, atomic batches of 100 keys, 4 writers", 4, agents*perAgent/100,
		func(w, i int) error {
			b := d.NewBatch()
			for j := 0; j < 100; j++ {
				n := i*100 + j
				b.Set("memory", fmt.Appendf(nil, "agent-%02d/mem-%04d", n%agents, n/agents),
					fmt.Appendf(nil, "observation %d: the user prefers concise answers", n))
			}
			return d.Commit(ctx, b)
		})
	if err != nil {
		return nil, err
	}
	s3.Ops *= 100
	s3.OpsPerS *= 100
	s3.P50Micro, s3.P99Micro = 0, 0
	show(s3)
	// 4. Point reads.
	s4, err := timed("point reads", "random Get of agent memories, 2 readers", 2, 200_000,
		func(w, i int) error {
			n := rand.IntN(agents * perAgent)
			_, err := d.Get(ctx, "memory", fmt.Appendf(nil, "agent-%02d/mem-%04d", n%agents, n/agents))
			return err
		})
	if err != nil {
		return nil, err
	}
	show(s4)
	// 5. Prefix scans: one agent's memories.
	s5, err := timed("prefix scans", "all memories of one agent (400 keys each)", 1, 200,
		func(w, i int) error {
			n := 0
			for _, err := range d.Scan(ctx, "memory", db.ScanOptions{Prefix: fmt.Appendf(nil, "agent-%02d/", i%agents)}) {
				if err != nil {
					return err
				}
				n++
			}
			if n != perAgent {
				return fmt.Errorf("scan found %d memories, want %d", n, perAgent)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	show(s5)
	// 6. Expiry: short-lived locks vanish at once and are reclaimed.
	b := d.NewBatch()
	for i := 0; i < 500; i++ {
		b.SetTTL("locks", fmt.Appendf(nil, "task-%d", i), []byte("held"), 200*time.Millisecond)
	}
	if err := d.Commit(ctx, b); err != nil {
		return nil, err
	}
	time.Sleep(250 * time.Millisecond)
	visible := 0
	for _, err := range d.Scan(ctx, "locks", db.ScanOptions{}) {
		if err != nil {
			return nil, err
		}
		visible++
	}
	t0 := time.Now()
	reaped, err := d.ReapExpired(ctx)
	if err != nil {
		return nil, err
	}
	show(step{Name: "ttl reclaim", What: fmt.Sprintf("500 locks with 200ms TTL: %d visible after 250ms, %d reclaimed", visible, reaped),
		Ops: reaped, Seconds: time.Since(t0).Seconds(), OpsPerS: float64(reaped) / time.Since(t0).Seconds()})
	if visible != 0 {
		return nil, errors.New("expired keys were visible")
	}
	// 7. Forget an agent: one atomic range deletion.
	t0 = time.Now()
	if err := d.DeletePrefix(ctx, "memory", []byte("agent-07/")); err != nil {
		return nil, err
	}
	if _, err := d.Get(ctx, "memory", []byte("agent-07/mem-0001")); !errors.Is(err, db.ErrNotFound) {
		return nil, fmt.Errorf("DeletePrefix left a key: %v", err)
	}
	show(step{Name: "forget agent", What: "DeletePrefix of agent-07's 400 memories, durable", Ops: 1,
		Seconds: time.Since(t0).Seconds(), OpsPerS: 1 / time.Since(t0).Seconds()})

	m := d.Metrics()
	rep.Frames, rep.Records, rep.RecordsPerFrame, rep.DiskBytes = m.Frames, m.Records, m.RecordsPerFrame, m.DiskBytes
	chk, err := d.Check(ctx, nil)
	if err != nil {
		return nil, err
	}
	rep.CheckedKeys, rep.CheckOK = chk.Keys, chk.OK()
	say("\n  group commit: 64 writers ran %.1fx the single writer's rate (frames share fsyncs); %d records in %d frames\n",
		rep.GroupCommitGain, m.Records, m.Frames)
	say("  check: %d keys walked, block checksums and invariants verified, damage: %v; disk %s\n",
		chk.Keys, !chk.OK(), humanBytes(m.DiskBytes))
	if !chk.OK() {
		return rep, fmt.Errorf("check found damage: %s", chk.Problems[0].Err)
	}
	return rep, nil
}
