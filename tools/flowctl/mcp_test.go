package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestNodeServesMCP: `node start` mounts the MCP endpoint on its API
// port: a streamable-HTTP client creates a queue, enqueues and reads the
// stats on the node's replicated store, and sees the RPC API's state.
func TestNodeServesMCP(t *testing.T) {
	t.Parallel()
	node := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "0"}, nil).Connect(ctx,
		&sdk.StreamableClientTransport{Endpoint: node + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"queue_create", map[string]any{"queue": "mq"}},
		{"task_enqueue", map[string]any{"queue": "mq", "payload": "from an agent"}},
		{"memory_remember", map[string]any{"collection": "notes", "text": "a replicated memory"}},
	} {
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: c.tool, Arguments: c.args})
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", c.tool, err, res.Content[0])
		}
	}
	// A data command on the node sees the task.
	var st struct{ Enqueued uint64 }
	if err := json.Unmarshal([]byte(mustRun(t, "--node", node, "--json", "queue", "stats", "mq")), &st); err != nil || st.Enqueued != 1 {
		t.Fatalf("queue stats: %+v %v", st, err)
	}
}

// TestMCPFlags: --node goes with --token-file, not with --dir.
func TestMCPFlags(t *testing.T) {
	var ue usageError
	if _, err := run(t, "--dir", t.TempDir(), "--node", "127.0.0.1:1", "mcp"); !errors.As(err, &ue) {
		t.Fatalf("--dir and --node: %v", err)
	}
	if _, err := run(t, "--dir", t.TempDir(), "mcp", "--token-file", filepath.Join(t.TempDir(), "t")); !errors.As(err, &ue) {
		t.Fatalf("--token-file without --node: %v", err)
	}
	if _, err := run(t, "--node", "127.0.0.1:1", "mcp", "--token-file", filepath.Join(t.TempDir(), "missing")); !errors.As(err, &ue) {
		t.Fatalf("a missing token file: %v", err)
	}
}
