package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/flowdb/flowdb/registry"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// run executes flowctl with args in-process and returns stdout.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{out: &out, errOut: &errOut}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("flowctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestKVCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustRun(t, "--dir", dir, "kv", "set", "agents", "a1", `{"role":"planner"}`)
	mustRun(t, "--dir", dir, "kv", "set", "agents", "a2", "coder", "--ttl", "1h")
	mustRun(t, "--dir", dir, "kv", "set", "agents", "hex:00ff", "hex:0102")
	if got := mustRun(t, "--dir", dir, "kv", "get", "agents", "a1"); got != "{\"role\":\"planner\"}\n" {
		t.Fatalf("get: %q", got)
	}
	var entries []kvJSON
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "kv", "scan", "agents")), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Key != "hex:00ff" || entries[0].Value != "hex:0102" ||
		entries[2].Key != "a2" || entries[2].ExpiresAt == "" {
		t.Fatalf("scan json: %+v", entries)
	}
	if got := mustRun(t, "--dir", dir, "kv", "scan", "agents", "--prefix", "a", "--reverse", "--limit", "1"); got != "a2\tcoder\n" {
		t.Fatalf("scan reverse limit: %q", got)
	}
	mustRun(t, "--dir", dir, "kv", "del", "agents", "a", "--prefix")
	if _, err := run(t, "--dir", dir, "kv", "get", "agents", "a1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("get after del --prefix: %v", err)
	}
	if got := mustRun(t, "--dir", dir, "check"); !strings.Contains(got, "ok") {
		t.Fatalf("check: %q", got)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "stats")), &st); err != nil || st["applied_index"] == nil {
		t.Fatalf("stats json: %v %v", st, err)
	}
}

func TestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	var ue usageError
	if _, err := run(t, "kv", "get", "a", "b"); !errors.As(err, &ue) {
		t.Fatalf("missing --dir: %v", err)
	}
	if _, err := run(t, "--dir", dir, "kv", "get", "only-namespace"); !errors.As(err, &ue) {
		t.Fatalf("missing argument: %v", err)
	}
	if _, err := run(t, "--dir", dir, "kv", "set", "ns", "k", "v", "--ttl", "soon"); !errors.As(err, &ue) {
		t.Fatalf("bad flag value: %v", err)
	}
	_, err := run(t, "--dir", filepath.Join(dir, "typo"), "kv", "get", "a", "b")
	if err == nil || !strings.Contains(err.Error(), "no flowdb store") {
		t.Fatalf("wrong dir: %v", err)
	}
	if _, err := run(t, "--dir", dir, "stats"); err == nil || !strings.Contains(err.Error(), "no flowdb store") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := run(t, "--dir", dir, "kv", "set", "ns", "", "v"); err == nil {
		t.Fatal("empty key accepted")
	}
}

func TestBackupRestore(t *testing.T) {
	base := t.TempDir()
	src, bak, dst := filepath.Join(base, "src"), filepath.Join(base, "bak"), filepath.Join(base, "dst")
	for _, k := range []string{"k1", "k2", "k3"} {
		mustRun(t, "--dir", src, "kv", "set", "ns", k, "v-"+k)
	}
	mustRun(t, "--dir", src, "--json", "backup", "--to", bak)
	if _, err := run(t, "--dir", src, "backup", "--to", bak); err == nil {
		t.Fatal("backup over a non-empty dir accepted")
	}
	mustRun(t, "--dir", dst, "--json", "restore", "--from", bak)
	if got := mustRun(t, "--dir", dst, "kv", "get", "ns", "k2"); got != "v-k2\n" {
		t.Fatalf("restored value: %q", got)
	}
	if got := mustRun(t, "--dir", dst, "check"); !strings.Contains(got, "ok") {
		t.Fatalf("check restored: %q", got)
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("demo takes a few seconds")
	}
	var rep demoReport
	out := mustRun(t, "--dir", filepath.Join(t.TempDir(), "demo"), "--json", "demo")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !rep.CheckOK || len(rep.Steps) != 14 || rep.Records == 0 || rep.CheckedKeys == 0 {
		t.Fatalf("demo report: %+v", rep)
	}
	for _, s := range rep.Steps {
		if s.Ops <= 0 || s.OpsPerS <= 0 {
			t.Fatalf("step without a measurement: %+v", s)
		}
	}
}

func TestQueueCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustRun(t, "--dir", dir, "queue", "create", "jobs", "--max-attempts", "1", "--backoff", "1ms")
	for i, p := range []string{"low", "high", "mid"} {
		mustRun(t, "--dir", dir, "queue", "enqueue", "jobs", p, "--priority", []string{"1", "9", "5"}[i])
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "queue", "list")), &list); err != nil ||
		len(list) != 1 || list[0]["hot"].(float64) != 3 {
		t.Fatalf("queue list: %v %v", list, err)
	}
	var ls []leaseJSON
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "queue", "lease", "jobs", "--agent", "a1", "--n", "2")), &ls); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Payload != "high" || ls[1].Payload != "mid" {
		t.Fatalf("lease order: %+v", ls)
	}
	id := func(v uint64) string { return strconv.FormatUint(v, 10) }
	mustRun(t, "--dir", dir, "queue", "ack", "jobs", id(ls[0].ID), id(ls[0].Token), "--result", "done!")
	if _, err := run(t, "--dir", dir, "queue", "ack", "jobs", id(ls[0].ID), id(ls[0].Token)); err == nil ||
		!strings.Contains(err.Error(), "lease lost") {
		t.Fatalf("second ack: %v", err)
	}
	mustRun(t, "--dir", dir, "queue", "nack", "jobs", id(ls[1].ID), id(ls[1].Token), "--reason", "flaky")
	if got := mustRun(t, "--dir", dir, "queue", "inspect", "jobs", id(ls[0].ID)); !strings.Contains(got, "done") {
		t.Fatalf("inspect: %q", got)
	}
	// max-attempts 1: the nacked task is a dead letter.
	if got := mustRun(t, "--dir", dir, "queue", "dlq", "list", "jobs"); !strings.Contains(got, "mid") || !strings.Contains(got, "flaky") {
		t.Fatalf("dlq list: %q", got)
	}
	mustRun(t, "--dir", dir, "queue", "dlq", "replay", "jobs", "--all")
	var st map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "queue", "stats", "jobs")), &st); err != nil ||
		st["hot"].(float64) != 2 || st["dead"].(float64) != 0 || st["done"].(float64) != 1 {
		t.Fatalf("stats after replay: %v %v", st, err)
	}
	if got := mustRun(t, "--dir", dir, "check"); !strings.Contains(got, "ok") {
		t.Fatalf("check with queues: %q", got)
	}
	if _, err := run(t, "--dir", dir, "queue", "stats", "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown queue: %v", err)
	}
	var ue usageError
	if _, err := run(t, "--dir", dir, "queue", "ack", "jobs", "x", "1"); !errors.As(err, &ue) {
		t.Fatalf("bad id: %v", err)
	}
}

func TestAgentCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustRun(t, "--dir", dir, "agent", "register", "w1", "--pool", "gpu", "--caps", "py,gpu", "--capacity", "4", "--label", "zone=a")
	mustRun(t, "--dir", dir, "agent", "register", "w2", "--caps", "py")
	mustRun(t, "--dir", dir, "pool", "define", "gpu", "--min-warm", "1", "--max", "4")
	mustRun(t, "--dir", dir, "agent", "heartbeat", "w1", "--load", "2", "--status", "busy")
	var as []registry.Agent
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "agent", "list", "--caps", "gpu")), &as); err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != "w1" || as[0].Load != 2 || as[0].Labels["zone"] != "a" {
		t.Fatalf("agent list: %+v", as)
	}
	var ps []registry.PoolStats
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "pool", "stats")), &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Busy != 1 || ps[0].MinWarm != 1 {
		t.Fatalf("pool stats: %+v", ps)
	}
	mustRun(t, "--dir", dir, "agent", "deregister", "w1")
	if _, err := run(t, "--dir", dir, "agent", "inspect", "w1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("inspect after deregister: %v", err)
	}
	if _, err := run(t, "--dir", dir, "agent", "register", "w3", "--capacity", "0"); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("capacity 0: %v", err)
	}
	// sched stats: w2 (capacity 1) pulls one of two tasks.
	mustRun(t, "--dir", dir, "queue", "create", "jobs")
	mustRun(t, "--dir", dir, "queue", "enqueue", "jobs", "a")
	mustRun(t, "--dir", dir, "queue", "enqueue", "jobs", "b")
	mustRun(t, "--dir", dir, "queue", "lease", "jobs", "--agent", "w2")
	var ss schedStatsOut
	if err := json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "sched", "stats")), &ss); err != nil {
		t.Fatal(err)
	}
	if ss.Agents != 1 || ss.Capacity != 1 || ss.Held != 1 || ss.UtilMax != 1 || ss.Ready["jobs"] != 1 {
		t.Fatalf("sched stats: %+v", ss)
	}
	if out := mustRun(t, "--dir", dir, "sched", "stats"); !strings.Contains(out, "balance 1.00") {
		t.Fatalf("sched stats:\n%s", out)
	}
}
