package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowdb/flowdb/internal/testutil"
	flowmcp "github.com/flowdb/flowdb/mcp"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// writeTokens writes a tokens file with one token per name (scopes as
// given) and returns the secrets by name.
func writeTokens(t *testing.T, path string, scopes map[string][]string) map[string]string {
	t.Helper()
	var f auth.File
	secrets := map[string]string{}
	for _, name := range []string{"admin", "worker"} {
		sc, ok := scopes[name]
		if !ok {
			continue
		}
		secret, hash, err := auth.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = secret
		f.Tokens = append(f.Tokens, auth.FileEntry{Name: name, Hash: hash, Scopes: sc})
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return secrets
}

// initialize is an MCP initialize request as a client POSTs it.
const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}`

// post POSTs an initialize to base's /mcp with the Authorization value
// auth ("": none).
func post(t *testing.T, base, authz string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(initialize))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestHTTPAuth: the MCP endpoint of `flowctl serve --tokens` answers 401
// to a request without a valid token before any MCP message is handled;
// a token scoped to other queues, collections, namespaces and agents gets
// "forbidden" tool errors, through HTTP and through the `flowctl mcp
// --node` relay, and the store is unchanged; creating a queue or a
// collection needs admin, as over the RPC API; a revoked token stops
// working in the middle of a session.
func TestHTTPAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	sec := writeTokens(t, tokens, map[string][]string{
		"admin":  {"*:*:admin"},
		"worker": {"queue:mine:write", "vec:mine*:write", "kv:mine:write", "agent:w-*:write"},
	})
	p := startHTTP(t, dir, tokens, sec["admin"])
	defer p.close()
	admin := p.cs

	// The admin sets up what the worker must not touch.
	ok(t, admin, "queue_create", map[string]any{"queue": "jobs"})
	ok(t, admin, "queue_create", map[string]any{"queue": "mine"})
	ok(t, admin, "task_enqueue", map[string]any{"queue": "jobs", "payload": "secret task"})
	ok(t, admin, "memory_remember", map[string]any{"collection": "mem", "text": "the launch code is in the safe", "id": 1})
	ok(t, admin, "memory_remember", map[string]any{"collection": "mine", "text": "a shared note", "id": 1})
	ok(t, admin, "kv_set", map[string]any{"namespace": "notes", "key": "k", "value": "v"})
	ok(t, admin, "agent_register", map[string]any{"agent": "boss"})

	// No token, a wrong one, a malformed header: 401 before any MCP
	// message is handled (no session, no answer body from the SDK).
	for _, authz := range []string{"", "Bearer fdb_0000", "Basic " + sec["worker"], "Bearer"} {
		resp := post(t, p.base, authz)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("Authorization %q: HTTP %d (WWW-Authenticate %q), want 401", authz, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if resp := post(t, p.base, "Bearer "+sec["worker"]); resp.StatusCode != http.StatusOK {
		t.Fatalf("a valid token's initialize: HTTP %d", resp.StatusCode)
	}
	if _, err := connectHTTP(p.base, ""); err == nil {
		t.Fatal("an MCP client without a token connected")
	}
	if _, err := connectHTTP(p.base, "fdb_wrong"); err == nil {
		t.Fatal("an MCP client with a wrong token connected")
	}

	worker, err := connectHTTP(p.base, sec["worker"])
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	relay, err := connectRelay(t, p.base, sec["worker"])
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	for _, cs := range []*sdk.ClientSession{worker, relay} {
		fails(t, cs, "forbidden", "task_enqueue", map[string]any{"queue": "jobs", "payload": "x"})
		fails(t, cs, "forbidden", "task_lease", map[string]any{"queue": "jobs", "agent": "w-1"})
		fails(t, cs, "forbidden", "queue_stats", map[string]any{"queue": "jobs"})
		fails(t, cs, "forbidden", "queue_create", map[string]any{"queue": "mine"}) // admin needed
		fails(t, cs, "forbidden", "memory_remember", map[string]any{"collection": "mem", "text": "overwrite", "id": 1})
		fails(t, cs, "forbidden", "memory_recall", map[string]any{"collection": "mem", "text": "launch code"})
		fails(t, cs, "forbidden", "memory_forget", map[string]any{"collection": "mem", "ids": []uint64{1}})
		fails(t, cs, "forbidden", "memory_remember", map[string]any{"collection": "mine2", "text": "a new collection"}) // admin needed
		fails(t, cs, "forbidden", "kv_set", map[string]any{"namespace": "notes", "key": "k", "value": "w"})
		fails(t, cs, "forbidden", "kv_get", map[string]any{"namespace": "notes", "key": "k"})
		fails(t, cs, "forbidden", "agent_register", map[string]any{"agent": "boss", "capacity": 9})
		fails(t, cs, "forbidden", "step", map[string]any{"kv": []any{
			map[string]any{"namespace": "mine", "key": "k", "value": "v"},
			map[string]any{"namespace": "notes", "key": "k", "value": "w"}}})
		fails(t, cs, "forbidden", "step", map[string]any{
			"memories": []any{map[string]any{"collection": "mine", "text": "ok part"}},
			"enqueue":  []any{map[string]any{"queue": "jobs", "payload": "smuggled"}}})

		// What the scopes allow works.
		ok(t, cs, "task_enqueue", map[string]any{"queue": "mine", "payload": "w"})
		ok(t, cs, "memory_remember", map[string]any{"collection": "mine", "text": "the worker's note"})
		ok(t, cs, "agent_register", map[string]any{"agent": "w-1"})
		as := ok(t, cs, "agent_list", map[string]any{})["agents"].([]any)
		if len(as) != 1 || as[0].(map[string]any)["agent"] != "w-1" {
			t.Fatalf("agent_list shows %v, want only w-1", as)
		}
		rr, err := cs.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: "flowdb://queues"})
		if err != nil || strings.Contains(rr.Contents[0].Text, `"jobs"`) || !strings.Contains(rr.Contents[0].Text, `"mine"`) {
			t.Fatalf("queues resource %v %v", rr, err)
		}
	}

	// Nothing the worker was refused changed the store.
	if st := ok(t, admin, "queue_stats", map[string]any{"queue": "jobs"}); num(st["enqueued"]) != 1 || num(st["leased"]) != 0 {
		t.Fatalf("jobs after refusals: %v", st)
	}
	if g := ok(t, admin, "kv_get", map[string]any{"namespace": "notes", "key": "k"}); g["value"] != "v" {
		t.Fatalf("notes/k after refusals: %v", g)
	}
	if g := ok(t, admin, "kv_get", map[string]any{"namespace": "mine", "key": "k"}); g["found"] != false {
		t.Fatalf("a refused step wrote mine/k: %v", g)
	}
	rc := ok(t, admin, "memory_recall", map[string]any{"collection": "mem", "text": "launch code", "k": 10})
	if ms := rc["memories"].([]any); len(ms) != 1 || ms[0].(map[string]any)["text"] != "the launch code is in the safe" {
		t.Fatalf("mem after refusals: %v", rc)
	}
	if rc := ok(t, admin, "memory_recall", map[string]any{"collection": "mine", "text": "ok part", "k": 10}); len(rc["memories"].([]any)) != 3 {
		t.Fatalf("mine after refusals (a shared note + one worker note per transport): %v", rc)
	}
	fails(t, admin, "unknown_collection", "memory_recall", map[string]any{"collection": "mine2", "text": "x"})
	if g := ok(t, admin, "agent_list", map[string]any{}); len(g["agents"].([]any)) != 2 {
		t.Fatalf("agents: %v", g)
	}

	// Revoking the worker's token ends its session's rights at once.
	var f auth.File
	if b, err := os.ReadFile(tokens); err != nil || json.Unmarshal(b, &f) != nil {
		t.Fatal(err)
	}
	f.Tokens = f.Tokens[:1] // admin only
	if b, err := json.Marshal(f); err != nil || os.WriteFile(tokens, b, 0o600) != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := callErr(worker, "task_enqueue", map[string]any{"queue": "mine", "payload": "after revocation"})
		if err != nil {
			break // 401: a transport error
		}
		if r.isError {
			t.Fatalf("revoked token: tool error %s, want HTTP 401", r.text)
		}
		if time.Now().After(deadline) {
			t.Fatal("a revoked token still works after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok(t, admin, "queue_stats", map[string]any{"queue": "mine"})
}

// TestRelayOutlivesServer: the `flowctl mcp --node` relay answers a call
// it cannot deliver (the server was SIGKILLed) with a JSON-RPC error, and
// the same client session works again once the server is back on the
// same address, with what it acknowledged before still there.
func TestRelayOutlivesServer(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	srv, base := startServe(t, dir, "--listen", addr)
	cs, err := connectRelay(t, base)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ok(t, cs, "queue_create", map[string]any{"queue": "q"})
	id := ok(t, cs, "task_enqueue", map[string]any{"queue": "q", "payload": "before"})["id"]
	srv.Process.Kill()
	srv.Wait()
	_, err = callErr(cs, "task_get", map[string]any{"queue": "q", "id": id})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != flowmcp.CodeUnreachable {
		t.Fatalf("a call with the server down: %v, want JSON-RPC error %d", err, flowmcp.CodeUnreachable)
	}
	srv, _ = startServe(t, dir, "--listen", addr)
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	if g := ok(t, cs, "task_get", map[string]any{"queue": "q", "id": id}); g["payload"] != "before" {
		t.Fatalf("after the restart: %v", g)
	}
	ok(t, cs, "task_enqueue", map[string]any{"queue": "q", "payload": "after"})
}

// TestRelayInProcess runs Relay in this process (so that -race sees it)
// between an in-memory client and the endpoint mounted on a server.Server,
// with concurrent calls, until the client closes its side.
func TestRelayInProcess(t *testing.T) {
	hs := endpoint(t, nil)
	local, client := sdk.NewInMemoryTransports()
	done := make(chan error, 1)
	go func() {
		done <- flowmcp.Relay(context.Background(), local, &sdk.StreamableClientTransport{Endpoint: hs.URL + flowmcp.Path, DisableStandaloneSSE: true})
	}()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil).Connect(context.Background(), client, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok(t, cs, "queue_create", map[string]any{"queue": "q"})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if r, err := callErr(cs, "task_enqueue", map[string]any{"queue": "q", "payload": fmt.Sprint(i)}); err != nil || r.isError {
				t.Errorf("enqueue %d: %v %s", i, err, r.text)
			}
		})
	}
	wg.Go(func() { ok(t, cs, "task_lease", map[string]any{"queue": "q", "agent": "a", "wait_seconds": 0.5}) })
	wg.Wait()
	if st := ok(t, cs, "queue_stats", map[string]any{"queue": "q"}); num(st["enqueued"]) != 8 {
		t.Fatalf("stats %v", st)
	}
	cs.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay ended with %v after the client closed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay still running 10s after the client closed")
	}
}

// TestEndpointHosts: the endpoint follows the server's Host rule (IP
// literals, localhost and AllowedHosts; the server's defence against DNS
// rebinding), also for a request that reaches a loopback listener through
// a local reverse proxy with the public name in Host.
func TestEndpointHosts(t *testing.T) {
	st := newStack(t)
	srv, err := server.New(server.Options{DB: st.DB, Queues: st.Queues, Registry: st.Registry, Vectors: st.Vectors,
		AllowedHosts: []string{"flowdb.example.com"}, Logger: testutil.Quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := flowmcp.Mount(srv, st, nil); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for host, want := range map[string]int{"": http.StatusOK, "localhost": http.StatusOK,
		"flowdb.example.com": http.StatusOK, "evil.example.com": http.StatusForbidden} {
		req, err := http.NewRequest(http.MethodPost, hs.URL+flowmcp.Path, strings.NewReader(initialize))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: HTTP %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// relayStack is an in-process server with the MCP endpoint (no tokens,
// the server options opts change) and a Relay to it over an in-memory
// client transport.
func relayStack(t *testing.T, opts ...func(*server.Options)) (cs *sdk.ClientSession, done <-chan error) {
	t.Helper()
	hs := endpoint(t, nil, opts...)
	local, client := sdk.NewInMemoryTransports()
	ch := make(chan error, 1)
	go func() {
		ch <- flowmcp.Relay(context.Background(), local, &sdk.StreamableClientTransport{Endpoint: hs.URL + flowmcp.Path,
			DisableStandaloneSSE: true})
	}()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil).Connect(context.Background(), client, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cs, ch
}

// TestRelayRefusedMessage: a message the server refuses on the HTTP level
// with a body that is not JSON-RPC (413 above the server's own size limit)
// fails that call with CodeUnreachable, and the relay carries the next
// calls (before, the SDK's connection broke for good and the relay
// ended); a message over the endpoint's MaxHTTPBody is not sent at all
// (CodeTooLarge), so a lease wait in flight meanwhile gets its answer.
func TestRelayRefusedMessage(t *testing.T) {
	cs, done := relayStack(t, func(o *server.Options) { o.MaxRequestBytes = 64 << 10 })
	ok(t, cs, "kv_set", map[string]any{"namespace": "n", "key": "small", "value": "v"})
	_, err := callErr(cs, "kv_set", map[string]any{"namespace": "n", "key": "big", "value": strings.Repeat("x", 100<<10)})
	var we *jsonrpc.Error
	if !errors.As(err, &we) || we.Code != flowmcp.CodeUnreachable {
		t.Fatalf("a call over the server's limit: %v, want a JSON-RPC error %d", err, flowmcp.CodeUnreachable)
	}
	for i := range 3 {
		ok(t, cs, "kv_set", map[string]any{"namespace": "n", "key": fmt.Sprint("after", i), "value": "v"})
	}
	ok(t, cs, "queue_create", map[string]any{"queue": "q"})
	lease := make(chan map[string]any, 1)
	go func() {
		lease <- ok(t, cs, "task_lease", map[string]any{"queue": "q", "agent": "a", "wait_seconds": 5})
	}()
	time.Sleep(200 * time.Millisecond) // the lease waits on the server
	_, err = callErr(cs, "kv_set", map[string]any{"namespace": "n", "key": "huge", "value": strings.Repeat("x", flowmcp.MaxHTTPBody+1)})
	if !errors.As(err, &we) || we.Code != flowmcp.CodeTooLarge {
		t.Fatalf("a call over MaxHTTPBody: %v, want a JSON-RPC error %d", err, flowmcp.CodeTooLarge)
	}
	ok(t, cs, "task_enqueue", map[string]any{"queue": "q", "payload": "p"})
	select {
	case l := <-lease:
		if ts, _ := l["tasks"].([]any); len(ts) != 1 {
			t.Fatalf("the lease in flight got %v, want the task", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the lease in flight got no answer")
	}
	for _, k := range []string{"big", "huge"} {
		if g := ok(t, cs, "kv_get", map[string]any{"namespace": "n", "key": k}); g["found"] != false {
			t.Fatalf("the refused call wrote %s: %v", k, g)
		}
	}
	cs.Close()
	if err := <-done; err != nil {
		t.Fatalf("relay ended with %v", err)
	}
}

// TestRelayRefusedToken: a token the server refuses (401) fails the call
// with CodeRefused and ends the relay with ErrRefused.
func TestRelayRefusedToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	writeTokens(t, path, map[string][]string{"admin": {"*:*:admin"}})
	tokens, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	hs := endpoint(t, tokens)
	// The client's side stays open: the relay must end by itself.
	pr, pw := io.Pipe()
	defer pw.Close()
	var out testutil.Buffer
	done := make(chan error, 1)
	go func() {
		done <- flowmcp.Relay(context.Background(), &sdk.IOTransport{Reader: pr, Writer: &out},
			&sdk.StreamableClientTransport{Endpoint: hs.URL + flowmcp.Path,
				HTTPClient: &http.Client{Transport: flowmcp.BearerTransport("fdb_wrong", nil)}, DisableStandaloneSSE: true})
	}()
	if _, err := io.WriteString(pw, initialize+"\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, flowmcp.ErrRefused) {
			t.Fatalf("relay ended with %v, want ErrRefused", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay still running 10s after the server refused its token")
	}
	var m struct {
		ID    float64        `json:"id"`
		Error *jsonrpc.Error `json:"error"`
	}
	if err := json.Unmarshal([]byte(out.String()), &m); err != nil || m.ID != 1 || m.Error == nil || m.Error.Code != flowmcp.CodeRefused {
		t.Fatalf("answer %q (%v), want call 1 refused with %d", out.String(), err, flowmcp.CodeRefused)
	}
}

// TestRelayDrainsOnEOF: when the client closes its side with a call in
// flight (a lease wait), the relay writes the call's answer before it
// returns (before, the end of input cancelled the call).
func TestRelayDrainsOnEOF(t *testing.T) {
	hs := endpoint(t, nil)
	in := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"queue_create","arguments":{"queue":"q"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"task_lease","arguments":{"queue":"q","agent":"a","wait_seconds":0.5}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"task_enqueue","arguments":{"queue":"nope","payload":"x"}}}`,
	}, "\n") + "\n"
	var out testutil.Buffer
	err := flowmcp.Relay(context.Background(), &sdk.IOTransport{Reader: io.NopCloser(strings.NewReader(in)), Writer: &out},
		&sdk.StreamableClientTransport{Endpoint: hs.URL + flowmcp.Path, DisableStandaloneSSE: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[float64]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var m struct {
			ID    float64         `json:"id"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("answer %q: %v", line, err)
		}
		if m.Error != nil {
			t.Fatalf("call %v: %s", m.ID, m.Error)
		}
		ids[m.ID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("answers for calls %v, want 1, 2 and 3:\n%s", ids, out.String())
	}
}

// endpoint serves the MCP endpoint on a fresh in-process stack, with
// tokens (nil: none) and the server options opts change, until the test
// ends.
func endpoint(t *testing.T, tokens *auth.Store, opts ...func(*server.Options)) *httptest.Server {
	t.Helper()
	st := newStack(t)
	o := server.Options{DB: st.DB, Queues: st.Queues, Registry: st.Registry, Vectors: st.Vectors, Tokens: tokens, Logger: testutil.Quiet()}
	for _, f := range opts {
		f(&o)
	}
	srv, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := flowmcp.Mount(srv, st, nil); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs
}
