package ui_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/server/ui"
)

// near checks a figure in ms is within one histogram bucket (12.5%) of want.
func near(t *testing.T, name string, got ui.Num, want time.Duration) {
	t.Helper()
	w := float64(want) / 1e6
	if math.IsNaN(float64(got)) || math.Abs(float64(got)-w) > w/8 {
		t.Errorf("%s = %v ms, want %v within 12.5%%", name, got, want)
	}
}

// TestLatencyFigures: the overview's commit p50/p99 are the quantiles of
// the engine's commit histogram (not means), the Raft commit p50/p99 on a
// node those of the node's histogram over the last minute, and both move
// with what is recorded; the vectors page shows each collection's search
// count and p50/p99, moving with searches.
func TestLatencyFigures(t *testing.T) {
	raft := new(histo.Histogram)
	e := startNode(t, 50, fakeCluster{raft: raft})
	ctx := context.Background()
	for i := range 30 {
		if err := e.d.Set(ctx, "n", fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		raft.Record(4 * time.Millisecond)
	}
	m := e.d.Metrics()
	var ov ui.Overview
	getJSON(t, e.url+"/ui/api/overview", e.read, &ov)
	// The first poll has no earlier sample: quantiles since start.
	if got, want := figure(ov, "commit_p99").Value, float64(m.Commit.Quantile(0.99))/1e6; float64(got) != want || want <= 0 {
		t.Errorf("commit p99 %v ms, the engine's histogram says %v ms", got, want)
	}
	if got, want := figure(ov, "commit_p50").Value, float64(m.Commit.Quantile(0.5))/1e6; float64(got) != want {
		t.Errorf("commit p50 %v ms, the engine's histogram says %v ms", got, want)
	}
	if f := figure(ov, "commit_p99"); f.State != "ok" && f.State != "bad" {
		t.Errorf("commit p99 state %q with 30 commits", f.State)
	}
	near(t, "raft p50", figure(ov, "raft_commit_p50").Value, 4*time.Millisecond)
	near(t, "raft p99", figure(ov, "raft_commit_p99").Value, 4*time.Millisecond)
	if f := figure(ov, "raft_commit_p99"); f.State != "ok" {
		t.Errorf("raft p99 4 ms against a 30 ms target: %q", f.State)
	}
	// Over the next interval only slow Raft commits: the window (since the
	// first poll) holds only them.
	time.Sleep(600 * time.Millisecond)
	for range 10 {
		raft.Record(50 * time.Millisecond)
	}
	getJSON(t, e.url+"/ui/api/overview", e.read, &ov)
	near(t, "raft p50 after slow commits", figure(ov, "raft_commit_p50").Value, 50*time.Millisecond)
	if f := figure(ov, "raft_commit_p99"); f.State != "bad" || len(f.History) != 1 {
		t.Errorf("raft p99 50 ms against a 30 ms target: %q, history %v", f.State, f.History)
	}
	if f := figure(ov, "commit_p99"); f.State != "idle" {
		t.Errorf("commit p99 with no commit in the window: %q (%v)", f.State, f.Value)
	}

	// Search latency per collection.
	if err := e.v.Create(ctx, hnsw.Config{Name: "mem", Dim: 4}); err != nil {
		t.Fatal(err)
	}
	var vs []hnsw.Vector
	for i := range 20 {
		vs = append(vs, hnsw.Vector{ID: uint64(i + 1), Values: []float32{float32(i), 1, 2, 3}})
	}
	if err := e.v.Upsert(ctx, "mem", vs); err != nil {
		t.Fatal(err)
	}
	var vv ui.Vectors
	getJSON(t, e.url+"/ui/api/vectors", e.read, &vv)
	if r := vv.Collections[0]; r.Searches != 0 || r.SearchP99 != "–" {
		t.Errorf("before any search: %d searches, p99 %q", r.Searches, r.SearchP99)
	}
	for i := range 3 {
		getJSON(t, fmt.Sprintf("%s/ui/api/vectors?collection=mem&id=%d", e.url, i+1), e.read, &vv)
	}
	st, _ := e.v.Stats("mem")
	r := vv.Collections[0] // read before the third search ran
	if r.Searches != 2 || st.Search.Count != 3 {
		t.Errorf("searches: page %d (want 2, read before its own search), stats %d (want 3)", r.Searches, st.Search.Count)
	}
	getJSON(t, e.url+"/ui/api/vectors", e.read, &vv)
	if r := vv.Collections[0]; r.Searches != 3 || r.SearchP99 == "–" || r.SearchP99 != strings.TrimSpace(r.SearchP99) {
		t.Errorf("after 3 searches: %+v", r)
	}
}

// TestReplicaLag: the cluster page shows every member's applied index and
// lag behind the most advanced replica, "unreachable" for a member that
// did not answer and "unknown" for one without an admin address.
func TestReplicaLag(t *testing.T) {
	e := startNode(t, 50, fakeCluster{})
	var cv ui.ClusterView
	getJSON(t, e.url+"/ui/api/cluster", e.read, &cv)
	got := map[string]string{}
	for _, s := range cv.Shards {
		for _, r := range s.Replicas {
			got[fmt.Sprintf("%d/%d", s.Shard, r.ID)] = fmt.Sprintf("%s %d %d %v", r.State, r.Applied, r.Lag, r.Leader)
		}
	}
	want := map[string]string{
		"1/1": "ok 120 0 true", "1/2": "unreachable 0 0 false", "1/3": "ok 100 20 false", "1/4": "unknown 0 0 false",
		"2/1": "ok 99 0 false", "2/2": "unreachable 0 0 true",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("replicas:\n got %v\nwant %v", got, want)
	}
	for _, s := range cv.Shards {
		if s.Shard == 1 && !strings.Contains(s.Replicas[1].Error, "connection refused") {
			t.Errorf("unreachable member's error: %q", s.Replicas[1].Error)
		}
	}
	code, page, _ := req(t, "GET", e.url+"/ui/cluster", e.read, "", nil)
	for _, want := range []string{`data-replica="3"`, `<b>20</b>`, `unreachable`, `no admin address`} {
		if code != 200 || !strings.Contains(page, want) {
			t.Errorf("cluster page (%d) lacks %s", code, want)
		}
	}
}
