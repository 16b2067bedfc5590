package mcp_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

var toolNames = []string{
	"agent_heartbeat", "agent_list", "agent_register",
	"kv_get", "kv_scan", "kv_set",
	"memory_forget", "memory_recall", "memory_remember",
	"queue_create", "queue_dead_letters", "queue_stats",
	"step",
	"task_ack", "task_enqueue", "task_extend", "task_get", "task_lease", "task_nack",
}

// TestSchemas: every tool lists a description and an input schema that is a
// valid JSON schema of an object whose properties are all described, over
// every transport.
func TestSchemas(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			schemas(t, tr)
		})
	}
}

func schemas(t *testing.T, tr transport) {
	p := tr.start(t, t.TempDir())
	defer p.close()
	ctx := context.Background()
	var names []string
	for tool, err := range p.cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
		if len(tool.Description) < 20 {
			t.Errorf("%s: description %q too short for a model", tool.Name, tool.Description)
		}
		raw, err := json.Marshal(tool.InputSchema)
		if err != nil {
			t.Fatal(err)
		}
		var s jsonschema.Schema
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: input schema does not parse: %v", tool.Name, err)
		}
		if _, err := s.Resolve(nil); err != nil {
			t.Errorf("%s: input schema invalid: %v", tool.Name, err)
		}
		if s.Type != "object" {
			t.Errorf("%s: input schema type %q", tool.Name, s.Type)
		}
		for name, prop := range s.Properties {
			if prop.Description == "" {
				t.Errorf("%s: property %s has no description", tool.Name, name)
			}
		}
		if tool.OutputSchema == nil {
			t.Errorf("%s: no output schema", tool.Name)
		}
	}
	sort.Strings(names)
	if strings.Join(names, " ") != strings.Join(toolNames, " ") {
		t.Fatalf("tools %v\nwant %v", names, toolNames)
	}
	var uris []string
	for r, err := range p.cs.Resources(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		uris = append(uris, r.URI)
	}
	sort.Strings(uris)
	if strings.Join(uris, " ") != "flowdb://agents flowdb://collections flowdb://queues" {
		t.Fatalf("resources %v", uris)
	}
	var prompts []string
	for pr, err := range p.cs.Prompts(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		prompts = append(prompts, pr.Name)
	}
	sort.Strings(prompts)
	if strings.Join(prompts, " ") != "use_memory work_queue" {
		t.Fatalf("prompts %v", prompts)
	}
}

// TestEveryTool calls every tool, resource and prompt, with the error each
// can answer, through each transport: a real `flowctl mcp` subprocess on
// stdio, a real `flowctl serve` over streamable HTTP, and the `flowctl mcp
// --node` relay to it.
func TestEveryTool(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			everyTool(t, tr)
		})
	}
}

func everyTool(t *testing.T, tr transport) {
	dir := t.TempDir()
	p := tr.start(t, dir)
	defer func() { p.close() }()
	cs := p.cs
	ctx := context.Background()

	// Queues and tasks.
	fails(t, cs, "unknown_queue", "task_enqueue", map[string]any{"queue": "nope", "payload": "x"})
	ok(t, cs, "queue_create", map[string]any{"queue": "jobs", "max_attempts": 2})
	ok(t, cs, "queue_create", map[string]any{"queue": "jobs", "max_attempts": 2}) // same config: no-op
	fails(t, cs, "invalid_argument", "queue_create", map[string]any{"queue": "jobs", "max_attempts": 3})
	id1 := num(ok(t, cs, "task_enqueue", map[string]any{"queue": "jobs", "payload": "summarize doc 1", "tags": []string{"t"}})["id"])
	id2 := num(ok(t, cs, "task_enqueue", map[string]any{"queue": "jobs", "payload": "summarize doc 2", "priority": 5})["id"])
	if id1 == 0 || id2 == 0 || id1 == id2 {
		t.Fatalf("ids %d %d", id1, id2)
	}
	fails(t, cs, "invalid_argument", "task_enqueue", map[string]any{"queue": "jobs", "payload": "x", "priority": 99})
	fails(t, cs, "invalid_argument", "task_enqueue", map[string]any{"queue": "jobs", "payload": strings.Repeat("x", 1<<20+1)})
	// Schema validation: an unknown argument and a wrong type are tool errors too.
	if r := call(t, cs, "task_enqueue", map[string]any{"queue": "jobs", "payload": "x", "bogus": 1}); !r.isError {
		t.Fatalf("unknown argument accepted: %s", r.text)
	}
	if r := call(t, cs, "task_enqueue", map[string]any{"queue": 7, "payload": "x"}); !r.isError {
		t.Fatalf("wrong type accepted: %s", r.text)
	}

	ok(t, cs, "agent_register", map[string]any{"agent": "a1", "capabilities": []string{"summarize"}, "capacity": 4})
	ls := ok(t, cs, "task_lease", map[string]any{"queue": "jobs", "agent": "a1", "max": 2})["tasks"].([]any)
	if len(ls) != 2 {
		t.Fatalf("leased %v", ls)
	}
	first := ls[0].(map[string]any)
	if num(first["id"]) != id2 || first["payload"] != "summarize doc 2" {
		t.Fatalf("priority 5 task not first: %v", ls)
	}
	second := ls[1].(map[string]any)
	ok(t, cs, "task_extend", map[string]any{"queue": "jobs", "id": first["id"], "token": first["token"], "lease_seconds": 60})
	ok(t, cs, "task_ack", map[string]any{"queue": "jobs", "id": first["id"], "token": first["token"], "result": "a summary"})
	fails(t, cs, "lease_lost", "task_ack", map[string]any{"queue": "jobs", "id": first["id"], "token": first["token"]})
	fails(t, cs, "lease_lost", "task_extend", map[string]any{"queue": "jobs", "id": first["id"], "token": first["token"], "lease_seconds": 5})
	got := ok(t, cs, "task_get", map[string]any{"queue": "jobs", "id": first["id"]})
	if got["state"] != "done" || got["result"] != "a summary" {
		t.Fatalf("task_get %v", got)
	}
	fails(t, cs, "not_found", "task_get", map[string]any{"queue": "jobs", "id": 999999})
	ok(t, cs, "task_nack", map[string]any{"queue": "jobs", "id": second["id"], "token": second["token"], "reason": "model refused"})
	// Empty queue (the nacked task backs off): an immediate answer, and a bounded wait.
	if ls := ok(t, cs, "task_lease", map[string]any{"queue": "jobs", "agent": "a1", "wait_seconds": 0.2})["tasks"].([]any); len(ls) != 0 {
		t.Fatalf("leased %v from an empty queue", ls)
	}
	st := ok(t, cs, "queue_stats", map[string]any{"queue": "jobs"})
	if num(st["acked"]) != 1 || num(st["enqueued"]) != 2 || num(st["retried"]) != 1 {
		t.Fatalf("stats %v", st)
	}
	dead := ok(t, cs, "queue_dead_letters", map[string]any{"queue": "jobs"})
	if len(dead["tasks"].([]any)) != 0 {
		t.Fatalf("dead %v", dead)
	}

	// Agents.
	ok(t, cs, "agent_register", map[string]any{"agent": "a2", "capabilities": []string{"translate"}})
	ok(t, cs, "agent_heartbeat", map[string]any{"agent": "a2", "load": 1, "status": "busy"})
	fails(t, cs, "not_found", "agent_heartbeat", map[string]any{"agent": "ghost"})
	as := ok(t, cs, "agent_list", map[string]any{"capabilities": []string{"translate"}})["agents"].([]any)
	if len(as) != 1 || as[0].(map[string]any)["agent"] != "a2" || as[0].(map[string]any)["status"] != "busy" {
		t.Fatalf("agents %v", as)
	}
	fails(t, cs, "invalid_argument", "agent_list", map[string]any{"health": "sick"})

	// Key-value.
	ok(t, cs, "kv_set", map[string]any{"namespace": "notes", "key": "k1", "value": "v1"})
	ok(t, cs, "kv_set", map[string]any{"namespace": "notes", "key": "k2", "value": "v2", "ttl_seconds": 3600})
	ok(t, cs, "kv_set", map[string]any{"namespace": "notes", "key": "x", "value": "other"})
	if g := ok(t, cs, "kv_get", map[string]any{"namespace": "notes", "key": "k2"}); g["value"] != "v2" || g["expires_at"] == nil {
		t.Fatalf("kv_get %v", g)
	}
	if g := ok(t, cs, "kv_get", map[string]any{"namespace": "notes", "key": "absent"}); g["found"] != false {
		t.Fatalf("kv_get absent %v", g)
	}
	sc := ok(t, cs, "kv_scan", map[string]any{"namespace": "notes", "prefix": "k", "limit": 1})
	if es := sc["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["key"] != "k1" || sc["more"] != true {
		t.Fatalf("scan %v", sc)
	}
	sc = ok(t, cs, "kv_scan", map[string]any{"namespace": "notes", "prefix": "k", "after": "k1"})
	if es := sc["entries"].([]any); len(es) != 1 || es[0].(map[string]any)["key"] != "k2" || sc["more"] != false {
		t.Fatalf("scan page 2 %v", sc)
	}
	fails(t, cs, "invalid_argument", "kv_set", map[string]any{"key": "", "value": "v"})
	fails(t, cs, "invalid_argument", "kv_get", map[string]any{"namespace": "flowdb.mcp.memory", "key": "k"})

	// Memory.
	fails(t, cs, "unknown_collection", "memory_recall", map[string]any{"collection": "notes", "text": "x"})
	m1 := num(ok(t, cs, "memory_remember", map[string]any{"collection": "notes", "text": "The billing service retries failed card payments three times",
		"metadata": map[string]any{"source": "runbook"}, "tags": []string{"billing"}})["id"])
	ok(t, cs, "memory_remember", map[string]any{"collection": "notes", "text": "Deploys happen on Tuesdays after the standup", "tags": []string{"ops"}})
	ok(t, cs, "memory_remember", map[string]any{"collection": "notes", "text": "The cat sleeps on the warm laptop keyboard", "id": 77})
	rc := ok(t, cs, "memory_recall", map[string]any{"collection": "notes", "text": "how many times are card payments retried?", "k": 3})
	mems := rc["memories"].([]any)
	top := mems[0].(map[string]any)
	if len(mems) != 3 || num(top["id"]) != m1 || !strings.Contains(top["text"].(string), "billing") ||
		top["metadata"].(map[string]any)["source"] != "runbook" {
		t.Fatalf("recall %v", rc)
	}
	rc = ok(t, cs, "memory_recall", map[string]any{"collection": "notes", "text": "card payments", "tags": []string{"ops"}})
	if mems := rc["memories"].([]any); len(mems) != 1 || !strings.Contains(mems[0].(map[string]any)["text"].(string), "Deploys") {
		t.Fatalf("tag filter %v", rc)
	}
	fails(t, cs, "wrong_dimension", "memory_remember", map[string]any{"collection": "notes", "vector": []float64{1, 2, 3}})
	fails(t, cs, "wrong_dimension", "memory_recall", map[string]any{"collection": "notes", "vector": []float64{1, 2, 3}})
	fails(t, cs, "not_finite", "memory_remember", map[string]any{"collection": "vecs", "vector": []float64{1, 1e39}})
	fails(t, cs, "invalid_argument", "memory_remember", map[string]any{"collection": "notes"})
	fails(t, cs, "zero_vector", "memory_remember", map[string]any{"collection": "notes", "text": "?!"})
	ok(t, cs, "memory_remember", map[string]any{"collection": "vecs", "vector": []float64{1, 0, 0}, "text": "x axis", "id": 1})
	ok(t, cs, "memory_remember", map[string]any{"collection": "vecs", "vector": []float64{0, 1, 0}, "text": "y axis", "id": 2})
	rc = ok(t, cs, "memory_recall", map[string]any{"collection": "vecs", "vector": []float64{0.1, 1, 0}, "k": 1})
	if mems := rc["memories"].([]any); len(mems) != 1 || mems[0].(map[string]any)["text"] != "y axis" {
		t.Fatalf("vector recall %v", rc)
	}
	if n := num(ok(t, cs, "memory_forget", map[string]any{"collection": "notes", "ids": []uint64{77}})["deleted"]); n != 1 {
		t.Fatalf("forgot %d", n)
	}
	rc = ok(t, cs, "memory_recall", map[string]any{"collection": "notes", "text": "cat laptop keyboard", "k": 5})
	for _, m := range rc["memories"].([]any) {
		if num(m.(map[string]any)["id"]) == 77 {
			t.Fatalf("forgotten memory recalled: %v", rc)
		}
	}

	// Step: all or nothing.
	ok(t, cs, "queue_create", map[string]any{"queue": "next"})
	tid := num(ok(t, cs, "task_enqueue", map[string]any{"queue": "jobs", "payload": "step me"})["id"])
	var lease map[string]any
	for _, l := range ok(t, cs, "task_lease", map[string]any{"queue": "jobs", "agent": "a1", "max": 5})["tasks"].([]any) {
		if num(l.(map[string]any)["id"]) == tid {
			lease = l.(map[string]any)
		}
	}
	if lease == nil {
		t.Fatal("step task not leased")
	}
	stepArgs := map[string]any{
		"ack":      map[string]any{"queue": "jobs", "id": lease["id"], "token": lease["token"], "result": "stepped"},
		"memories": []any{map[string]any{"collection": "notes", "text": "step memory about invoices", "tags": []string{"step"}}},
		"kv":       []any{map[string]any{"namespace": "notes", "key": "step", "value": "1"}},
		"enqueue":  []any{map[string]any{"queue": "next", "payload": "follow-up"}},
	}
	so := ok(t, cs, "step", stepArgs)
	if len(so["memory_ids"].([]any)) != 1 || len(so["task_ids"].([]any)) != 1 {
		t.Fatalf("step %v", so)
	}
	// The same step again: the lease is gone, so nothing of it is written.
	stepArgs["kv"] = []any{map[string]any{"namespace": "notes", "key": "step2", "value": "1"}}
	fails(t, cs, "lease_lost", "step", stepArgs)
	if g := ok(t, cs, "kv_get", map[string]any{"namespace": "notes", "key": "step2"}); g["found"] != false {
		t.Fatalf("refused step wrote a key: %v", g)
	}
	if st := ok(t, cs, "queue_stats", map[string]any{"queue": "next"}); num(st["enqueued"]) != 1 {
		t.Fatalf("refused step enqueued: %v", st)
	}
	fails(t, cs, "invalid_argument", "step", map[string]any{})
	fails(t, cs, "unknown_queue", "step", map[string]any{"enqueue": []any{map[string]any{"queue": "nope", "payload": "x"}}})

	// Resources and prompts.
	for _, uri := range []string{"flowdb://queues", "flowdb://agents", "flowdb://collections"} {
		rr, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		var v any
		if err := json.Unmarshal([]byte(rr.Contents[0].Text), &v); err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		want := map[string]string{"flowdb://queues": `"name":"jobs"`, "flowdb://agents": `"agent":"a2"`, "flowdb://collections": `"name":"vecs"`}[uri]
		if b, _ := json.Marshal(v); !strings.Contains(string(b), want) {
			t.Fatalf("%s: %s lacks %s", uri, b, want)
		}
	}
	pr, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "work_queue", Arguments: map[string]string{"queue": "jobs", "agent": "a1"}})
	if err != nil || !strings.Contains(pr.Messages[0].Content.(*sdk.TextContent).Text, "task_lease") {
		t.Fatalf("prompt %v %v", pr, err)
	}
	if _, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: "use_memory", Arguments: map[string]string{"collection": "notes"}}); err != nil {
		t.Fatal(err)
	}

	// Restart: everything acknowledged is still there.
	p.close()
	p = tr.start(t, dir)
	if g := ok(t, p.cs, "task_get", map[string]any{"queue": "jobs", "id": tid}); g["state"] != "done" || g["result"] != "stepped" {
		t.Fatalf("after restart %v", g)
	}
	rc = ok(t, p.cs, "memory_recall", map[string]any{"collection": "notes", "text": "invoices", "tags": []string{"step"}})
	if mems := rc["memories"].([]any); len(mems) != 1 {
		t.Fatalf("after restart %v", rc)
	}
}
