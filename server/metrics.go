package server

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds the server's Prometheus registry. RPC figures are counted
// as calls end; everything else is read from the store when /metrics is
// scraped (storeCollector), so an idle server costs nothing.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	rejected *prometheus.CounterVec
	// procs caches each procedure's series (procedure -> *procMetrics), so
	// that a call's bookkeeping is two atomic adds rather than two label
	// lookups, each hashing its label values under the vector's lock. Only
	// mounted procedures reach the interceptor: the map stays that small.
	procs sync.Map
}

// procMetrics are one procedure's series: its latency and its successful
// calls (failed calls are rarer and look their code's counter up).
type procMetrics struct {
	latency prometheus.Observer
	ok      prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowdb_rpc_requests_total", Help: "RPCs served, by procedure and Connect code (ok for success).",
		}, []string{"procedure", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flowdb_rpc_duration_seconds", Help: "RPC latency by procedure, from the interceptor's view (decoded request to encoded answer).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 18), // 50 µs .. 6.5 s
		}, []string{"procedure"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowdb_http_rejected_total", Help: "Requests refused before reaching a service: forgery (Host/Origin/content type), size, unauthenticated.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.rejected, &storeCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(procedure string, err error, d time.Duration) {
	pm, ok := m.procs.Load(procedure)
	if !ok {
		pm, _ = m.procs.LoadOrStore(procedure, &procMetrics{latency: m.latency.WithLabelValues(procedure),
			ok: m.requests.WithLabelValues(procedure, "ok")})
	}
	p := pm.(*procMetrics)
	if err == nil {
		p.ok.Inc()
	} else {
		m.requests.WithLabelValues(procedure, connect.CodeOf(err).String()).Inc()
	}
	p.latency.Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// storeCollector reads the store's figures at scrape time.
type storeCollector struct{ s *Server }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dApplied      = desc("flowdb_applied_index", "Log index of the last durable frame.")
	dFrames       = desc("flowdb_frames_total", "Frames committed since open.")
	dRecords      = desc("flowdb_records_total", "Records committed since open.")
	dFrameBytes   = desc("flowdb_frame_bytes_total", "Encoded bytes of committed frames since open.")
	dRejected     = desc("flowdb_records_rejected_total", "Records refused by their state machine since open.")
	dCommit       = desc("flowdb_commit_seconds", "Commit latency as callers see it: each record proposed, from submission to its answer (frame, Raft commit on a node, apply, fsync).")
	dApply        = desc("flowdb_apply_seconds", "Apply time of each frame (its state machines' work), on a node every frame its shards apply.")
	dStageMean    = desc("flowdb_commit_stage_mean_seconds", "Mean time per frame since open of the commit pipeline's other stages (visibility_wait, write, sync_wait).", "stage")
	dRaftCommit   = desc("flowdb_raft_commit_seconds", "Raft commit time of each frame this node proposed: proposal to applied on this replica, retries included.", "shard")
	dVecSearch    = desc("flowdb_vector_search_seconds", "Search latency of a collection on this server, one sample per search that returned hits.", "collection")
	dPending      = desc("flowdb_pending_proposals", "Proposals waiting for a frame.")
	dDisk         = desc("flowdb_disk_bytes", "Disk space Pebble uses.")
	dTTLExpired   = desc("flowdb_ttl_expired_total", "Keys reclaimed by the TTL reaper since open.")
	dCorruptions  = desc("flowdb_corruptions_total", "On-disk corruption Pebble reported since open.")
	dCacheHits    = desc("flowdb_pebble_block_cache_hits_total", "Pebble block cache hits.")
	dCacheMisses  = desc("flowdb_pebble_block_cache_misses_total", "Pebble block cache misses.")
	dCacheBytes   = desc("flowdb_pebble_block_cache_bytes", "Pebble block cache size.")
	dCompactions  = desc("flowdb_pebble_compactions_total", "Pebble compactions.")
	dReadAmp      = desc("flowdb_pebble_read_amplification", "Pebble read amplification (sublevels of L0 plus non-empty levels).")
	dMemtable     = desc("flowdb_pebble_memtable_bytes", "Pebble memtable bytes.")
	dQueueTasks   = desc("flowdb_queue_tasks", "Tasks of a queue by state.", "queue", "state")
	dQueueTotals  = desc("flowdb_queue_tasks_total", "Tasks of a queue since it was created, by event (enqueued, acked, retried, dead).", "queue", "event")
	dQueueRate    = desc("flowdb_queue_rate_per_second", "Events per second over the queue's rate window.", "queue", "event")
	dQueueOldest  = desc("flowdb_queue_oldest_ready_age_seconds", "Age of the oldest ready task.", "queue")
	dQueueBytes   = desc("flowdb_queue_payload_bytes", "Payload bytes of outstanding tasks.", "queue")
	dAgents       = desc("flowdb_agents", "Registered agents by health.", "health")
	dPoolAgents   = desc("flowdb_pool_agents", "Agents of a warm pool by state (warm, busy, unhealthy).", "pool", "state")
	dRegCache     = desc("flowdb_registry_lookup_cache_hit_ratio", "Hit ratio of the registry's capability lookup cache.")
	dSchedCount   = desc("flowdb_scheduler_tasks_total", "Scheduler outcomes (assigned, not_ready, at_capacity, no_agent, released).", "outcome")
	dSchedAff     = desc("flowdb_scheduler_affinity_total", "Tasks with an affinity key by outcome (hit, miss).", "outcome")
	dSchedBalance = desc("flowdb_scheduler_balance", "Utilization balance of healthy agents: min/max (1: even).")
	dVecSize      = desc("flowdb_vector_collection_vectors", "Live vectors of a collection.", "collection")
	dRaftLeader   = desc("flowdb_raft_is_leader", "1 if this node's replica leads the shard.", "shard")
	dRaftHas      = desc("flowdb_raft_has_leader", "1 if the shard has a leader, as this node knows.", "shard")
	dRaftTerm     = desc("flowdb_raft_term", "Raft term of the shard.", "shard")
	dRaftApplied  = desc("flowdb_raft_applied_index", "Applied index of this node's replica of the shard.", "shard")
	dRaftProp     = desc("flowdb_raft_proposals_total", "Frames proposed by this node, by outcome (proposed, retried, timed_out).", "outcome")
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dApplied, dFrames, dRecords, dFrameBytes, dRejected, dCommit, dApply, dStageMean, dPending, dDisk,
		dTTLExpired, dCorruptions, dCacheHits, dCacheMisses, dCacheBytes, dCompactions, dReadAmp, dMemtable, dQueueTasks,
		dQueueTotals, dQueueRate, dQueueOldest, dQueueBytes, dAgents, dPoolAgents, dRegCache, dSchedCount, dSchedAff,
		dSchedBalance, dVecSize, dVecSearch, dRaftLeader, dRaftHas, dRaftTerm, dRaftApplied, dRaftProp, dRaftCommit} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	o := c.s.o
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	m := o.DB.Metrics()
	gauge(dApplied, float64(m.AppliedIndex))
	counter(dFrames, float64(m.Frames))
	counter(dRecords, float64(m.Records))
	counter(dFrameBytes, float64(m.FrameBytes))
	counter(dRejected, float64(m.Rejected))
	ch <- histogram(dCommit, &m.Commit)
	ch <- histogram(dApply, &m.Apply)
	for _, st := range []struct {
		stage string
		d     time.Duration
	}{{"visibility_wait", m.MeanVisibilityWait}, {"write", m.MeanWrite}, {"sync_wait", m.MeanSyncWait}} {
		gauge(dStageMean, st.d.Seconds(), st.stage)
	}
	gauge(dPending, float64(m.Pending))
	gauge(dDisk, float64(m.DiskBytes))
	counter(dTTLExpired, float64(m.TTLExpired))
	counter(dCorruptions, float64(m.Corruptions))
	if p := m.Pebble; p != nil {
		counter(dCacheHits, float64(p.BlockCache.Hits))
		counter(dCacheMisses, float64(p.BlockCache.Misses))
		gauge(dCacheBytes, float64(p.BlockCache.Size))
		counter(dCompactions, float64(p.Compact.Count))
		gauge(dReadAmp, float64(p.ReadAmp()))
		gauge(dMemtable, float64(p.MemTable.Size))
	}
	for _, q := range o.Queues.Queues() {
		st, err := o.Queues.Stats(q)
		if err != nil {
			continue // dropped meanwhile
		}
		for _, s := range []struct {
			state string
			v     int64
		}{{"hot", st.Hot}, {"overflow", st.Overflow}, {"delayed", st.Delayed}, {"leased", st.Leased}, {"dead", st.Dead}, {"done", st.Done}} {
			gauge(dQueueTasks, float64(s.v), q, s.state)
		}
		counter(dQueueTotals, float64(st.Enqueued), q, "enqueued")
		counter(dQueueTotals, float64(st.Acked), q, "acked")
		counter(dQueueTotals, float64(st.Retried), q, "retried")
		counter(dQueueTotals, float64(st.DeadSum), q, "dead")
		gauge(dQueueRate, st.EnqueueRate, q, "enqueued")
		gauge(dQueueRate, st.AckRate, q, "acked")
		gauge(dQueueRate, st.RetryRate, q, "retried")
		gauge(dQueueOldest, st.OldestAge.Seconds(), q)
		gauge(dQueueBytes, float64(st.Bytes), q)
	}
	gauge(dAgents, float64(len(o.Registry.ByCapabilities(nil))), "healthy")
	gauge(dAgents, float64(len(o.Registry.Unhealthy())), "unhealthy")
	for _, p := range o.Registry.PoolStats() {
		gauge(dPoolAgents, float64(p.Warm), p.Name, "warm")
		gauge(dPoolAgents, float64(p.Busy), p.Name, "busy")
		gauge(dPoolAgents, float64(p.Unhealthy), p.Name, "unhealthy")
	}
	gauge(dRegCache, o.Registry.CacheStats().HitRatio)
	if o.Scheduler != nil {
		st := o.Scheduler.Stats()
		counter(dSchedCount, float64(st.Assigned), "assigned")
		counter(dSchedCount, float64(st.NotReady), "not_ready")
		counter(dSchedCount, float64(st.AtCapacity), "at_capacity")
		counter(dSchedCount, float64(st.NoAgent), "no_agent")
		counter(dSchedCount, float64(st.Released), "released")
		counter(dSchedAff, float64(st.AffinityHits), "hit")
		counter(dSchedAff, float64(st.AffinityMisses), "miss")
		gauge(dSchedBalance, st.Balance)
	}
	for _, n := range o.Vectors.Collections() {
		if st, err := o.Vectors.Stats(n); err == nil {
			gauge(dVecSize, float64(st.Vectors), n)
			ch <- histogram(dVecSearch, &st.Search, n)
		}
	}
	if o.Cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		shards, err := o.Cluster.Shards(ctx)
		cancel()
		if err == nil {
			for _, sh := range shards {
				l := strconv.FormatUint(uint64(sh.Shard), 10)
				gauge(dRaftLeader, b2f(sh.IsLeader), l)
				gauge(dRaftHas, b2f(sh.HasLeader), l)
				gauge(dRaftTerm, float64(sh.Term), l)
				gauge(dRaftApplied, float64(sh.Applied), l)
			}
		} else if !errors.Is(err, context.DeadlineExceeded) {
			c.s.log.Warn("metrics: cluster status", "err", err)
		}
		p, r, t := o.Cluster.Counters()
		counter(dRaftProp, float64(p), "proposed")
		counter(dRaftProp, float64(r), "retried")
		counter(dRaftProp, float64(t), "timed_out")
		if rl, ok := o.Cluster.(RaftLatency); ok {
			lat := rl.RaftCommitLatency()
			for _, sh := range slices.Sorted(maps.Keys(lat)) {
				h := lat[sh]
				ch <- histogram(dRaftCommit, &h, strconv.FormatUint(uint64(sh), 10))
			}
		}
	}
}

// RaftLatency is what a Cluster may also offer (flowctl's node adapter
// does, from raftsm.Node.CommitLatency): per shard, the distribution of
// the Raft commit times of the frames this node proposed. /metrics then
// has flowdb_raft_commit_seconds.
type RaftLatency interface {
	RaftCommitLatency() map[uint32]histo.Snapshot
}

// promBounds are the upper bounds of the exported histograms' buckets: the
// powers of two of nanoseconds from 2^10 (1.024 µs) to 2^36 (68.7 s).
// Every power of two is a bucket boundary of histo, so each cumulative
// count is exact (values in [bound, next bound) land in the next bucket;
// Prometheus's "le" is read as "below").
var promBounds = func() []time.Duration {
	var b []time.Duration
	for e := 10; e <= 36; e++ {
		b = append(b, time.Duration(1)<<e)
	}
	return b
}()

// histogram converts a histo snapshot into a Prometheus histogram in
// seconds: cumulative counts at promBounds, the count and the sum.
func histogram(d *prometheus.Desc, s *histo.Snapshot, labels ...string) prometheus.Metric {
	var cum [64]uint64
	buckets := make(map[float64]uint64, len(promBounds))
	for i, n := range s.CountsBelow(cum[:0], promBounds) {
		buckets[promBounds[i].Seconds()] = n
	}
	return prometheus.MustNewConstHistogram(d, s.Count, s.Sum.Seconds(), buckets, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
