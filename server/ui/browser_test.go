package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
)

// chromium finds a Chromium or Chrome binary: $FLOWDB_CHROMIUM, then the
// usual names on PATH ("" if none).
func chromium() string {
	if p := os.Getenv("FLOWDB_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium tab (its own cookie jar).
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots
}

func newBrowser(t *testing.T, exe, dir string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelT(); cancel(); cancelA() })
	return &browser{t: t, ctx: ctx, dir: dir}
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

// status navigates to url and returns the document's HTTP status.
func (b *browser) status(url string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(url))
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.Status
}

func evalT[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// shot saves a full-page screenshot as NAME.png.
func (b *browser) shot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// login signs in through the login form at url.
func (b *browser) login(url, token string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS("#login-form button")),
		chromedp.WaitVisible(chromedp.CSS("header nav")))
}

// waitFor polls a JavaScript condition until it holds or 10 s pass.
func (b *browser) waitFor(what, js string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !evalT[bool](b, js) {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s (%s)", what, js)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowser drives the dashboard in headless Chromium: login, every page
// (a screenshot of each in the test's artifact directory: go test
// -artifacts -outputdir DIR keeps them), live figures that change without a
// reload, a stored <script> shown as text, a read-only token that cannot
// replay, and a dead letter replayed through the page. Without Chromium it
// skips, unless FLOWDB_REQUIRE_BROWSER is set. FLOWDB_DASHBOARD_PNG=PATH
// copies the overview's screenshot there (the README's docs/dashboard.png).
func TestBrowser(t *testing.T) {
	t.Parallel()
	exe := chromium()
	if exe == "" {
		if os.Getenv("FLOWDB_REQUIRE_BROWSER") != "" {
			t.Fatal("FLOWDB_REQUIRE_BROWSER is set and no Chromium was found (install Debian's chromium, or set FLOWDB_CHROMIUM)")
		}
		t.Skip("no Chromium found (install Debian's chromium, or set FLOWDB_CHROMIUM); set FLOWDB_REQUIRE_BROWSER to fail instead")
	}
	e := start(t, 50)
	ctx := context.Background()
	dir := t.ArtifactDir()
	t.Logf("screenshots in %s", dir)

	// A store with something to show.
	if err := e.q.Create(ctx, queue.Config{Name: "jobs", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Create(ctx, queue.Config{Name: "work"}); err != nil {
		t.Fatal(err)
	}
	const evil = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>`
	dead := e.makeDead(t, "jobs", 3, func(i int) string {
		if i == 0 {
			return evil
		}
		return fmt.Sprintf(`{"job": %d}`, i)
	})
	if err := e.r.DefinePool(ctx, registry.Pool{Name: "gpu", MinWarm: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		spec := registry.AgentSpec{ID: fmt.Sprintf("agent-%d", i), Capabilities: []string{"py", "gpu"}, Capacity: 8}
		if i < 2 {
			spec.Pool = "gpu"
		}
		if err := e.r.Register(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.v.Create(ctx, hnsw.Config{Name: "memories", Dim: 8}); err != nil {
		t.Fatal(err)
	}
	var vs []hnsw.Vector
	for i := range 200 {
		v := make([]float32, 8)
		for j := range v {
			v[j] = float32((i*7+j*3)%17) / 17
		}
		vs = append(vs, hnsw.Vector{ID: uint64(i + 1), Values: v})
	}
	if err := e.v.Upsert(ctx, "memories", vs); err != nil {
		t.Fatal(err)
	}

	// A small steady workload: enqueue, lease and ack through "work".
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; wctx.Err() == nil; n++ {
			tasks := make([]queue.Task, 20)
			for i := range tasks {
				tasks[i] = queue.Task{Payload: []byte(fmt.Sprintf("w%d-%d", n, i)), Priority: i % 3}
			}
			if _, err := e.q.EnqueueBatch(wctx, "work", tasks); err != nil {
				return
			}
			ls, err := e.q.Lease(wctx, "work", "agent-1", 15, nil, time.Minute)
			if err != nil {
				return
			}
			for _, l := range ls[:len(ls)*2/3] {
				if e.q.Ack(wctx, "work", l.ID, l.Token, nil) != nil {
					return
				}
			}
			for i := range 5 {
				_ = e.r.Heartbeat(wctx, fmt.Sprintf("agent-%d", i), i, "ok")
			}
			select {
			case <-wctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	t0 := time.Now()
	anon := newBrowser(t, exe, dir)
	// No token: 401 and the login page, for pages as for the JSON.
	if st := anon.status(e.url + "/ui/queues"); st != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", st)
	}
	anon.do(chromedp.WaitVisible(chromedp.CSS("#login-form")))
	anon.shot("login")
	if st := anon.status(e.url + "/ui/api/overview"); st != http.StatusUnauthorized {
		t.Errorf("no token, JSON: status %d, want 401", st)
	}

	// A read-only token sees the dead letters but cannot replay them: no
	// buttons, and the page's own CSRF token does not make a replay pass.
	t.Logf("%v: anonymous checks done", time.Since(t0))
	reader := anon
	reader.login(e.url+"/ui/queue?name=jobs&state=dead", e.read)
	reader.do(chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-task="%d"]`, dead[1]))))
	if n := evalT[int](reader, `document.querySelectorAll("button[data-action]").length`); n != 0 {
		t.Errorf("read-only token sees %d action buttons", n)
	}
	st := evalT[int](reader, fmt.Sprintf(`fetch("/ui/api/replay", {method: "POST", headers: {"Content-Type": "application/json",
		"X-FlowDB-CSRF": document.querySelector('meta[name="csrf"]').content}, body: JSON.stringify({queue: "jobs", ids: ["%d"]})}).then(r => r.status)`, dead[1]))
	if st != http.StatusForbidden {
		t.Errorf("read-only replay from the page: %d, want 403", st)
	}
	if ti, _ := e.q.Get(ctx, "jobs", dead[1]); ti.State != "dead" {
		t.Errorf("after a read-only replay the task is %s", ti.State)
	}

	t.Logf("%v: read-only checks done", time.Since(t0))
	// Log out (the cookie goes) and sign in as the administrator.
	reader.do(chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	if st := reader.status(e.url + "/ui/queues"); st != http.StatusUnauthorized {
		t.Errorf("after logout: status %d, want 401", st)
	}
	admin := reader
	admin.login(e.url+"/ui/", e.admin)
	t.Logf("%v: signed in as admin", time.Since(t0))

	// Overview: the figures change without a reload.
	admin.do(chromedp.WaitVisible(chromedp.CSS(`[data-figure="enqueued"]`)))
	evalT[bool](admin, `window.__mark = true`)
	before := evalT[string](admin, `document.getElementById("live").innerText`)
	polls0 := evalT[string](admin, `document.body.dataset.polls`)
	admin.waitFor("three refreshes", fmt.Sprintf(`+document.body.dataset.polls >= %s + 3`, polls0))
	admin.waitFor("a sparkline", `!!document.querySelector('[data-key="enqueued"] polyline')`)
	after := evalT[string](admin, `document.getElementById("live").innerText`)
	if !evalT[bool](admin, `window.__mark === true`) {
		t.Errorf("the overview reloaded instead of refreshing in place")
	}
	if before == after {
		t.Errorf("overview figures did not change in %s polls", polls0)
	}
	if v := evalT[string](admin, `document.querySelector('[data-figure="enqueued"]').textContent`); v == "0" || v == "–" {
		t.Errorf("enqueued/s under load shows %q", v)
	}
	// Commit p50/p99 under load are quantiles of the engine's histogram.
	for _, k := range []string{"commit_p50", "commit_p99"} {
		if v := evalT[string](admin, fmt.Sprintf(`document.querySelector('[data-figure="%s"]').textContent`, k)); !strings.HasSuffix(v, "s") {
			t.Errorf("%s under load shows %q", k, v)
		}
	}
	ov := admin.shot("overview")
	if p := os.Getenv("FLOWDB_DASHBOARD_PNG"); p != "" {
		b, _ := os.ReadFile(ov)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Logf("%v: overview done", time.Since(t0))
	// Every other page renders and refreshes.
	for _, p := range []struct{ name, path, sel string }{
		{"queues", "/ui/queues", `tr[data-queue="work"]`},
		{"queue-leased", "/ui/queue?name=work&state=leased", `table.tasks`},
		{"agents", "/ui/agents", `tr[data-agent="agent-4"]`},
		{"scheduler", "/ui/scheduler", `[data-figure="balance"]`},
		{"vectors", "/ui/vectors?collection=memories&id=7", `#search table`},
		{"cluster", "/ui/cluster", `[data-figure="applied"]`},
	} {
		if st := admin.status(e.url + p.path); st != http.StatusOK {
			t.Errorf("%s: status %d", p.path, st)
		}
		admin.do(chromedp.WaitVisible(chromedp.CSS(p.sel)))
		admin.waitFor(p.name+" refresh", `+document.body.dataset.polls >= 2`)
		admin.do(chromedp.WaitVisible(chromedp.CSS(p.sel)))
		if p.name == "vectors" {
			// The search by id counts: the refreshed row shows it, with
			// its latency quantiles.
			admin.waitFor("the search counted", `+document.querySelector('tr [data-col="searches"]').textContent >= 1`)
			if v := evalT[string](admin, `document.querySelector('tr [data-col="search_p99"]').textContent`); !strings.HasSuffix(v, "s") {
				t.Errorf("search p99 shows %q", v)
			}
		}
		admin.shot(p.name)
	}

	t.Logf("%v: pages done", time.Since(t0))
	// The stored markup shows as text: no element, no script run.
	admin.status(fmt.Sprintf("%s/ui/task?queue=jobs&id=%d", e.url, dead[0]))
	admin.do(chromedp.WaitVisible(chromedp.CSS("#payload")))
	if got := evalT[string](admin, `document.getElementById("payload").textContent`); got != evil {
		t.Errorf("payload shows as %q, want the text %q", got, evil)
	}
	if evalT[bool](admin, `document.querySelector("#payload img, #payload script") !== null || window.__pwned === 1`) {
		t.Errorf("a stored payload became markup")
	}
	admin.shot("task")

	// Replay a dead letter through the page: button, confirmation, done.
	admin.status(e.url + "/ui/queue?name=jobs&state=dead")
	btn := fmt.Sprintf(`button[data-action="replay"][data-id="%d"]`, dead[2])
	admin.do(chromedp.WaitVisible(chromedp.CSS(btn)))
	if evalT[bool](admin, `document.querySelectorAll("tbody script, tbody img").length > 0 || window.__pwned === 1`) {
		t.Errorf("the dead-letter table turned a payload into markup")
	}
	admin.shot("queue-dead")
	admin.do(chromedp.Click(chromedp.CSS(btn)), chromedp.WaitVisible(chromedp.CSS("#modal-yes")))
	if txt := evalT[string](admin, `document.getElementById("modal-text").textContent`); !strings.Contains(txt, fmt.Sprint(dead[2])) {
		t.Errorf("confirmation text %q", txt)
	}
	admin.shot("replay-confirm")
	if ti, _ := e.q.Get(ctx, "jobs", dead[2]); ti.State != "dead" {
		t.Fatalf("replayed before the confirmation: %s", ti.State)
	}
	admin.do(chromedp.Click(chromedp.CSS("#modal-yes")))
	admin.waitFor("the replay's answer", `document.getElementById("flash").textContent.includes("done")`)
	if ti, err := e.q.Get(ctx, "jobs", dead[2]); err != nil || ti.State != "ready" {
		t.Errorf("after the page's replay: %+v %v, want ready", ti, err)
	}
	admin.waitFor("the row to leave the dead list", fmt.Sprintf(`!document.querySelector('tr[data-task="%d"]')`, dead[2]))
}
