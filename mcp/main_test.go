package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	flowmcp "github.com/flowdb/flowdb/mcp"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// flowctl is the path of the flowctl binary, built once on first use
// (fuzz workers, which need none, build nothing).
var (
	flowctl      string
	buildOnce    sync.Once
	buildErr     error
	buildTempDir string
)

func buildFlowctl() (string, error) {
	buildOnce.Do(func() {
		buildTempDir, buildErr = os.MkdirTemp("", "flowdb-mcp-test-")
		if buildErr != nil {
			return
		}
		flowctl = filepath.Join(buildTempDir, "flowctl")
		build := exec.Command("go", "build", "-o", flowctl, "github.com/flowdb/flowdb/tools/flowctl")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			buildErr = fmt.Errorf("building flowctl: %w", err)
		}
	})
	return flowctl, buildErr
}

// The subprocess tests (the agent loop under SIGKILL, every tool over every
// transport, the schemas, authentication, the three-replica endpoints)
// mostly wait on processes that start, answer and die: they call
// t.Parallel and run four at a time. TestDeadlines and
// TestRelayOutlivesServer stay serial: one judges elapsed times, the other
// restarts a server on a port it gave up.
func TestMain(m *testing.M) {
	code := testutil.Main(m, 4)
	if buildTempDir != "" {
		os.RemoveAll(buildTempDir)
	}
	os.Exit(code)
}

// proc is a server process and a client session talking to it: a
// `flowctl mcp` subprocess on stdio, or a `flowctl serve` subprocess and a
// streamable-HTTP session to its /mcp, or a `flowctl serve` behind a
// `flowctl mcp --node` relay on stdio.
type proc struct {
	cmd   *exec.Cmd // the process that holds the store
	cs    *sdk.ClientSession
	base  string // http, relay: the server's base URL
	relay bool   // cs talks to a relay subprocess that the session owns
}

// transport starts a server over the store at dir and connects to it.
type transport struct {
	name  string
	start func(t testing.TB, dir string) *proc
}

// transports are the ways a client reaches the server; the tool table and
// the schema checks run over each.
var transports = []transport{
	{"stdio", func(t testing.TB, dir string) *proc { return startProc(t, dir) }},
	{"http", func(t testing.TB, dir string) *proc { return startHTTP(t, dir, "") }},
	{"relay", func(t testing.TB, dir string) *proc { return startRelay(t, dir, "") }},
}

// startProc starts `flowctl --dir dir mcp args...` and connects to it.
func startProc(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	cmd := command(t, append([]string{"--dir", dir, "mcp"}, args...)...)
	return &proc{cmd: cmd, cs: connectCommand(t, cmd)}
}

// command returns a flowctl command with args.
func command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	flowctl, err := buildFlowctl()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flowctl, args...)
	cmd.Stderr = os.Stderr
	return cmd
}

// connectCommand starts cmd, an MCP server on stdio, and connects to it.
func connectCommand(t testing.TB, cmd *exec.Cmd) *sdk.ClientSession {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
	if err != nil {
		t.Fatalf("connecting to %v: %v", cmd.Args, err)
	}
	return cs
}

// startServe starts `flowctl --dir dir serve` on a free loopback port with
// args and returns it with its base URL once it listens.
func startServe(t testing.TB, dir string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := command(t, append([]string{"--dir", dir, "serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Stderr = nil
	errOut, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(errOut)
	for sc.Scan() {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, "flowdb serving "); ok {
			go io.Copy(os.Stderr, errOut)
			return cmd, strings.Fields(rest)[0]
		}
		fmt.Fprintln(os.Stderr, line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("flowctl serve did not start: %v", sc.Err())
	return nil, ""
}

// bearer adds a bearer token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// connectHTTP opens an MCP session to the endpoint of the server at base
// with token ("": none).
func connectHTTP(base, token string) (*sdk.ClientSession, error) {
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: base + flowmcp.Path,
		HTTPClient: &http.Client{Transport: bearer{token}}}, nil)
}

// startHTTP starts `flowctl serve` over dir (with the tokens file tokens,
// if not "") and opens a streamable-HTTP session to its /mcp (with the
// bearer token token[0], if given).
func startHTTP(t testing.TB, dir, tokens string, token ...string) *proc {
	t.Helper()
	var args []string
	if tokens != "" {
		args = []string{"--tokens", tokens}
	}
	cmd, base := startServe(t, dir, args...)
	tok := ""
	if len(token) > 0 {
		tok = token[0]
	}
	cs, err := connectHTTP(base, tok)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("connecting to %s/mcp: %v", base, err)
	}
	return &proc{cmd: cmd, cs: cs, base: base}
}

// startRelay starts `flowctl serve` over dir and a `flowctl mcp --node`
// relay to it on stdio (with --token-file holding token[0], if given).
func startRelay(t testing.TB, dir, tokens string, token ...string) *proc {
	t.Helper()
	var args []string
	if tokens != "" {
		args = []string{"--tokens", tokens}
	}
	cmd, base := startServe(t, dir, args...)
	cs, err := connectRelay(t, base, token...)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	return &proc{cmd: cmd, cs: cs, base: base, relay: true}
}

// connectRelay starts a `flowctl mcp --node base` relay (with --token-file
// holding token[0], if given) and connects to it.
func connectRelay(t testing.TB, base string, token ...string) (*sdk.ClientSession, error) {
	t.Helper()
	args := []string{"--node", base, "mcp"}
	if len(token) > 0 {
		f := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(f, []byte(token[0]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--token-file", f)
	}
	cmd := command(t, args...)
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Connect(ctx, &sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
}

// close ends the session and stops the server (SIGTERM) and waits for it.
func (p *proc) close() {
	p.cs.Close() // stdio: closes stdin and waits for the process
	if p.base != "" {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
}

// kill SIGKILLs the server process and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	if p.base != "" {
		p.cmd.Wait()
	}
	p.cs.Close()
}

// newStack opens a fresh store with its subsystems, closed at cleanup
// (after the cleanups registered later, such as sessions on it).
func newStack(t testing.TB) flowmcp.Stack {
	t.Helper()
	d, err := db.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Attach(d, nil)
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
	t.Cleanup(func() {
		r.Close()
		q.Close()
		d.Close()
	})
	return flowmcp.Stack{DB: d, Queues: q, Registry: r, Vectors: v}
}

// inMemory serves a server over a fresh store through in-memory transports.
func inMemory(t testing.TB, o *flowmcp.Options) *sdk.ClientSession {
	t.Helper()
	srv, err := flowmcp.NewServer(newStack(t), o)
	if err != nil {
		t.Fatal(err)
	}
	st, ct := sdk.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
	})
	return cs
}

// result is a tool call's outcome.
type result struct {
	isError bool
	text    string         // the text content (the error message on errors)
	out     map[string]any // the structured output
}

// call calls a tool; a protocol error fails the test (tools must answer
// with results, errors included).
func call(t testing.TB, cs *sdk.ClientSession, name string, args any) result {
	t.Helper()
	r, err := callErr(cs, name, args)
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	return r
}

func callErr(cs *sdk.ClientSession, name string, args any) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return result{}, err
	}
	r := result{isError: res.IsError}
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			r.text += tc.Text
		}
	}
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		json.Unmarshal(b, &r.out)
	}
	return r, nil
}

// ok calls a tool that must succeed.
func ok(t testing.TB, cs *sdk.ClientSession, name string, args any) map[string]any {
	t.Helper()
	r := call(t, cs, name, args)
	if r.isError {
		t.Fatalf("%s(%v): tool error %s", name, args, r.text)
	}
	return r.out
}

// fails calls a tool that must fail with a tool error starting with code.
func fails(t testing.TB, cs *sdk.ClientSession, code, name string, args any) string {
	t.Helper()
	r := call(t, cs, name, args)
	if !r.isError || !strings.HasPrefix(r.text, code+":") {
		t.Fatalf("%s(%v) = error %v %q, want a %s tool error", name, args, r.isError, r.text, code)
	}
	return r.text
}

func num(v any) uint64 {
	f, _ := v.(float64)
	return uint64(f)
}
