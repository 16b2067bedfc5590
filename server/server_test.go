package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
)

// env is a real server on a loopback port over an in-memory store.
type env struct {
	d    *db.DB
	q    *queue.Manager
	r    *registry.Registry
	v    *hnsw.Manager
	srv  *server.Server
	url  string
	addr string
}

func start(t *testing.T, mod func(*server.Options)) *env {
	t.Helper()
	d := testutil.OpenMem(t, nil)
	q, err := queue.Attach(d, &queue.Options{TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := hnsw.Attach(d)
	if err != nil {
		t.Fatal(err)
	}
	o := server.Options{DB: d, Queues: q, Registry: r, Vectors: v, Logger: testutil.Quiet()}
	if mod != nil {
		mod(&o)
	}
	s, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := server.HTTPServer(s.Handler(), nil)
	go hs.Serve(l)
	t.Cleanup(func() {
		hs.Close()
		r.Close()
		q.Close()
		d.Close()
	})
	return &env{d: d, q: q, r: r, v: v, srv: s, url: "http://" + l.Addr().String(), addr: l.Addr().String()}
}

func (e *env) client(t *testing.T, o *client.Options) *client.Client {
	t.Helper()
	c, err := client.New(e.url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// post sends a raw HTTP request, as curl or a browser would.
func post(t *testing.T, url, ctype string, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func codeOf(err error) connect.Code {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestKV(t *testing.T) {
	e := start(t, func(o *server.Options) { o.ScanPageSize = 3 })
	c := e.client(t, nil)
	ctx := context.Background()
	if err := c.Set(ctx, "ns", []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "ns", []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("get = %q, %v", v, err)
	}
	// Typed errors across the wire.
	if _, err := c.Get(ctx, "ns", []byte("missing")); !errors.Is(err, db.ErrNotFound) || codeOf(err) != connect.CodeNotFound {
		t.Fatalf("get missing: %v (code %v), want db.ErrNotFound", err, codeOf(err))
	}
	if err := c.Set(ctx, "ns", nil, []byte("x")); !errors.Is(err, db.ErrEmptyKey) || codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty key: %v", err)
	}
	if err := c.SetTTL(ctx, "ns", []byte("k"), []byte("x"), -time.Second); !errors.Is(err, db.ErrInvalidTTL) {
		t.Fatalf("negative ttl: %v", err)
	}
	if err := c.SetTTL(ctx, "ns", []byte("t"), []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if en, err := c.GetEntry(ctx, "ns", []byte("t")); err != nil || en.ExpiresAt.IsZero() || time.Until(en.ExpiresAt) > time.Hour {
		t.Fatalf("ttl entry %+v %v", en, err)
	}
	if err := c.Delete(ctx, "ns", []byte("t")); err != nil {
		t.Fatal(err)
	}
	// Scan across pages of 3, both ways, with bounds and a limit.
	var b client.Batch
	for i := range 10 {
		b.Set("scan", fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d", i))
	}
	if err := c.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	keys := func(o client.ScanOptions) string {
		var out []string
		for en, err := range c.Scan(ctx, "scan", o) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(en.Key))
		}
		return strings.Join(out, ",")
	}
	if got := keys(client.ScanOptions{}); got != "k00,k01,k02,k03,k04,k05,k06,k07,k08,k09" {
		t.Fatalf("scan = %s", got)
	}
	if got := keys(client.ScanOptions{Reverse: true, Start: []byte("k02"), End: []byte("k08")}); got != "k07,k06,k05,k04,k03,k02" {
		t.Fatalf("reverse scan = %s", got)
	}
	if got := keys(client.ScanOptions{Limit: 5, Start: []byte("k03")}); got != "k03,k04,k05,k06,k07" {
		t.Fatalf("limited scan = %s", got)
	}
	var del client.Batch
	del.DeletePrefix("scan", []byte("k0"))
	del.Set("scan", []byte("z"), []byte("z"))
	if err := c.Commit(ctx, &del); err != nil {
		t.Fatal(err)
	}
	if got := keys(client.ScanOptions{}); got != "z" {
		t.Fatalf("after batch delete: %s", got)
	}
	if err := c.Commit(ctx, &client.Batch{}); !errors.Is(err, db.ErrEmptyBatch) {
		t.Fatalf("empty batch: %v", err)
	}
	// A batch is all or none: an invalid operation applies nothing.
	var bad client.Batch
	bad.Set("scan", []byte("y"), []byte("1"))
	bad.Set("scan", nil, []byte("1"))
	if err := c.Commit(ctx, &bad); !errors.Is(err, db.ErrEmptyKey) {
		t.Fatalf("bad batch: %v", err)
	}
	if _, err := c.Get(ctx, "scan", []byte("y")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("bad batch applied part: %v", err)
	}
}

func TestCurlJSON(t *testing.T) {
	e := start(t, nil)
	code, body := post(t, e.url+"/flowdb.v1.KVService/Set", "application/json", `{"namespace":"n","key":"aw==","value":"dg=="}`, nil)
	if code != 200 {
		t.Fatalf("set: %d %s", code, body)
	}
	code, body = post(t, e.url+"/flowdb.v1.KVService/Get", "application/json", `{"namespace":"n","key":"aw=="}`, nil)
	if code != 200 || !strings.Contains(body, `"value":"dg=="`) {
		t.Fatalf("get: %d %s", code, body)
	}
	code, body = post(t, e.url+"/flowdb.v1.KVService/Get", "application/json", `{"namespace":"n","key":"eA=="}`, nil)
	if code != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Fatalf("get missing: %d %s", code, body)
	}
	// Malformed JSON and unknown fields are refused as invalid, not a crash.
	for _, bad := range []string{`{"namespace":`, `{"nope":1}`, `[1,2]`, `{"key":"!!notbase64"}`} {
		if code, body := post(t, e.url+"/flowdb.v1.KVService/Get", "application/json", bad, nil); code != 400 {
			t.Fatalf("malformed %s: %d %s", bad, code, body)
		}
	}
	code, body = post(t, e.url+"/flowdb.v1.ServerService/Health", "application/json", `{}`, nil)
	if code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("health: %d %s", code, body)
	}
}

func TestQueue(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	if err := c.CreateQueue(ctx, client.QueueConfig{Name: "jobs", MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, JitterFraction: -1}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateQueue(ctx, client.QueueConfig{Name: "jobs", MaxAttempts: 3}); !errors.Is(err, queue.ErrExists) || codeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("recreate: %v", err)
	}
	if _, err := c.Enqueue(ctx, "nope", client.Task{Payload: []byte("x")}); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("unknown queue: %v", err)
	}
	id, err := c.Enqueue(ctx, "jobs", client.Task{Payload: []byte("one"), Priority: 1, Tags: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.EnqueueBatch(ctx, "jobs", []client.Task{{Payload: []byte("two")}, {Payload: []byte("three")}})
	if err != nil || len(ids) != 2 {
		t.Fatalf("batch %v %v", ids, err)
	}
	if _, err := c.Enqueue(ctx, "jobs", client.Task{Payload: []byte("x"), Priority: 1000}); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("bad priority: %v", err)
	}
	ls, err := c.Lease(ctx, "jobs", "a1", 1, nil, time.Minute)
	if err != nil || len(ls) != 1 || ls[0].ID != id || string(ls[0].Payload) != "one" || ls[0].Tags[0] != "t" {
		t.Fatalf("lease %+v %v", ls, err)
	}
	if err := c.Extend(ctx, "jobs", ls[0].ID, ls[0].Token, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, "jobs", ls[0].ID, ls[0].Token+1, nil); !errors.Is(err, queue.ErrLeaseLost) || codeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("stale ack: %v", err)
	}
	if err := c.Ack(ctx, "jobs", ls[0].ID, ls[0].Token, []byte("done")); err != nil {
		t.Fatal(err)
	}
	ti, err := c.GetTask(ctx, "jobs", id)
	if err != nil || ti.State != "done" || string(ti.Result) != "done" {
		t.Fatalf("task %+v %v", ti, err)
	}
	ls, err = c.Lease(ctx, "jobs", "a1", 5, nil, time.Minute)
	if err != nil || len(ls) != 2 {
		t.Fatalf("lease 2: %+v %v", ls, err)
	}
	errs, err := c.AckBatch(ctx, "jobs", []client.AckItem{{ID: ls[0].ID, Token: ls[0].Token}, {ID: ls[1].ID, Token: 12345}})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], queue.ErrLeaseLost) {
		t.Fatalf("ack batch %v %v", errs, err)
	}
	// Nack twice: dead letter (MaxAttempts 2), then replay and purge.
	if err := c.Nack(ctx, "jobs", ls[1].ID, ls[1].Token, "boom"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l2, err := c.LeaseWait(ctx, "jobs", "a1", 1, nil, time.Minute, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(l2) == 1 {
			if err := c.Nack(ctx, "jobs", l2[0].ID, l2[0].Token, "boom again"); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retried task never came back")
		}
	}
	dead, err := c.Dead(ctx, "jobs", 10)
	if err != nil || len(dead) != 1 || dead[0].Id != ls[1].ID || dead[0].LastError != "boom again" {
		t.Fatalf("dead %+v %v", dead, err)
	}
	if err := c.Replay(ctx, "jobs", []uint64{ls[1].ID}); err != nil {
		t.Fatal(err)
	}
	st, err := c.QueueStats(ctx, "jobs")
	if err != nil || st.Hot != 1 || st.Dead != 0 || st.Acked != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
	nid, _ := c.Enqueue(ctx, "jobs", client.Task{Payload: []byte("cancel me")})
	if err := c.Cancel(ctx, "jobs", nid); err != nil {
		t.Fatal(err)
	}
	if err := c.Purge(ctx, "jobs", []uint64{ls[1].ID}); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("purge of a replayed task: %v", err)
	}
	names, err := c.Queues(ctx)
	if err != nil || len(names) != 1 || names[0] != "jobs" {
		t.Fatalf("queues %v %v", names, err)
	}
	// Idempotency keys cross the wire.
	a, _ := c.Enqueue(ctx, "jobs", client.Task{Payload: []byte("k"), IdempotencyKey: "once"})
	b, _ := c.Enqueue(ctx, "jobs", client.Task{Payload: []byte("k"), IdempotencyKey: "once"})
	if a == 0 || a != b {
		t.Fatalf("idempotent enqueue gave %d and %d", a, b)
	}
}

func TestLeaseWait(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	if err := c.CreateQueue(ctx, client.QueueConfig{Name: "w"}); err != nil {
		t.Fatal(err)
	}
	// Nothing ready: the wait ends empty, without error, after about wait.
	t0 := time.Now()
	ls, err := c.LeaseWait(ctx, "w", "a", 1, nil, 0, 200*time.Millisecond)
	if err != nil || len(ls) != 0 || time.Since(t0) < 150*time.Millisecond {
		t.Fatalf("empty wait: %v %v after %v", ls, err, time.Since(t0))
	}
	// A task enqueued during the wait wakes it.
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Enqueue(ctx, "w", client.Task{Payload: []byte("x")})
	}()
	ls, err = c.LeaseWait(ctx, "w", "a", 1, nil, 0, 10*time.Second)
	if err != nil || len(ls) != 1 {
		t.Fatalf("woken wait: %v %v", ls, err)
	}
	// The caller's deadline bounds the wait.
	dctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	t0 = time.Now()
	_, err = c.LeaseWait(dctx, "w", "a", 1, nil, 0, 10*time.Second)
	if err == nil || time.Since(t0) > 2*time.Second {
		t.Fatalf("deadline: %v after %v", err, time.Since(t0))
	}
}

// A client that goes away mid-wait loses nothing: no lease is granted to
// it, and the next task goes to the next caller.
func TestLeaseWaitDisconnect(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	if err := c.CreateQueue(ctx, client.QueueConfig{Name: "d"}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.LeaseWait(wctx, "d", "gone", 1, nil, time.Hour, 10*time.Second)
		}()
		time.Sleep(50 * time.Millisecond)
		cancel()
		<-done
	}
	time.Sleep(50 * time.Millisecond) // the server sees the disconnects
	id, err := c.Enqueue(ctx, "d", client.Task{Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := c.Lease(ctx, "d", "b", 1, nil, time.Minute)
	if err != nil || len(ls) != 1 || ls[0].ID != id {
		t.Fatalf("task went to a departed waiter: %+v %v", ls, err)
	}
	if held := e.q.Held("gone"); held != 0 {
		t.Fatalf("departed waiter holds %d tasks", held)
	}
}

func TestRegistry(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	if err := c.Register(ctx, client.AgentSpec{ID: "a1", Pool: "p", Capabilities: []string{"gpu", "py"}, Capacity: 2, Labels: map[string]string{"zone": "z"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, client.AgentSpec{ID: "a2", Capacity: 0}); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("capacity 0: %v", err)
	}
	if err := c.Heartbeat(ctx, "a1", 1, "busy"); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, "zz", 1, ""); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("heartbeat unknown: %v", err)
	}
	a, err := c.Agent(ctx, "a1")
	if err != nil || a.Load != 1 || a.Status != "busy" || !a.Healthy || a.Spec.Labels["zone"] != "z" {
		t.Fatalf("agent %+v %v", a, err)
	}
	as, err := c.Agents(ctx, "", []string{"gpu"}, "healthy")
	if err != nil || len(as) != 1 {
		t.Fatalf("agents %v %v", as, err)
	}
	if err := c.DefinePool(ctx, "p", 0, 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	ps, err := c.Pools(ctx)
	if err != nil || len(ps) != 1 || ps[0].Pool.MaxSize != 5 || ps[0].Busy != 1 {
		t.Fatalf("pools %+v %v", ps, err)
	}
	if err := c.DeletePool(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := c.Deregister(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Agent(ctx, "a1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after deregister: %v", err)
	}
}

func TestAssignments(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.CreateQueue(ctx, client.QueueConfig{Name: "push"})
	if err := c.Register(ctx, client.AgentSpec{ID: "w", Capacity: 2, Capabilities: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := c.Enqueue(ctx, "push", client.Task{Payload: fmt.Appendf(nil, "%d", i), Requires: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for l, err := range c.Assignments(ctx, "w", []string{"push"}, time.Minute) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Agent != "w" && l.Agent != "" {
			t.Fatalf("lease for %q", l.Agent)
		}
		if h := e.q.Held("w"); h > 2 {
			t.Fatalf("agent holds %d > capacity 2", h)
		}
		if err := c.Ack(ctx, "push", l.ID, l.Token, nil); err != nil {
			t.Fatal(err)
		}
		if got++; got == 6 {
			break
		}
	}
	for _, err := range c.Assignments(ctx, "nobody", []string{"push"}, 0) {
		if !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("unregistered agent: %v", err)
		}
		break
	}
}

func TestVectors(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	if err := c.CreateCollection(ctx, client.CollectionConfig{Name: "v", Dim: 3, Metric: "l2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateCollection(ctx, client.CollectionConfig{Name: "v2", Dim: 3, Metric: "nope"}); !errors.Is(err, server.ErrBadRequest) {
		t.Fatalf("bad metric: %v", err)
	}
	vs := []client.Vector{{ID: 1, Values: []float32{0, 0, 0}, Tags: []string{"a"}}, {ID: 2, Values: []float32{1, 0, 0}}, {ID: 3, Values: []float32{5, 5, 5}, Tags: []string{"a"}}}
	if err := c.Upsert(ctx, "v", vs); err != nil {
		t.Fatal(err)
	}
	if err := c.Upsert(ctx, "v", []client.Vector{{ID: 9, Values: []float32{1, 2}}}); !errors.Is(err, hnsw.ErrDimension) || codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("wrong dim: %v", err)
	}
	hits, err := c.Search(ctx, "v", []float32{0.9, 0, 0}, 2, client.SearchOptions{})
	if err != nil || len(hits) != 2 || hits[0].ID != 2 || hits[1].ID != 1 {
		t.Fatalf("search %+v %v", hits, err)
	}
	hits, err = c.Search(ctx, "v", []float32{4, 4, 4}, 5, client.SearchOptions{Tags: []string{"a"}})
	if err != nil || len(hits) != 2 || hits[0].ID != 3 {
		t.Fatalf("filtered search %+v %v", hits, err)
	}
	v, err := c.GetVector(ctx, "v", 3)
	if err != nil || v.Values[0] != 5 || v.Tags[0] != "a" {
		t.Fatalf("get %+v %v", v, err)
	}
	if n, err := c.DeleteVectors(ctx, "v", []uint64{1, 42}); err != nil || n != 1 {
		t.Fatalf("delete %d %v", n, err)
	}
	if _, err := c.GetVector(ctx, "v", 1); !errors.Is(err, hnsw.ErrNotFound) {
		t.Fatalf("deleted get: %v", err)
	}
	st, err := c.CollectionStats(ctx, "v")
	if err != nil || st.Vectors != 2 || st.Config.Dim != 3 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if _, err := c.Search(ctx, "none", []float32{1, 2, 3}, 1, client.SearchOptions{}); !errors.Is(err, hnsw.ErrNoCollection) {
		t.Fatalf("no collection: %v", err)
	}
	if err := c.DropCollection(ctx, "v"); err != nil {
		t.Fatal(err)
	}
}

// writeTokens writes a tokens file and returns the secrets by name.
func writeTokens(t *testing.T, path string, entries map[string][]string, expired map[string]bool) map[string]string {
	t.Helper()
	var f auth.File
	secrets := map[string]string{}
	for name, scopes := range entries {
		s, h, err := auth.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = s
		e := auth.FileEntry{Name: name, Hash: h, Scopes: scopes}
		if expired[name] {
			e.Expires = time.Now().Add(-time.Minute)
		}
		f.Tokens = append(f.Tokens, e)
	}
	b, _ := json.Marshal(f)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return secrets
}

func TestAuth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	sec := writeTokens(t, path, map[string][]string{
		"admin":  {"*:*:admin"},
		"reader": {"kv:app:read", "queue:*:read"},
		"writer": {"kv:app-*:write", "queue:jobs:write"},
		"old":    {"*:*:admin"},
	}, map[string]bool{"old": true})
	st, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, func(o *server.Options) { o.Tokens = st })
	ctx := context.Background()
	admin := e.client(t, &client.Options{Token: sec["admin"]})
	if err := admin.CreateQueue(ctx, client.QueueConfig{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	check := func(name string, c *client.Client, wantCode connect.Code, want error) {
		t.Helper()
		err := c.Set(ctx, "app", []byte("k"), []byte(name))
		if codeOf(err) != wantCode || !errors.Is(err, want) {
			t.Fatalf("%s: set: %v (code %v), want %v", name, err, codeOf(err), wantCode)
		}
		if _, gerr := e.d.Get(ctx, "app", []byte("k")); !errors.Is(gerr, db.ErrNotFound) {
			t.Fatalf("%s: a refused call changed the store (%v)", name, gerr)
		}
	}
	check("none", e.client(t, nil), connect.CodeUnauthenticated, auth.ErrUnauthenticated)
	check("wrong", e.client(t, &client.Options{Token: "fdb_wrong"}), connect.CodeUnauthenticated, auth.ErrUnauthenticated)
	check("expired", e.client(t, &client.Options{Token: sec["old"]}), connect.CodeUnauthenticated, auth.ErrUnauthenticated)
	check("reader", e.client(t, &client.Options{Token: sec["reader"]}), connect.CodePermissionDenied, auth.ErrForbidden)
	check("writer", e.client(t, &client.Options{Token: sec["writer"]}), connect.CodePermissionDenied, auth.ErrForbidden)

	// Listing needs a token too (it filters by scope).
	if _, err := e.client(t, nil).Queues(ctx); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("list without token: %v", err)
	}
	// Raw HTTP: 401 and 403 as status codes.
	if code, body := post(t, e.url+"/flowdb.v1.KVService/Set", "application/json", `{"namespace":"app","key":"aw=="}`, nil); code != 401 {
		t.Fatalf("no token: %d %s", code, body)
	}
	if code, body := post(t, e.url+"/flowdb.v1.KVService/Set", "application/json", `{"namespace":"app","key":"aw=="}`,
		map[string]string{"Authorization": "Bearer " + sec["reader"]}); code != 403 {
		t.Fatalf("reader: %d %s", code, body)
	}
	// Health needs no token.
	if code, body := post(t, e.url+"/flowdb.v1.ServerService/Health", "application/json", `{}`, nil); code != 200 {
		t.Fatalf("health: %d %s", code, body)
	}

	writer := e.client(t, &client.Options{Token: sec["writer"]})
	if err := writer.Set(ctx, "app-x", []byte("k"), []byte("v")); err != nil {
		t.Fatalf("writer in scope: %v", err)
	}
	if _, err := writer.Enqueue(ctx, "jobs", client.Task{Payload: []byte("p")}); err != nil {
		t.Fatalf("writer enqueue: %v", err)
	}
	if err := writer.CreateQueue(ctx, client.QueueConfig{Name: "jobs2"}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("writer create: %v", err)
	}
	reader := e.client(t, &client.Options{Token: sec["reader"]})
	if _, err := reader.QueueStats(ctx, "jobs"); err != nil {
		t.Fatalf("reader stats: %v", err)
	}
	if _, err := reader.Lease(ctx, "jobs", "r", 1, nil, 0); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("reader lease: %v", err)
	}
	if st, _ := e.q.Stats("jobs"); st.Leased != 0 {
		t.Fatalf("a refused lease leased %d", st.Leased)
	}
	// /metrics needs a server read scope.
	req, _ := http.NewRequest(http.MethodGet, e.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+sec["reader"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("metrics as reader: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	// Revocation: the writer's entry leaves the file.
	f := auth.File{}
	b, _ := os.ReadFile(path)
	json.Unmarshal(b, &f)
	var kept []auth.FileEntry
	for _, en := range f.Tokens {
		if en.Name != "writer" {
			kept = append(kept, en)
		}
	}
	f.Tokens = kept
	b, _ = json.Marshal(f)
	os.WriteFile(path, b, 0o600)
	time.Sleep(2 * auth.ReloadInterval)
	if err := writer.Set(ctx, "app-x", []byte("k2"), []byte("v")); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("revoked writer: %v", err)
	}
	if err := admin.Set(ctx, "app-x", []byte("k2"), []byte("v")); err != nil {
		t.Fatalf("admin after revocation of another: %v", err)
	}
}

// Requests a browser could forge are refused and change nothing.
func TestForgery(t *testing.T) {
	e := start(t, nil)
	url := e.url + "/flowdb.v1.KVService/Set"
	body := `{"namespace":"n","key":"aw==","value":"dg=="}`
	for _, tc := range []struct {
		name  string
		ctype string
		hdr   map[string]string
	}{
		{"text/plain from a foreign page", "text/plain", map[string]string{"Origin": "http://evil.example"}},
		{"text/plain without origin", "text/plain", nil},
		{"form post", "application/x-www-form-urlencoded", nil},
		{"multipart", "multipart/form-data; boundary=x", nil},
		{"no content type", "", nil},
		{"json from a foreign origin", "application/json", map[string]string{"Origin": "http://evil.example"}},
		{"cross-site fetch", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"DNS rebinding", "application/json", map[string]string{"Host": "evil.example:80"}},
	} {
		code, resp := post(t, url, tc.ctype, body, tc.hdr)
		if code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", tc.name, code, resp)
		}
	}
	if _, err := e.d.Get(context.Background(), "n", []byte("k")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a forged request wrote: %v", err)
	}
	// Same-origin JSON from a page the server serves is fine.
	if code, resp := post(t, url, "application/json", body, map[string]string{"Origin": "http://" + e.addr, "Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Fatalf("same origin: %d %s", code, resp)
	}
}

func TestSizeLimits(t *testing.T) {
	e := start(t, func(o *server.Options) { o.MaxRequestBytes = 1 << 10 })
	c := e.client(t, nil)
	ctx := context.Background()
	err := c.Set(ctx, "n", []byte("big"), bytes.Repeat([]byte("x"), 4<<10))
	if codeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("oversized: %v (code %v)", err, codeOf(err))
	}
	if _, gerr := e.d.Get(ctx, "n", []byte("big")); !errors.Is(gerr, db.ErrNotFound) {
		t.Fatalf("an oversized request wrote: %v", gerr)
	}
	code, body := post(t, e.url+"/flowdb.v1.KVService/Set", "application/json", `{"namespace":"n","key":"aw==","value":"`+strings.Repeat("A", 4<<10)+`"}`, nil)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized JSON: %d %s", code, body)
	}
	// Within the limit the engine's own limits answer with their errors.
	if err := c.Set(ctx, "n", bytes.Repeat([]byte("k"), db.MaxKeySize+1)[:500], []byte("v")); err != nil {
		t.Fatal(err)
	}
	e2 := start(t, nil)
	c2 := e2.client(t, nil)
	if err := c2.Set(ctx, "n", bytes.Repeat([]byte("k"), db.MaxKeySize+1), []byte("v")); !errors.Is(err, db.ErrKeyTooLarge) {
		t.Fatalf("key too large: %v", err)
	}
	if err := c2.Set(ctx, strings.Repeat("n", db.MaxNamespaceSize+1), []byte("k"), []byte("v")); !errors.Is(err, db.ErrNamespaceTooLarge) {
		t.Fatalf("namespace too large: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	e := start(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	c.CreateQueue(ctx, client.QueueConfig{Name: "m"})
	c.Enqueue(ctx, "m", client.Task{Payload: []byte("x")})
	c.Get(ctx, "n", []byte("missing"))
	c.CreateCollection(ctx, client.CollectionConfig{Name: "c", Dim: 2})
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`flowdb_rpc_requests_total{code="not_found",procedure="/flowdb.v1.KVService/Get"} 1`,
		`flowdb_rpc_duration_seconds_bucket{procedure="/flowdb.v1.QueueService/Enqueue"`,
		`flowdb_queue_tasks{queue="m",state="hot"} 1`,
		`flowdb_queue_tasks_total{event="enqueued",queue="m"} 1`,
		`flowdb_vector_collection_vectors{collection="c"} 0`,
		`flowdb_commit_stage_mean_seconds{stage="sync_wait"}`,
		`flowdb_frames_total`,
		`flowdb_pebble_block_cache_hits_total`,
		`flowdb_agents{health="healthy"} 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Concurrent single-task Enqueue and Ack calls leave in batches, and every
// caller gets its own answer.
func TestCoalescing(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	c := e.client(t, nil)
	c.CreateQueue(ctx, client.QueueConfig{Name: "co", HotCapacity: 10000})
	const n = 64 * 20
	var wg sync.WaitGroup
	ids := make([]uint64, n)
	errs := make([]error, n)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 64 {
				ids[i], errs[i] = c.Enqueue(ctx, "co", client.Task{Payload: fmt.Appendf(nil, "%d", i)})
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range n {
		if errs[i] != nil || ids[i] == 0 || seen[ids[i]] {
			t.Fatalf("call %d: id %d err %v", i, ids[i], errs[i])
		}
		seen[ids[i]] = true
		ti, err := e.q.Get(ctx, "co", ids[i])
		if err != nil || string(ti.Payload) != fmt.Sprint(i) {
			t.Fatalf("task %d: %+v %v", i, ti, err)
		}
	}
	batches := rpcCount(t, e, "/flowdb.v1.QueueService/EnqueueBatch") + rpcCount(t, e, "/flowdb.v1.QueueService/Enqueue")
	if batches >= n/2 {
		t.Fatalf("%d requests for %d enqueues: not coalesced", batches, n)
	}
	t.Logf("%d enqueues in %d requests", n, batches)
	// A rejected task in a coalesced batch fails alone.
	var bad, good sync.WaitGroup
	var badErr, goodErr error
	bad.Add(1)
	good.Add(1)
	go func() {
		defer bad.Done()
		_, badErr = c.Enqueue(ctx, "co", client.Task{Payload: []byte("x"), Priority: -1})
	}()
	go func() { defer good.Done(); _, goodErr = c.Enqueue(ctx, "co", client.Task{Payload: []byte("y")}) }()
	bad.Wait()
	good.Wait()
	if !errors.Is(badErr, queue.ErrInvalid) || goodErr != nil {
		t.Fatalf("mixed batch: bad %v, good %v", badErr, goodErr)
	}
	// Acks coalesce and answer per task.
	ls, err := c.Lease(ctx, "co", "a", 500, nil, time.Minute)
	if err != nil || len(ls) != 500 {
		t.Fatalf("lease %d %v", len(ls), err)
	}
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := l.Token
			if i%100 == 0 {
				tok++ // stale
			}
			err := c.Ack(ctx, "co", l.ID, tok, nil)
			if (i%100 == 0) != errors.Is(err, queue.ErrLeaseLost) || (i%100 != 0 && err != nil) {
				t.Errorf("ack %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if acks := rpcCount(t, e, "/flowdb.v1.QueueService/AckBatch"); acks >= 250 {
		t.Fatalf("%d AckBatch requests for 500 acks", acks)
	}
}

// rpcCount reads a procedure's request count from /metrics.
func rpcCount(t *testing.T, e *env, proc string) int {
	t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "flowdb_rpc_requests_total{") && strings.Contains(line, `procedure="`+proc+`"`) {
			var v int
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			total += v
		}
	}
	return total
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr                  string
		tls, tokens, insecure bool
		ok                    bool
	}{
		{"127.0.0.1:1", false, false, false, true},
		{"[::1]:1", false, false, false, true},
		{"localhost:1", false, false, false, true},
		{"0.0.0.0:1", false, false, false, false},
		{"0.0.0.0:1", true, false, false, false},
		{"0.0.0.0:1", false, true, false, false},
		{"0.0.0.0:1", false, true, true, true},
		{"10.1.2.3:1", true, true, false, true},
		{":1", true, true, false, true},
	} {
		err := server.CheckListen(tc.addr, tc.tls, tc.tokens, tc.insecure)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, server.ErrInsecure)) {
			t.Errorf("CheckListen(%q tls=%v tokens=%v insecure=%v) = %v", tc.addr, tc.tls, tc.tokens, tc.insecure, err)
		}
	}
}
