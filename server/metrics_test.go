package server_test

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/server"
)

// raftFake is a Cluster that also reports Raft commit latency
// (server.RaftLatency) from a histogram the test records into.
type raftFake struct{ h *histo.Histogram }

func (f raftFake) Shards(context.Context) ([]server.ShardFigures, error) {
	return []server.ShardFigures{{Shard: 2, HasLeader: true, IsLeader: true, Term: 1, Applied: 7}}, nil
}
func (f raftFake) Counters() (uint64, uint64, uint64) { return 0, 0, 0 }
func (f raftFake) RaftCommitLatency() map[uint32]histo.Snapshot {
	return map[uint32]histo.Snapshot{2: f.h.Snapshot()}
}

// scrape returns /metrics as name{labels} -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestLatencyMetrics: /metrics has the engine's commit and apply latency,
// a collection's search latency and a node's Raft commit latency as real
// Prometheus histograms, and they move by exactly what was done between
// two scrapes; buckets are cumulative and in seconds.
func TestLatencyMetrics(t *testing.T) {
	raft := new(histo.Histogram)
	e := start(t, func(o *server.Options) { o.Cluster = raftFake{raft} })
	c := e.client(t, nil)
	ctx := context.Background()
	if err := c.CreateCollection(ctx, client.CollectionConfig{Name: "c", Dim: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Upsert(ctx, "c", []client.Vector{{ID: 1, Values: []float32{1, 0}}, {ID: 2, Values: []float32{0, 1}}}); err != nil {
		t.Fatal(err)
	}
	m0 := scrape(t, e.url)
	const sets, searches = 9, 4
	for i := range sets {
		if err := c.Set(ctx, "n", []byte{byte(i)}, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for range searches {
		if _, err := c.Search(ctx, "c", []float32{1, 0.1}, 1, client.SearchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		raft.Record(3 * time.Millisecond) // between 2^21 and 2^22 ns
	}
	m1 := scrape(t, e.url)
	moved := func(name string) float64 { return m1[name] - m0[name] }
	if got := moved("flowdb_commit_seconds_count"); got != sets {
		t.Errorf("flowdb_commit_seconds_count moved by %v, want %d (one per Set)", got, sets)
	}
	if got := moved(`flowdb_commit_seconds_bucket{le="+Inf"}`); got != sets {
		t.Errorf("commit +Inf bucket moved by %v", got)
	}
	if moved("flowdb_commit_seconds_sum") <= 0 || moved("flowdb_apply_seconds_count") < 1 || moved("flowdb_apply_seconds_count") > sets {
		t.Errorf("commit sum moved %v, apply count %v (want 1..%d frames)", moved("flowdb_commit_seconds_sum"), moved("flowdb_apply_seconds_count"), sets)
	}
	if got := moved(`flowdb_vector_search_seconds_count{collection="c"}`); got != searches {
		t.Errorf("search count moved by %v, want %d", got, searches)
	}
	if got := m1[`flowdb_raft_commit_seconds_count{shard="2"}`]; got != 5 {
		t.Errorf("raft commit count %v, want 5", got)
	}
	// Cumulative buckets in seconds: the five 3 ms samples are above
	// 2^21 ns (2.097 ms) and below 2^22 ns (4.194 ms).
	if lo, hi := m1[`flowdb_raft_commit_seconds_bucket{shard="2",le="0.002097152"}`], m1[`flowdb_raft_commit_seconds_bucket{shard="2",le="0.004194304"}`]; lo != 0 || hi != 5 {
		t.Errorf("raft buckets: le 2.1ms %v (want 0), le 4.2ms %v (want 5)", lo, hi)
	}
	if got := m1[`flowdb_raft_commit_seconds_sum{shard="2"}`]; got < 0.0149 || got > 0.0151 {
		t.Errorf("raft sum %v, want 0.015", got)
	}
	// Buckets are cumulative: counts never fall as le grows, up to +Inf.
	type bk struct{ le, n float64 }
	var bks []bk
	for k, v := range m1 {
		if le, ok := strings.CutPrefix(k, `flowdb_commit_seconds_bucket{le="`); ok {
			f, _ := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64) // +Inf parses as Inf
			bks = append(bks, bk{f, v})
		}
	}
	slices.SortFunc(bks, func(a, b bk) int { return cmp.Compare(a.le, b.le) })
	for i := 1; i < len(bks); i++ {
		if bks[i].n < bks[i-1].n {
			t.Errorf("commit buckets not cumulative: le %v holds %v, le %v holds %v", bks[i-1].le, bks[i-1].n, bks[i].le, bks[i].n)
		}
	}
	if len(bks) < 20 {
		t.Errorf("%d commit buckets", len(bks))
	}
	if _, ok := m1[`flowdb_commit_mean_seconds{stage="commit"}`]; ok {
		t.Error("the commit mean is still exported beside the histogram")
	}
}
