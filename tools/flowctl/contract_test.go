package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowdb/flowdb/tools/flowctl/internal/demo"
	"github.com/spf13/cobra"
)

// runCode runs flowctl as main does, with stdin, and returns its exit
// status, stdout and stderr.
func runCode(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// contractStore returns a store holding a key, a queue with a leased task
// and a dead letter, an agent, a pool and a vector collection, and the
// lease's task id and token.
func contractStore(t *testing.T) (dir, id, token string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "store")
	tg := target{"--dir", dir}
	tg.must(t, "kv", "set", "ns", "k", "v")
	tg.must(t, "queue", "create", "jobs", "--max-attempts", "1")
	tg.must(t, "queue", "enqueue", "jobs", "dead")
	var ls []leaseJSON
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "queue", "lease", "jobs", "--agent", "w1")), &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	tg.must(t, "queue", "nack", "jobs", strconv.FormatUint(ls[0].ID, 10), strconv.FormatUint(ls[0].Token, 10))
	tg.must(t, "queue", "enqueue", "jobs", "live")
	if err := json.Unmarshal([]byte(tg.must(t, "--json", "queue", "lease", "jobs", "--agent", "w1")), &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	tg.must(t, "agent", "register", "w1", "--pool", "gpu", "--caps", "py", "--label", "zone=a")
	tg.must(t, "pool", "define", "gpu", "--min-warm", "1")
	tg.must(t, "vec", "create", "mem", "--dim", "3", "--metric", "cosine", "--train", "10")
	var jl strings.Builder
	for i := range 20 {
		fmt.Fprintf(&jl, "{\"id\":%d,\"vector\":[%d,%d,1],\"tags\":[\"t\"]}\n", i, i%5+1, i%7)
	}
	p := filepath.Join(t.TempDir(), "v.jsonl")
	if err := os.WriteFile(p, []byte(jl.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tg.must(t, "vec", "import", "mem", p)
	return dir, strconv.FormatUint(ls[0].ID, 10), strconv.FormatUint(ls[0].Token, 10)
}

// writeFile writes b to a new file in a temporary directory.
func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExitCodes: every command, given a bad invocation or bad input, exits
// 2; an operation that fails exits 1; success exits 0 (exitHelp). Errors
// are printed once, prefixed "flowctl: " once.
func TestExitCodes(t *testing.T) {
	dir, id, token := contractStore(t)
	empty := t.TempDir()
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A .fvecs file cut in the middle of its second vector.
	var fv bytes.Buffer
	for range 2 {
		binary.Write(&fv, binary.LittleEndian, int32(3))
		binary.Write(&fv, binary.LittleEndian, []float32{1, 2, 3})
	}
	badFvecs := writeFile(t, "bad.fvecs", fv.Bytes()[:20])
	wrongDim := writeFile(t, "dim.jsonl", []byte("{\"id\":1,\"vector\":[1,2]}\n"))
	unknownField := writeFile(t, "extra.jsonl", []byte("{\"id\":1,\"vector\":[1,2,3],\"tag\":[\"x\"]}\n"))
	noID := writeFile(t, "noid.jsonl", []byte("{\"vector\":[1,2,3]}\n"))
	D := func(args ...string) []string { return append([]string{"--dir", dir}, args...) }
	for _, c := range []struct {
		args []string
		code int
	}{
		// Bad invocations.
		{[]string{"nosuch"}, 2},
		{[]string{}, 2},
		{[]string{"kv"}, 2},
		{[]string{"kv", "gett", "a", "b"}, 2},
		{[]string{"queue", "dlq", "lst", "jobs"}, 2},
		{[]string{"--bogus", "stats"}, 2},
		{[]string{"kv", "get", "ns", "k"}, 2}, // no --dir
		{D("kv", "get", "ns"), 2},
		{D("kv", "get", "ns", "k", "extra"), 2},
		{D("stats", "extra"), 2},
		{D("kv", "set", "ns", "k", "v", "--ttl", "soon"), 2},
		{D("kv", "scan", "ns", "--limit", "-1"), 2},
		{D("kv", "get", "ns", "hex:zz"), 2},
		{D("queue", "ack", "jobs", "x", token), 2},
		{D("queue", "lease", "jobs"), 2},
		{D("queue", "dlq", "replay", "jobs"), 2},
		{D("agent", "list", "--health", "meh"), 2},
		{D("pool", "stats", "a", "b"), 2},
		{D("vec", "create", "v", "--dim", "3", "--metric", "hamming"), 2},
		{D("vec", "delete", "mem"), 2},
		{D("vec", "import", "mem", wrongDim, "--batch", "0"), 2},
		{D("vec", "search", "mem", "not json"), 2},
		{D("kv", "set", "ns", "k", "@"+filepath.Join(empty, "missing")), 2},
		{D("backup"), 2},
		{D("restore"), 2},
		{D("demo"), 2}, // a directory that holds a store
		{D("node", "start"), 2},
		{[]string{"--node", "127.0.0.1:1", "check"}, 2},
		{[]string{"--node", "127.0.0.1:1", "backup", "--to", empty}, 2},
		{[]string{"cluster", "status"}, 2},
		// Input the library refuses.
		{D("kv", "set", "ns", strings.Repeat("k", 5000), "v"), 2},
		{D("kv", "set", "ns", "", "v"), 2},
		{D("kv", "set", "ns", "k", "v", "--ttl", "-1s"), 2},
		{D("queue", "create", "bad", "--hot", "-5"), 2},
		{D("queue", "enqueue", "jobs", "p", "--priority", "42"), 2},
		{D("agent", "register", "w9", "--capacity", "0"), 2},
		{D("vec", "import", "mem", badFvecs), 2},
		{D("vec", "import", "mem", wrongDim), 2},
		{D("vec", "import", "mem", unknownField), 2},
		{D("vec", "import", "mem", noID), 2},
		{D("vec", "search", "mem", "[1,2]"), 2},
		{D("vec", "search", "mem", "[0,0,0]"), 2},
		// Operations that fail.
		{D("kv", "get", "ns", "missing"), 1},
		{D("queue", "stats", "nope"), 1},
		{D("queue", "ack", "jobs", id, "12345"), 1}, // lease lost
		{D("queue", "inspect", "jobs", "999999"), 1},
		{D("agent", "inspect", "nobody"), 1},
		{D("pool", "stats", "nopool"), 1},
		{D("vec", "stats", "nope"), 1},
		{D("vec", "create", "mem", "--dim", "4"), 1}, // exists with other settings
		{D("backup", "--to", full), 1},
		{[]string{"--dir", empty, "stats"}, 1},
		{[]string{"--dir", full, "kv", "set", "ns", "k", "v"}, 1}, // foreign files
		{[]string{"--node", "127.0.0.1:1", "kv", "get", "ns", "k"}, 1},
		// Success.
		{[]string{"--help"}, 0},
		{[]string{"kv", "--help"}, 0},
		{[]string{"--version"}, 0},
		{D("kv", "get", "ns", "k"), 0},
		{D("queue", "ack", "jobs", id, token), 0},
	} {
		code, _, stderr := runCode(t, "", c.args...)
		if code != c.code {
			t.Errorf("flowctl %s: exit %d, want %d; stderr:\n%s", strings.Join(c.args, " "), code, c.code, stderr)
			continue
		}
		if code != 0 && (strings.Count(stderr, "flowctl: ") != 1 || strings.Contains(stderr, "flowctl: flowctl")) {
			t.Errorf("flowctl %s: stderr should hold one \"flowctl: \" message:\n%s", strings.Join(c.args, " "), stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(full, "LOCK")); err == nil {
		t.Error("a refused directory got a LOCK file")
	}
	_, _, stderr := runCode(t, "", "kv", "gett", "a", "b")
	if !strings.Contains(stderr, `did you mean "get"`) {
		t.Errorf("no suggestion for a misspelt command:\n%s", stderr)
	}
	_, _, stderr = runCode(t, "", D("vec", "create", "mem", "--dim", "4")...)
	if !strings.Contains(stderr, "dim is 3, not 4") {
		t.Errorf("vec create over another config does not say what differs:\n%s", stderr)
	}
}

// TestExitCodesThroughNode: a command run on a node exits as it would on
// an embedded store.
func TestExitCodesThroughNode(t *testing.T) {
	node := startNode(t)
	hostPort := strings.TrimPrefix(node, "http://") // --node takes HOST:PORT too
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"kv", "set", "ns", "k", "v"}, 0},
		{[]string{"kv", "gett", "ns", "k"}, 2},
		{[]string{"kv", "set", "ns", strings.Repeat("k", 5000), "v"}, 2},
		{[]string{"kv", "set", "ns", "k", "v", "--ttl", "-1s"}, 2},
		{[]string{"vec", "search", "nope", "[1]"}, 1},
		{[]string{"kv", "get", "ns", "missing"}, 1},
		{[]string{"check"}, 2},
	} {
		code, _, stderr := runCode(t, "", append([]string{"--node", hostPort}, c.args...)...)
		if code != c.code {
			t.Errorf("flowctl --node %s: exit %d, want %d; stderr:\n%s", strings.Join(c.args, " "), code, c.code, stderr)
		}
	}
}

// TestREADMEContract: the README prints exitHelp as --help does, and the
// README with the references it links (docs/flowctl.md, docs/server.md)
// shows every command flowctl has (so neither list is maintained by hand alone).
func TestREADMEContract(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var ref []byte
	for _, doc := range []string{"../../docs/flowctl.md", "../../docs/server.md", "../../docs/mcp.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		ref = append(append(ref, b...), '\n')
	}
	if !strings.Contains(readme, exitHelp) {
		t.Errorf("README does not hold the exit status contract as --help prints it:\n%s", exitHelp)
	}
	_, help, _ := runCode(t, "", "--help")
	if !strings.Contains(help, exitHelp) {
		t.Errorf("--help does not print exitHelp:\n%s", help)
	}
	var lines [][]string
	for _, l := range strings.Split(readme+"\n"+string(ref), "\n") {
		if strings.Contains(l, "flowctl ") {
			lines = append(lines, strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '|' || r == '`' }))
		}
	}
	for _, path := range leafCommands() {
		words := strings.Fields(path)
		if !slices.ContainsFunc(lines, func(l []string) bool {
			for _, w := range words {
				if !slices.Contains(l, w) {
					return false
				}
			}
			return true
		}) {
			t.Errorf("README and docs/flowctl.md show no `flowctl %s`", path)
		}
	}
}

// TestDocLinks: every relative link of the README, TESTING.md and every
// page under docs/ and bench/ names a file in the repository (none points
// outside it).
func TestDocLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)
	docs := []string{"README.md", "TESTING.md"}
	for _, pattern := range []string{"docs/*.md", "bench/*.md"} {
		m, err := filepath.Glob(filepath.Join("../..", pattern))
		if err != nil || len(m) == 0 {
			t.Fatalf("%s: %v %v", pattern, m, err)
		}
		for _, f := range m {
			rel, _ := filepath.Rel("../..", f)
			docs = append(docs, rel)
		}
	}
	for _, doc := range docs {
		b, err := os.ReadFile(filepath.Join("../..", doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			p := filepath.Join("../..", filepath.Dir(doc), target)
			if rel, err := filepath.Rel("../..", p); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: link %q points outside the repository", doc, target)
				continue
			}
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: link %q: %v", doc, target, err)
			}
		}
	}
}

// leafCommands returns the path (without "flowctl ") of every command that
// runs something.
func leafCommands() []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
		if !c.HasSubCommands() {
			out = append(out, strings.TrimPrefix(c.CommandPath(), "flowctl "))
		}
	}
	a := &app{}
	walk(a.rootCmd())
	return out
}

// TestJSONContract runs every command with --json and checks what it
// prints: one JSON value that a strict decoder reads back into the type the
// command printed and that re-encodes to the same bytes; snake_case field
// names; identifiers that may exceed 2^53 as strings (and accepted back).
func TestJSONContract(t *testing.T) {
	dir, id, token := contractStore(t)
	backups := t.TempDir()
	covered := map[string]bool{}
	runJSON := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		var got []any
		a := &app{in: strings.NewReader("[1,2,3]"), out: &out, errOut: &errOut, onJSON: func(v any) { got = append(got, v) }}
		root := a.rootCmd()
		root.SetArgs(append([]string{"--json"}, args...))
		root.SetOut(&out)
		root.SetErr(&errOut)
		if err := root.Execute(); err != nil {
			t.Fatalf("flowctl --json %s: %v", strings.Join(args, " "), err)
		}
		covered[a.command] = true
		if len(got) != 1 {
			t.Fatalf("flowctl --json %s printed %d JSON values:\n%s", strings.Join(args, " "), len(got), out.String())
		}
		checkJSON(t, strings.Join(args, " "), out.Bytes(), got[0])
		return out.String()
	}
	D := func(args ...string) []string { return append([]string{"--dir", dir}, args...) }
	runJSON(D("kv", "set", "ns", "k2", "-")...)
	runJSON(D("kv", "get", "ns", "k2")...)
	runJSON(D("kv", "scan", "ns")...)
	runJSON(D("kv", "del", "ns", "k2")...)
	runJSON(D("queue", "create", "q2")...)
	runJSON(D("queue", "list")...)
	runJSON(D("queue", "stats", "jobs")...)
	var newTask idJSON
	json.Unmarshal([]byte(runJSON(D("queue", "enqueue", "jobs", "x")...)), &newTask)
	// A lease's id and token are strings, which the CLI takes back as
	// they are printed (jq -r) or quoted (jq).
	var ls []map[string]any
	json.Unmarshal([]byte(runJSON(D("queue", "lease", "jobs", "--agent", "w2")...)), &ls)
	if len(ls) != 1 || ls[0]["id"] != strconv.FormatUint(newTask.ID, 10) {
		t.Fatalf("lease: %v (enqueued %d)", ls, newTask.ID)
	}
	runJSON(D("queue", "nack", "jobs", ls[0]["id"].(string), `"`+ls[0]["token"].(string)+`"`)...)
	runJSON(D("queue", "ack", "jobs", id, token)...)
	runJSON(D("queue", "inspect", "jobs", id)...)
	runJSON(D("queue", "dlq", "list", "jobs")...)
	runJSON(D("queue", "dlq", "replay", "jobs", "--all")...)
	runJSON(D("queue", "dlq", "purge", "jobs", "--all")...)
	runJSON(D("agent", "register", "w2", "--pool", "gpu")...)
	runJSON(D("agent", "list")...)
	runJSON(D("agent", "inspect", "w1")...)
	runJSON(D("agent", "heartbeat", "w1", "--load", "1")...)
	runJSON(D("agent", "expire")...)
	runJSON(D("agent", "deregister", "w2")...)
	runJSON(D("pool", "define", "cpu")...)
	runJSON(D("pool", "list")...)
	runJSON(D("pool", "stats", "gpu")...)
	runJSON(D("sched", "stats")...)
	runJSON(D("vec", "create", "v2", "--dim", "3")...)
	runJSON(D("vec", "list")...)
	out := runJSON(D("vec", "stats", "mem")...)
	if !strings.Contains(out, `"metric": "cosine"`) {
		t.Errorf("vec stats: metric not by name:\n%s", out)
	}
	runJSON(D("vec", "import", "v2", writeFile(t, "v.jsonl", []byte("{\"id\":\"18446744073709551615\",\"vector\":[1,2,3]}\n")))...)
	out = runJSON(D("vec", "get", "v2", "18446744073709551615")...)
	if !strings.Contains(out, `"id": "18446744073709551615"`) {
		t.Errorf("vec get: an id over 2^53 is not a string:\n%s", out)
	}
	runJSON(D("vec", "search", "mem", "-", "--k", "3")...)
	runJSON(D("vec", "delete", "mem", "1", "2")...)
	runJSON(D("vec", "compact", "mem")...)
	runJSON(D("vec", "drop", "v2")...)
	runJSON(D("txn", "--file", writeFile(t, "step.json", []byte(`{"ops": [{"op": "set", "ns": "ns", "key": "k3", "value": "v"},
		{"op": "enqueue", "queue": "jobs", "payload": "p"}]}`)))...)
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	runJSON("token", "create", "w1", "--file", tokens, "--scope", "queue:jobs:write")
	runJSON("token", "list", "--file", tokens)
	runJSON("token", "revoke", "w1", "--file", tokens)
	runJSON(D("stats")...)
	runJSON(D("check")...)
	runJSON(D("backup", "--to", filepath.Join(backups, "b"))...)
	runJSON("--dir", filepath.Join(backups, "r"), "restore", "--from", filepath.Join(backups, "b"))
	// The commands not run here print types checked by type alone: demo
	// (TestDemo runs it), node start, serve and mcp (servers: they print
	// no JSON) and cluster (needs a node; TestNodeCommands runs cluster
	// status).
	for _, v := range []any{demo.Report{}, statusJSON{}} {
		checkFields(t, reflect.TypeOf(v), "")
	}
	for _, path := range leafCommands() {
		if !covered[path] && path != "demo" && path != "node start" && path != "serve" && path != "mcp" && !strings.HasPrefix(path, "cluster ") {
			t.Errorf("flowctl %s: not covered by TestJSONContract", path)
		}
	}
}

// checkJSON checks one command's JSON output b, printed from v.
func checkJSON(t *testing.T, what string, b []byte, v any) {
	t.Helper()
	typ := reflect.TypeOf(v)
	p := reflect.New(typ)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(p.Interface()); err != nil {
		t.Errorf("%s: strict decode into %v: %v\n%s", what, typ, err, b)
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("%s: more than one JSON value:\n%s", what, b)
	}
	var again bytes.Buffer
	enc := json.NewEncoder(&again)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p.Elem().Interface()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), b) {
		t.Errorf("%s: does not round-trip through %v:\n%s\nre-encoded:\n%s", what, typ, b, again.Bytes())
	}
	checkFields(t, typ, what)
	// No number a float64 reader would round.
	var generic any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.Decode(&generic)
	var walk func(x any)
	walk = func(x any) {
		switch x := x.(type) {
		case json.Number:
			if n, err := strconv.ParseInt(x.String(), 10, 64); err == nil && (n > 1<<53 || n < -(1<<53)) {
				t.Errorf("%s: number %s exceeds 2^53", what, x)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(generic)
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkFields checks the JSON field names of typ (and of the types it
// holds): snake_case; a uint64 id or token is a string.
func checkFields(t *testing.T, typ reflect.Type, what string) {
	t.Helper()
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() == "time" {
			return
		}
		seen[typ] = true
		for _, f := range reflect.VisibleFields(typ) {
			if !f.IsExported() || (f.Anonymous && f.Tag.Get("json") == "") {
				continue
			}
			if len(f.Index) > 1 && shadowed(typ, f) {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				name = f.Name
			}
			if !snakeCase.MatchString(name) {
				t.Errorf("%s: %v field %s is %q in JSON, not snake_case", what, typ, f.Name, name)
			}
			if f.Type.Kind() == reflect.Uint64 && (name == "id" || name == "token" || strings.HasSuffix(name, "_id")) &&
				!strings.Contains(opts, "string") && !f.Type.Implements(reflect.TypeFor[json.Marshaler]()) {
				t.Errorf("%s: %v field %s (%s) may exceed 2^53 but is a JSON number", what, typ, f.Name, name)
			}
			walk(f.Type)
		}
	}
	walk(typ)
}

// shadowed reports whether the promoted field f of typ is hidden in JSON
// by a field with the same JSON name at a shallower depth.
func shadowed(typ reflect.Type, f reflect.StructField) bool {
	name := func(sf reflect.StructField) string {
		n, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if n == "" {
			n = sf.Name
		}
		return n
	}
	for _, g := range reflect.VisibleFields(typ) {
		if len(g.Index) < len(f.Index) && g.IsExported() && !(g.Anonymous && g.Tag.Get("json") == "") && name(g) == name(f) {
			return true
		}
	}
	return false
}
