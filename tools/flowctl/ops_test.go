package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/registry"
)

// runWith runs flowctl in-process with stdin.
func runWith(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{in: bytes.NewReader(stdin), out: &out, errOut: &errOut}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return out.String(), err
}

// TestValueInput: values, payloads and vectors from standard input (-)
// and files (@FILE), on an embedded store and through a node, up to a
// value of 1 MiB that is not text.
func TestValueInput(t *testing.T) {
	t.Parallel()
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	file := writeFile(t, "value.bin", big)
	vec := writeFile(t, "q.json", []byte("[1, 0, 0]"))
	for _, tg := range []target{{"--dir", filepath.Join(t.TempDir(), "store")}, {"--node", startNode(t)}} {
		t.Run(tg[0], func(t *testing.T) {
			run := func(stdin []byte, args ...string) string {
				t.Helper()
				out, err := runWith(t, stdin, append(append([]string(nil), tg...), args...)...)
				if err != nil {
					t.Fatalf("flowctl %s: %v", strings.Join(args, " "), err)
				}
				return out
			}
			run(big, "kv", "set", "ns", "stdin", "-")
			run(nil, "kv", "set", "ns", "file", "@"+file)
			want := printable(big) + "\n"
			for _, k := range []string{"stdin", "file"} {
				if got := run(nil, "kv", "get", "ns", k); got != want {
					t.Fatalf("kv get %s: %d bytes, want %d", k, len(got), len(want))
				}
			}
			run(nil, "queue", "create", "q")
			id := strings.TrimSpace(run([]byte("from stdin"), "queue", "enqueue", "q", "-"))
			if got := run(nil, "queue", "inspect", "q", id); !strings.Contains(got, "from stdin") {
				t.Fatalf("payload from stdin: %q", got)
			}
			run(nil, "vec", "create", "m", "--dim", "3", "--float")
			run(nil, "vec", "import", "m", writeFile(t, "v.jsonl", []byte("{\"id\":1,\"vector\":[1,0,0]}\n{\"id\":2,\"vector\":[0,1,0]}\n")))
			for _, q := range []struct{ arg, stdin string }{{"-", "[0, 1, 0]"}, {"@" + vec, ""}} {
				var hits []hitJSON
				if err := json.Unmarshal([]byte(run([]byte(q.stdin), "--json", "vec", "search", "m", q.arg, "--k", "1")), &hits); err != nil || len(hits) != 1 {
					t.Fatalf("search %s: %v %v", q.arg, hits, err)
				}
				if want := map[string]uint64{"-": 2}[q.arg]; want != 0 && hits[0].ID != want {
					t.Fatalf("search from stdin: %+v", hits)
				}
			}
		})
	}
}

// TestVecImportStopsAndResumes: an import meets a vector the collection
// refuses; it says what it committed, and --resume completes it. An
// import stopped by SIGINT commits whole batches, compacts them, exits 1
// saying so, and --resume completes it.
func TestVecImportStopsAndResumes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustRun(t, "--dir", dir, "vec", "create", "c", "--dim", "2", "--metric", "cosine", "--float")
	var good, bad strings.Builder
	for i := range 500 {
		fmt.Fprintf(&good, "{\"id\":%d,\"vector\":[%d,1]}\n", i, i)
		if i == 250 {
			fmt.Fprintf(&bad, "{\"id\":%d,\"vector\":[0,0]}\n", i) // a zero vector under cosine
		} else {
			fmt.Fprintf(&bad, "{\"id\":%d,\"vector\":[%d,1]}\n", i, i)
		}
	}
	code, _, stderr := runCode(t, "", "--dir", dir, "vec", "import", "c", writeFile(t, "bad.jsonl", []byte(bad.String())), "--batch", "100")
	if code != exitUsage || !strings.Contains(stderr, "200 vectors committed, 300 not imported") || !strings.Contains(stderr, "ids 200-299") {
		t.Fatalf("import with a bad vector: exit %d:\n%s", code, stderr)
	}
	goodFile := writeFile(t, "good.jsonl", []byte(good.String()))
	out := mustRun(t, "--dir", dir, "--json", "vec", "import", "c", goodFile, "--resume")
	var imp importJSON
	if err := json.Unmarshal([]byte(out), &imp); err != nil || imp.Imported != 300 || imp.Skipped != 200 {
		t.Fatalf("resume: %+v %v", imp, err)
	}

	// SIGINT: a store of its own, an import of many small batches.
	dir = filepath.Join(t.TempDir(), "store2")
	mustRun(t, "--dir", dir, "vec", "create", "c", "--dim", "2", "--float")
	var many strings.Builder
	// Far more batches than run before the signal (batches of 5 commit
	// one by one, and the signal comes 50 ms in: an import that ends
	// before it exits 0 and fails the test); the resume then imports the
	// rest into the graph, which is where a larger n would spend its time.
	const n = 10000
	for i := range n {
		fmt.Fprintf(&many, "{\"id\":%d,\"vector\":[%d,1]}\n", i, i)
	}
	manyFile := writeFile(t, "many.jsonl", []byte(many.String()))
	// This test receives the SIGINT too, so that it never kills the test
	// process, whenever it arrives.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	errOut := &testutil.Buffer{}
	done := make(chan int)
	go func() {
		done <- runMain(context.Background(), []string{"--dir", dir, "vec", "import", "c", manyFile, "--batch", "5"}, nil, &bytes.Buffer{}, errOut)
	}()
	for !strings.Contains(errOut.String(), fmt.Sprintf("importing %d vectors", n)) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // some batches in
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	code = <-done
	msg := errOut.String()
	if code != exitFailed || !strings.Contains(msg, "flowctl: interrupted:") || !strings.Contains(msg, "rerun with --resume") ||
		!strings.Contains(msg, "compacting c") {
		t.Fatalf("interrupted import: exit %d:\n%s", code, msg)
	}
	var committed int
	i := strings.Index(msg, "vectors committed")
	fmt.Sscanf(msg[strings.LastIndex(msg[:i-1], " ")+1:], "%d", &committed)
	var st collectionJSON
	json.Unmarshal([]byte(mustRun(t, "--dir", dir, "--json", "vec", "stats", "c")), &st)
	if committed == 0 || committed%5 != 0 || st.Vectors != committed {
		t.Fatalf("interrupted import said %d committed; the collection holds %d:\n%s", committed, st.Vectors, msg)
	}
	out = mustRun(t, "--dir", dir, "--json", "vec", "import", "c", manyFile, "--resume")
	if err := json.Unmarshal([]byte(out), &imp); err != nil || imp.Imported != n-committed || imp.Skipped != committed {
		t.Fatalf("resume after SIGINT: %+v %v", imp, err)
	}
}

// TestHealthNow: an agent that missed its heartbeats shows unhealthy in
// agent list, agent inspect, pool stats and sched stats without `agent
// expire`.
func TestHealthNow(t *testing.T) {
	tg := target{"--dir", filepath.Join(t.TempDir(), "store")}
	tg.must(t, "pool", "define", "p")
	tg.must(t, "agent", "register", "late", "--pool", "p", "--heartbeat", "10ms")
	tg.must(t, "agent", "register", "fine", "--pool", "p", "--heartbeat", "1h")
	time.Sleep(50 * time.Millisecond)
	var as []registry.Agent
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "agent", "list", "--health", "unhealthy")), &as); err != nil ||
		len(as) != 1 || as[0].ID != "late" || as[0].Healthy {
		t.Fatalf("unhealthy agents: %+v %v", as, err)
	}
	if out := tg.must(t, "agent", "inspect", "late"); !strings.Contains(out, "healthy: false") {
		t.Fatalf("inspect:\n%s", out)
	}
	var ps []registry.PoolStats
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "pool", "stats", "p")), &ps); err != nil ||
		len(ps) != 1 || ps[0].Unhealthy != 1 || ps[0].Warm != 1 {
		t.Fatalf("pool stats: %+v %v", ps, err)
	}
	var ss schedStatsOut
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "sched", "stats")), &ss); err != nil || ss.Agents != 1 {
		t.Fatalf("sched stats counts %d healthy agents, want 1: %v", ss.Agents, err)
	}
}

// TestNodeTimeout: a node that does not answer fails the request after
// --timeout (exit 1), and HOST:PORT is taken for http://HOST:PORT.
func TestNodeTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // never answers
		}
	}()
	start := time.Now()
	code, _, stderr := runCode(t, "", "--node", l.Addr().String(), "--timeout", "300ms", "kv", "get", "ns", "k")
	if code != exitFailed || !strings.Contains(stderr, "no answer in time") || time.Since(start) > 5*time.Second {
		t.Fatalf("silent node: exit %d after %v:\n%s", code, time.Since(start), stderr)
	}
}

// TestReadableKey: check prints where damage is as a table, a shard and a
// quoted key, not raw hex.
func TestReadableKey(t *testing.T) {
	k := append(keys.Prefix(3, 0x42), "jobs\x00\x01"...)
	if got, want := readableKey("queue.tasks", hex.EncodeToString(k)), ` table queue.tasks shard 3 key "jobs\x00\x01"`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := readableKey("", ""); got != "" {
		t.Fatalf("store-wide problem: %q", got)
	}
}

// TestLockedStoreNamesHolder: a store held by a running process is refused
// with that process's id and command line.
func TestLockedStoreNamesHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	mustRun(t, "--dir", dir, "kv", "set", "ns", "k", "v")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldLock$")
	cmd.Env = append(os.Environ(), "FLOWCTL_HOLD_LOCK="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	buf := make([]byte, 64)
	if n, err := stdout.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "holding") {
		t.Fatalf("child: %q %v", buf[:n], err)
	}
	code, _, stderr := runCode(t, "", "--dir", dir, "kv", "get", "ns", "k")
	if code != exitFailed || !strings.Contains(stderr, fmt.Sprintf("process %d (", cmd.Process.Pid)) {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// TestHoldLock is TestLockedStoreNamesHolder's child: it opens the store
// and holds it until killed.
func TestHoldLock(t *testing.T) {
	dir := os.Getenv("FLOWCTL_HOLD_LOCK")
	if dir == "" {
		t.Skip("child of TestLockedStoreNamesHolder")
	}
	d, err := db.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fmt.Println("holding")
	time.Sleep(time.Minute)
}

// TestUnknownShard: a node answers a request about a shard it does not
// have with 404 and a message (it answered 500), and flowctl exits 1.
func TestUnknownShard(t *testing.T) {
	node := startNode(t)
	code, _, stderr := runCode(t, "", "--node", node, "cluster", "transfer", "99", "1")
	if code != exitFailed || !strings.Contains(stderr, "unknown shard") || !strings.Contains(stderr, "HTTP 404") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var ue usageError
	if _, err := run(t, "--node", node, "cluster", "transfer", "99", "1"); !errors.Is(err, db.ErrNotFound) || errors.As(err, &ue) {
		t.Fatalf("unknown shard: %v", err)
	}
}
