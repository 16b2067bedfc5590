package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/tools/flowctl/internal/demo"
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

// target is where a suite's commands go: {"--dir", D} (an embedded store)
// or {"--node", URL} (a running node, see exec.go).
type target []string

func (tg target) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, append(slices.Clone(tg), args...)...)
}

func (tg target) must(t *testing.T, args ...string) string {
	t.Helper()
	return mustRun(t, append(slices.Clone(tg), args...)...)
}

func (tg target) embedded() bool { return tg[0] == "--dir" }

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("flowctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestKVCommands(t *testing.T) {
	kvSuite(t, target{"--dir", filepath.Join(t.TempDir(), "store")})
}

func kvSuite(t *testing.T, tg target) {
	tg.must(t, "kv", "set", "agents", "a1", `{"role":"planner"}`)
	tg.must(t, "kv", "set", "agents", "a2", "coder", "--ttl", "1h")
	tg.must(t, "kv", "set", "agents", "hex:00ff", "hex:0102")
	if got := tg.must(t, "kv", "get", "agents", "a1"); got != "{\"role\":\"planner\"}\n" {
		t.Fatalf("get: %q", got)
	}
	var entries []kvJSON
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "kv", "scan", "agents")), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Key != "hex:00ff" || entries[0].Value != "hex:0102" ||
		entries[2].Key != "a2" || entries[2].ExpiresAt == "" {
		t.Fatalf("scan json: %+v", entries)
	}
	if got := tg.must(t, "kv", "scan", "agents", "--prefix", "a", "--reverse", "--limit", "1"); got != "a2\tcoder\n" {
		t.Fatalf("scan reverse limit: %q", got)
	}
	tg.must(t, "kv", "del", "agents", "a", "--prefix")
	if _, err := tg.run(t, "kv", "get", "agents", "a1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("get after del --prefix: %v", err)
	}
	if tg.embedded() {
		if got := tg.must(t, "check"); !strings.Contains(got, "ok") {
			t.Fatalf("check: %q", got)
		}
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "stats")), &st); err != nil || st["applied_index"] == nil {
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
	t.Parallel()
	if testing.Short() {
		t.Skip("demo takes a few seconds")
	}
	var rep demo.Report
	out := mustRun(t, "--dir", filepath.Join(t.TempDir(), "demo"), "--json", "demo")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !rep.CheckOK || len(rep.Steps) != 16 || rep.Records == 0 || rep.CheckedKeys == 0 {
		t.Fatalf("demo report: %+v", rep)
	}
	for _, s := range rep.Steps {
		if s.Ops <= 0 || s.OpsPerS <= 0 {
			t.Fatalf("step without a measurement: %+v", s)
		}
	}
}

func TestQueueCommands(t *testing.T) {
	queueSuite(t, target{"--dir", filepath.Join(t.TempDir(), "store")})
}

func queueSuite(t *testing.T, tg target) {
	tg.must(t, "queue", "create", "jobs", "--max-attempts", "1", "--backoff", "1ms")
	for i, p := range []string{"low", "high", "mid"} {
		tg.must(t, "queue", "enqueue", "jobs", p, "--priority", []string{"1", "9", "5"}[i])
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "queue", "list")), &list); err != nil ||
		len(list) != 1 || list[0]["hot"].(float64) != 3 {
		t.Fatalf("queue list: %v %v", list, err)
	}
	var ls []leaseJSON
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "queue", "lease", "jobs", "--agent", "a1", "--n", "2")), &ls); err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Payload != "high" || ls[1].Payload != "mid" {
		t.Fatalf("lease order: %+v", ls)
	}
	id := func(v uint64) string { return strconv.FormatUint(v, 10) }
	tg.must(t, "queue", "ack", "jobs", id(ls[0].ID), id(ls[0].Token), "--result", "done!")
	if _, err := tg.run(t, "queue", "ack", "jobs", id(ls[0].ID), id(ls[0].Token)); err == nil ||
		!strings.Contains(err.Error(), "lease lost") {
		t.Fatalf("second ack: %v", err)
	}
	tg.must(t, "queue", "nack", "jobs", id(ls[1].ID), id(ls[1].Token), "--reason", "flaky")
	if got := tg.must(t, "queue", "inspect", "jobs", id(ls[0].ID)); !strings.Contains(got, "done") {
		t.Fatalf("inspect: %q", got)
	}
	// max-attempts 1: the nacked task is a dead letter.
	if got := tg.must(t, "queue", "dlq", "list", "jobs"); !strings.Contains(got, "mid") || !strings.Contains(got, "flaky") {
		t.Fatalf("dlq list: %q", got)
	}
	tg.must(t, "queue", "dlq", "replay", "jobs", "--all")
	if got := tg.must(t, "queue", "dlq", "replay", "jobs", "--all"); got != "no dead letters\n" {
		t.Fatalf("replay of an empty dlq: %q", got)
	}
	var purged countJSON
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "queue", "dlq", "purge", "jobs", "--all")), &purged); err != nil ||
		!purged.OK || purged.Count != 0 || purged.Command != "queue dlq purge" {
		t.Fatalf("purge --json of an empty dlq: %+v %v", purged, err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "queue", "stats", "jobs")), &st); err != nil ||
		st["hot"].(float64) != 2 || st["dead"].(float64) != 0 || st["done"].(float64) != 1 {
		t.Fatalf("stats after replay: %v %v", st, err)
	}
	if tg.embedded() {
		if got := tg.must(t, "check"); !strings.Contains(got, "ok") {
			t.Fatalf("check with queues: %q", got)
		}
	}
	if _, err := tg.run(t, "queue", "stats", "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown queue: %v", err)
	}
	var ue usageError
	if _, err := tg.run(t, "queue", "ack", "jobs", "x", "1"); !errors.As(err, &ue) {
		t.Fatalf("bad id: %v", err)
	}
}

func TestAgentCommands(t *testing.T) {
	agentSuite(t, target{"--dir", filepath.Join(t.TempDir(), "store")})
}

func agentSuite(t *testing.T, tg target) {
	tg.must(t, "agent", "register", "w1", "--pool", "gpu", "--caps", "py,gpu", "--capacity", "4", "--label", "zone=a")
	tg.must(t, "agent", "register", "w2", "--caps", "py")
	tg.must(t, "pool", "define", "gpu", "--min-warm", "1", "--max", "4")
	tg.must(t, "agent", "heartbeat", "w1", "--load", "2", "--status", "busy")
	var as []registry.Agent
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "agent", "list", "--caps", "gpu")), &as); err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != "w1" || as[0].Load != 2 || as[0].Labels["zone"] != "a" {
		t.Fatalf("agent list: %+v", as)
	}
	var ps []registry.PoolStats
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "pool", "stats")), &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Busy != 1 || ps[0].MinWarm != 1 {
		t.Fatalf("pool stats: %+v", ps)
	}
	tg.must(t, "agent", "deregister", "w1")
	if _, err := tg.run(t, "agent", "inspect", "w1"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("inspect after deregister: %v", err)
	}
	if _, err := tg.run(t, "agent", "register", "w3", "--capacity", "0"); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("capacity 0: %v", err)
	}
	// sched stats: w2 (capacity 1) pulls one of two tasks.
	tg.must(t, "queue", "create", "jobs")
	tg.must(t, "queue", "enqueue", "jobs", "a")
	tg.must(t, "queue", "enqueue", "jobs", "b")
	tg.must(t, "queue", "lease", "jobs", "--agent", "w2")
	var ss schedStatsOut
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "sched", "stats")), &ss); err != nil {
		t.Fatal(err)
	}
	if ss.Agents != 1 || ss.Capacity != 1 || ss.Held != 1 || ss.UtilMax != 1 || ss.Ready["jobs"] != 1 {
		t.Fatalf("sched stats: %+v", ss)
	}
	if out := tg.must(t, "sched", "stats"); !strings.Contains(out, "balance 1.00") {
		t.Fatalf("sched stats:\n%s", out)
	}
}

// TestVecCommands: create, import (JSON lines and IDX), search (with a tag
// filter), get, delete, stats, list, drop; bad input exits 2.
func TestVecCommands(t *testing.T) {
	vecSuite(t, target{"--dir", filepath.Join(t.TempDir(), "store")})
}

func vecSuite(t *testing.T, tg target) {
	tmp := t.TempDir()
	tg.must(t, "vec", "create", "mem", "--dim", "3", "--metric", "cosine", "--train", "50")
	var jl strings.Builder
	for i := range 120 {
		tag := []string{"x", "y"}[i%2]
		fmt.Fprintf(&jl, "{\"id\":%d,\"vector\":[%d,%d,1],\"tags\":[%q]}\n", i, i%7+1, i%11, tag)
	}
	jpath := filepath.Join(tmp, "v.jsonl")
	if err := os.WriteFile(jpath, []byte(jl.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var imp struct {
		Imported  int  `json:"imported"`
		Compacted bool `json:"compacted"`
	}
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "vec", "import", "mem", jpath)), &imp); err != nil || imp.Imported != 120 || !imp.Compacted {
		t.Fatalf("import: %+v %v", imp, err)
	}
	if out := tg.must(t, "vec", "compact", "mem"); !strings.Contains(out, "compacted mem") {
		t.Fatalf("compact:\n%s", out)
	}
	if _, err := tg.run(t, "vec", "compact", "nope"); !errors.Is(err, hnsw.ErrNoCollection) {
		t.Fatalf("compact of an unknown collection: %v", err)
	}
	var st collectionJSON
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "vec", "stats", "mem")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Vectors != 120 || !st.Trained || st.Metric != "cosine" {
		t.Fatalf("stats %+v", st)
	}
	var hits []hitJSON
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "vec", "search", "mem", "[3,4,1]", "--k", "5", "--tags", "y")), &hits); err != nil {
		t.Fatal(err)
	}
	if len(hits) != 5 {
		t.Fatalf("search: %+v", hits)
	}
	for _, h := range hits {
		if h.ID%2 != 1 || h.Tags[0] != "y" {
			t.Fatalf("filtered search returned %+v", h)
		}
	}
	if out := tg.must(t, "vec", "get", "mem", "2"); !strings.Contains(out, "tags    x") {
		t.Fatalf("get:\n%s", out)
	}
	// With --json a command prints JSON or nothing, never text.
	var del map[string]int
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "vec", "delete", "mem", "2", "4")), &del); err != nil || del["deleted"] != 2 {
		t.Fatalf("vec delete --json: %v %v", del, err)
	}
	if _, err := tg.run(t, "vec", "get", "mem", "2"); !errors.Is(err, hnsw.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	// IDX: a tiny 2-image, 2x2 file.
	idx := []byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8}
	ipath := filepath.Join(tmp, "t-idx3-ubyte")
	if err := os.WriteFile(ipath, idx, 0o600); err != nil {
		t.Fatal(err)
	}
	tg.must(t, "vec", "create", "img", "--dim", "4", "--float")
	tg.must(t, "vec", "import", "img", ipath)
	if out := tg.must(t, "vec", "stats", "img"); !strings.Contains(out, "quantized   no") {
		t.Fatalf("stats of a float collection:\n%s", out)
	}
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "vec", "search", "img", "[5,6,7,8]", "--k", "1")), &hits); err != nil || len(hits) != 1 || hits[0].ID != 1 || hits[0].Distance != 0 {
		t.Fatalf("float search: %+v %v", hits, err)
	}
	if out := tg.must(t, "vec", "list"); !strings.Contains(out, "img") || !strings.Contains(out, "mem") {
		t.Fatalf("list:\n%s", out)
	}
	if _, err := tg.run(t, "vec", "search", "mem", "[1,2]"); !errors.Is(err, quant.ErrDimension) {
		t.Fatalf("wrong dimension: %v", err)
	}
	tg.must(t, "vec", "drop", "img")
	if _, err := tg.run(t, "vec", "stats", "img"); !errors.Is(err, hnsw.ErrNoCollection) {
		t.Fatalf("stats after drop: %v", err)
	}
}
