package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
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

func TestMain(m *testing.M) {
	code := m.Run()
	if buildTempDir != "" {
		os.RemoveAll(buildTempDir)
	}
	os.Exit(code)
}

// proc is a `flowctl mcp` subprocess and the client session talking to it.
type proc struct {
	cmd *exec.Cmd
	cs  *sdk.ClientSession
}

// startProc starts `flowctl --dir dir mcp args...` and connects to it.
func startProc(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	flowctl, err := buildFlowctl()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flowctl, append([]string{"--dir", dir, "mcp"}, args...)...)
	cmd.Stderr = os.Stderr
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
	if err != nil {
		t.Fatalf("connecting to flowctl mcp: %v", err)
	}
	return &proc{cmd: cmd, cs: cs}
}

// kill SIGKILLs the subprocess and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	p.cs.Close()
}

// inMemory serves a server over a fresh store through in-memory transports.
func inMemory(t testing.TB, o *flowmcp.Options) *sdk.ClientSession {
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
	srv, err := flowmcp.NewServer(flowmcp.Stack{DB: d, Queues: q, Registry: r, Vectors: v}, o)
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
		r.Close()
		q.Close()
		d.Close()
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
