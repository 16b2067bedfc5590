package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/histo"
)

// TestBrowserNode drives the dashboard of a node (a stand-in Cluster whose
// Raft commit histogram a workload feeds with ever slower commits) in
// headless Chromium: the overview's Raft commit p50/p99 render and move
// without a reload, the vectors page's search count and latency move with
// searches, and the cluster page shows each member's replica lag,
// "unreachable" and "no admin address" included. Skips without Chromium
// as TestBrowser does.
func TestBrowserNode(t *testing.T) {
	t.Parallel()
	exe := chromium()
	if exe == "" {
		if os.Getenv("FLOWDB_REQUIRE_BROWSER") != "" {
			t.Fatal("FLOWDB_REQUIRE_BROWSER is set and no Chromium was found")
		}
		t.Skip("no Chromium found (install Debian's chromium, or set FLOWDB_CHROMIUM)")
	}
	raft := new(histo.Histogram)
	e := startNode(t, 50, fakeCluster{raft: raft})
	ctx := context.Background()
	if err := e.v.Create(ctx, hnsw.Config{Name: "memories", Dim: 4}); err != nil {
		t.Fatal(err)
	}
	var vs []hnsw.Vector
	for i := range 50 {
		vs = append(vs, hnsw.Vector{ID: uint64(i + 1), Values: []float32{float32(i), 1, 2, 3}})
	}
	if err := e.v.Upsert(ctx, "memories", vs); err != nil {
		t.Fatal(err)
	}
	// Writes, searches, and Raft commits 1 ms slower each round.
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; wctx.Err() == nil; n++ {
			_ = e.d.Set(wctx, "n", fmt.Appendf(nil, "k%d", n), []byte("v"))
			_, _ = e.v.Search(wctx, "memories", []float32{float32(n % 50), 1, 2, 3}, 5, hnsw.SearchOptions{})
			raft.Record(time.Duration(n) * time.Millisecond)
			select {
			case <-wctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	b := newBrowser(t, exe, t.ArtifactDir())
	b.login(e.url+"/ui/", e.read)
	b.do(chromedp.WaitVisible(chromedp.CSS(`[data-figure="raft_commit_p99"]`)))
	text := func(sel string) string {
		return evalT[string](b, fmt.Sprintf(`(document.querySelector('%s') || {textContent: "missing"}).textContent`, sel))
	}
	p99 := text(`[data-figure="raft_commit_p99"]`)
	b.waitFor("Raft commit p99 to move", fmt.Sprintf(`document.querySelector('[data-figure="raft_commit_p99"]').textContent != %q`, p99))
	for _, k := range []string{"raft_commit_p50", "raft_commit_p99", "commit_p99"} {
		if v := text(fmt.Sprintf(`[data-figure="%s"]`, k)); !strings.HasSuffix(v, "s") {
			t.Errorf("%s shows %q", k, v)
		}
	}
	b.shot("node-overview")

	if st := b.status(e.url + "/ui/vectors"); st != http.StatusOK {
		t.Fatalf("vectors: %d", st)
	}
	b.do(chromedp.WaitVisible(chromedp.CSS(`tr [data-col="searches"]`)))
	n0 := text(`tr [data-col="searches"]`)
	b.waitFor("the search count to move", fmt.Sprintf(`document.querySelector('tr [data-col="searches"]').textContent != %q`, n0))
	if v := text(`tr [data-col="search_p99"]`); !strings.HasSuffix(v, "s") {
		t.Errorf("search p99 shows %q", v)
	}
	b.shot("node-vectors")

	if st := b.status(e.url + "/ui/cluster"); st != http.StatusOK {
		t.Fatalf("cluster: %d", st)
	}
	b.do(chromedp.WaitVisible(chromedp.CSS(`td[data-col="lag"] [data-replica]`)))
	b.waitFor("a refresh", `+document.body.dataset.polls >= 1`)
	lag := text(`tr[data-shard="1"] td[data-col="lag"]`)
	for _, want := range []string{"1*: 0", "3: 20", "2: unreachable", "4: no admin address"} {
		if !strings.Contains(lag, want) {
			t.Errorf("shard 1's replica lag %q lacks %q", lag, want)
		}
	}
	b.shot("node-cluster")
}
