package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowdb/flowdb/embed"
	flowmcp "github.com/flowdb/flowdb/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestDeadlines: no call blocks past the call deadline, whatever it asks
// for: a lease wait beyond the cap, an embedder that never answers.
func TestDeadlines(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	e, err := embed.NewOpenAI(embed.OpenAIOptions{URL: slow.URL, Model: "m", Dim: 8, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cs := inMemory(t, &flowmcp.Options{CallTimeout: 2 * time.Second, Embedder: e})
	ok(t, cs, "queue_create", map[string]any{"queue": "q"})

	start := time.Now()
	r := ok(t, cs, "task_lease", map[string]any{"queue": "q", "agent": "a", "wait_seconds": 3600})
	if d := time.Since(start); d < 500*time.Millisecond || d > 2500*time.Millisecond {
		t.Fatalf("lease wait took %v; want the cap (1s)", d)
	}
	if len(r["tasks"].([]any)) != 0 {
		t.Fatal(r)
	}
	start = time.Now()
	msg := fails(t, cs, "embedder_failed", "memory_remember", map[string]any{"collection": "c", "text": "hello"})
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("remember with a hung embedder took %v (%s)", d, msg)
	}
	// A vector needs no embedder.
	ok(t, cs, "memory_remember", map[string]any{"collection": "c", "vector": []float64{1, 2, 3, 4, 5, 6, 7, 8}})
}

// TestAuthorize: a session refused a queue or namespace cannot touch it,
// and the refusal is a tool error that changes nothing.
func TestAuthorize(t *testing.T) {
	errNo := errors.New("token scope")
	cs := inMemory(t, &flowmcp.Options{Authorize: func(_ context.Context, a flowmcp.Access) error {
		if a.Name == "secret" && (a.Write || a.Kind == "namespace") {
			return errNo
		}
		return nil
	}})
	fails(t, cs, "forbidden", "queue_create", map[string]any{"queue": "secret"})
	ok(t, cs, "queue_create", map[string]any{"queue": "open"})
	fails(t, cs, "forbidden", "kv_set", map[string]any{"namespace": "secret", "key": "k", "value": "v"})
	fails(t, cs, "forbidden", "memory_remember", map[string]any{"collection": "secret", "text": "x"})
	fails(t, cs, "forbidden", "step", map[string]any{"kv": []any{
		map[string]any{"namespace": "open", "key": "k", "value": "v"},
		map[string]any{"namespace": "secret", "key": "k", "value": "v"}}})
	if g := ok(t, cs, "kv_get", map[string]any{"namespace": "open", "key": "k"}); g["found"] != false {
		t.Fatalf("a refused step wrote: %v", g)
	}
	rr, err := cs.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: flowmcp.QueuesURI})
	if err != nil || !strings.Contains(rr.Contents[0].Text, `"open"`) {
		t.Fatalf("%v %v", rr, err)
	}
}

// FuzzToolArgs feeds arbitrary arguments to every tool: each call must come
// back as a tool result (success or tool error), never as a protocol error
// or a crash.
func FuzzToolArgs(f *testing.F) {
	seeds := []string{
		`{"queue":"q","payload":"x"}`, `{"queue":"q","agent":"a","max":3,"wait_seconds":0}`,
		`{"queue":"q","id":1,"token":"1","result":"r"}`, `{"queue":"q","id":1,"token":"x","lease_seconds":-1}`,
		`{"collection":"c","text":"hello world","tags":["a"],"metadata":{"k":[1,2]}}`,
		`{"collection":"c","vector":[1,2,3],"k":2}`, `{"collection":"c","vector":[1e308,-1e308]}`,
		`{"collection":"c","ids":[1,2,3]}`, `{"agent":"a","capabilities":["x"],"capacity":-3}`,
		`{"namespace":"n","key":"k","value":"v","ttl_seconds":1e300}`, `{"namespace":"n","prefix":"k","after":"k","limit":0}`,
		`{"ack":{"queue":"q","id":1,"token":"2"},"memories":[{"collection":"c","text":"t"}],"enqueue":[{"queue":"q","payload":"p"}]}`,
		`{}`, `[]`, `null`, `"x"`, `{"queue":null}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	cs := inMemory(f, nil)
	ok(f, cs, "queue_create", map[string]any{"queue": "q", "lease_seconds": 1})
	ok(f, cs, "memory_remember", map[string]any{"collection": "c", "text": "seed memory"})
	f.Fuzz(func(t *testing.T, tool uint8, args []byte) {
		if !json.Valid(args) {
			return // the client cannot send it
		}
		name := toolNames[int(tool)%len(toolNames)]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: json.RawMessage(args)}); err != nil {
			t.Fatalf("%s(%s): protocol error %v", name, args, err)
		}
	})
}
