// Command kvbench measures durable Set throughput and latency of flowdb
// against raw Pebble doing the same writes with the same sync, in the same
// run, on the same disk.
//
// Scenarios: 1, 64 and 256 concurrent writers each committing one 256-byte
// Set per call; 8 writers each committing batches of 100 Sets. Raw Pebble
// commits each call as one pebble.Batch with pebble.Sync; flowdb runs with
// its defaults (fsync before acknowledging). Each scenario runs -runs times
// on fresh stores, alternating which system goes first; the table shows
// medians and the flowdb/raw ratio of the medians.
//
//	cd bench && go run ./kvbench [-runs 5] [-dir /tmp] [-scale 1] [-json out.json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/bench/internal/prof"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
)

type scenario struct {
	Name    string
	Writers int
	PerCall int // Sets per commit
	Calls   int // total commits (all writers)
}

type result struct {
	OpsPerS float64       `json:"ops_per_s"`
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
}

type row struct {
	Scenario   string   `json:"scenario"`
	Flowdb     result   `json:"flowdb"`
	Raw        result   `json:"raw_pebble"`
	Ratio      float64  `json:"ratio"`
	FlowdbRuns []result `json:"flowdb_runs"`
	RawRuns    []result `json:"raw_runs"`
}

// writer is one system under test.
type writer interface {
	commit(ctx context.Context, keys [][]byte, val []byte) error
	close() error
}

type flowWriter struct{ d *db.DB }

func (w flowWriter) commit(ctx context.Context, keys [][]byte, val []byte) error {
	if len(keys) == 1 {
		return w.d.Set(ctx, "bench", keys[0], val)
	}
	b := w.d.NewBatch()
	for _, k := range keys {
		b.Set("bench", k, val)
	}
	return w.d.Commit(ctx, b)
}
func (w flowWriter) close() error { return w.d.Close() }

type rawWriter struct{ p *pebble.DB }

func (w rawWriter) commit(_ context.Context, keys [][]byte, val []byte) error {
	b := w.p.NewBatch()
	for _, k := range keys {
		b.Set(k, val, nil)
	}
	return b.Commit(pebble.Sync)
}
func (w rawWriter) close() error { return w.p.Close() }

var logRetention = 0 // set by -log-retention

func openFlow(dir string) (writer, error) {
	d, err := db.Open(dir, &db.Options{Logger: slog.New(slog.DiscardHandler), TTLReapInterval: -1, LogRetention: logRetention})
	return flowWriter{d}, err
}

// openRaw opens Pebble with the options flowdb gives it.
func openRaw(dir string) (writer, error) {
	po := db.PebbleOptions(0) // flowdb's defaults
	defer po.Cache.Unref()
	po.Logger = quietLogger{}
	p, err := pebble.Open(dir, po)
	return rawWriter{p}, err
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)      {}
func (quietLogger) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (quietLogger) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(1) }

func runOnce(s scenario, w writer) (result, error) {
	ctx := context.Background()
	val := make([]byte, 256)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	lat := make([][]time.Duration, s.Writers)
	errs := make(chan error, s.Writers)
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < s.Writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			keys := make([][]byte, s.PerCall)
			for c := g; c < s.Calls; c += s.Writers {
				for j := range keys {
					keys[j] = fmt.Appendf(keys[j][:0], "w%03d/%09d/%03d", g, c, j)
				}
				t0 := time.Now()
				if err := w.commit(ctx, keys, val); err != nil {
					errs <- err
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		}(g)
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	all := stats.Sorted(lat...)
	return result{
		OpsPerS: float64(s.Calls*s.PerCall) / el.Seconds(),
		P50:     stats.Pct(all, 50),
		P99:     stats.Pct(all, 99),
	}, nil
}

// median takes each field's median on its own.
func median(rs []result) result {
	return result{
		OpsPerS: stats.MedianOf(rs, func(r result) float64 { return r.OpsPerS }),
		P50:     stats.MedianOf(rs, func(r result) time.Duration { return r.P50 }),
		P99:     stats.MedianOf(rs, func(r result) time.Duration { return r.P99 }),
	}
}

func machine() string {
	kernel, _ := exec.Command("uname", "-r").Output()
	cpu := "unknown cpu"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (GOMAXPROCS %d), %s, linux %s", cpu, runtime.NumCPU(),
		runtime.GOMAXPROCS(0), runtime.Version(), strings.TrimSpace(string(kernel)))
}

func main() {
	runs := flag.Int("runs", 5, "repetitions per scenario (median reported)")
	dir := flag.String("dir", os.TempDir(), "directory for the stores (put it on the disk to measure)")
	scale := flag.Float64("scale", 1, "multiply the operation counts")
	only := flag.String("only", "", "run only scenarios whose name contains this")
	jsonOut := flag.String("json", "", "also write results as JSON to this file")
	flag.IntVar(&logRetention, "log-retention", 0, "flowdb Options.LogRetention: frames kept in the command log (0, the default: none)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run")
	flag.Parse()
	defer prof.CPU(*cpuprofile)()

	n := func(x int) int { return max(1, int(float64(x)**scale)) }
	scenarios := []scenario{
		{"1 writer, 1 set/commit", 1, 1, n(1500)},
		{"64 writers, 1 set/commit", 64, 1, n(40000)},
		{"256 writers, 1 set/commit", 256, 1, n(80000)},
		{"8 writers, 100 sets/commit", 8, 100, n(2400)},
	}
	fmt.Printf("kvbench: durable Set, 256 B values, fsync on every commit; %d runs per scenario, medians\n", *runs)
	fmt.Printf("machine: %s\nstores in: %s\n\n", machine(), *dir)
	fmt.Printf("%-28s %14s %10s %10s   %14s %10s %10s   %7s\n", "scenario", "flowdb ops/s", "p50", "p99", "raw ops/s", "p50", "p99", "ratio")
	var rows []row
	for _, s := range scenarios {
		if *only != "" && !strings.Contains(s.Name, *only) {
			continue
		}
		r := row{Scenario: s.Name}
		for i := 0; i < *runs; i++ {
			order := []string{"flowdb", "raw"}
			if i%2 == 1 {
				order = []string{"raw", "flowdb"}
			}
			for _, sys := range order {
				d, err := os.MkdirTemp(*dir, "kvbench-")
				if err != nil {
					fail(err)
				}
				var w writer
				if sys == "flowdb" {
					w, err = openFlow(d)
				} else {
					w, err = openRaw(d)
				}
				if err != nil {
					fail(err)
				}
				res, err := runOnce(s, w)
				if err != nil {
					fail(err)
				}
				if err := w.close(); err != nil {
					fail(err)
				}
				os.RemoveAll(d)
				if sys == "flowdb" {
					r.FlowdbRuns = append(r.FlowdbRuns, res)
				} else {
					r.RawRuns = append(r.RawRuns, res)
				}
			}
		}
		r.Flowdb, r.Raw = median(r.FlowdbRuns), median(r.RawRuns)
		r.Ratio = r.Flowdb.OpsPerS / r.Raw.OpsPerS
		rows = append(rows, r)
		fmt.Printf("%-28s %14.0f %10s %10s   %14.0f %10s %10s   %6.2fx\n", s.Name,
			r.Flowdb.OpsPerS, r.Flowdb.P50.Round(time.Microsecond), r.Flowdb.P99.Round(time.Microsecond),
			r.Raw.OpsPerS, r.Raw.P50.Round(time.Microsecond), r.Raw.P99.Round(time.Microsecond), r.Ratio)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"machine": machine(), "runs": *runs, "rows": rows}, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kvbench:", err)
	os.Exit(1)
}
