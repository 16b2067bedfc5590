package ui_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/ui"
)

// TestEndpoints reads every JSON endpoint the pages use and checks each
// answers the store's state.
func TestEndpoints(t *testing.T) {
	e := start(t, 50)
	ctx := context.Background()
	if err := e.q.Create(ctx, queue.Config{Name: "jobs", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	dead := e.makeDead(t, "jobs", 3, func(i int) string { return fmt.Sprintf("job %d", i) })
	if _, err := e.q.Enqueue(ctx, "jobs", queue.Task{Payload: []byte("waiting")}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Register(ctx, registry.AgentSpec{ID: "a1", Pool: "gpu", Capabilities: []string{"x"}, Capacity: 4}); err != nil {
		t.Fatal(err)
	}
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

	var ov ui.Overview
	getJSON(t, e.url+"/ui/api/overview", e.admin, &ov)
	keys := map[string]bool{}
	for _, f := range ov.Figures {
		keys[f.Key] = true
	}
	for _, k := range []string{"ops", "commit_p50", "commit_p99", "enqueued", "acked", "dead", "memory", "disk", "cache_hit"} {
		if !keys[k] {
			t.Errorf("overview lacks figure %q", k)
		}
	}
	if ov.Queues != 1 || ov.Agents != 1 || ov.Collections != 1 {
		t.Errorf("overview counts: %+v", ov)
	}
	// A second poll after more work sees the rates move.
	time.Sleep(600 * time.Millisecond)
	for i := range 50 {
		if _, err := e.q.Enqueue(ctx, "jobs", queue.Task{Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	getJSON(t, e.url+"/ui/api/overview", e.admin, &ov)
	if f := figure(ov, "enqueued"); f.Value <= 0 || len(f.History) == 0 {
		t.Errorf("enqueued/s after 50 enqueues: %+v", f)
	}
	if f := figure(ov, "ops"); f.Value <= 0 {
		t.Errorf("durable ops/s after 50 enqueues: %+v", f)
	}

	var qs ui.Queues
	getJSON(t, e.url+"/ui/api/queues", e.read, &qs)
	if len(qs.Queues) != 1 || qs.Queues[0].Name != "jobs" || qs.Queues[0].Dead != 3 || qs.Queues[0].Ready != 51 {
		t.Errorf("queues: %+v", qs)
	}

	var qv ui.QueueView
	getJSON(t, e.url+"/ui/api/queue?name=jobs&state=dead", e.read, &qv)
	if len(qv.Tasks) != 3 || qv.Tasks[0].ID != dead[0] || qv.Tasks[0].Preview != "job 0" || qv.CanAdmin {
		t.Errorf("queue dead page: %+v", qv)
	}
	getJSON(t, e.url+"/ui/api/queue?name=jobs&state=dead", e.admin, &qv)
	if !qv.CanAdmin {
		t.Errorf("admin token: can_admin false")
	}

	var tv ui.TaskView
	getJSON(t, fmt.Sprintf("%s/ui/api/task?queue=jobs&id=%d", e.url, dead[1]), e.read, &tv)
	if tv.Task.State != "dead" || tv.Payload != "job 1" || tv.Task.LastError == "" {
		t.Errorf("task: %+v", tv)
	}

	var ag ui.Agents
	getJSON(t, e.url+"/ui/api/agents", e.read, &ag)
	if len(ag.Agents) != 1 || ag.Agents[0].ID != "a1" || ag.Agents[0].Capacity != 4 || !ag.Agents[0].Healthy || len(ag.Pools) != 0 && ag.Pools[0].Name != "gpu" {
		t.Errorf("agents: %+v", ag)
	}

	var sv ui.SchedulerView
	getJSON(t, e.url+"/ui/api/scheduler", e.read, &sv)
	if !sv.Enabled || sv.Stats.Agents != 1 || sv.Stats.Capacity != 4 {
		t.Errorf("scheduler: %+v", sv)
	}

	var vv ui.Vectors
	getJSON(t, e.url+"/ui/api/vectors?collection=mem&id=5", e.read, &vv)
	if len(vv.Collections) != 1 || vv.Collections[0].Vectors != 20 || vv.Search == nil || len(vv.Search.Hits) == 0 || vv.Search.Hits[0].ID != 5 {
		t.Errorf("vectors: %+v search %+v", vv, vv.Search)
	}

	var cv ui.ClusterView
	getJSON(t, e.url+"/ui/api/cluster", e.read, &cv)
	if cv.Node || cv.Applied == 0 {
		t.Errorf("cluster on a standalone store: %+v", cv)
	}

	// Bad parameters get 400 and not-found 404.
	for url, want := range map[string]int{
		"/ui/api/queue?name=jobs&state=ready": 400,
		"/ui/api/queue?name=jobs&after=zz":    400,
		"/ui/api/queue?name=nope":             404,
		"/ui/api/task?queue=jobs&id=x":        400,
		"/ui/api/task?queue=jobs&id=999999":   404,
		"/ui/api/agents?health=sick":          400,
		"/ui/api/nothing":                     404,
	} {
		if code, body, _ := req(t, http.MethodGet, e.url+url, e.admin, "", nil); code != want {
			t.Errorf("GET %s: %d %s, want %d", url, code, body, want)
		}
	}
}

func figure(o ui.Overview, key string) ui.Figure {
	for _, f := range o.Figures {
		if f.Key == key {
			return f
		}
	}
	return ui.Figure{}
}

// TestPaging pages through tables larger than a page: every item once, in
// order, never more than a page per answer.
func TestPaging(t *testing.T) {
	const page = 7
	e := start(t, page)
	ctx := context.Background()
	if err := e.q.Create(ctx, queue.Config{Name: "jobs", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	ids := e.makeDead(t, "jobs", 30, func(i int) string { return "x" })
	// 30 leases with distinct expiries.
	for i := range 30 {
		if _, err := e.q.Enqueue(ctx, "jobs", queue.Task{Payload: []byte("l")}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.q.Lease(ctx, "jobs", "w", 1, nil, time.Duration(30+i)*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 23 {
		if err := e.r.Register(ctx, registry.AgentSpec{ID: fmt.Sprintf("agent-%03d", i), Capacity: 1}); err != nil {
			t.Fatal(err)
		}
	}

	var got []uint64
	after := ""
	for pages := 0; ; pages++ {
		var qv ui.QueueView
		getJSON(t, e.url+"/ui/api/queue?name=jobs&state=dead&after="+after, e.read, &qv)
		if len(qv.Tasks) > page {
			t.Fatalf("page of %d tasks", len(qv.Tasks))
		}
		for _, tk := range qv.Tasks {
			got = append(got, tk.ID)
		}
		if qv.Next == "" {
			break
		}
		after = qv.Next
		if pages > 10 {
			t.Fatal("no end")
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("dead pages: %v, want %v", got, ids)
	}

	var exp []time.Time
	after = ""
	for {
		var qv ui.QueueView
		getJSON(t, e.url+"/ui/api/queue?name=jobs&state=leased&after="+after, e.read, &qv)
		for _, tk := range qv.Tasks {
			exp = append(exp, tk.LeaseExp)
		}
		if after = qv.Next; after == "" {
			break
		}
	}
	if len(exp) != 30 {
		t.Fatalf("%d leases paged, want 30", len(exp))
	}
	for i := 1; i < len(exp); i++ {
		if exp[i].Before(exp[i-1]) {
			t.Fatalf("leases not by expiry: %v before %v", exp[i], exp[i-1])
		}
	}

	var agents []string
	after = ""
	for {
		var ag ui.Agents
		getJSON(t, e.url+"/ui/api/agents?after="+after, e.read, &ag)
		if len(ag.Agents) > page {
			t.Fatalf("page of %d agents", len(ag.Agents))
		}
		for _, a := range ag.Agents {
			agents = append(agents, a.ID)
		}
		if after = ag.Next; after == "" {
			break
		}
	}
	if len(agents) != 23 || agents[0] != "agent-000" || agents[22] != "agent-022" {
		t.Errorf("agents paged: %v", agents)
	}
}

// TestAuth: no token gets 401 (the login page for pages), a token sees only
// its scopes, and a read-only token cannot replay.
func TestAuth(t *testing.T) {
	e := start(t, 50)
	ctx := context.Background()
	for _, q := range []string{"jobs", "other"} {
		if err := e.q.Create(ctx, queue.Config{Name: q, MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	ids := e.makeDead(t, "jobs", 1, func(int) string { return "p" })

	code, body, hdr := req(t, http.MethodGet, e.url+"/ui/", "", "", nil)
	if code != http.StatusUnauthorized || !strings.Contains(body, `id="login-form"`) || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("no token, page: %d %q", code, body)
	}
	if code, _, _ := req(t, http.MethodGet, e.url+"/ui/api/queues", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no token, api: %d", code)
	}
	if code, _, _ := req(t, http.MethodGet, e.url+"/ui/api/queues", "fdb_wrong", "", nil); code != http.StatusUnauthorized {
		t.Errorf("wrong token, api: %d", code)
	}
	if code, _, _ := req(t, http.MethodGet, e.url+"/ui/static/app.js", "", "", nil); code != http.StatusOK {
		t.Errorf("static asset without token: %d", code)
	}

	// queue:jobs:read sees jobs only, and no server figures.
	var qs ui.Queues
	getJSON(t, e.url+"/ui/api/queues", e.jobs, &qs)
	if len(qs.Queues) != 1 || qs.Queues[0].Name != "jobs" {
		t.Errorf("scoped token sees %+v", qs.Queues)
	}
	for _, u := range []string{"/ui/api/queue?name=other", "/ui/api/overview", "/ui/api/cluster"} {
		if code, _, _ := req(t, http.MethodGet, e.url+u, e.jobs, "", nil); code != http.StatusForbidden {
			t.Errorf("scoped token GET %s: %d, want 403", u, code)
		}
	}

	// The reader's page carries its CSRF token; with it a replay is still
	// refused (403) and the task stays dead.
	_, page, _ := req(t, http.MethodGet, e.url+"/ui/queue?name=jobs&state=dead", e.read, "", nil)
	body = fmt.Sprintf(`{"queue":"jobs","ids":["%d"]}`, ids[0])
	code, resp, _ := req(t, http.MethodPost, e.url+"/ui/api/replay", e.read, body,
		map[string]string{"Content-Type": "application/json", ui.CSRFHeader: csrfOf(t, page)})
	if code != http.StatusForbidden {
		t.Errorf("reader replay: %d %s", code, resp)
	}
	if ti, err := e.q.Get(ctx, "jobs", ids[0]); err != nil || ti.State != "dead" {
		t.Errorf("after refused replay: %+v %v", ti, err)
	}
}

// TestActions: replay and purge with the admin token need the page's
// CSRF token, a JSON body and no foreign origin.
func TestActions(t *testing.T) {
	e := start(t, 50)
	ctx := context.Background()
	if err := e.q.Create(ctx, queue.Config{Name: "jobs", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	ids := e.makeDead(t, "jobs", 2, func(int) string { return "p" })
	_, page, _ := req(t, http.MethodGet, e.url+"/ui/queue?name=jobs&state=dead", e.admin, "", nil)
	csrf := csrfOf(t, page)
	body := fmt.Sprintf(`{"queue":"jobs","ids":["%d"]}`, ids[0])
	json := "application/json"
	for name, h := range map[string]map[string]string{
		"no csrf":        {"Content-Type": json},
		"wrong csrf":     {"Content-Type": json, ui.CSRFHeader: strings.Repeat("0", len(csrf))},
		"form":           {"Content-Type": "application/x-www-form-urlencoded", ui.CSRFHeader: csrf},
		"text/plain":     {"Content-Type": "text/plain", ui.CSRFHeader: csrf},
		"foreign origin": {"Content-Type": json, ui.CSRFHeader: csrf, "Origin": "https://evil.example"},
		"cross-site":     {"Content-Type": json, ui.CSRFHeader: csrf, "Sec-Fetch-Site": "cross-site"},
	} {
		if code, resp, _ := req(t, http.MethodPost, e.url+"/ui/api/replay", e.admin, body, h); code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", name, code, resp)
		}
	}
	if ti, _ := e.q.Get(ctx, "jobs", ids[0]); ti.State != "dead" {
		t.Fatalf("a refused replay changed the task: %s", ti.State)
	}
	h := map[string]string{"Content-Type": json, ui.CSRFHeader: csrf}
	if code, resp, _ := req(t, http.MethodPost, e.url+"/ui/api/replay", e.admin, body, h); code != http.StatusOK {
		t.Fatalf("replay: %d %s", code, resp)
	}
	if ti, _ := e.q.Get(ctx, "jobs", ids[0]); ti.State != "ready" {
		t.Errorf("replayed task is %s, want ready", ti.State)
	}
	body = fmt.Sprintf(`{"queue":"jobs","ids":["%d"]}`, ids[1])
	if code, resp, _ := req(t, http.MethodPost, e.url+"/ui/api/purge", e.admin, body, h); code != http.StatusOK {
		t.Fatalf("purge: %d %s", code, resp)
	}
	if _, err := e.q.Get(ctx, "jobs", ids[1]); err == nil {
		t.Errorf("purged task still there")
	}
	// Another session's CSRF token does not fit this one.
	_, page2, _ := req(t, http.MethodGet, e.url+"/ui/queues", e.read, "", nil)
	if csrfOf(t, page2) == csrf {
		t.Errorf("two tokens share a CSRF token")
	}
}

// TestCookieLogin: the login form's cookie authenticates pages and, with
// the page's CSRF token, actions.
func TestCookieLogin(t *testing.T) {
	e := start(t, 50)
	code, body, _ := req(t, http.MethodPost, e.url+"/ui/api/login", "", `{"token":"fdb_bad"}`, map[string]string{"Content-Type": "application/json"})
	if code != http.StatusUnauthorized {
		t.Errorf("bad login: %d %s", code, body)
	}
	code, body, hdr := req(t, http.MethodPost, e.url+"/ui/api/login", "", `{"token":"`+e.read+`"}`, map[string]string{"Content-Type": "application/json"})
	if code != http.StatusOK {
		t.Fatalf("login: %d %s", code, body)
	}
	c := hdr.Get("Set-Cookie")
	if !strings.Contains(c, ui.CookieName+"=") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") {
		t.Errorf("cookie: %q", c)
	}
	cookie := strings.SplitN(c, ";", 2)[0]
	code, page, _ := req(t, http.MethodGet, e.url+"/ui/queues", "", "", map[string]string{"Cookie": cookie})
	if code != http.StatusOK || !strings.Contains(page, "reader") {
		t.Errorf("page with cookie: %d", code)
	}
	// A login form posted cross-site (form encoding) is refused.
	if code, _, _ := req(t, http.MethodPost, e.url+"/ui/api/login", "", "token="+e.read, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); code != http.StatusForbidden {
		t.Errorf("form login: %d, want 403", code)
	}
}

// TestEscaping: what users stored shows as text, never as markup.
func TestEscaping(t *testing.T) {
	e := start(t, 50)
	ctx := context.Background()
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	if err := e.q.Create(ctx, queue.Config{Name: "jobs", MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	ids := e.makeDead(t, "jobs", 1, func(int) string { return evil })
	if err := e.r.Register(ctx, registry.AgentSpec{ID: `<b>agent</b>`, Capabilities: []string{evil}, Capacity: 1}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{fmt.Sprintf("/ui/task?queue=jobs&id=%d", ids[0]), "/ui/queue?name=jobs&state=dead", "/ui/agents"} {
		code, page, _ := req(t, http.MethodGet, e.url+u, e.admin, "", nil)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", u, code)
		}
		if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") || strings.Contains(page, "<b>agent") {
			t.Errorf("%s shows stored markup unescaped", u)
		}
		if !strings.Contains(page, "&lt;script&gt;alert") && !strings.Contains(page, "&lt;b&gt;agent") {
			t.Errorf("%s lacks the escaped text", u)
		}
	}
}

// fakeCluster stands for a node: two shards, members, counters, the
// members' applied indexes (one unreachable, one without an admin
// address) and Raft commit latency from raft (if set).
type fakeCluster struct{ raft *histo.Histogram }

func (fakeCluster) Shards(context.Context) ([]server.ShardFigures, error) {
	return []server.ShardFigures{{Shard: 1, HasLeader: true, IsLeader: true, Term: 3, Applied: 120},
		{Shard: 2, HasLeader: true, Term: 4, Applied: 99}}, nil
}
func (fakeCluster) Counters() (uint64, uint64, uint64) { return 500, 7, 1 }
func (fakeCluster) Members(context.Context) (map[uint32]ui.ShardMembers, error) {
	return map[uint32]ui.ShardMembers{
		1: {Leader: 1, Members: map[uint64]string{2: "10.0.0.2:7000", 1: "10.0.0.1:7000", 3: "10.0.0.3:7000", 4: "10.0.0.4:7000"}},
		2: {Leader: 2, Members: map[uint64]string{1: "10.0.0.1:7000", 2: "10.0.0.2:7000"}},
	}, nil
}
func (fakeCluster) MembersApplied(context.Context) map[uint64]ui.MemberApplied {
	return map[uint64]ui.MemberApplied{
		1: {Applied: map[uint32]uint64{1: 120, 2: 99}},
		2: {Err: errors.New("dial tcp 10.0.0.2:7100: connection refused")},
		3: {Applied: map[uint32]uint64{1: 100, 2: 99}},
		// 4: no admin address known
	}
}
func (f fakeCluster) RaftCommitLatency() map[uint32]histo.Snapshot {
	if f.raft == nil {
		return nil
	}
	return map[uint32]histo.Snapshot{1: f.raft.Snapshot()}
}

// TestClusterView: on a node the cluster page lists each shard's leader,
// term, applied index and members; it needs server:cluster:read.
func TestClusterView(t *testing.T) {
	e := startNode(t, 50, fakeCluster{})
	var cv ui.ClusterView
	getJSON(t, e.url+"/ui/api/cluster", e.read, &cv)
	if !cv.Node || len(cv.Shards) != 2 || cv.Proposals != 500 || cv.Retries != 7 || cv.Timeouts != 1 {
		t.Fatalf("cluster: %+v", cv)
	}
	if s := cv.Shards[1]; s.Term != 4 || s.Applied != 99 || s.Leader != 2 || fmt.Sprint(s.Members) != "[1=10.0.0.1:7000 2*=10.0.0.2:7000]" {
		t.Errorf("shard 2: %+v", s)
	}
	code, page, _ := req(t, http.MethodGet, e.url+"/ui/cluster", e.read, "", nil)
	if code != http.StatusOK || !strings.Contains(page, "replica 2") || !strings.Contains(page, "2*=10.0.0.2:7000") {
		t.Errorf("cluster page: %d", code)
	}
	var ov ui.Overview
	getJSON(t, e.url+"/ui/api/overview", e.read, &ov)
	if !ov.Node || figure(ov, "raft_commit_p99").Key == "" || figure(ov, "raft_proposals").Key == "" {
		t.Errorf("overview on a node lacks Raft figures: %+v", ov.Figures)
	}
	if code, _, _ := req(t, http.MethodGet, e.url+"/ui/api/cluster", e.jobs, "", nil); code != http.StatusForbidden {
		t.Errorf("cluster with queue:jobs:read: %d, want 403", code)
	}
}
