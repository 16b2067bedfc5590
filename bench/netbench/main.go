// Command netbench measures the task lifecycle (enqueue -> lease -> ack)
// through flowdb's network API (package server, Go client package client,
// loopback) against, in the same run and on the same disk:
//
//   - the embedded library (package queue in the process), and
//   - NATS JetStream embedded in-process through its own Go client (a
//     work-queue stream on file storage, a pull consumer with explicit
//     acks), once with sync_always and once with its default sync interval.
//
// The remote system runs three times: with the client's coalescing of
// single-task calls (the default), without it, and over a store in
// db.NoSync mode ("remote nosync": acknowledged once the kernel holds the
// write, before its fsync). That last row is the like-for-like peer of
// JetStream's default, which also acknowledges before its fsync (both keep
// acknowledged writes through a process crash, neither through a power
// cut); the "nosync/js default" line under each row compares the two. The
// fsync rows compare with JetStream sync_always. Each row starts with a
// probe of the disk as it is then (4 KiB append + fdatasync, 200 rounds). Producers submit -batch tasks per call
// (1: one task per call; the client then coalesces concurrent calls);
// consumers lease up to 32 tasks per call and ack them in one call. Tasks/s
// counts tasks acknowledged from the first enqueue to the last ack; enqueue
// latency is per call. Each scenario repeats -runs times (median).
//
// With -vec it instead measures vector search q/s at k 10, remote against
// embedded, over one collection of random vectors (-vectors, -dim) or of
// Fashion-MNIST's images (-fashion: 60,000 x 784, queries from its test
// set). With -calls it measures the CPU of one unary call (a key-value
// Get, embedded and remote): the difference is the round trip's own.
//
// After the table (-halfpeak, on by default) the remote system and the
// embedded library run again, alternating, in each 64-producer row with
// their producers paced to half of that row's remote peak in total, and
// the per-call enqueue latency there is reported for both. -v prints
// flowdb's commit figures and Pebble's WAL fsyncs after each run.
// CPU/task is the process's CPU time per acknowledged task (client,
// server, store and, for JetStream, its server all run in the process);
// "this/remote CPU" divides a system's by the remote system's, so that
// below 1 means the remote path costs more CPU per task. On a host shared
// with other work tasks/s follows the CPU the host lends; CPU per task
// much less so. -cpuprofile profiles the whole run (client, server and store share the
// process).
//
//	cd bench && go run ./netbench [-runs 3] [-tasks 60000] [-batches 1,64] [-producers 1,64]
//	cd bench && go run ./netbench -vec [-vectors 20000] [-dim 128] [-fashion]
//	cd bench && go run ./netbench -calls [-for 5s] [-vecruns 3]
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/bench/internal/data"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	fserver "github.com/flowdb/flowdb/server"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
)

type result struct {
	TasksPerS float64
	P50, P99  time.Duration
	CPU       time.Duration // process CPU time per task (client, server and store)
}

// system runs one lifecycle: producers enqueue tasks, consumers drain them.
type system interface {
	enqueue(ctx context.Context, payloads [][]byte) error
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
	start, cpu0 := time.Now(), cpuTime()
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
	el, cpu := time.Since(start), cpuTime()-cpu0
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	all := stats.Sorted(lat...)
	return result{TasksPerS: float64(done.Load()) / el.Seconds(), P50: stats.Pct(all, 50), P99: stats.Pct(all, 99),
		CPU: cpu / time.Duration(max(done.Load(), 1))}, nil
}

// ---- flowdb ----

type flowSys struct {
	d *db.DB
	q *queue.Manager
}

func openFlow(dir string) (system, error) { return openFlowMode(dir, db.SyncEachCommit) }

// openFlowMode opens the embedded store with durability mode dur.
func openFlowMode(dir string, dur db.Durability) (system, error) {
	d, err := db.Open(dir, &db.Options{Logger: slog.New(slog.DiscardHandler), TTLReapInterval: -1, Durability: dur})
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
		fmt.Printf("  flowdb (%s): %d frames, %.1f records/frame, mean commit %v (apply %v, write %v, sync wait %v); commit p50 %v p99 %v; %s\n",
			m.Durability, m.Frames, m.RecordsPerFrame, m.MeanCommit.Round(time.Microsecond), m.MeanApply.Round(time.Microsecond),
			m.MeanWrite.Round(time.Microsecond), m.MeanSyncWait.Round(time.Microsecond),
			time.Duration(m.Commit.Quantile(0.5)).Round(time.Microsecond), time.Duration(m.Commit.Quantile(0.99)).Round(time.Microsecond),
			fsyncs(s.d.Pebble().Metrics()))
	}
	s.q.Close()
	return s.d.Close()
}

// fsyncs summarizes Pebble's WAL fsync latency histogram: how many, the
// median and the 99th percentile (upper bounds of their buckets, which are
// 100 µs wide up to 5 ms).
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
	return fmt.Sprintf("WAL fsyncs %d, p50 <= %v, p99 <= %v", n, q(0.5), q(0.99))
}

// probeFsync measures what one durable append costs on dir's disk now: n
// rounds of a 4 KiB write at the end of a file followed by fdatasync (what
// a write-ahead log does per commit). It returns the median and the 99th
// percentile.
func probeFsync(dir string, n int) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, "netbench-fsync-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(t0))
	}
	all := stats.Sorted(lat)
	return stats.Pct(all, 50), stats.Pct(all, 99), nil
}

// ---- flowdb through the network ----

// remoteSys serves a store over loopback and drives it with the Go client.
type remoteSys struct {
	flow *flowSys
	r    *registry.Registry
	v    *hnsw.Manager
	hs   interface{ Close() error }
	c    *client.Client
}

func openRemote(dir string, coalesce bool) (system, error) {
	return openRemoteMode(dir, coalesce, db.SyncEachCommit)
}

// openRemoteMode is openRemote over a store with durability mode dur.
func openRemoteMode(dir string, coalesce bool, dur db.Durability) (system, error) {
	fs, err := openFlowMode(dir, dur)
	if err != nil {
		return nil, err
	}
	f := fs.(*flowSys)
	r, err := registry.Attach(f.d, nil)
	if err != nil {
		return nil, err
	}
	v, err := hnsw.Attach(f.d)
	if err != nil {
		return nil, err
	}
	srv, err := fserver.New(fserver.Options{DB: f.d, Queues: f.q, Registry: r, Vectors: v})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := fserver.HTTPServer(srv.Handler(), nil)
	go hs.Serve(l)
	c, err := client.New("http://"+l.Addr().String(), &client.Options{NoCoalesce: !coalesce})
	if err != nil {
		return nil, err
	}
	return &remoteSys{flow: f, r: r, v: v, hs: hs, c: c}, nil
}

func (s *remoteSys) enqueue(ctx context.Context, ps [][]byte) error {
	if len(ps) == 1 {
		_, err := s.c.Enqueue(ctx, "bench", client.Task{Payload: ps[0]})
		return err
	}
	ts := make([]client.Task, len(ps))
	for i := range ts {
		ts[i] = client.Task{Payload: ps[i]}
	}
	_, err := s.c.EnqueueBatch(ctx, "bench", ts)
	return err
}

func (s *remoteSys) consume(ctx context.Context, w int, done *atomic.Int64, total int64) error {
	agent := fmt.Sprintf("c%d", w)
	for done.Load() < total {
		ls, err := s.c.LeaseWait(ctx, "bench", agent, *leaseN, nil, 0, 50*time.Millisecond)
		if err != nil {
			return err
		}
		if len(ls) == 0 {
			continue
		}
		items := make([]client.AckItem, len(ls))
		for i, l := range ls {
			items[i] = client.AckItem{ID: l.ID, Token: l.Token}
		}
		errs, err := s.c.AckBatch(ctx, "bench", items)
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

func (s *remoteSys) close() error {
	s.c.Close()
	s.hs.Close()
	s.r.Close()
	return s.flow.close()
}

var (
	leaseN      = flag.Int("lease", 32, "tasks each consumer leases per call, then acks in one call")
	hotCap      = flag.Int("hot", 0, "the queue's HotCapacity (0: the default, 1,000)")
	payloadKind = flag.String("payload", "random", "task payloads: random or text")
	verbose     = flag.Bool("v", false, "print flowdb's commit figures and Pebble's WAL fsyncs after each run")
)

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
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<16))
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
		P99: stats.MedianOf(rs, func(r result) time.Duration { return r.P99 }),
		CPU: stats.MedianOf(rs, func(r result) time.Duration { return r.CPU })}
}

func main() {
	runs := flag.Int("runs", 3, "repetitions (median reported)")
	tasks := flag.Int("tasks", 60000, "tasks per run with 64 producers (a twentieth with 1)")
	dir := flag.String("dir", os.TempDir(), "directory for the stores")
	only := flag.String("only", "", "run only systems whose name contains one of these (comma-separated)")
	batchList := flag.String("batches", "1,64", "tasks per enqueue call, comma-separated")
	prodList := flag.String("producers", "1,64", "producer counts, comma-separated")
	rate := flag.Float64("rate", 0, "pace producers to this many tasks/s in total (0: as fast as possible)")
	vec := flag.Bool("vec", false, "measure vector search q/s instead")
	calls := flag.Bool("calls", false, "measure the CPU of one unary call instead (a key-value Get, embedded and remote)")
	halfPeak := flag.Bool("halfpeak", true, "after the table, remote enqueue latency paced at half the remote peak (64-producer rows)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *vec {
		vecBench(*dir)
		return
	}
	if *calls {
		callBench(*dir)
		return
	}
	systems := []struct {
		name string
		open func(string) (system, error)
	}{
		{"embedded", openFlow},
		{"remote", func(d string) (system, error) { return openRemote(d, true) }},
		{"remote no-coalesce", func(d string) (system, error) { return openRemote(d, false) }},
		{"remote nosync", func(d string) (system, error) { return openRemoteMode(d, true, db.NoSync) }},
		{"jetstream sync_always", func(d string) (system, error) { return openNATS(d, true) }},
		{"jetstream default", func(d string) (system, error) { return openNATS(d, false) }},
	}
	fmt.Printf("netbench: enqueue -> lease -> ack, 256 B %s payloads, %d consumers (lease %d, ack all in one call), %d runs, medians\n",
		*payloadKind, consumers, *leaseN, *runs)
	if *rate > 0 {
		fmt.Printf("producers paced to %.0f tasks/s in total\n", *rate)
	}
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = "100 (default)"
	}
	fmt.Printf("machine: %d CPUs; stores in %s; GOGC %s\n\n", runtime.NumCPU(), *dir, gogc)
	fmt.Printf("%-6s %-10s %-24s %12s %10s %10s %14s %10s %14s\n", "batch", "producers", "system", "tasks/s", "enq p50", "enq p99", "remote/this",
		"CPU/task", "this/remote CPU")
	type peak struct {
		batch, producers, tasks int
		rate                    float64
	}
	var peaks []peak // the remote system's, per row
	for _, bs := range strings.Split(*batchList, ",") {
		batch, err := strconv.Atoi(bs)
		if err != nil || batch < 1 {
			fmt.Fprintln(os.Stderr, "bad -batches")
			os.Exit(2)
		}
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
			if p50, p99, err := probeFsync(*dir, 200); err == nil {
				fmt.Printf("%-6d %-10d disk now: 4 KiB append + fdatasync p50 %v, p99 %v (200 rounds)\n", batch, producers,
					p50.Round(time.Microsecond), p99.Round(time.Microsecond))
			}
			var remote float64
			var remoteCPU time.Duration
			type named struct {
				name string
				r    result
			}
			var row []named
			for _, s := range systems {
				if *only != "" && !slices.ContainsFunc(strings.Split(*only, ","), func(o string) bool { return strings.Contains(s.name, o) }) {
					continue
				}
				var rs []result
				for i := 0; i < *runs; i++ {
					d, _ := os.MkdirTemp(*dir, "netbench-")
					sys, err := s.open(d)
					if err != nil {
						fmt.Fprintln(os.Stderr, s.name, err)
						os.Exit(1)
					}
					r, err := run(sys, producers, n, batch, *rate)
					sys.close()
					os.RemoveAll(d)
					if err != nil {
						fmt.Fprintln(os.Stderr, s.name, err)
						os.Exit(1)
					}
					rs = append(rs, r)
				}
				m := median(rs)
				if s.name == "remote" {
					remote, remoteCPU = m.TasksPerS, m.CPU
					peaks = append(peaks, peak{batch, producers, n, m.TasksPerS})
				}
				row = append(row, named{s.name, m})
			}
			// Printed once the row is done, so that every ratio has the
			// remote figure (embedded runs before it).
			var nosync, jsDefault *result
			for i, nm := range row {
				switch nm.name {
				case "remote nosync":
					nosync = &row[i].r
				case "jetstream default":
					jsDefault = &row[i].r
				}
				name, m := nm.name, nm.r
				ratio, cpuRatio := "-", "-"
				if remote > 0 && name != "remote" {
					ratio = fmt.Sprintf("%.2fx", remote/m.TasksPerS)
					cpuRatio = fmt.Sprintf("%.2fx", float64(m.CPU)/float64(remoteCPU))
				}
				fmt.Printf("%-6d %-10d %-24s %12.0f %10s %10s %14s %10s %14s\n", batch, producers, name, m.TasksPerS,
					m.P50.Round(time.Microsecond), m.P99.Round(time.Microsecond), ratio, m.CPU.Round(100*time.Nanosecond), cpuRatio)
			}
			// Like for like: JetStream's default acknowledges before its
			// fsync, as flowdb's NoSync does (both survive a process
			// crash, neither a power cut).
			if nosync != nil && jsDefault != nil {
				fmt.Printf("%-6d %-10d %-24s %12s %10s %10s %14s %10s %14s\n", batch, producers, "  nosync/js default", "", "", "",
					fmt.Sprintf("%.2fx", nosync.TasksPerS/jsDefault.TasksPerS), "", fmt.Sprintf("%.2fx", float64(jsDefault.CPU)/float64(nosync.CPU)))
			}
		}
	}
	if !*halfPeak || *rate > 0 {
		return
	}
	// Enqueue latency at half of the remote peak: each row's remote
	// throughput above is its peak; the producers are now paced to half of
	// it in total (out of phase, see run), and the per-call enqueue latency
	// is what an agent sees under a steady, sustainable load. The embedded
	// library runs at the same pace, alternating with the remote system run
	// by run, so that the tail the network adds is told from the tail the
	// store and the host give both.
	fmt.Printf("\nenqueue latency paced at half of the remote peak (%d runs each, alternating, medians)\n", *runs)
	fmt.Printf("%-6s %-10s %-10s %12s %12s %12s %10s %10s\n", "batch", "producers", "system", "peak tasks/s", "paced at", "achieved", "enq p50", "enq p99")
	for _, p := range peaks {
		if p.producers == 1 && len(peaks) > 1 {
			continue // one producer paced at half its own round trip is not a load
		}
		var rs, es []result
		for i := 0; i < *runs; i++ {
			for _, remote := range []bool{true, false} {
				d, _ := os.MkdirTemp(*dir, "netbench-")
				var sys system
				var err error
				if remote {
					sys, err = openRemote(d, true)
				} else {
					sys, err = openFlow(d)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				r, err := run(sys, p.producers, p.tasks, p.batch, p.rate/2)
				sys.close()
				os.RemoveAll(d)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				if remote {
					rs = append(rs, r)
				} else {
					es = append(es, r)
				}
			}
		}
		for _, x := range []struct {
			name string
			rs   []result
		}{{"remote", rs}, {"embedded", es}} {
			m := median(x.rs)
			fmt.Printf("%-6d %-10d %-10s %12.0f %12.0f %12.0f %10s %10s\n", p.batch, p.producers, x.name, p.rate, p.rate/2, m.TasksPerS,
				m.P50.Round(time.Microsecond), m.P99.Round(time.Microsecond))
		}
	}
}

// openRemoteTemp serves a store in a new directory under dir (named
// prefix...) through a server and a Go client, and returns it with the
// function that closes it and removes the directory; it exits on error.
func openRemoteTemp(dir, prefix string) (*remoteSys, func()) {
	d, _ := os.MkdirTemp(dir, prefix)
	sys, err := openRemote(d, true)
	if err != nil {
		os.RemoveAll(d)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rs := sys.(*remoteSys)
	return rs, func() { rs.close(); os.RemoveAll(d) }
}

// vecBench measures search q/s at k 10 with 16 concurrent searchers,
// embedded against remote, on the same collection.
func vecBench(dir string) {
	rs, done := openRemoteTemp(dir, "netbench-vec-")
	defer done()
	ctx := context.Background()
	dim, n := *vecDim, *vecN
	var base, queries [][]float32
	what := "random vectors"
	if *fashion {
		// Fashion-MNIST's training images are the collection, its test
		// images the queries (as in vecbench, l2 on the raw pixels).
		if !flagSet("vectors") {
			n = 60000
		}
		base = data.IDX(*fashionDir, "train-images-idx3-ubyte.gz", n)
		queries = data.IDX(*fashionDir, "t10k-images-idx3-ubyte.gz", 1000)
		n, dim, what = len(base), len(base[0]), "Fashion-MNIST vectors"
	} else {
		rng := rand.New(rand.NewPCG(1, 2))
		vec := func() []float32 {
			v := make([]float32, dim)
			for i := range v {
				v[i] = rng.Float32()
			}
			return v
		}
		base = make([][]float32, n)
		for i := range base {
			base[i] = vec()
		}
		queries = make([][]float32, 1000)
		for i := range queries {
			queries[i] = vec()
		}
	}
	if err := rs.c.CreateCollection(ctx, client.CollectionConfig{Name: "v", Dim: dim, Metric: "l2"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; i < n; i += 500 {
		var vs []client.Vector
		for j := i; j < min(i+500, n); j++ {
			vs = append(vs, client.Vector{ID: uint64(j + 1), Values: base[j]})
		}
		if err := rs.c.Upsert(ctx, "v", vs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	v, _ := hnswOf(rs)
	// measure returns q/s and the process's CPU time per query (client,
	// server and store share the process): on a host shared with other
	// work, q/s follows the CPU the host lends, CPU per query does not.
	measure := func(name string, search func(q []float32) error) (float64, time.Duration) {
		cpu0 := cpuTime()
		var count atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(*vecFor)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := g; time.Now().Before(stop); i++ {
					if err := search(queries[i%len(queries)]); err != nil {
						fmt.Fprintln(os.Stderr, name, err)
						os.Exit(1)
					}
					count.Add(1)
				}
			}(g)
		}
		wg.Wait()
		return float64(count.Load()) / vecFor.Seconds(), (cpuTime() - cpu0) / time.Duration(max(count.Load(), 1))
	}
	fmt.Printf("netbench -vec: %d %s of dim %d (l2, int8 + rerank), k 10, 16 searchers, %v each; machine: %d CPUs\n",
		n, what, dim, *vecFor, runtime.NumCPU())
	for r := 0; r < *vecRuns; r++ {
		emb, embCPU := measure("embedded", func(q []float32) error { _, err := v.Search(ctx, "v", q, 10, hnsw.SearchOptions{}); return err })
		rem, remCPU := measure("remote", func(q []float32) error { _, err := rs.c.Search(ctx, "v", q, 10, client.SearchOptions{}); return err })
		fmt.Printf("round %d: embedded %.0f q/s (%v CPU/query), remote %.0f q/s (%v CPU/query), remote/embedded %.2fx q/s, %.2fx by CPU per query\n",
			r+1, emb, embCPU.Round(time.Microsecond), rem, remCPU.Round(time.Microsecond), rem/emb, float64(embCPU)/float64(remCPU))
	}
}

var (
	vecDim     = flag.Int("dim", 128, "-vec: dimension")
	vecN       = flag.Int("vectors", 20000, "-vec: vectors")
	vecFor     = flag.Duration("for", 5*time.Second, "-vec: time per measurement")
	vecRuns    = flag.Int("vecruns", 3, "-vec: rounds (embedded then remote each)")
	fashion    = flag.Bool("fashion", false, "-vec: Fashion-MNIST (60,000 x 784, or -vectors of them) instead of random vectors")
	fashionDir = flag.String("data", data.FashionDir, "-vec -fashion: Fashion-MNIST directory (apt-get install dataset-fashion-mnist)")
)

// flagSet says whether the command line set flag name.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hnswOf returns the collection manager behind a remote system's server.
func hnswOf(s *remoteSys) (*hnsw.Manager, error) { return s.v, nil }

// callBench measures what one unary call costs through the network: 16
// goroutines Get one 256-byte key as fast as they can, embedded and then
// remote, -vecruns rounds of -for each. The difference in CPU per call is
// the round trip's own (client, HTTP both ways, Connect, protobuf, server
// middleware), since the Get behind it is the same.
func callBench(dir string) {
	rs, done := openRemoteTemp(dir, "netbench-calls-")
	defer done()
	ctx := context.Background()
	key, val := []byte("key"), make([]byte, 256)
	if err := rs.c.Set(ctx, "bench", key, val); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	measure := func(name string, get func() error) (float64, time.Duration) {
		cpu0 := cpuTime()
		var count atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(*vecFor)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if err := get(); err != nil {
						fmt.Fprintln(os.Stderr, name, err)
						os.Exit(1)
					}
					count.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(count.Load()) / vecFor.Seconds(), (cpuTime() - cpu0) / time.Duration(max(count.Load(), 1))
	}
	fmt.Printf("netbench -calls: key-value Get of a 256-byte value, 16 callers, %v each; machine: %d CPUs\n", *vecFor, runtime.NumCPU())
	for r := 0; r < *vecRuns; r++ {
		emb, embCPU := measure("embedded", func() error { _, err := rs.flow.d.Get(ctx, "bench", key); return err })
		rem, remCPU := measure("remote", func() error { _, err := rs.c.Get(ctx, "bench", key); return err })
		fmt.Printf("round %d: embedded %.0f calls/s (%v CPU/call), remote %.0f calls/s (%v CPU/call): %v CPU per round trip\n",
			r+1, emb, embCPU.Round(100*time.Nanosecond), rem, remCPU.Round(100*time.Nanosecond), (remCPU - embCPU).Round(100*time.Nanosecond))
	}
}
