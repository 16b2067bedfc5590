package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
)

// runIn executes flowctl with args and stdin in-process.
func runIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{out: &out, errOut: &errOut}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return out.String(), err
}

func TestTxnCommand(t *testing.T) {
	txnSuite(t, target{"--dir", filepath.Join(t.TempDir(), "store")})
}

func TestTxnCommandNode(t *testing.T) {
	txnSuite(t, target{"--node", startNode(t)})
}

// txnSuite: an agent step committed whole from a file, a step refused at
// a stale token from standard input with nothing applied, a failed
// condition, an idempotent retry, and bad input (exit 2) that never
// reaches the store. Names share the placement group {a1}, so a node with
// two data shards commits them together; a transaction that adds the
// registry (catalog shard) is refused there with db.ErrCrossShard.
func txnSuite(t *testing.T, tg target) {
	tg.must(t, "queue", "create", "{a1}jobs")
	tg.must(t, "vec", "create", "{a1}memory", "--dim", "2", "--float")
	tg.must(t, "agent", "register", "a1", "--capacity", "4")
	tg.must(t, "kv", "set", "{a1}", "lock", "mine")
	tg.must(t, "queue", "enqueue", "{a1}jobs", "t1")
	tg.must(t, "queue", "enqueue", "{a1}jobs", "t2")
	type lease struct{ id, token string }
	var ls []lease
	for _, line := range strings.Split(strings.TrimSpace(tg.must(t, "queue", "lease", "{a1}jobs", "--agent", "a1", "--n", "2")), "\n") {
		f := strings.Split(line, "\t")
		ls = append(ls, lease{f[0], f[1]})
	}
	if len(ls) != 2 {
		t.Fatalf("leases: %v", ls)
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A step committed whole (--json).
	step := fmt.Sprintf(`{"ops": [
		{"op": "require", "ns": "{a1}", "key": "lock", "value": "mine"},
		{"op": "ack", "queue": "{a1}jobs", "id": %q, "token": %q, "result": "done"},
		{"op": "upsert", "collection": "{a1}memory", "id": "7", "vector": [1, 0], "tags": ["t1"]},
		{"op": "set", "ns": "{a1}", "key": "last", "value": "t1", "ttl": "1h"},
		{"op": "enqueue", "queue": "{a1}jobs", "payload": "t3", "priority": 2}]}`, ls[0].id, ls[0].token)
	var res txnOutcome
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "txn", "--file", write("step.json", step))), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Committed || (tg.embedded() && res.Index == 0) || len(res.Ops) != 5 || res.RefusedOp != nil ||
		res.Ops[1].Status != "applied" || res.Ops[1].Target != "{a1}jobs/"+ls[0].id ||
		len(res.Ops[4].IDs) != 1 || res.Ops[4].IDs[0] == 0 {
		t.Fatalf("committed step: %+v", res)
	}
	if got := tg.must(t, "queue", "inspect", "{a1}jobs", ls[0].id); !strings.Contains(got, "done") {
		t.Fatalf("acked task: %q", got)
	}
	if got := tg.must(t, "queue", "inspect", "{a1}jobs", fmt.Sprint(res.Ops[4].IDs[0])); !strings.Contains(got, "t3") {
		t.Fatalf("follow-up: %q", got)
	}
	if got := tg.must(t, "vec", "get", "{a1}memory", "7"); !strings.Contains(got, "7") {
		t.Fatalf("memory: %q", got)
	}
	if got := tg.must(t, "kv", "get", "{a1}", "last"); got != "t1\n" {
		t.Fatalf("key: %q", got)
	}
	// The queue's counters (the oldest task's age aside, which grows).
	stats := func() string {
		var keep []string
		for _, l := range strings.Split(tg.must(t, "queue", "stats", "{a1}jobs"), "\n") {
			if !strings.HasPrefix(l, "oldest") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	before := stats()

	// A step refused at its fourth operation (the first task is acked
	// already), read from standard input: nothing of it is applied.
	stale := fmt.Sprintf(`{"ops": [
		{"op": "upsert", "collection": "{a1}memory", "vectors": [{"id": "8", "vector": [0, 1]}]},
		{"op": "set", "ns": "{a1}", "key": "last", "value": "t2"},
		{"op": "enqueue", "queue": "{a1}jobs", "payload": "t4"},
		{"op": "ack", "queue": "{a1}jobs", "id": %q, "token": %q}]}`, ls[0].id, ls[0].token)
	out, err := runIn(t, stale, append(slices.Clone(tg), "txn", "--file", "-")...)
	var ue usageError
	if !errors.Is(err, queue.ErrLeaseLost) || !errors.Is(err, db.ErrTxnRejected) || errors.As(err, &ue) || usage(err) ||
		!strings.Contains(err.Error(), "operation 3 (ack {a1}jobs/"+ls[0].id+")") {
		t.Fatalf("stale step: want lease lost at operation 3 (exit 1), got %v", err)
	}
	if !strings.HasPrefix(out, "refused at operation 3: nothing applied\n") || strings.Count(out, "not applied") != 3 ||
		!strings.Contains(out, "refused: ") {
		t.Fatalf("stale step output:\n%s", out)
	}
	if _, err := tg.run(t, "vec", "get", "{a1}memory", "8"); err == nil {
		t.Fatal("memory 8 of a refused step is stored")
	}
	if got := tg.must(t, "kv", "get", "{a1}", "last"); got != "t1\n" {
		t.Fatalf("key after a refused step: %q", got)
	}
	if got := stats(); got != before {
		t.Fatalf("queue changed by a refused step:\n%s\nwas\n%s", got, before)
	}

	// A failed condition, in JSON.
	out, err = tg.run(t, "--json", "txn", "--file", write("cond.json", `{"ops": [
		{"op": "set", "ns": "{a1}", "key": "last", "value": "t9"},
		{"op": "require", "ns": "{a1}", "key": "lock", "value": "theirs"}]}`))
	if !errors.Is(err, db.ErrConditionFailed) {
		t.Fatalf("condition: %v", err)
	}
	res = txnOutcome{}
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil || res.Committed || res.RefusedOp == nil || *res.RefusedOp != 1 ||
		res.Ops[0].Status != "not applied" || res.Ops[1].Status != "refused" {
		t.Fatalf("condition output: %s %v", out, jerr)
	}
	if got := tg.must(t, "kv", "get", "{a1}", "last"); got != "t1\n" {
		t.Fatalf("key after a failed condition: %q", got)
	}

	// Exactly once: a retry with the same idempotency key gets the first
	// outcome (the same task id) and enqueues nothing more.
	once := write("once.json", `{"idempotency_key": "a1/step-2", "ops": [
		{"op": "enqueue", "queue": "{a1}jobs", "payload": "t5"},
		{"op": "require_absent", "ns": "{a1}", "key": "nope"},
		{"op": "require_present", "ns": "{a1}", "key": "lock"}]}`)
	var first, again txnOutcome
	json.Unmarshal([]byte(tg.must(t, "--json", "txn", "--file", once)), &first)
	mid := stats()
	json.Unmarshal([]byte(tg.must(t, "--json", "txn", "--file", once)), &again)
	if !first.Committed || !again.Committed || len(first.Ops[0].IDs) != 1 || !slices.Equal(first.Ops[0].IDs, again.Ops[0].IDs) {
		t.Fatalf("idempotent retry: %+v then %+v", first, again)
	}
	if got := stats(); got != mid {
		t.Fatalf("a retry changed the queue:\n%s\nwas\n%s", got, mid)
	}

	// The registry lives on the catalog shard: with the data shards'
	// operations, a node refuses the transaction; an embedded store (one
	// log) commits it.
	mixed := write("mixed.json", `{"ops": [
		{"op": "heartbeat", "agent": "a1", "load": 1, "status": "busy"},
		{"op": "set", "ns": "{a1}", "key": "hb", "value": "1"}]}`)
	_, err = tg.run(t, "txn", "--file", mixed)
	if tg.embedded() {
		if err != nil {
			t.Fatalf("heartbeat and set: %v", err)
		}
	} else {
		if !errors.Is(err, db.ErrCrossShard) || !strings.Contains(err.Error(), "placement group") {
			t.Fatalf("cross-shard transaction on a node: %v", err)
		}
		if _, err := tg.run(t, "kv", "get", "{a1}", "hb"); err == nil {
			t.Fatal("a cross-shard transaction applied its set")
		}
	}

	// Bad input: exit 2, before anything is proposed.
	for name, body := range map[string]string{
		"unknown field":     `{"ops": [{"op": "set", "ns": "n", "key": "k", "value": "v", "colour": "red"}]}`,
		"unknown top field": `{"ops": [{"op": "set", "ns": "n", "key": "k", "value": "v"}], "retries": 3}`,
		"unknown op":        `{"ops": [{"op": "frobnicate"}]}`,
		"no op":             `{"ops": [{"ns": "n"}]}`,
		"missing field":     `{"ops": [{"op": "ack", "queue": "{a1}jobs", "id": "1"}]}`,
		"bad id":            `{"ops": [{"op": "cancel", "queue": "{a1}jobs", "id": "twelve"}]}`,
		"bad duration":      `{"ops": [{"op": "set", "ns": "n", "key": "k", "value": "v", "ttl": 10}]}`,
		"no ops":            `{"ops": []}`,
		"not json":          `ops: []`,
		"two objects":       `{"ops": [{"op": "delete", "ns": "n", "key": "k"}]} {}`,
		"upsert both":       `{"ops": [{"op": "upsert", "collection": "{a1}memory", "id": "1", "vector": [1, 0], "vectors": []}]}`,
		"wrong dimension":   `{"ops": [{"op": "upsert", "collection": "{a1}memory", "id": "9", "vector": [1, 0, 0]}]}`,
	} {
		if _, err := tg.run(t, "txn", "--file", write("bad.json", body)); !errors.As(err, &ue) && !usage(err) {
			t.Errorf("%s: want a usage error (exit 2), got %v", name, err)
		}
	}
	if _, err := tg.run(t, "txn"); !errors.As(err, &ue) {
		t.Errorf("no --file: %v", err)
	}
	if _, err := tg.run(t, "txn", "--file", filepath.Join(dir, "missing.json")); !errors.As(err, &ue) {
		t.Errorf("missing file: %v", err)
	}
	if got := stats(); got != mid {
		t.Fatalf("bad input changed the queue:\n%s\nwas\n%s", got, mid)
	}
	if tg.embedded() {
		if got := tg.must(t, "check"); !strings.Contains(got, "ok") {
			t.Fatalf("check: %q", got)
		}
	}
}

// TestTxnTextOutput: the text outcome names every operation and what
// became of it.
func TestTxnTextOutput(t *testing.T) {
	d := filepath.Join(t.TempDir(), "store")
	mustRun(t, "--dir", d, "queue", "create", "jobs")
	out, err := runIn(t, `{"ops": [{"op": "set", "ns": "agent", "key": "k", "value": "v"},
		{"op": "enqueue", "queue": "jobs", "payload": "p"}]}`, "--dir", d, "txn", "--file", "-")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "committed at index ") ||
		!strings.Contains(lines[1], "set") || !strings.Contains(lines[1], "agent/k") || !strings.HasSuffix(lines[1], "applied") ||
		!strings.Contains(lines[2], "enqueue") || !strings.Contains(lines[2], "applied  id ") {
		t.Fatalf("text output:\n%s", out)
	}
}
