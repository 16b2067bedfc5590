package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
)

// txnEnv is a server with a queue "jobs", a float collection "mem" of two
// dimensions holding vector 1, an agent "ag" and keys app/lock = mine,
// app/old, app/p/1, app/p/2.
func txnEnv(t *testing.T, mod func(*server.Options)) *env {
	t.Helper()
	e := start(t, mod)
	ctx := context.Background()
	if err := e.q.Create(ctx, queue.Config{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	if err := e.v.Create(ctx, hnsw.Config{Name: "mem", Dim: 2, Float: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.v.Upsert(ctx, "mem", []hnsw.Vector{{ID: 1, Values: []float32{1, 0}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Register(ctx, registry.AgentSpec{ID: "ag", Capacity: 4}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"lock": "mine", "old": "x", "p/1": "1", "p/2": "2"} {
		if err := e.d.Set(ctx, "app", []byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// enqueueLease enqueues n tasks to jobs and leases them to agent a.
func enqueueLease(t *testing.T, e *env, n int) []queue.Lease {
	t.Helper()
	ctx := context.Background()
	for range n {
		if _, err := e.q.Enqueue(ctx, "jobs", queue.Task{Payload: []byte("t")}); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := e.q.Lease(ctx, "jobs", "a", n, nil, time.Hour)
	if err != nil || len(ls) != n {
		t.Fatalf("lease: %v %v", ls, err)
	}
	return ls
}

func state(t *testing.T, e *env, id uint64) string {
	t.Helper()
	info, err := e.q.Get(context.Background(), "jobs", id)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

func present(e *env, ns, key string) bool {
	_, err := e.d.Get(context.Background(), ns, []byte(key))
	return err == nil
}

// Every operation kind over the wire, in one transaction that commits, and
// what it did, read from the store.
func TestTxnEveryOp(t *testing.T) {
	e := txnEnv(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	ls := enqueueLease(t, e, 2)
	pending, err := e.q.Enqueue(ctx, "jobs", queue.Task{Payload: []byte("pending")})
	if err != nil {
		t.Fatal(err)
	}
	tx := c.NewTxn()
	tx.Require("app", []byte("lock"), []byte("mine"))
	tx.RequirePresent("app", []byte("old"))
	tx.RequireAbsent("app", []byte("new"))
	tx.Set("app", []byte("new"), []byte("1"))
	tx.SetTTL("app", []byte("tmp"), []byte("t"), time.Hour)
	tx.Delete("app", []byte("old"))
	tx.DeletePrefix("app", []byte("p/"))
	one := tx.Enqueue("jobs", client.Task{Payload: []byte("follow-up")})
	two := tx.Enqueue("jobs", client.Task{Payload: []byte("b1")}, client.Task{Payload: []byte("b2")})
	tx.Ack("jobs", ls[0].ID, ls[0].Token, []byte("done"))
	tx.Extend("jobs", ls[1].ID, ls[1].Token, 2*time.Hour)
	tx.Cancel("jobs", pending)
	tx.Upsert("mem", client.Vector{ID: 2, Values: []float32{0, 1}, Tags: []string{"x"}})
	tx.DeleteVectors("mem", 1)
	tx.Heartbeat("ag", 2, "busy")
	tx.Register(client.AgentSpec{ID: "ag2", Capacity: 1})
	if err := c.CommitTxn(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if tx.Index() == 0 {
		t.Fatal("no applied index on a standalone store")
	}
	if len(one.IDs) != 1 || len(two.IDs) != 2 {
		t.Fatalf("enqueued ids %v %v", one.IDs, two.IDs)
	}
	for _, id := range append(one.IDs, two.IDs...) {
		if s := state(t, e, id); s != "ready" {
			t.Fatalf("enqueued task %d is %s", id, s)
		}
	}
	if v, err := e.d.Get(ctx, "app", []byte("new")); err != nil || string(v) != "1" {
		t.Fatalf("set: %q %v", v, err)
	}
	if ent, err := e.d.GetEntry(ctx, "app", []byte("tmp")); err != nil || ent.ExpiresAt.IsZero() {
		t.Fatalf("set with ttl: %+v %v", ent, err)
	}
	if present(e, "app", "old") || present(e, "app", "p/1") || present(e, "app", "p/2") {
		t.Fatal("deletes did not apply")
	}
	if s := state(t, e, ls[0].ID); s != "done" {
		t.Fatalf("acked task is %s", s)
	}
	if info, _ := e.q.Get(ctx, "jobs", ls[1].ID); info.State != "leased" || time.Until(info.LeaseExp) < 90*time.Minute {
		t.Fatalf("extended task: %s until %v", info.State, info.LeaseExp)
	}
	if _, err := e.q.Get(ctx, "jobs", pending); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("canceled pending task: %v, want removed (queue.ErrNotFound)", err)
	}
	if _, err := e.v.Get("mem", 2); err != nil {
		t.Fatalf("upserted vector: %v", err)
	}
	if _, err := e.v.Get("mem", 1); !errors.Is(err, hnsw.ErrNotFound) {
		t.Fatalf("deleted vector: %v", err)
	}
	if a, err := e.r.Get("ag"); err != nil || a.Load != 2 || a.Status != "busy" {
		t.Fatalf("heartbeat: %+v %v", a, err)
	}
	if _, err := e.r.Get("ag2"); err != nil {
		t.Fatalf("register: %v", err)
	}
	// Nack, on its own.
	tx = c.NewTxn()
	tx.Nack("jobs", ls[1].ID, ls[1].Token, "again")
	if err := c.CommitTxn(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if s := state(t, e, ls[1].ID); s == "leased" || s == "done" {
		t.Fatalf("nacked task is %s", s)
	}
	if err := c.CommitTxn(ctx, tx); !errors.Is(err, client.ErrTxnCommitted) {
		t.Fatalf("second commit of one Txn: %v", err)
	}
}

// snapshot is what a refused transaction must leave as it was.
type snapshot struct {
	keys    map[string]bool
	stats   queue.Stats
	vectors int
	vec9    bool
	agentLd int
	ag2     bool
	leased  string
}

func snap(t *testing.T, e *env, leased uint64) snapshot {
	t.Helper()
	s := snapshot{keys: map[string]bool{}}
	for _, k := range []string{"lock", "old", "p/1", "new", "r1", "r2"} {
		s.keys[k] = present(e, "app", k)
	}
	st, err := e.q.Stats("jobs")
	if err != nil {
		t.Fatal(err)
	}
	st.EnqueueRate, st.AckRate, st.RetryRate, st.OldestAge = 0, 0, 0, 0
	s.stats = st
	cs, err := e.v.Stats("mem")
	if err != nil {
		t.Fatal(err)
	}
	s.vectors = cs.Vectors
	_, err = e.v.Get("mem", 9)
	s.vec9 = err == nil
	a, err := e.r.Get("ag")
	if err != nil {
		t.Fatal(err)
	}
	s.agentLd = a.Load
	_, err = e.r.Get("ag2")
	s.ag2 = err == nil
	s.leased = state(t, e, leased)
	return s
}

func (s snapshot) equal(o snapshot) bool {
	if len(s.keys) != len(o.keys) {
		return false
	}
	for k, v := range s.keys {
		if o.keys[k] != v {
			return false
		}
	}
	return s.stats == o.stats && s.vectors == o.vectors && s.vec9 == o.vec9 && s.agentLd == o.agentLd && s.ag2 == o.ag2 && s.leased == o.leased
}

// A refused transaction leaves nothing, whichever operation refuses it
// and whenever (validation, apply in the middle, a condition at the end),
// and its error says which operation and why, with the engine's
// sentinels.
func TestTxnRejected(t *testing.T) {
	e := txnEnv(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	ls := enqueueLease(t, e, 1)
	// build fills a transaction whose operation refused is the refusing one.
	build := func(refused func(tx *client.Txn)) *client.Txn {
		tx := c.NewTxn()
		tx.Set("app", []byte("r1"), []byte("v"))
		tx.Enqueue("jobs", client.Task{Payload: []byte("x")})
		tx.Upsert("mem", client.Vector{ID: 9, Values: []float32{1, 1}})
		tx.Heartbeat("ag", 3, "busy")
		tx.Register(client.AgentSpec{ID: "ag2", Capacity: 1})
		tx.Ack("jobs", ls[0].ID, ls[0].Token, nil)
		refused(tx)
		tx.Set("app", []byte("r2"), []byte("v"))
		return tx
	}
	const refusedAt = 6
	for _, tc := range []struct {
		name    string
		refused func(tx *client.Txn)
		want    error
		code    connect.Code
		kind    string
	}{
		{"lease lost", func(tx *client.Txn) { tx.Ack("jobs", ls[0].ID, ls[0].Token, nil) }, queue.ErrLeaseLost, connect.CodeFailedPrecondition, "queue.ack"},
		{"condition", func(tx *client.Txn) { tx.Require("app", []byte("lock"), []byte("theirs")) }, db.ErrConditionFailed, connect.CodeFailedPrecondition, "kv.require"},
		{"absent", func(tx *client.Txn) { tx.RequireAbsent("app", []byte("r1")) }, db.ErrConditionFailed, connect.CodeFailedPrecondition, "kv.require"},
		{"dimension", func(tx *client.Txn) { tx.Upsert("mem", client.Vector{ID: 10, Values: []float32{1, 2, 3}}) }, hnsw.ErrDimension, connect.CodeInvalidArgument, ""},
		{"unknown queue", func(tx *client.Txn) { tx.Enqueue("nope", client.Task{Payload: []byte("x")}) }, queue.ErrNotFound, connect.CodeNotFound, "queue.enqueue"},
		{"empty key", func(tx *client.Txn) { tx.Set("app", nil, []byte("v")) }, db.ErrEmptyKey, connect.CodeInvalidArgument, ""},
	} {
		before := snap(t, e, ls[0].ID)
		err := c.CommitTxn(ctx, build(tc.refused))
		if after := snap(t, e, ls[0].ID); !after.equal(before) {
			t.Fatalf("%s: a refused transaction (%v) changed the store:\n%+v\n%+v", tc.name, err, before, after)
		}
		var te *client.TxnError
		if !errors.As(err, &te) || !errors.Is(err, db.ErrTxnRejected) || !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want a TxnError matching db.ErrTxnRejected and %v", tc.name, err, tc.want)
		}
		if te.Op != refusedAt || te.Kind != tc.kind || te.Code != tc.code || codeOf(err) != tc.code {
			t.Fatalf("%s: op %d kind %q code %v (call %v), want op %d kind %q code %v", tc.name, te.Op, te.Kind, te.Code, codeOf(err), refusedAt, tc.kind, tc.code)
		}
	}
	// The transaction as a whole: no operations.
	err := c.CommitTxn(ctx, c.NewTxn())
	var te *client.TxnError
	if !errors.As(err, &te) || te.Op != -1 || !errors.Is(err, db.ErrEmptyTxn) || codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty transaction: %v", err)
	}
	// Too many operations: refused before any is looked at.
	big := c.NewTxn()
	for i := range db.MaxTxnOps + 1 {
		big.Set("ns", fmt.Appendf(nil, "big%d", i), []byte("v"))
	}
	err = c.CommitTxn(ctx, big)
	if !errors.As(err, &te) || te.Op != -1 || !errors.Is(err, db.ErrTxnTooLarge) {
		t.Fatalf("transaction of %d operations: %v", db.MaxTxnOps+1, err)
	}
	if _, err := c.Get(ctx, "ns", []byte("big0")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("an operation of the refused transaction applied: %v", err)
	}
}

// A transaction with an idempotency key applies once: committed again, it
// answers the first outcome (the same ids), and a refused one answers the
// same refusal; the key with other operations is refused.
func TestTxnIdempotent(t *testing.T) {
	e := txnEnv(t, nil)
	c := e.client(t, nil)
	ctx := context.Background()
	step := func(key string) (*client.Txn, *client.Enqueued) {
		tx := c.NewTxn()
		tx.SetIdempotencyKey(key)
		tx.Set("app", []byte("step"), []byte(key))
		return tx, tx.Enqueue("jobs", client.Task{Payload: []byte("x")})
	}
	tx1, e1 := step("s1")
	if err := c.CommitTxn(ctx, tx1); err != nil {
		t.Fatal(err)
	}
	tx2, e2 := step("s1")
	if err := c.CommitTxn(ctx, tx2); err != nil {
		t.Fatal(err)
	}
	if len(e1.IDs) != 1 || len(e2.IDs) != 1 || e1.IDs[0] != e2.IDs[0] {
		t.Fatalf("retry got ids %v, first %v", e2.IDs, e1.IDs)
	}
	if st, _ := e.q.Stats("jobs"); st.Enqueued != 1 {
		t.Fatalf("applied %d enqueues, want 1", st.Enqueued)
	}
	other := c.NewTxn()
	other.SetIdempotencyKey("s1")
	other.Set("app", []byte("step"), []byte("other"))
	if err := c.CommitTxn(ctx, other); !errors.Is(err, db.ErrIdempotencyKeyReused) {
		t.Fatalf("key reused: %v", err)
	}
	// A refusal is the outcome kept: after the condition holds, the retry
	// still answers the refusal.
	refused := func() error {
		tx := c.NewTxn()
		tx.SetIdempotencyKey("s2")
		tx.RequirePresent("app", []byte("gate"))
		tx.Set("app", []byte("s2"), []byte("v"))
		return c.CommitTxn(ctx, tx)
	}
	if err := refused(); !errors.Is(err, db.ErrConditionFailed) {
		t.Fatalf("first: %v", err)
	}
	if err := e.d.Set(ctx, "app", []byte("gate"), []byte("open")); err != nil {
		t.Fatal(err)
	}
	if err := refused(); !errors.Is(err, db.ErrConditionFailed) || present(e, "app", "s2") {
		t.Fatalf("retry of a refused transaction: %v", err)
	}
}

// dropAnswer is a transport that sends each request and, the first time,
// throws the answer away and fails, as a connection that breaks after the
// request left.
type dropAnswer struct {
	rt      http.RoundTripper
	dropped atomic.Int32
}

func (d *dropAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.rt.RoundTrip(r)
	if err == nil && d.dropped.Add(1) == 1 {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, errors.New("connection reset after the request left")
	}
	return resp, err
}

// CommitTxn retries a transaction after a connection failure only when it
// has an idempotency key: the retry gets the first outcome and applies
// nothing twice; without a key the outcome is unknown and it is not sent
// again.
func TestTxnRetry(t *testing.T) {
	e := txnEnv(t, nil)
	ctx := context.Background()
	newClient := func() *client.Client {
		return e.client(t, &client.Options{HTTPClient: &http.Client{Transport: &dropAnswer{rt: http.DefaultTransport}}, RetryBackoff: time.Millisecond})
	}
	c := newClient()
	tx := c.NewTxn()
	tx.SetIdempotencyKey("retry-1")
	en := tx.Enqueue("jobs", client.Task{Payload: []byte("x")})
	if err := c.CommitTxn(ctx, tx); err != nil {
		t.Fatalf("keyed transaction after a dropped answer: %v", err)
	}
	if st, _ := e.q.Stats("jobs"); st.Enqueued != 1 || len(en.IDs) != 1 {
		t.Fatalf("keyed retry: %d enqueued, ids %v; want 1", st.Enqueued, en.IDs)
	}
	c = newClient()
	tx = c.NewTxn()
	tx.Enqueue("jobs", client.Task{Payload: []byte("y")})
	if err := c.CommitTxn(ctx, tx); !errors.Is(err, client.ErrOutcomeUnknown) || !errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("unkeyed transaction after a dropped answer: %v, want outcome unknown", err)
	}
	if st, _ := e.q.Stats("jobs"); st.Enqueued != 2 {
		t.Fatalf("unkeyed: %d enqueued, want 2 (applied once, not resent)", st.Enqueued)
	}
}

// Every operation is authorized before anything runs: one out of scope
// refuses the transaction with 403 and changes nothing.
func TestTxnScopes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	sec := writeTokens(t, path, map[string][]string{
		"agent":  {"kv:app:write", "queue:jobs:write", "vec:mem:write", "agent:ag:write"},
		"reader": {"kv:app:read"},
	}, nil)
	st, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e := txnEnv(t, func(o *server.Options) { o.Tokens = st })
	ctx := context.Background()
	ls := enqueueLease(t, e, 1)
	agent := e.client(t, &client.Options{Token: sec["agent"]})
	for _, tc := range []struct {
		name string
		c    *client.Client
		last func(tx *client.Txn)
		want error
		code connect.Code
	}{
		{"other namespace", agent, func(tx *client.Txn) { tx.Set("secret", []byte("k"), []byte("v")) }, auth.ErrForbidden, connect.CodePermissionDenied},
		{"other queue", agent, func(tx *client.Txn) { tx.Enqueue("ops", client.Task{Payload: []byte("x")}) }, auth.ErrForbidden, connect.CodePermissionDenied},
		{"other collection", agent, func(tx *client.Txn) { tx.DeleteVectors("other", 1) }, auth.ErrForbidden, connect.CodePermissionDenied},
		{"other agent", agent, func(tx *client.Txn) { tx.Heartbeat("ag2", 0, "") }, auth.ErrForbidden, connect.CodePermissionDenied},
		{"no token", e.client(t, nil), func(tx *client.Txn) {}, auth.ErrUnauthenticated, connect.CodeUnauthenticated},
	} {
		before := snap(t, e, ls[0].ID)
		tx := tc.c.NewTxn()
		tx.Set("app", []byte("r1"), []byte("v"))
		tx.Ack("jobs", ls[0].ID, ls[0].Token, nil)
		tx.Upsert("mem", client.Vector{ID: 9, Values: []float32{1, 1}})
		tx.Heartbeat("ag", 3, "busy")
		tc.last(tx)
		err := tc.c.CommitTxn(ctx, tx)
		if !errors.Is(err, tc.want) || codeOf(err) != tc.code {
			t.Fatalf("%s: %v (code %v), want %v", tc.name, err, codeOf(err), tc.want)
		}
		var te *client.TxnError
		if tc.want == auth.ErrForbidden && (!errors.As(err, &te) || te.Op != 4) {
			t.Fatalf("%s: %v does not name operation 4", tc.name, err)
		}
		if after := snap(t, e, ls[0].ID); !after.equal(before) {
			t.Fatalf("%s: a refused transaction changed the store:\n%+v\n%+v", tc.name, before, after)
		}
	}
	// A read scope allows conditions, not writes.
	reader := e.client(t, &client.Options{Token: sec["reader"]})
	tx := reader.NewTxn()
	tx.Require("app", []byte("lock"), []byte("mine"))
	tx.Set("app", []byte("r1"), []byte("v"))
	var te *client.TxnError
	if err := reader.CommitTxn(ctx, tx); !errors.Is(err, auth.ErrForbidden) || !errors.As(err, &te) || te.Op != 1 {
		t.Fatalf("reader writing: %v", err)
	}
	// In scope, the same transaction commits.
	tx = agent.NewTxn()
	tx.Require("app", []byte("lock"), []byte("mine"))
	tx.Ack("jobs", ls[0].ID, ls[0].Token, nil)
	tx.Heartbeat("ag", 0, "idle")
	if err := agent.CommitTxn(ctx, tx); err != nil {
		t.Fatalf("in scope: %v", err)
	}
}

// The RPC with curl and JSON: each operation's body is its single call's.
func TestTxnCurlJSON(t *testing.T) {
	e := txnEnv(t, nil)
	ls := enqueueLease(t, e, 1)
	url := e.url + "/flowdb.v1.TxnService/Commit"
	body := `{"idempotencyKey":"curl-1","ops":[
		{"require":{"mode":"MODE_EQUAL","namespace":"app","key":"bG9jaw==","value":"bWluZQ=="}},
		{"ack":{"queue":"jobs","id":"` + itoa(ls[0].ID) + `","token":"` + itoa(ls[0].Token) + `","result":"b2s="}},
		{"upsert":{"collection":"mem","vectors":[{"id":"5","values":[0.5,0.5]}]}},
		{"set":{"namespace":"app","key":"c3RlcA==","value":"MQ=="}},
		{"enqueue":{"queue":"jobs","task":{"payload":"bmV4dA=="}}}]}`
	code, out := post(t, url, "application/json", body, nil)
	if code != 200 || !strings.Contains(out, `"results"`) || !strings.Contains(out, `"ids"`) {
		t.Fatalf("commit: %d %s", code, out)
	}
	if s := state(t, e, ls[0].ID); s != "done" || !present(e, "app", "step") {
		t.Fatalf("after curl: task %s, key present %v", s, present(e, "app", "step"))
	}
	if st, _ := e.q.Stats("jobs"); st.Enqueued != 2 {
		t.Fatalf("enqueued %d", st.Enqueued)
	}
	// The same again: the first outcome (the same results; the index is
	// the retry's own), nothing applied twice.
	results := func(s string) string { r, _, _ := strings.Cut(s, `"index"`); return r }
	code, again := post(t, url, "application/json", body, nil)
	if code != 200 || results(again) != results(out) {
		t.Fatalf("retry: %d %s, first %s", code, again, out)
	}
	if st, _ := e.q.Stats("jobs"); st.Enqueued != 2 {
		t.Fatalf("enqueued %d after the retry, want 2", st.Enqueued)
	}
	// A refused one: the code of the refused operation's error, and the
	// details name it.
	code, out = post(t, url, "application/json", `{"ops":[{"set":{"namespace":"app","key":"eA==","value":"MQ=="}},
		{"ack":{"queue":"jobs","id":"`+itoa(ls[0].ID)+`","token":"1"}}]}`, nil)
	if code != 400 && code != 412 || !strings.Contains(out, `"failed_precondition"`) || !strings.Contains(out, "flowdb.v1.TxnErrorDetail") {
		t.Fatalf("refused: %d %s", code, out)
	}
	if present(e, "app", "x") {
		t.Fatal("a refused transaction set its key")
	}
	// An operation without a body is bad input, not a server error.
	if code, out = post(t, url, "application/json", `{"ops":[{}]}`, nil); code != 400 || !strings.Contains(out, "invalid_argument") {
		t.Fatalf("empty op: %d %s", code, out)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
