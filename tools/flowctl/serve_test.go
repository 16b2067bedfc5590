package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/server/auth"
)

// rawPost sends a request as a web page could make a browser send it.
func rawPost(t *testing.T, url, ctype, body string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The attacks the admin endpoint once let through: a text/plain POST with a
// foreign Origin to /v1/exec wrote a key, a form POST to /v1/transfer moved
// a shard's leadership. Both are refused now, and the node's data API
// serves the client.
func TestNodeRefusesForgedAdminRequests(t *testing.T) {
	node := startNode(t)
	exec := `{"args":["kv","set","--","ns","k","pwned"]}`
	for name, hdr := range map[string]map[string]string{
		"foreign origin": {"Origin": "http://evil.example"},
		"no origin":      nil,
	} {
		if code := rawPost(t, node+"/v1/exec", "text/plain", exec, hdr); code != http.StatusForbidden {
			t.Fatalf("%s: text/plain /v1/exec answered %d", name, code)
		}
	}
	if code := rawPost(t, node+"/v1/transfer?shard=1&to=1", "application/x-www-form-urlencoded", "shard=1&to=1", nil); code != http.StatusForbidden {
		t.Fatalf("form /v1/transfer answered %d", code)
	}
	if code := rawPost(t, node+"/v1/exec", "application/json", exec, map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("JSON /v1/exec from a foreign origin answered %d", code)
	}
	if _, err := run(t, "--node", node, "kv", "get", "ns", "k"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a forged request wrote the key: %v", err)
	}
	// The network API of the replicated node.
	c, err := client.New(node, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "ns", []byte("k2"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, "--node", node, "kv", "get", "ns", "k2"); !strings.Contains(got, "v") {
		t.Fatalf("kv get through exec: %q", got)
	}
	if err := c.CreateQueue(ctx, client.QueueConfig{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, "q", client.Task{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(ctx)
	if err != nil || !h.Ready || !h.Replicated {
		t.Fatalf("health %+v %v", h, err)
	}
	resp, err := http.Get(node + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`flowdb_raft_is_leader{shard="1"} 1`, `flowdb_raft_proposals_total{outcome="proposed"}`, `flowdb_queue_tasks{queue="q",state="hot"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("node /metrics lacks %s", want)
		}
	}
}

// With a tokens file the admin endpoint needs a token with
// server:cluster:admin; flowctl sends FLOWDB_TOKEN.
func TestNodeAdminNeedsToken(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	admin := strings.TrimSpace(mustRun(t, "token", "create", "ops", "--file", tokens, "--scope", "*:*:admin"))
	worker := strings.TrimSpace(mustRun(t, "token", "create", "w", "--file", tokens, "--scope", "queue:*:write"))
	if got := mustRun(t, "token", "list", "--file", tokens); !strings.Contains(got, "ops") || strings.Contains(got, admin) {
		t.Fatalf("token list: %q", got)
	}
	raft, addr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		a := &app{out: io.Discard, errOut: io.Discard}
		done <- a.runNode(ctx, nodeFile{ID: 1, Dir: filepath.Join(dir, "node"), Raft: raft, Admin: addr, DataShards: 1,
			Members: map[string]string{"1": raft}, API: apiFlags{Tokens: tokens}})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	}()
	node := "http://" + addr
	t.Setenv("FLOWDB_TOKEN", admin)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := run(t, "--node", node, "kv", "set", "ns", "k", "v"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("node never served an admin token: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Setenv("FLOWDB_TOKEN", "")
	if _, err := run(t, "--node", node, "kv", "set", "ns", "k", "other"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("no token: %v", err)
	}
	t.Setenv("FLOWDB_TOKEN", worker)
	if _, err := run(t, "--node", node, "kv", "set", "ns", "k", "other"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("worker token: %v", err)
	}
	c, _ := client.New(node, &client.Options{Token: worker})
	defer c.Close()
	if err := c.Set(context.Background(), "ns", []byte("k"), []byte("other")); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("worker set: %v", err)
	}
	t.Setenv("FLOWDB_TOKEN", admin)
	if got := mustRun(t, "--node", node, "kv", "get", "ns", "k"); strings.TrimSpace(got) != "v" {
		t.Fatalf("value changed by refused calls: %q", got)
	}
	mustRun(t, "token", "revoke", "ops", "--file", tokens)
	time.Sleep(2 * auth.ReloadInterval)
	if _, err := run(t, "--node", node, "kv", "get", "ns", "k"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("revoked token: %v", err)
	}
}

func TestServeRefusesInsecureListen(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--dir", dir, "serve", "--listen", "0.0.0.0:0"},
		{"--dir", dir, "serve", "--listen", "0.0.0.0:0", "--api-insecure"},
	} {
		if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "insecure listener refused") {
			t.Fatalf("%v: %v", args, err)
		}
	}
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		a := &app{dir: filepath.Join(dir, "store"), out: io.Discard, errOut: io.Discard}
		done <- a.runServe(ctx, addr, apiFlags{})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	c, _ := client.New("http://"+addr, nil)
	defer c.Close()
	bg := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Health(bg); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.CreateQueue(bg, client.QueueConfig{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	id, err := c.Enqueue(bg, "q", client.Task{Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := c.LeaseWait(bg, "q", "a", 1, nil, 0, time.Second)
	if err != nil || len(ls) != 1 || ls[0].ID != id {
		t.Fatalf("lease %+v %v", ls, err)
	}
	if err := c.Ack(bg, "q", id, ls[0].Token, nil); err != nil {
		t.Fatal(err)
	}
}
