package ui

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
)

// ---- overview ---------------------------------------------------------------

// sample is the store's counters at one poll; rates are differences of
// two samples.
type sample struct {
	at                     time.Time
	records, frames        uint64
	hits, misses           int64
	enqueued, acked, dead  uint64
	proposals, retries, to uint64
	// commit is the engine's commit histogram since open; raft the node's
	// Raft commit histogram over its shards (nil off a node). Pointers:
	// the history is cloned on every poll.
	commit, raft *histo.Snapshot
}

// historyLen bounds the overview's history (samples at most every
// minSampleGap: two minutes at the poller's pace and more).
const (
	historyLen   = 120
	minSampleGap = 500 * time.Millisecond
	// commitWindow is the window of the latency quantiles.
	commitWindow = time.Minute
)

// raftLatency merges the node's per-shard Raft commit histograms (nil
// without a Cluster that is a server.RaftLatency).
func (d *Dashboard) raftLatency() *histo.Snapshot {
	rl, ok := d.o.Cluster.(server.RaftLatency)
	if !ok {
		return nil
	}
	var all histo.Snapshot
	for _, s := range rl.RaftCommitLatency() {
		all.Add(&s)
	}
	return &all
}

// windowOf returns what h's snapshots (get) recorded between the oldest
// sample within commitWindow of the last one and the last one; since open
// while the history holds no older sample. nil if get gives nil.
func windowOf(h []sample, get func(sample) *histo.Snapshot) *histo.Snapshot {
	last := get(h[len(h)-1])
	if last == nil {
		return nil
	}
	for _, s := range h[:len(h)-1] {
		if h[len(h)-1].at.Sub(s.at) <= commitWindow {
			if base := get(s); base != nil {
				w := last.Sub(base)
				return &w
			}
		}
	}
	return last
}

// quantileMs is s's q-quantile in milliseconds, NaN without samples.
func quantileMs(s *histo.Snapshot, q float64) float64 {
	if s == nil || s.Count == 0 {
		return math.NaN()
	}
	return float64(s.Quantile(q)) / 1e6
}

func (d *Dashboard) takeSample() sample {
	m := d.o.DB.Metrics()
	commit := m.Commit // a copy: the sample must not keep all of m alive
	s := sample{at: time.Now(), records: m.Records, frames: m.Frames, commit: &commit, raft: d.raftLatency()}
	if p := m.Pebble; p != nil {
		s.hits, s.misses = p.BlockCache.Hits, p.BlockCache.Misses
	}
	for _, q := range d.o.Queues.Queues() {
		if st, err := d.o.Queues.Stats(q); err == nil {
			s.enqueued += st.Enqueued
			s.acked += st.Acked
			s.dead += st.DeadSum
		}
	}
	if d.o.Cluster != nil {
		s.proposals, s.retries, s.to = d.o.Cluster.Counters()
	}
	return s
}

// Figure is one live figure of the overview against its target.
type Figure struct {
	Key    string `json:"key"`
	Name   string `json:"name"`
	Value  Num    `json:"value"`
	Text   string `json:"text"`
	Target string `json:"target,omitempty"`
	// State: "ok" (target met), "bad" (missed), "idle" (no traffic to
	// judge) or "" (no target).
	State string `json:"state"`
	// History is the figure over the recent polls, oldest first.
	History []Num `json:"history,omitempty"`
}

// Num is a figure that may be unknown (NaN): JSON null then.
type Num float64

// MarshalJSON writes null for NaN and infinities.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// Overview is the overview page's data (GET /ui/api/overview).
type Overview struct {
	At          time.Time `json:"at"`
	Durability  string    `json:"durability"`
	Figures     []Figure  `json:"figures"`
	Queues      int       `json:"queues"`
	Agents      int       `json:"agents_healthy"`
	Unhealthy   int       `json:"agents_unhealthy"`
	Collections int       `json:"collections"`
	Node        bool      `json:"node"`
	// Window is the span the rates are measured over.
	Window time.Duration `json:"window_ns"`
}

func (d *Dashboard) overview(r *http.Request) (any, error) {
	if err := info(r.Context()).tok.Check(auth.Server, "stats", auth.Read); err != nil {
		return nil, err
	}
	now := d.takeSample()
	m := d.o.DB.Metrics()
	d.mu.Lock()
	h := d.mu.samples
	if len(h) == 0 || now.at.Sub(h[len(h)-1].at) >= minSampleGap {
		h = append(h, now)
		if len(h) > historyLen {
			h = slices.Delete(h, 0, len(h)-historyLen)
		}
		d.mu.samples = h
	}
	h = slices.Clone(h)
	d.mu.Unlock()

	// Per-interval figures between consecutive samples.
	type iv struct{ ops, enq, ack, dead, hit, props, c50, c99, r50, r99 float64 }
	var ivs []iv
	for i := 1; i < len(h); i++ {
		a, b := h[i-1], h[i]
		dt := b.at.Sub(a.at).Seconds()
		x := iv{ops: float64(b.records-a.records) / dt, enq: float64(b.enqueued-a.enqueued) / dt,
			ack: float64(b.acked-a.acked) / dt, dead: float64(b.dead-a.dead) / dt, hit: math.NaN(),
			props: float64(b.proposals-a.proposals) / dt, c50: math.NaN(), c99: math.NaN(), r50: math.NaN(), r99: math.NaN()}
		// Each interval's own quantiles, for the sparklines.
		if w := b.commit.Sub(a.commit); w.Count > 0 {
			x.c50, x.c99 = quantileMs(&w, 0.5), quantileMs(&w, 0.99)
		}
		if a.raft != nil && b.raft != nil {
			if w := b.raft.Sub(a.raft); w.Count > 0 {
				x.r50, x.r99 = quantileMs(&w, 0.5), quantileMs(&w, 0.99)
			}
		}
		if n := (b.hits - a.hits) + (b.misses - a.misses); n > 0 {
			x.hit = float64(b.hits-a.hits) / float64(n)
		}
		ivs = append(ivs, x)
	}
	last := iv{hit: math.NaN()}
	if len(ivs) > 0 {
		last = ivs[len(ivs)-1]
	}
	hist := func(f func(iv) float64) []Num {
		out := make([]Num, len(ivs))
		for i, x := range ivs {
			out[i] = Num(f(x))
		}
		return out
	}
	t := d.o.Targets
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	o := Overview{At: now.at, Durability: m.Durability, Queues: len(d.o.Queues.Queues()),
		Collections: len(d.o.Vectors.Collections()), Node: d.o.Cluster != nil}
	if len(h) > 1 {
		o.Window = h[len(h)-1].at.Sub(h[len(h)-2].at)
	}
	for _, a := range d.o.Registry.List(registry.Filter{}) {
		if a.Healthy {
			o.Agents++
		} else {
			o.Unhealthy++
		}
	}
	busy := last.ops > 0
	cw := windowOf(h, func(s sample) *histo.Snapshot { return s.commit })
	p50, p99 := quantileMs(cw, 0.5), quantileMs(cw, 0.99)
	o.Figures = []Figure{
		{Key: "ops", Name: "durable operations/s", Value: Num(last.ops), Text: rate(last.ops),
			Target: "≥ " + rate(t.DurableOpsPerSec) + " under load", State: judge(busy, last.ops >= t.DurableOpsPerSec),
			History: hist(func(x iv) float64 { return x.ops })},
		{Key: "commit_p50", Name: "commit p50 (last minute)", Value: Num(p50), Text: millis(p50),
			History: hist(func(x iv) float64 { return x.c50 })},
		{Key: "commit_p99", Name: "commit p99 (last minute)", Value: Num(p99), Text: millis(p99),
			Target: "≤ " + millis(float64(t.CommitP99)/1e6), State: judge(cw.Count > 0, p99 <= float64(t.CommitP99)/1e6),
			History: hist(func(x iv) float64 { return x.c99 })},
		{Key: "enqueued", Name: "tasks enqueued/s", Value: Num(last.enq), Text: rate(last.enq), History: hist(func(x iv) float64 { return x.enq })},
		{Key: "acked", Name: "tasks acked/s", Value: Num(last.ack), Text: rate(last.ack), History: hist(func(x iv) float64 { return x.ack })},
		{Key: "dead", Name: "tasks dead/s", Value: Num(last.dead), Text: rate(last.dead),
			Target: "≤ " + rate(t.DeadPerSec), State: judge(true, last.dead <= t.DeadPerSec), History: hist(func(x iv) float64 { return x.dead })},
		{Key: "memory", Name: "memory (Go heap in use)", Value: Num(float64(ms.HeapInuse)), Text: bytesText(ms.HeapInuse) + " (process " + bytesText(ms.Sys) + ")",
			Target: "≤ " + bytesText(t.MemoryBytes), State: judge(true, ms.HeapInuse <= t.MemoryBytes)},
		{Key: "disk", Name: "disk", Value: Num(float64(m.DiskBytes)), Text: bytesText(m.DiskBytes)},
		{Key: "cache_hit", Name: "block cache hit rate", Value: Num(last.hit), Text: ratio(last.hit),
			Target: "≥ " + ratio(t.CacheHitRatio), State: judge(!math.IsNaN(last.hit), last.hit >= t.CacheHitRatio),
			History: hist(func(x iv) float64 { return x.hit })},
	}
	if p := m.Pebble; p != nil {
		o.Figures = append(o.Figures, Figure{Key: "pebble_mem", Name: "Pebble memtables + block cache", Value: Num(float64(p.MemTable.Size + uint64(p.BlockCache.Size))),
			Text: bytesText(p.MemTable.Size + uint64(p.BlockCache.Size))})
	}
	if d.o.Cluster != nil {
		if rw := windowOf(h, func(s sample) *histo.Snapshot { return s.raft }); rw != nil {
			r50, r99 := quantileMs(rw, 0.5), quantileMs(rw, 0.99)
			o.Figures = append(o.Figures,
				Figure{Key: "raft_commit_p50", Name: "Raft commit p50 (last minute)", Value: Num(r50), Text: millis(r50),
					History: hist(func(x iv) float64 { return x.r50 })},
				Figure{Key: "raft_commit_p99", Name: "Raft commit p99 (last minute)", Value: Num(r99), Text: millis(r99),
					Target: "≤ " + millis(float64(t.RaftCommit)/1e6), State: judge(rw.Count > 0, r99 <= float64(t.RaftCommit)/1e6),
					History: hist(func(x iv) float64 { return x.r99 })})
		}
		o.Figures = append(o.Figures,
			Figure{Key: "raft_proposals", Name: "Raft proposals/s", Value: Num(last.props), Text: rate(last.props),
				History: hist(func(x iv) float64 { return x.props })},
			Figure{Key: "raft_retries", Name: "Raft retries / timeouts (total)", Value: Num(float64(now.retries)),
				Text: fmt.Sprintf("%d / %d", now.retries, now.to)})
	}
	return o, nil
}

func judge(haveData, ok bool) string {
	switch {
	case !haveData:
		return "idle"
	case ok:
		return "ok"
	}
	return "bad"
}

func rate(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100 || v == 0:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func millis(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v < 1 {
		return fmt.Sprintf("%.0f µs", v*1000)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func ratio(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", v*100)
}

func bytesText(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func age(d time.Duration) string {
	if d < 0 {
		return "-" + age(-d)
	}
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return d.Round(time.Minute).String()
}

// ---- paging helpers ---------------------------------------------------------

// pageOf returns up to size names of the sorted list after cursor "after"
// that keep passes, and the next cursor ("" after the last).
func pageOf(sorted []string, after string, size int, keep func(string) bool) ([]string, string) {
	i, _ := slices.BinarySearch(sorted, after)
	if i < len(sorted) && sorted[i] == after {
		i++
	}
	var out []string
	for ; i < len(sorted); i++ {
		if !keep(sorted[i]) {
			continue
		}
		if len(out) == size {
			return out, out[len(out)-1]
		}
		out = append(out, sorted[i])
	}
	return out, ""
}

// ---- queues -----------------------------------------------------------------

// QueueRow is one queue's figures.
type QueueRow struct {
	queue.Stats
	OldestAge string `json:"oldest_age"`
	Ready     int64  `json:"ready"`
}

// Queues is GET /ui/api/queues?after=NAME.
type Queues struct {
	Queues []QueueRow `json:"queues"`
	After  string     `json:"after,omitempty"`
	Next   string     `json:"next,omitempty"`
}

func (d *Dashboard) queues(r *http.Request) (any, error) {
	tok := info(r.Context()).tok
	after := r.URL.Query().Get("after")
	names, next := pageOf(d.o.Queues.Queues(), after, d.o.PageSize, func(n string) bool { return tok.Allows(auth.Queue, n, auth.Read) })
	out := Queues{Queues: []QueueRow{}, After: after, Next: next}
	for _, n := range names {
		st, err := d.o.Queues.Stats(n)
		if err != nil {
			continue // dropped meanwhile
		}
		out.Queues = append(out.Queues, QueueRow{Stats: st, OldestAge: age(st.OldestAge), Ready: st.Hot + st.Overflow})
	}
	return out, nil
}

// TaskRow is a task in a queue page's table.
type TaskRow struct {
	queue.TaskInfo
	// Due: lease expiry, due time, or when it died or finished, relative
	// to now ("in 3.2 s", "5m03s ago").
	Due     string `json:"due"`
	Preview string `json:"preview"`
}

// QueueView is GET /ui/api/queue?name=Q&state=S&after=CURSOR: a queue's
// figures and one page of its tasks in state S (leased by soonest lease
// expiry, delayed, dead, done).
type QueueView struct {
	Stats     QueueRow  `json:"stats"`
	State     string    `json:"state"`
	States    []string  `json:"states"`
	Tasks     []TaskRow `json:"tasks"`
	After     string    `json:"after,omitempty"`
	Next      string    `json:"next,omitempty"`
	CanAdmin  bool      `json:"can_admin"`
	Expiring  int       `json:"expiring_10s"` // leases on this page expiring within 10 s
	QueueName string    `json:"queue"`
}

func (d *Dashboard) queue(r *http.Request) (any, error) {
	tok := info(r.Context()).tok
	q := r.URL.Query()
	name, state, after := q.Get("name"), q.Get("state"), q.Get("after")
	if state == "" {
		state = "leased"
	}
	if err := tok.Check(auth.Queue, name, auth.Read); err != nil {
		return nil, err
	}
	st, err := d.o.Queues.Stats(name)
	if err != nil {
		return nil, err
	}
	tasks, next, err := d.o.Queues.Page(r.Context(), name, state, after, d.o.PageSize)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	v := QueueView{Stats: QueueRow{Stats: st, OldestAge: age(st.OldestAge), Ready: st.Hot + st.Overflow}, State: state,
		States: queue.PageStates, Tasks: []TaskRow{}, After: after, Next: next, CanAdmin: tok.Allows(auth.Queue, name, auth.Admin), QueueName: name}
	for _, t := range tasks {
		row := TaskRow{TaskInfo: t, Preview: preview(t.Payload, 80)}
		switch state {
		case "leased":
			row.Due = "in " + age(t.LeaseExp.Sub(now))
			if t.LeaseExp.Sub(now) < 10*time.Second {
				v.Expiring++
			}
		case "delayed":
			row.Due = "in " + age(t.NotBefore.Sub(now))
		default:
			if !t.Finished.IsZero() {
				row.Due = age(now.Sub(t.Finished)) + " ago"
			}
		}
		v.Tasks = append(v.Tasks, row)
	}
	return v, nil
}

// preview is the first n runes of a payload as text (invalid UTF-8 shows
// as U+FFFD); templates escape it.
func preview(b []byte, n int) string {
	s := strings.ToValidUTF8(string(b[:min(len(b), 4*n)]), "\uFFFD")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	if len(b) > 4*n {
		return s + "…"
	}
	return s
}

// TaskView is GET /ui/api/task?queue=Q&id=N.
type TaskView struct {
	Queue    string         `json:"queue"`
	Task     queue.TaskInfo `json:"task"`
	Payload  string         `json:"payload_text"`
	Result   string         `json:"result_text"`
	CanAdmin bool           `json:"can_admin"`
}

func (d *Dashboard) task(r *http.Request) (any, error) {
	tok := info(r.Context()).tok
	q := r.URL.Query()
	name := q.Get("queue")
	id, err := strconv.ParseUint(q.Get("id"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: id %q", errBadRequest, q.Get("id"))
	}
	if err := tok.Check(auth.Queue, name, auth.Read); err != nil {
		return nil, err
	}
	t, err := d.o.Queues.Get(r.Context(), name, id)
	if err != nil {
		return nil, err
	}
	return TaskView{Queue: name, Task: t, Payload: preview(t.Payload, 64<<10), Result: preview(t.Result, 64<<10),
		CanAdmin: tok.Allows(auth.Queue, name, auth.Admin)}, nil
}

// ---- agents -----------------------------------------------------------------

// AgentRow is one agent.
type AgentRow struct {
	ID           string   `json:"id"`
	Pool         string   `json:"pool,omitempty"`
	Healthy      bool     `json:"healthy"`
	Load         int      `json:"load"`
	Capacity     int      `json:"capacity"`
	Held         int      `json:"held"`
	Utilization  float64  `json:"utilization"`
	Capabilities []string `json:"capabilities,omitempty"`
	Status       string   `json:"status,omitempty"`
	HeartbeatAge string   `json:"heartbeat_age"`
}

// Agents is GET /ui/api/agents?after=ID&pool=P&health=healthy|unhealthy.
type Agents struct {
	Agents []AgentRow           `json:"agents"`
	Pools  []registry.PoolStats `json:"pools"`
	After  string               `json:"after,omitempty"`
	Next   string               `json:"next,omitempty"`
	Pool   string               `json:"pool,omitempty"`
	Health string               `json:"health,omitempty"`
	Total  int                  `json:"total"` // matching the filter, before scopes
}

func (d *Dashboard) agents(r *http.Request) (any, error) {
	tok := info(r.Context()).tok
	q := r.URL.Query()
	f := registry.Filter{Pool: q.Get("pool"), Health: q.Get("health")}
	if f.Health != "" && f.Health != "healthy" && f.Health != "unhealthy" {
		return nil, fmt.Errorf("%w: health %q", errBadRequest, f.Health)
	}
	all := d.o.Registry.List(f) // in memory, sorted by id; only one page is sent
	ids := make([]string, len(all))
	byID := make(map[string]*registry.Agent, len(all))
	for i, a := range all {
		ids[i], byID[a.ID] = a.ID, a
	}
	page, next := pageOf(ids, q.Get("after"), d.o.PageSize, func(id string) bool {
		a := byID[id]
		return tok.Allows(auth.Agent, id, auth.Read) || (a.Pool != "" && tok.Allows(auth.Agent, a.Pool, auth.Read))
	})
	out := Agents{Agents: []AgentRow{}, Pools: []registry.PoolStats{}, After: q.Get("after"), Next: next, Pool: f.Pool, Health: f.Health, Total: len(all)}
	now := time.Now()
	for _, id := range page {
		a := byID[id]
		out.Agents = append(out.Agents, AgentRow{ID: a.ID, Pool: a.Pool, Healthy: a.Healthy, Load: a.Load, Capacity: a.Capacity,
			Held: d.o.Queues.Held(a.ID), Utilization: a.Utilization(), Capabilities: a.Capabilities, Status: a.Status,
			HeartbeatAge: age(now.Sub(a.LastHeartbeat))})
	}
	for _, p := range d.o.Registry.PoolStats() {
		if tok.Allows(auth.Agent, p.Name, auth.Read) {
			out.Pools = append(out.Pools, p)
		}
	}
	return out, nil
}

// ---- scheduler --------------------------------------------------------------

// SchedulerView is GET /ui/api/scheduler.
type SchedulerView struct {
	Enabled bool        `json:"enabled"`
	Stats   sched.Stats `json:"stats"`
	// AffinityHitRate: hits/(hits+misses), NaN-free: -1 without any
	// task with an affinity key.
	AffinityHitRate float64 `json:"affinity_hit_rate"`
	AffinityText    string  `json:"affinity_text"`
	BalanceText     string  `json:"balance_text"`
	CacheHitRatio   string  `json:"lookup_cache_hit_ratio"`
}

func (d *Dashboard) scheduler(r *http.Request) (any, error) {
	if err := info(r.Context()).tok.Check(auth.Server, "stats", auth.Read); err != nil {
		return nil, err
	}
	v := SchedulerView{AffinityHitRate: -1, AffinityText: "–", BalanceText: "–", CacheHitRatio: ratio(d.o.Registry.CacheStats().HitRatio)}
	if d.o.Scheduler == nil {
		return v, nil
	}
	v.Enabled, v.Stats = true, d.o.Scheduler.Stats()
	if n := v.Stats.AffinityHits + v.Stats.AffinityMisses; n > 0 {
		v.AffinityHitRate = float64(v.Stats.AffinityHits) / float64(n)
		v.AffinityText = ratio(v.AffinityHitRate)
	}
	v.BalanceText = fmt.Sprintf("%.2f", v.Stats.Balance)
	return v, nil
}

// ---- vectors ----------------------------------------------------------------

// CollectionRow is one collection.
type CollectionRow struct {
	hnsw.Stats
	// MemoryEstimate: int8 codes, float32 originals and level-0 links
	// (M×2 ids of 8 bytes) per vector; an estimate, not a measurement.
	MemoryEstimate string `json:"memory_estimate"`
	// Searches on this server since start and their latency quantiles
	// (Stats.Search), as text ("–" before the first).
	Searches  uint64 `json:"searches"`
	SearchP50 string `json:"search_p50"`
	SearchP99 string `json:"search_p99"`
}

// SearchResult is a quick search by id.
type SearchResult struct {
	Collection string     `json:"collection"`
	ID         uint64     `json:"id"`
	Hits       []hnsw.Hit `json:"hits"`
	Latency    string     `json:"latency"`
	Error      string     `json:"error,omitempty"`
}

// Vectors is GET /ui/api/vectors?after=NAME[&collection=C&id=N].
type Vectors struct {
	Collections []CollectionRow `json:"collections"`
	After       string          `json:"after,omitempty"`
	Next        string          `json:"next,omitempty"`
	Search      *SearchResult   `json:"search,omitempty"`
}

func (d *Dashboard) vectors(r *http.Request) (any, error) {
	tok := info(r.Context()).tok
	q := r.URL.Query()
	names, next := pageOf(d.o.Vectors.Collections(), q.Get("after"), d.o.PageSize, func(n string) bool { return tok.Allows(auth.Vec, n, auth.Read) })
	out := Vectors{Collections: []CollectionRow{}, After: q.Get("after"), Next: next}
	for _, n := range names {
		st, err := d.o.Vectors.Stats(n)
		if err != nil {
			continue
		}
		per := uint64(st.Config.Dim) * 5
		per += uint64(st.Config.M) * 2 * 8
		out.Collections = append(out.Collections, CollectionRow{Stats: st, MemoryEstimate: "≈ " + bytesText(per*uint64(st.Vectors)),
			Searches: st.Search.Count, SearchP50: millis(quantileMs(&st.Search, 0.5)), SearchP99: millis(quantileMs(&st.Search, 0.99))})
	}
	// The poller's refreshes (X-FlowDB-Fragment) skip the search: it is
	// shown outside the live region.
	if c := q.Get("collection"); c != "" && r.Header.Get("X-FlowDB-Fragment") != "1" {
		id, err := strconv.ParseUint(q.Get("id"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: id %q", errBadRequest, q.Get("id"))
		}
		if err := tok.Check(auth.Vec, c, auth.Read); err != nil {
			return nil, err
		}
		out.Search = d.searchByID(r.Context(), c, id)
	}
	return out, nil
}

func (d *Dashboard) searchByID(ctx context.Context, c string, id uint64) *SearchResult {
	res := &SearchResult{Collection: c, ID: id, Hits: []hnsw.Hit{}}
	v, err := d.o.Vectors.Get(c, id)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	start := time.Now()
	hits, err := d.o.Vectors.Search(ctx, c, v.Values, 10, hnsw.SearchOptions{})
	res.Latency = millis(float64(time.Since(start).Nanoseconds()) / 1e6)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Hits = hits
	return res
}

// ---- cluster ----------------------------------------------------------------

// MemberLister is what a Options.Cluster may also offer (flowctl's node
// adapter does): each shard's members, replica id to Raft address, and
// its leader's replica id (0: none known).
type MemberLister interface {
	Members(ctx context.Context) (map[uint32]ShardMembers, error)
}

// ShardMembers are one shard's members as this node knows them.
type ShardMembers struct {
	Leader  uint64            `json:"leader"`
	Members map[uint64]string `json:"members"`
}

// AppliedLister is what Options.Cluster may also offer, besides
// MemberLister (flowctl's node adapter does): each member's applied index
// of every shard, as that member reports it. Dragonboat exposes no
// follower progress (the leader's match indexes are internal to it), so
// the adapter asks each member's admin endpoint, within ctx; a member that
// does not answer has Err set, a member whose admin address is not known
// is left out.
type AppliedLister interface {
	MembersApplied(ctx context.Context) map[uint64]MemberApplied
}

// MemberApplied is one member's answer: its applied index per shard, or
// why there is none.
type MemberApplied struct {
	Applied map[uint32]uint64
	Err     error
}

// memberTimeout bounds the cluster page's wait for the members' applied
// indexes.
const memberTimeout = time.Second

// ReplicaRow is one member's replica of a shard: how far its applied
// index is behind the most advanced replica that answered.
type ReplicaRow struct {
	ID      uint64 `json:"id"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	// State: "ok" (Applied and Lag are known), "unreachable" (it did not
	// answer in time: Error says why) or "unknown" (no admin address).
	State   string `json:"state"`
	Applied uint64 `json:"applied"`
	Lag     uint64 `json:"lag"`
	Error   string `json:"error,omitempty"`
}

// ShardRow is one shard on the cluster page.
type ShardRow struct {
	server.ShardFigures
	Leader  uint64   `json:"leader,omitempty"`
	Members []string `json:"members,omitempty"` // "id=address", by id; the leader marked with *
	// Replicas: every member's applied index and lag, by id (with an
	// AppliedLister).
	Replicas []ReplicaRow `json:"replicas,omitempty"`
}

// ClusterView is GET /ui/api/cluster.
type ClusterView struct {
	Node   bool       `json:"node"`
	Shards []ShardRow `json:"shards"`
	// Proposals, Retries and Timeouts are the node's counters.
	Proposals uint64 `json:"proposals"`
	Retries   uint64 `json:"retries"`
	Timeouts  uint64 `json:"timeouts"`
	Applied   uint64 `json:"applied_index"`
	Error     string `json:"error,omitempty"`
}

func (d *Dashboard) cluster(r *http.Request) (any, error) {
	if err := info(r.Context()).tok.Check(auth.Server, "cluster", auth.Read); err != nil {
		return nil, err
	}
	v := ClusterView{Shards: []ShardRow{}, Applied: d.o.DB.Metrics().AppliedIndex}
	if d.o.Cluster == nil {
		return v, nil
	}
	v.Node = true
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	sh, err := d.o.Cluster.Shards(ctx)
	if err != nil {
		v.Error = err.Error()
	}
	var members map[uint32]ShardMembers
	if ml, ok := d.o.Cluster.(MemberLister); ok && err == nil {
		if members, err = ml.Members(ctx); err != nil {
			v.Error = err.Error()
		}
	}
	var applied map[uint64]MemberApplied
	if al, ok := d.o.Cluster.(AppliedLister); ok && members != nil {
		actx, cancel := context.WithTimeout(ctx, memberTimeout)
		applied = al.MembersApplied(actx)
		cancel()
	}
	for _, f := range sh {
		row := ShardRow{ShardFigures: f}
		if m, ok := members[f.Shard]; ok && applied != nil {
			row.Replicas = replicaRows(f.Shard, m, applied)
		}
		if m, ok := members[f.Shard]; ok {
			row.Leader = m.Leader
			ids := make([]uint64, 0, len(m.Members))
			for id := range m.Members {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				mark := ""
				if id == m.Leader {
					mark = "*"
				}
				row.Members = append(row.Members, fmt.Sprintf("%d%s=%s", id, mark, m.Members[id]))
			}
		}
		v.Shards = append(v.Shards, row)
	}
	v.Proposals, v.Retries, v.Timeouts = d.o.Cluster.Counters()
	return v, nil
}

// replicaRows lists shard's members by id with their applied index and
// lag behind the most advanced one that answered.
func replicaRows(shard uint32, m ShardMembers, applied map[uint64]MemberApplied) []ReplicaRow {
	var top uint64
	for id := range m.Members {
		if a, ok := applied[id]; ok && a.Err == nil {
			top = max(top, a.Applied[shard])
		}
	}
	ids := slices.Sorted(maps.Keys(m.Members))
	rows := make([]ReplicaRow, 0, len(ids))
	for _, id := range ids {
		r := ReplicaRow{ID: id, Address: m.Members[id], Leader: id == m.Leader, State: "unknown"}
		if a, ok := applied[id]; ok {
			if a.Err != nil {
				r.State, r.Error = "unreachable", a.Err.Error()
			} else if idx, ok := a.Applied[shard]; ok {
				r.State, r.Applied, r.Lag = "ok", idx, top-idx
			} else {
				r.State, r.Error = "unreachable", fmt.Sprintf("it reported no shard %d", shard)
			}
		}
		rows = append(rows, r)
	}
	return rows
}
