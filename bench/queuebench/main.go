// Command queuebench measures the durable task lifecycle (enqueue -> lease ->
// ack) of flowdb against, in the same run and on the same disk:
//
//   - raw Pebble doing the equivalent synced writes with no queue logic and
//     no reads: per task a body, a small state record and a ready entry
//     on enqueue; on lease the ready entry deleted, a lease entry and the
//     state rewritten; on ack the lease entry deleted, a done entry and the
//     state rewritten (what flowdb's queue writes), and
//   - NATS JetStream embedded in-process: a work-queue stream on file
//     storage, a pull consumer with explicit acks, once with sync_always and
//     once with its default sync interval.
//
// Producers submit one task per call; consumers lease up to 32 tasks per call
// and acknowledge them (flowdb: one AckBatch record; raw: one batch; NATS: an
// Ack per message, which JetStream batches on the wire and does not confirm;
// flowdb and raw consumers wait for each durable ack before leasing again).
// Tasks/s counts
// tasks acknowledged from the first enqueue to the last ack; enqueue
// latency is per call. Each scenario repeats -runs times (median), systems
// alternating.
//
//	cd bench && go run ./queuebench [-runs 3] [-tasks 60000] [-dir /tmp]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/bench/internal/prof"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
)

type result struct {
	TasksPerS float64
	P50, P99  time.Duration
}

// system runs one lifecycle: producers enqueue tasks, consumers drain them.
type system interface {
	// enqueue submits n tasks in one call (one durable operation where the
	// system has one).
	enqueue(ctx context.Context, payloads [][]byte) error
	// consume leases and acks until stop is closed and nothing is left; it
	// adds each acked task to done.
	consume(ctx context.Context, worker int, done *atomic.Int64, total int64) error
	close() error
}

const consumers = 8

// payloadSize is every task's payload in bytes.
const payloadSize = 256

// fillPayloads gives each of ps its own payload for the next call. With
// -payload random (the default) the bytes come from a per-producer PCG, so
// no two tasks share content and Pebble's block compression (and
// JetStream's, were it on) has nothing to find, as with encrypted or
// already-compressed payloads. With -payload text every task carries the
// same 256-byte alphabet run, which compresses about tenfold: the best case
// for the LSM's flushes and compactions.
func fillPayloads(ps [][]byte, rng *rand.PCG) {
	for i := range ps {
		if ps[i] == nil {
			ps[i] = make([]byte, payloadSize)
		}
		p := ps[i]
		if *payloadKind == "text" {
			for j := range p {
				p[j] = byte('a' + j%26)
			}
			continue
		}
		for j := 0; j+8 <= len(p); j += 8 {
			binary.LittleEndian.PutUint64(p[j:], rng.Uint64())
		}
	}
}

// run drives one lifecycle. batch is tasks per enqueue call; rate, if > 0,
// paces the producers to that many tasks per second in total.
func run(sys system, producers, tasks, batch int, rate float64) (result, error) {
	ctx := context.Background()
	tasks -= tasks % batch // whole calls only: consumers wait for every task enqueued
	var done atomic.Int64
	lat := make([][]time.Duration, producers)
	errs := make(chan error, producers+consumers)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < consumers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			if err := sys.consume(ctx, c, &done, int64(tasks)); err != nil {
				errs <- err
			}
		}(c)
	}
	var pwg sync.WaitGroup
	for p := 0; p < producers; p++ {
		pwg.Add(1)
		go func(p int) {
			defer pwg.Done()
			calls := tasks / batch
			var tick *time.Ticker
			if rate > 0 {
				// Producers tick out of phase, evenly spread over one
				// period, so that calls arrive spread out rather than all
				// at once every period.
				period := time.Duration(float64(time.Second) * float64(producers*batch) / rate)
				time.Sleep(period * time.Duration(p) / time.Duration(producers))
				tick = time.NewTicker(period)
				defer tick.Stop()
			}
			rng := rand.NewPCG(uint64(p), 0x9e3779b97f4a7c15)
			for i := p; i < calls; i += producers {
				// Fresh slices each call: a system may keep a payload
				// it was handed until the task is acked.
				ps := make([][]byte, batch)
				fillPayloads(ps, rng)
				if tick != nil {
					<-tick.C
				}
				t0 := time.Now()
				if err := sys.enqueue(ctx, ps); err != nil {
					errs <- err
					return
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		}(p)
	}
	pwg.Wait()
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	all := stats.Sorted(lat...)
	return result{TasksPerS: float64(done.Load()) / el.Seconds(), P50: stats.Pct(all, 50), P99: stats.Pct(all, 99)}, nil
}

// ---- flowdb ----

type flowSys struct {
	d *db.DB
	q *queue.Manager
}

func openFlow(dir string) (system, error) {
	d, err := db.Open(dir, &db.Options{Logger: slog.New(slog.DiscardHandler), TTLReapInterval: -1})
	if err != nil {
		return nil, err
	}
	q, err := queue.Attach(d, nil)
	if err != nil {
		return nil, err
	}
	if err := q.Create(context.Background(), queue.Config{Name: "bench", HotCapacity: *hotCap, OverflowCapacity: 10_000_000}); err != nil {
		return nil, err
	}
	return &flowSys{d, q}, nil
}

func (s *flowSys) enqueue(ctx context.Context, ps [][]byte) error {
	ts := make([]queue.Task, len(ps))
	for i := range ts {
		ts[i] = queue.Task{Payload: ps[i]}
	}
	_, err := s.q.EnqueueBatch(ctx, "bench", ts)
	return err
}

func (s *flowSys) consume(ctx context.Context, w int, done *atomic.Int64, total int64) error {
	agent := fmt.Sprintf("c%d", w)
	for done.Load() < total {
		lctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		ls, err := s.q.LeaseWait(lctx, "bench", agent, *leaseN, nil, 0)
		cancel()
		if err != nil && lctx.Err() == nil {
			return err
		}
		if len(ls) == 0 {
			continue
		}
		items := make([]queue.AckItem, len(ls))
		for i, l := range ls {
			items[i] = queue.AckItem{ID: l.ID, Token: l.Token}
		}
		errs, err := s.q.AckBatch(ctx, "bench", items)
		if err != nil {
			return err
		}
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
		done.Add(int64(len(ls)))
	}
	return nil
}

func (s *flowSys) close() error {
	if *verbose {
		m := s.d.Metrics()
		fmt.Printf("  flowdb: %d frames, %.1f records/frame, mean commit %v (visibility wait %v, apply %v, write %v, sync wait %v)\n",
			m.Frames, m.RecordsPerFrame, m.MeanCommit, m.MeanVisibilityWait, m.MeanApply, m.MeanWrite, m.MeanSyncWait)
		// Metrics.Total folds the WAL's bytes into TableBytesFlushed, so
		// tables written by flushes are read from L0 alone.
		pm := s.d.Pebble().Metrics()
		t := pm.Total()
		fmt.Printf("  pebble: %.1f MB to the WAL, %.1f MB of tables flushed, %.1f MB written by compactions\n",
			float64(pm.WAL.BytesWritten)/1e6, float64(pm.Levels[0].TableBytesFlushed)/1e6, float64(t.TableBytesCompacted)/1e6)
		fmt.Println("  " + fsyncs(pm))
	}
	s.q.Close()
	return s.d.Close()
}

var (
	verbose     = flag.Bool("v", false, "print flowdb's commit and Pebble's flush and compaction figures after each run")
	leaseN      = flag.Int("lease", 32, "tasks each consumer leases (fetches) per call, then acks in one call")
	hotCap      = flag.Int("hot", 0, "flowdb's queue HotCapacity (0: the default, 1,000)")
	payloadKind = flag.String("payload", "random", "task payloads: random (each task its own incompressible bytes) or text (one compressible alphabet run)")
)

// ---- raw Pebble: the same writes, no queue logic ----

type rawSys struct {
	p     *pebble.DB
	next  atomic.Uint64
	ready chan uint64
}

func openRaw(dir string) (system, error) {
	po := db.PebbleOptions(0) // flowdb's defaults
	defer po.Cache.Unref()
	po.Logger = quietLogger{}
	p, err := pebble.Open(dir, po)
	if err != nil {
		return nil, err
	}
	return &rawSys{p: p, ready: make(chan uint64, 1<<22)}, nil
}

// rawState stands for a task's state record (flowdb's is 20-40 bytes).
var rawState = make([]byte, 32)

func rk(prefix byte, id uint64) []byte { return binary.BigEndian.AppendUint64([]byte{prefix}, id) }

func (s *rawSys) enqueue(ctx context.Context, ps [][]byte) error {
	b := s.p.NewBatch()
	ids := make([]uint64, len(ps))
	for i := range ids {
		ids[i] = s.next.Add(1)
		b.Set(rk('t', ids[i]), ps[i], nil)
		b.Set(rk('s', ids[i]), rawState, nil)
		b.Set(rk('r', ids[i]), nil, nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for _, id := range ids {
		s.ready <- id
	}
	return nil
}

func (s *rawSys) consume(ctx context.Context, w int, done *atomic.Int64, total int64) error {
	for done.Load() < total {
		var ids []uint64
		select {
		case id := <-s.ready:
			ids = append(ids, id)
		case <-time.After(50 * time.Millisecond):
			continue
		}
		for len(ids) < *leaseN {
			select {
			case id := <-s.ready:
				ids = append(ids, id)
				continue
			default:
			}
			break
		}
		lease, ack := s.p.NewBatch(), s.p.NewBatch()
		for _, id := range ids {
			lease.Delete(rk('r', id), nil)
			lease.Set(rk('l', id), nil, nil)
			lease.Set(rk('s', id), rawState, nil)
			ack.Delete(rk('l', id), nil)
			ack.Delete(rk('t', id), nil) // as flowdb's Ack deletes the body
			ack.Set(rk('d', id), nil, nil)
			ack.Set(rk('s', id), rawState, nil)
		}
		if err := lease.Commit(pebble.Sync); err != nil {
			return err
		}
		if err := ack.Commit(pebble.Sync); err != nil {
			return err
		}
		done.Add(int64(len(ids)))
	}
	return nil
}

func (s *rawSys) close() error {
	if *verbose {
		fmt.Println("  raw " + fsyncs(s.p.Metrics()))
	}
	return s.p.Close()
}

// fsyncs summarizes Pebble's WAL fsync latency histogram: how many, the
// median, the 99th and 99.9th percentiles (upper bounds of their buckets,
// which are 100 µs wide up to 5 ms) and how many took over 10 ms.
func fsyncs(m *pebble.Metrics) string {
	var dm dto.Metric
	if m.LogWriter.FsyncLatency == nil || m.LogWriter.FsyncLatency.Write(&dm) != nil || dm.Histogram == nil {
		return "WAL fsyncs: not recorded"
	}
	h := dm.Histogram
	n := h.GetSampleCount()
	q := func(f float64) time.Duration {
		for _, b := range h.Bucket {
			if float64(b.GetCumulativeCount()) >= f*float64(n) {
				return time.Duration(b.GetUpperBound())
			}
		}
		return -1
	}
	var over10 uint64
	for _, b := range h.Bucket {
		if b.GetUpperBound() <= float64(10*time.Millisecond) {
			over10 = n - b.GetCumulativeCount()
		}
	}
	return fmt.Sprintf("WAL fsyncs: %d, p50 <= %v, p99 <= %v, p99.9 <= %v, %d over 10ms", n, q(0.5), q(0.99), q(0.999), over10)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)      {}
func (quietLogger) Errorf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (quietLogger) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(1) }

// ---- NATS JetStream ----

type natsSys struct {
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
}

func openNATS(dir string, syncAlways bool) (system, error) {
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, Port: -1, Host: "127.0.0.1",
		SyncAlways: syncAlways, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("nats server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TASKS", Subjects: []string{"tasks"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "workers",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 100_000})
	if err != nil {
		return nil, err
	}
	return &natsSys{srv: srv, nc: nc, js: js, cons: cons}, nil
}

func (s *natsSys) enqueue(ctx context.Context, ps [][]byte) error {
	if len(ps) == 1 {
		_, err := s.js.Publish(ctx, "tasks", ps[0])
		return err
	}
	futs := make([]jetstream.PubAckFuture, len(ps))
	for i := range futs {
		f, err := s.js.PublishAsync("tasks", ps[i])
		if err != nil {
			return err
		}
		futs[i] = f
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *natsSys) consume(ctx context.Context, w int, done *atomic.Int64, total int64) error {
	for done.Load() < total {
		batch, err := s.cons.Fetch(*leaseN, jetstream.FetchMaxWait(50*time.Millisecond))
		if err != nil {
			return err
		}
		n := 0
		for msg := range batch.Messages() {
			if err := msg.Ack(); err != nil {
				return err
			}
			n++
		}
		done.Add(int64(n))
	}
	return nil
}

func (s *natsSys) close() error {
	s.nc.Close()
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	return nil
}

// median takes each field's median on its own.
func median(rs []result) result {
	return result{TasksPerS: stats.MedianOf(rs, func(r result) float64 { return r.TasksPerS }),
		P50: stats.MedianOf(rs, func(r result) time.Duration { return r.P50 }),
		P99: stats.MedianOf(rs, func(r result) time.Duration { return r.P99 })}
}

func main() {
	runs := flag.Int("runs", 3, "repetitions (median reported)")
	tasks := flag.Int("tasks", 60000, "tasks per run with 64 producers (a twentieth with 1)")
	dir := flag.String("dir", os.TempDir(), "directory for the stores")
	only := flag.String("only", "", "run only systems whose name contains one of these (comma-separated)")
	batch := flag.Int("batch", 1, "tasks per enqueue call")
	rate := flag.Float64("rate", 0, "pace producers to this many tasks/s in total (0: as fast as possible)")
	prodList := flag.String("producers", "1,64", "producer counts to run, comma-separated")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile")
	memprofile := flag.String("memprofile", "", "write an allocation profile at exit")
	traceOut := flag.String("trace", "", "write an execution trace (go tool trace)")
	flag.Parse()
	if *payloadKind != "random" && *payloadKind != "text" {
		fmt.Fprintln(os.Stderr, "bad -payload: random or text")
		os.Exit(2)
	}
	defer prof.Trace(*traceOut)()
	defer prof.Allocs(*memprofile)
	defer prof.CPU(*cpuprofile)()
	systems := []struct {
		name string
		open func(string) (system, error)
	}{
		{"flowdb", openFlow},
		{"raw pebble", openRaw},
		{"jetstream sync_always", func(d string) (system, error) { return openNATS(d, true) }},
		{"jetstream default", func(d string) (system, error) { return openNATS(d, false) }},
	}
	fmt.Printf("queuebench: enqueue -> lease -> ack, 256 B %s payloads, %d tasks per enqueue call, %d consumers (lease %d, ack all), %d runs, medians\n",
		*payloadKind, *batch, consumers, *leaseN, *runs)
	if *rate > 0 {
		fmt.Printf("producers paced to %.0f tasks/s in total\n", *rate)
	}
	fmt.Printf("machine: %d CPUs; stores in %s\n\n", runtime.NumCPU(), *dir)
	fmt.Printf("%-12s %-24s %12s %10s %10s %10s\n", "producers", "system", "tasks/s", "enq p50", "enq p99", "vs flowdb")
	for _, ps := range strings.Split(*prodList, ",") {
		producers, err := strconv.Atoi(ps)
		if err != nil || producers < 1 {
			fmt.Fprintln(os.Stderr, "bad -producers")
			os.Exit(2)
		}
		n := *tasks
		if producers == 1 {
			n = *tasks / 20
		}
		var base float64
		for _, s := range systems {
			if *only != "" && !slices.ContainsFunc(strings.Split(*only, ","), func(o string) bool { return strings.Contains(s.name, o) }) {
				continue
			}
			var rs []result
			for i := 0; i < *runs; i++ {
				d, _ := os.MkdirTemp(*dir, "queuebench-")
				sys, err := s.open(d)
				if err != nil {
					fmt.Fprintln(os.Stderr, s.name, err)
					os.Exit(1)
				}
				r, err := run(sys, producers, n, *batch, *rate)
				sys.close()
				os.RemoveAll(d)
				if err != nil {
					fmt.Fprintln(os.Stderr, s.name, err)
					os.Exit(1)
				}
				rs = append(rs, r)
			}
			m := median(rs)
			if s.name == "flowdb" {
				base = m.TasksPerS
			}
			ratio := "-"
			if base > 0 && s.name != "flowdb" {
				ratio = fmt.Sprintf("%.2fx", base/m.TasksPerS)
			}
			fmt.Printf("%-12d %-24s %12.0f %10s %10s %10s\n", producers, s.name, m.TasksPerS,
				m.P50.Round(time.Microsecond), m.P99.Round(time.Microsecond), ratio)
		}
	}
}
