package mcp

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resource URIs.
const (
	QueuesURI      = "flowdb://queues"
	AgentsURI      = "flowdb://agents"
	CollectionsURI = "flowdb://collections"
)

// jsonResource serves the JSON of what fn returns under the call deadline.
func (s *server) jsonResource(uri, name, desc string, fn func(ctx context.Context) (any, error)) {
	s.sdk.AddResource(&sdk.Resource{URI: uri, Name: name, Description: desc, MIMEType: "application/json"},
		func(ctx context.Context, _ *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
			ctx, cancel := context.WithTimeout(ctx, s.o.CallTimeout)
			defer cancel()
			v, err := fn(ctx)
			if err != nil {
				return nil, toolError(ctx, err)
			}
			b, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return nil, err
			}
			return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
		})
}

// collectionOut describes a memory collection.
type collectionOut struct {
	Name    string `json:"name"`
	Dim     int    `json:"dim"`
	Metric  string `json:"metric"`
	Vectors int    `json:"vectors"`
}

func (s *server) addResources() {
	s.jsonResource(QueuesURI, "queues", "Every queue this session may read, with its task counts by state and its rates.",
		func(ctx context.Context) (any, error) {
			out := []queue.Stats{}
			for _, q := range s.st.Queues.Queues() {
				if s.authorize(ctx, "queue", q, false) != nil {
					continue
				}
				st, err := s.st.Queues.Stats(q)
				if err != nil {
					continue // dropped meanwhile
				}
				out = append(out, st)
			}
			return out, nil
		})
	s.jsonResource(AgentsURI, "agents", "Every registered agent: capabilities, capacity, load, health.",
		func(ctx context.Context) (any, error) {
			out, err := s.listAgents(ctx, registry.Filter{})
			return out.Agents, err
		})
	s.jsonResource(CollectionsURI, "collections", "Every vector memory collection this session may read: dimension, metric, size. Also names the server's text embedder and its dimension.",
		func(ctx context.Context) (any, error) {
			out := struct {
				Embedder    string          `json:"embedder"`
				Dim         int             `json:"embedder_dim"`
				Collections []collectionOut `json:"collections"`
			}{Embedder: s.o.Embedder.Name(), Dim: s.o.Embedder.Dim(), Collections: []collectionOut{}}
			for _, c := range s.st.Vectors.Collections() {
				if s.authorize(ctx, "collection", c, false) != nil {
					continue
				}
				st, err := s.st.Vectors.Stats(c)
				if err != nil {
					continue
				}
				out.Collections = append(out.Collections, collectionOut{Name: c, Dim: st.Config.Dim, Metric: st.Config.Metric.String(), Vectors: st.Vectors})
			}
			return out, nil
		})
	_ = hnsw.ErrNoCollection
}

func (s *server) addPrompts() {
	s.sdk.AddPrompt(&sdk.Prompt{
		Name:        "work_queue",
		Description: "How to work a flowdb task queue as an agent: register, lease, do, ack or nack, repeat.",
		Arguments: []*sdk.PromptArgument{
			{Name: "queue", Description: "the queue to work", Required: true},
			{Name: "agent", Description: "your agent id", Required: true},
		},
	}, func(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
		q, a := req.Params.Arguments["queue"], req.Params.Arguments["agent"]
		text := fmt.Sprintf(`You are agent %[2]q working the flowdb queue %[1]q. Repeat:
1. Call agent_register once with your capabilities (agent=%[2]q), then agent_heartbeat every few tasks.
2. Call task_lease with queue=%[1]q, agent=%[2]q, wait_seconds=10. If tasks is empty, lease again.
3. For each task, keep its id and token. Before working, call memory_recall with the task's payload as text to find what was learnt before.
4. Do the work the payload asks for. If it takes long, call task_extend before the lease expires.
5. On success, call step with ack={queue, id, token, result}, the memories worth keeping, and any follow-up tasks: all commit together.
   On failure, call task_nack with the reason; the task is retried later.
6. If a call answers lease_lost, drop that task (another agent has it) and lease a new one.`, q, a)
		return &sdk.GetPromptResult{
			Description: "Work the queue " + q,
			Messages:    []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: text}}},
		}, nil
	})
	s.sdk.AddPrompt(&sdk.Prompt{
		Name:        "use_memory",
		Description: "How to keep and use long-term memory in a flowdb collection.",
		Arguments:   []*sdk.PromptArgument{{Name: "collection", Description: "the memory collection", Required: true}},
	}, func(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
		c := req.Params.Arguments["collection"]
		text := fmt.Sprintf(`Use the flowdb memory collection %[1]q as long-term memory:
- Before answering or acting, call memory_recall with collection=%[1]q and a short text describing what you need; use tags to narrow it (for example the user's or project's id).
- After learning something worth keeping (a fact, a decision, a result), call memory_remember with collection=%[1]q, the text in one or two self-contained sentences, tags, and metadata such as its source.
- Memories with a distance above about 0.6 are probably unrelated; ignore them.
- Call memory_forget with the ids of memories that turned out wrong.`, c)
		return &sdk.GetPromptResult{
			Description: "Use the memory collection " + c,
			Messages:    []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: text}}},
		}, nil
	})
}
