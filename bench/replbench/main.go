// Command replbench measures replicated enqueues: three flowdb nodes (one
// process, loopback, each with its own store and Raft log on the same disk)
// replicate one queue's shard through Dragonboat. Producers call
// queue.Enqueue (one task, 256-byte payload) through the nodes in turn; the
// replica's proposer packs up to -ops records per Raft proposal
// (db.Options.Batcher.MaxRecords), with db.Options.MaxShardInflight
// proposals in flight per shard and MaxInflight per node (the defaults, 4
// and 8, or -inflight). Each configuration runs on a fresh cluster; the
// one-operation-per-proposal baseline runs in the same process,
// alternating, -runs times (medians reported), with 16 and 16 in flight:
// a proposal that carries one operation gains nothing from waiting, and
// that setting measured faster for it.
//
// Reported per configuration: replicated operations per second (each
// acknowledged after Raft commit and apply on the proposing node), the
// commit latency of each Enqueue call, p50 and p99, and the process's CPU
// time (user and system, all three nodes) per operation, a figure other
// load on the machine disturbs less than a rate; then the single-operation
// commit latency with one producer.
//
// The same run measures the machine's ceiling for these writes with no Raft
// and no flowdb: raw Pebble doing what the three replicas must do for each
// operation at least, once in a Raft log store with a synced commit and
// once in a state store without sync (as Dragonboat's LogDB and the state
// machine do), each of three replicas with its own two stores, 16 writers per
// replica committing batches of -ops 256-byte values. Its figures are
// operations per second written on all three replicas, and CPU time per
// such operation.
//
// -queues N spreads the producers over N queues on N data shards (one Raft
// group each). -per sets the producers per record a proposal may carry
// (default 16: 1,600 producers at -ops 100). -rate paces the batched runs
// to a total offered rate, open loop: a ticker hands out one token per
// operation, each stamped with the time it is due, and an operation's
// latency counts from that time, so one that waits for a free producer
// counts its wait (tokens beyond a second's backlog are dropped and
// reported). -half does the same by itself: after each batched run it runs
// the configuration again offered half the ops/s that run reached, and
// reports that latency (the tail below the peak, in the same run), then
// runs the raw Pebble ceiling offered the same rate, open loop too (each
// replica's batches of -ops values due at that rate, their latency counted
// from when each was due): what the disk's writes alone do at that load.
// The ceiling's lines carry its batches' latency, p50 and p99 (a batch is
// a replica's synced log write and its state write).
// -logstore picks Dragonboat's log store (raftsm.Config.LogStore: pebble
// or tan), -store-memtables and -store-l0 the state stores' Pebble
// write-stall thresholds (memtables queued, L0 files), -logdb sets
// Dragonboat's log store size, -rtt-ms, -election-rtt and
// -heartbeat-rtt Raft's timing, and -v prints each run's latencies per
// half second beside its stores' flushes, compactions and write stalls, to
// see where a p99 comes from. -cpuprofile, -blockprofile and -mutexprofile
// profile the timed window of the first batched run at full speed (the
// peak, without start-up or the ceiling); -no-baseline skips the
// one-op-per-proposal runs when -ops does not name 1 (A/B runs).
//
//	cd bench && go run ./replbench [-runs 3] [-duration 5s] [-ops 1,10,100] [-half] [-rate 0] [-queues 1] [-per 16] [-logstore tan] [-store-memtables 4] [-store-l0 4,12] [-logdb large] [-rtt-ms 20] [-election-rtt 25] [-heartbeat-rtt 5] [-v]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/bench/internal/prof"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/raftsm"
	"github.com/flowdb/flowdb/wal"
)

var (
	leaderOnly   = flag.Bool("leader-only", false, "producers use only the node leading each queue's shard (no forwarding)")
	nQueues      = flag.Int("queues", 1, "queues (each on its own data shard) the producers spread over")
	logDB        = flag.String("logdb", "", "raftsm.Config.LogDB: Dragonboat's log store size (tiny, small, medium, large, or \"\" for raftsm's default, 8 MiB memtables)")
	logStore     = flag.String("logstore", "", "raftsm.Config.LogStore: Dragonboat's log store, pebble or tan (\"\": raftsm's default)")
	storeMemStop = flag.Int("store-memtables", 0, "the state stores' Pebble MemTableStopWritesThreshold (memtables queued before writes stall; 0: Pebble's default, 2)")
	storeL0      = flag.String("store-l0", "", "COMPACT,STOP: the state stores' Pebble L0CompactionThreshold and L0StopWritesThreshold (default: Pebble's, 4,12)")
	verbose      = flag.Bool("v", false, "print each run's latencies per half second and its stores' flushes, compactions and write stalls")
	rttMS        = flag.Int("rtt-ms", 0, "raftsm.Config.RTTMillisecond (0: the library's default, 20)")
	electionRTT  = flag.Int("election-rtt", 0, "raftsm.Config.ElectionRTT, in RTTs (0: the library's default, 25)")
	heartbeatRTT = flag.Int("heartbeat-rtt", 0, "raftsm.Config.HeartbeatRTT, in RTTs (0: the library's default, 5)")
	perRecord    = flag.Int("per", 16, "producers per record a proposal may carry (at least 16 in all)")
	inflight     = flag.String("inflight", "", "NODE,SHARD: db.Options.MaxInflight and MaxShardInflight for the batched runs (default: the library's)")
	cpuprofile   = flag.String("cpuprofile", "", "write a CPU profile of the timed window of the first batched run at full speed (the peak: no start-up, no ceiling) here")
	blockprofile = flag.String("blockprofile", "", "write a block profile (where goroutines waited) of the same window here; slows the run")
	mutexprofile = flag.String("mutexprofile", "", "write a mutex contention profile of the same window here; slows the run")
	rate         = flag.Int("rate", 0, "paced load: the batched runs' producers are offered this many enqueues per second in all, open loop (0: as fast as they go), to read latency below the peak")
	half         = flag.Bool("half", false, "after each batched run, run the same configuration paced (open loop) at half the ops/s that run reached, and report its latency")
)

// startAt returns when an operation starts: now, or with tokens (from pace)
// the time its token was due (false: pacing ended).
func startAt(tokens <-chan time.Time) (time.Time, bool) {
	if tokens == nil {
		return time.Now(), true
	}
	due, ok := <-tokens
	return due, ok
}

// pace returns a channel that carries rate tokens per second until stop is
// set (nil when rate is 0: no pacing), each token the time its operation
// is due: an open-loop load, whose latency is counted from that time, so
// an operation that waits for a free producer counts its wait. Tokens
// queue up to a second of the rate; beyond that they are dropped and
// counted in dropped (the offered rate was more than the producers could
// start).
func pace(rate int, stop *atomic.Bool, dropped *atomic.Int64) <-chan time.Time {
	if rate <= 0 {
		return nil
	}
	ch := make(chan time.Time, rate)
	go func() {
		defer close(ch)
		t0 := time.Now()
		every := time.Second / time.Duration(rate)
		sent := 0
		for !stop.Load() {
			due := int(time.Since(t0).Seconds() * float64(rate))
			for ; sent < due && !stop.Load(); sent++ {
				select {
				case ch <- t0.Add(time.Duration(sent) * every):
				default:
					dropped.Add(1)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return ch
}

// inflightFor returns the in-flight bounds of a run with maxRecords.
func inflightFor(maxRecords int) (node, shard int) {
	if maxRecords == 1 {
		return 16, 16
	}
	if *inflight != "" {
		fmt.Sscanf(*inflight, "%d,%d", &node, &shard)
	}
	return node, shard
}

// queueNames are -queues names on distinct data shards of placement p.
func queueNames(p db.Placement) []string {
	var names []string
	used := map[uint32]bool{}
	for i := 0; len(names) < *nQueues; i++ {
		n := fmt.Sprintf("bench-%d", i)
		if s := p.ShardFor(n); !used[s] {
			used[s] = true
			names = append(names, n)
		}
	}
	return names
}

// ceilingResult is a ceiling run's figures: operations per second
// written on all three replicas, the process's CPU time per operation, and
// the latency of each replica's batch (its synced log write and its state
// write), from when it began or, paced, from when it was due.
type ceilingResult struct {
	opsPerS  float64
	cpuPerOp time.Duration
	p50, p99 time.Duration
	dropped  int64
}

// ceiling drives raw Pebble through the writes three replicas make for
// each operation (see the package comment) for d. rate > 0 paces it, open
// loop like run: each replica is offered rate operations per second in
// batches of batch (so rate operations per second on all three), its 16
// writers taking the batches as they come due.
func ceiling(base string, batch, rate int, d time.Duration) (ceilingResult, error) {
	dir, err := os.MkdirTemp(base, "replbench-pebble-")
	if err != nil {
		return ceilingResult{}, err
	}
	defer os.RemoveAll(dir)
	type replica struct{ log, state *pebble.DB }
	var rs []replica
	defer func() {
		for _, r := range rs {
			r.log.Close()
			r.state.Close()
		}
	}()
	for i := range 3 {
		l, err := pebble.Open(filepath.Join(dir, fmt.Sprintf("log%d", i)), &pebble.Options{Logger: quietPebble{}})
		if err != nil {
			return ceilingResult{}, err
		}
		st, err := pebble.Open(filepath.Join(dir, fmt.Sprintf("state%d", i)), &pebble.Options{Logger: quietPebble{}})
		if err != nil {
			l.Close()
			return ceilingResult{}, err
		}
		rs = append(rs, replica{l, st})
	}
	var (
		stop    atomic.Bool
		ops     atomic.Int64
		wg      sync.WaitGroup
		first   atomic.Value
		mu      sync.Mutex
		lats    []time.Duration
		dropped atomic.Int64
	)
	val := make([]byte, 256)
	cpu0 := cpuTime()
	t0 := time.Now()
	for ri, r := range rs {
		var tokens <-chan time.Time
		if rate > 0 {
			tokens = pace(max(rate/batch, 1), &stop, &dropped)
		}
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := make([]byte, 16)
				binary.BigEndian.PutUint32(key, uint32(ri<<8|w))
				var seq uint64
				var mine []time.Duration
				for !stop.Load() {
					s, ok := startAt(tokens)
					if !ok {
						break
					}
					for _, st := range []struct {
						db   *pebble.DB
						sync *pebble.WriteOptions
					}{{r.log, pebble.Sync}, {r.state, pebble.NoSync}} {
						b := st.db.NewBatch()
						for range batch {
							seq++
							binary.BigEndian.PutUint64(key[8:], seq)
							b.Set(key, val, nil)
						}
						if err := b.Commit(st.sync); err != nil {
							first.CompareAndSwap(nil, err)
							stop.Store(true)
						}
						b.Close()
					}
					mine = append(mine, time.Since(s))
					ops.Add(int64(batch))
				}
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			}()
		}
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el, cpu := time.Since(t0), cpuTime()-cpu0
	if err, _ := first.Load().(error); err != nil {
		return ceilingResult{}, err
	}
	// Every replica wrote its share: an operation is on all three once
	// each replica wrote it, so divide by three.
	n := max(ops.Load()/3, 1)
	slices.Sort(lats)
	return ceilingResult{opsPerS: float64(n) / el.Seconds(), cpuPerOp: cpu / time.Duration(n),
		p50: stats.Pct(lats, 50), p99: stats.Pct(lats, 99), dropped: dropped.Load()}, nil
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

type result struct {
	opsPerS           float64
	cpuPerOp          time.Duration // the process's CPU time (user and system) per operation in the timed window
	offered           int           // paced runs: the offered rate, ops/s
	dropped           int64         // paced runs: tokens dropped (no producer free for a second's worth)
	p50, p99          time.Duration
	frames            float64 // records per proposal, measured
	retries, timeouts uint64
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type cluster struct {
	nodes  []*raftsm.Node
	qs     []*queue.Manager
	queues []string
}

func start(dir string, maxRecords int) (*cluster, error) {
	members := map[uint64]string{}
	for i := 1; i <= 3; i++ {
		members[uint64(i)] = freeAddr()
	}
	c := &cluster{}
	quiet := slog.New(slog.DiscardHandler)
	nodeIn, shardIn := inflightFor(maxRecords)
	for i := 1; i <= 3; i++ {
		var q *queue.Manager
		n, err := raftsm.Open(context.Background(), raftsm.Config{
			Dir: filepath.Join(dir, fmt.Sprintf("node%d", i)), ReplicaID: uint64(i), RaftAddress: members[uint64(i)],
			Members: members, RTTMillisecond: uint64(*rttMS), ElectionRTT: uint64(*electionRTT), HeartbeatRTT: uint64(*heartbeatRTT), LogDB: *logDB, LogStore: *logStore, Logger: quiet, DataShards: *nQueues,
			Store: &db.Options{Logger: quiet, TTLReapInterval: -1, Pebble: storeEvents(i), Batcher: wal.BatcherOptions{MaxRecords: maxRecords},
				MaxInflight: nodeIn, MaxShardInflight: shardIn},
			Attach: func(d *db.DB) error {
				var err error
				q, err = queue.Attach(d, &queue.Options{TickInterval: -1})
				return err
			},
		})
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		c.qs = append(c.qs, q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if err := n.WaitReady(ctx); err != nil {
			c.close()
			return nil, err
		}
	}
	c.queues = queueNames(c.nodes[0].DB().Placement())
	for _, name := range c.queues {
		if err := c.qs[0].Create(ctx, queue.Config{Name: name, HotCapacity: 1000, OverflowCapacity: 100_000_000, MaxBytes: 1 << 40}); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// leader returns the index of the node leading queue's shard.
func (c *cluster) leader(queue string) int {
	shard := c.nodes[0].DB().Placement().ShardFor(queue)
	id, _, _, _ := c.nodes[0].NodeHost().GetLeaderID(uint64(shard))
	for i, n := range c.nodes {
		if n.ReplicaID() == id {
			return i
		}
	}
	return 0
}

func (c *cluster) close() {
	for _, q := range c.qs {
		q.Close()
	}
	for _, n := range c.nodes {
		n.Close()
	}
}

// profiled is set once the profiles asked for were taken (run, from the
// main goroutine only).
var profiled bool

// window is the -v latency window.
const window = 500 * time.Millisecond

// run drives producers for d and measures; rate > 0 paces them (open
// loop, see pace), and each latency then counts from its token's due time.
func run(base string, maxRecords, producers, rate int, d time.Duration) (result, error) {
	dir, err := os.MkdirTemp(base, "replbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	c, err := start(dir, maxRecords)
	if err != nil {
		return result{}, err
	}
	defer c.close()
	payload := make([]byte, 256)
	var (
		stop    atomic.Bool
		ops     atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		lats    []time.Duration
		windows [][]time.Duration // -v: latencies by the window the call began in
		errs    atomic.Int64
		first   error
		dropped atomic.Int64
	)
	before := make([]db.Metrics, len(c.nodes))
	for i, n := range c.nodes {
		before[i] = n.DB().Metrics()
	}
	t0 := time.Now()
	cpu0 := cpuTime()
	stopProf := func() {}
	if maxRecords > 1 && rate == 0 && !profiled {
		profiled = true
		stopCPU, stopCont := prof.CPU(*cpuprofile), prof.Contention(*blockprofile, *mutexprofile)
		stopProf = func() { stopCPU(); stopCont() }
	}
	tokens := pace(rate, &stop, &dropped)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := c.qs[p%len(c.qs)]
			name := c.queues[p%len(c.queues)]
			if *leaderOnly {
				q = c.qs[c.leader(name)]
			}
			var mine []time.Duration
			for !stop.Load() {
				s, ok := startAt(tokens)
				if !ok {
					break
				}
				w := int(s.Sub(t0) / window)
				if _, err := q.Enqueue(context.Background(), name, queue.Task{Payload: payload}); err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						first = err
						mu.Unlock()
					}
					continue
				}
				lat := time.Since(s)
				mine = append(mine, lat)
				if *verbose {
					mu.Lock()
					for len(windows) <= w {
						windows = append(windows, nil)
					}
					windows[w] = append(windows[w], lat)
					mu.Unlock()
				}
				ops.Add(1)
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el := time.Since(t0)
	cpu := cpuTime() - cpu0
	stopProf()
	if first != nil {
		return result{}, fmt.Errorf("%d enqueues failed, first: %w", errs.Load(), first)
	}
	for i, l := range windows {
		if !*verbose {
			break
		}
		slices.Sort(l)
		if len(l) > 0 {
			fmt.Printf("    %s +%4.1fs: %6d ops  p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms\n", clock(t0.Add(time.Duration(i)*window)), float64(i)*window.Seconds(), len(l), ms(stats.Pct(l, 50)), ms(stats.Pct(l, 99)), ms(l[len(l)-1]))
		}
	}
	slices.Sort(lats)
	r := result{opsPerS: float64(ops.Load()) / el.Seconds(), offered: rate, dropped: dropped.Load()}
	if n := ops.Load(); n > 0 {
		r.cpuPerOp = cpu / time.Duration(n)
	}
	r.p50, r.p99 = stats.Pct(lats, 50), stats.Pct(lats, 99)
	var frames, records uint64
	for i, n := range c.nodes {
		m := n.DB().Metrics()
		frames += m.Frames - before[i].Frames
		records += m.Records - before[i].Records
	}
	if frames > 0 {
		r.frames = float64(records) / float64(frames)
	}
	for _, n := range c.nodes {
		r.retries += n.Counters().Retries
		r.timeouts += n.Counters().Timeouts
	}
	if *verbose {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.nodes[0].Status(ctx)
		cancel()
		for _, s := range st {
			fmt.Printf("    shard %d: leader %d, term %d (terms above 2 mean leader elections during the run)\n", s.Shard, s.Leader, s.Term)
		}
		if err != nil {
			fmt.Println("    status:", err)
		}
	}
	return r, nil
}

func main() {
	runs := flag.Int("runs", 3, "runs per configuration (median reported)")
	dur := flag.Duration("duration", 5*time.Second, "time each run produces for")
	opsFlag := flag.String("ops", "1,10,100", "operations per proposal to measure (1 is the baseline)")
	dirFlag := flag.String("dir", os.TempDir(), "directory for the nodes' data")
	noBaseline := flag.Bool("no-baseline", false, "skip the one-op-per-proposal baseline when -ops does not name it (A/B runs of one configuration)")
	flag.Parse()
	var opsList []int
	for _, f := range strings.Split(*opsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad -ops %q\n", f)
			os.Exit(2)
		}
		opsList = append(opsList, n)
	}
	if !slices.Contains(opsList, 1) && !*noBaseline {
		opsList = append([]int{1}, opsList...)
	}
	raftsm.QuietRaftLogs()
	fmt.Printf("replbench: 3 replicas on loopback, one process, %d CPUs, GOMAXPROCS %d; %d runs of %v each; %d queue(s) on as many data shards\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), *runs, *dur, *nQueues)
	type agg struct {
		ops, frames, raw []float64
		p50, p99         []time.Duration
		cpu, rawCPU      []time.Duration // CPU time per operation, replicated and in the ceiling
		rawP50, rawP99   []time.Duration // the ceiling's batch latency (the half runs: paced at the same offered rate)
		half             *agg            // -half: the paced runs at half this configuration's ops/s
	}
	res := map[int]*agg{}
	single := &agg{}
	for r := 0; r < *runs; r++ {
		for _, n := range opsList {
			// -per producers per record a proposal may carry.
			producers := max(*perRecord*n, 16)
			r0 := 0
			if n > 1 {
				r0 = *rate
			}
			x, err := run(*dirFlag, n, producers, r0, *dur)
			if err != nil {
				fmt.Fprintln(os.Stderr, "run:", err)
				os.Exit(1)
			}
			a := res[n]
			if a == nil {
				a = &agg{}
				res[n] = a
			}
			a.ops, a.frames = append(a.ops, x.opsPerS), append(a.frames, x.frames)
			a.p50, a.p99, a.cpu = append(a.p50, x.p50), append(a.p99, x.p99), append(a.cpu, x.cpuPerOp)
			fmt.Printf("  run %d: %3d ops/proposal, %4d producers: %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  CPU %5.1f µs/op  (%.1f records/proposal, %d retries, %d timeouts%s)\n",
				r+1, n, producers, x.opsPerS, ms(x.p50), ms(x.p99), us(x.cpuPerOp), x.frames, x.retries, x.timeouts, pacedNote(x))
			if *half && n > 1 {
				h, err := run(*dirFlag, n, producers, int(x.opsPerS/2), *dur)
				if err != nil {
					fmt.Fprintln(os.Stderr, "run:", err)
					os.Exit(1)
				}
				if a.half == nil {
					a.half = &agg{}
				}
				a.half.ops, a.half.raw = append(a.half.ops, h.opsPerS), append(a.half.raw, float64(h.offered))
				a.half.p50, a.half.p99, a.half.cpu = append(a.half.p50, h.p50), append(a.half.p99, h.p99), append(a.half.cpu, h.cpuPerOp)
				fmt.Printf("  run %d: %3d ops/proposal, %4d producers: %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  CPU %5.1f µs/op  (%.1f records/proposal, %d retries, %d timeouts%s)\n",
					r+1, n, producers, h.opsPerS, ms(h.p50), ms(h.p99), us(h.cpuPerOp), h.frames, h.retries, h.timeouts, pacedNote(h))
				// The ceiling offered the same rate: what the one disk's
				// writes alone do at p99 at that load.
				c, err := ceiling(*dirFlag, n, h.offered, *dur)
				if err != nil {
					fmt.Fprintln(os.Stderr, "raw pebble:", err)
					os.Exit(1)
				}
				a.half.rawP50, a.half.rawP99 = append(a.half.rawP50, c.p50), append(a.half.rawP99, c.p99)
				fmt.Printf("  run %d: raw Pebble ceiling paced the same (%d ops/s offered, batches of %d): %9.0f ops/s  batch p50 %7.2f ms  p99 %7.2f ms  (%d dropped)\n",
					r+1, h.offered, n, c.opsPerS, ms(c.p50), ms(c.p99), c.dropped)
			}
			c, err := ceiling(*dirFlag, n, 0, *dur)
			if err != nil {
				fmt.Fprintln(os.Stderr, "raw pebble:", err)
				os.Exit(1)
			}
			a.raw, a.rawCPU = append(a.raw, c.opsPerS), append(a.rawCPU, c.cpuPerOp)
			a.rawP50, a.rawP99 = append(a.rawP50, c.p50), append(a.rawP99, c.p99)
			fmt.Printf("  run %d: raw Pebble ceiling, %3d ops/batch: %9.0f ops/s on 3 replicas  CPU %5.1f µs/op  batch p50 %7.2f ms  p99 %7.2f ms\n", r+1, n, c.opsPerS, us(c.cpuPerOp), ms(c.p50), ms(c.p99))
		}
		x, err := run(*dirFlag, 1, 1, 0, *dur)
		if err != nil {
			fmt.Fprintln(os.Stderr, "run:", err)
			os.Exit(1)
		}
		single.ops = append(single.ops, x.opsPerS)
		single.p50, single.p99 = append(single.p50, x.p50), append(single.p99, x.p99)
		fmt.Printf("  run %d: single operation, 1 producer: %7.0f ops/s  p50 %6.2f ms  p99 %6.2f ms\n", r+1, x.opsPerS, ms(x.p50), ms(x.p99))
	}
	fmt.Println("medians:")
	for _, n := range opsList {
		a := res[n]
		vsBase := ""
		if b := res[1]; b != nil {
			vsBase = fmt.Sprintf("%.1fx the one-op baseline, ", stats.Median(a.ops)/stats.Median(b.ops))
		}
		fmt.Printf("  %3d ops/proposal: %9.0f replicated ops/s (%s%.2fx the raw Pebble ceiling of %.0f)  p50 %.2f ms  p99 %.2f ms  %.1f records/proposal  CPU %.1f µs/op (ceiling %.1f; its batches p50 %.2f ms, p99 %.2f ms)\n",
			n, stats.Median(a.ops), vsBase, stats.Median(a.ops)/stats.Median(a.raw), stats.Median(a.raw), ms(stats.Median(a.p50)), ms(stats.Median(a.p99)), stats.Median(a.frames),
			us(stats.Median(a.cpu)), us(stats.Median(a.rawCPU)), ms(stats.Median(a.rawP50)), ms(stats.Median(a.rawP99)))
		if h := a.half; h != nil {
			fmt.Printf("  %3d ops/proposal at half the peak (open loop, offered %.0f ops/s): %9.0f ops/s  p50 %.2f ms  p99 %.2f ms  CPU %.1f µs/op; the raw ceiling paced the same: batches p50 %.2f ms, p99 %.2f ms\n",
				n, stats.Median(h.raw), stats.Median(h.ops), ms(stats.Median(h.p50)), ms(stats.Median(h.p99)), us(stats.Median(h.cpu)), ms(stats.Median(h.rawP50)), ms(stats.Median(h.rawP99)))
		}
	}
	fmt.Printf("  single-operation commit, 1 producer: p50 %.2f ms  p99 %.2f ms (%.0f ops/s)\n",
		ms(stats.Median(single.p50)), ms(stats.Median(single.p99)), stats.Median(single.ops))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// pacedNote describes a paced run's offered load for a run's line.
func pacedNote(x result) string {
	if x.offered == 0 {
		return ""
	}
	return fmt.Sprintf(", paced: offered %d ops/s, %d dropped", x.offered, x.dropped)
}

// storeEvents applies -store-memtables and -store-l0 to node's store and,
// with -v, prints its write stalls, flushes and compactions as they end,
// timed like the -v latency windows.
func storeEvents(node int) func(*pebble.Options) {
	return func(o *pebble.Options) {
		if *storeMemStop > 0 {
			o.MemTableStopWritesThreshold = *storeMemStop
		}
		if *storeL0 != "" {
			fmt.Sscanf(*storeL0, "%d,%d", &o.L0CompactionThreshold, &o.L0StopWritesThreshold)
		}
		if !*verbose {
			return
		}
		var t0 time.Time
		o.EventListener.WriteStallBegin = func(info pebble.WriteStallBeginInfo) {
			t0 = time.Now()
			fmt.Printf("    %s node %d store write stall: %s\n", clock(t0), node, info.Reason)
		}
		o.EventListener.WriteStallEnd = func() {
			fmt.Printf("    %s node %d store write stall over after %v\n", clock(time.Now()), node, time.Since(t0).Round(time.Millisecond))
		}
		o.EventListener.FlushEnd = func(info pebble.FlushInfo) {
			fmt.Printf("    %s node %d store flush took %v\n", clock(time.Now()), node, info.TotalDuration.Round(time.Millisecond))
		}
		o.EventListener.CompactionEnd = func(info pebble.CompactionInfo) {
			fmt.Printf("    %s node %d store compaction took %v\n", clock(time.Now()), node, info.TotalDuration.Round(time.Millisecond))
		}
	}
}

// clock is a wall-clock time as seconds.milliseconds within the minute.
func clock(t time.Time) string { return t.Format("05.000") }
