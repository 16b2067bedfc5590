package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
	"github.com/flowdb/flowdb/server/ui"
)

// env is a real server with the dashboard on a loopback port over an
// in-memory store, with three tokens: admin (*:*:admin), reader
// (*:*:read) and jobsReader (queue:jobs:read only).
type env struct {
	d     *db.DB
	q     *queue.Manager
	r     *registry.Registry
	v     *hnsw.Manager
	sc    *sched.Scheduler
	url   string
	admin string
	read  string
	jobs  string
}

func start(t *testing.T, pageSize int) *env {
	t.Helper()
	return startNode(t, pageSize, nil)
}

// startNode is start with a Cluster, as on a replicated node.
func startNode(t *testing.T, pageSize int, cluster server.Cluster) *env {
	t.Helper()
	d := testutil.OpenMem(t, nil)
	q, err := queue.Attach(d, &queue.Options{TickInterval: 20 * time.Millisecond})
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
	sc, err := sched.New(q, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{d: d, q: q, r: r, v: v, sc: sc}
	var f auth.File
	for _, tk := range []struct {
		name  string
		scope string
		dst   *string
	}{{"admin", "*:*:admin", &e.admin}, {"reader", "*:*:read", &e.read}, {"jobs-reader", "queue:jobs:read", &e.jobs}} {
		secret, hash, err := auth.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		*tk.dst = secret
		f.Tokens = append(f.Tokens, auth.FileEntry{Name: tk.name, Hash: hash, Scopes: []string{tk.scope}})
	}
	b, _ := json.Marshal(f)
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Options{DB: d, Queues: q, Registry: r, Vectors: v, Scheduler: sc, Tokens: tokens, Logger: testutil.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ui.Mount(s, ui.Options{DB: d, Queues: q, Registry: r, Vectors: v, Scheduler: sc, Tokens: tokens, PageSize: pageSize, Cluster: cluster})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := server.HTTPServer(s.Handler(), nil)
	go hs.Serve(l)
	t.Cleanup(func() {
		hs.Close()
		sc.Close()
		r.Close()
		q.Close()
	})
	e.url = "http://" + l.Addr().String()
	return e
}

// req sends a request with an optional bearer token and headers and
// returns the status and body.
func req(t *testing.T, method, url, token, body string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	rq, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		rq.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		rq.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// getJSON GETs a JSON endpoint and decodes it into v, failing unless 200.
func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	code, body, _ := req(t, http.MethodGet, url, token, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// csrfOf reads the CSRF token of a page (its <meta name="csrf">).
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	const tag = `<meta name="csrf" content="`
	i := strings.Index(page, tag)
	if i < 0 {
		t.Fatalf("no csrf meta in page")
	}
	rest := page[i+len(tag):]
	return rest[:strings.IndexByte(rest, '"')]
}

// makeDead enqueues n tasks with payloads payload(i) into q (created with
// one attempt) and nacks them all, so that they are dead letters.
func (e *env) makeDead(t *testing.T, q string, n int, payload func(i int) string) []uint64 {
	t.Helper()
	ctx := context.Background()
	var ids []uint64
	for i := 0; i < n; i++ {
		id, err := e.q.Enqueue(ctx, q, queue.Task{Payload: []byte(payload(i)), Tags: []string{fmt.Sprintf("t%d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for left := n; left > 0; {
		ls, err := e.q.Lease(ctx, q, "worker", min(left, 100), nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if err := e.q.Nack(ctx, q, l.ID, l.Token, "boom <b>bad</b>"); err != nil {
				t.Fatal(err)
			}
		}
		left -= len(ls)
	}
	return ids
}
