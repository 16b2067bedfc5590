package mcp

import (
	"context"
	"time"

	"github.com/flowdb/flowdb/registry"
)

type registerIn struct {
	Agent            string            `json:"agent" jsonschema:"your agent id (1-256 bytes)"`
	Capabilities     []string          `json:"capabilities,omitempty" jsonschema:"what you can do; tasks that require capabilities go to agents that have them"`
	Capacity         int               `json:"capacity,omitempty" jsonschema:"how many tasks you can hold at once (default 1)"`
	Pool             string            `json:"pool,omitempty" jsonschema:"a warm pool to join (optional)"`
	HeartbeatSeconds float64           `json:"heartbeat_seconds,omitempty" jsonschema:"how often you promise to call agent_heartbeat (default: the server's, 10s); missing several marks you unhealthy"`
	Labels           map[string]string `json:"labels,omitempty" jsonschema:"free-form key/value labels"`
}

type heartbeatIn struct {
	Agent  string `json:"agent" jsonschema:"your agent id"`
	Load   int    `json:"load,omitempty" jsonschema:"how many tasks you hold now"`
	Status string `json:"status,omitempty" jsonschema:"a short free-form status"`
}

type agentsIn struct {
	Capabilities []string `json:"capabilities,omitempty" jsonschema:"only agents having every one of these"`
	Pool         string   `json:"pool,omitempty" jsonschema:"only agents in this pool"`
	Health       string   `json:"health,omitempty" jsonschema:"healthy, unhealthy, or empty for both"`
}

type agentOut struct {
	Agent         string            `json:"agent"`
	Capabilities  []string          `json:"capabilities,omitempty"`
	Capacity      int               `json:"capacity"`
	Pool          string            `json:"pool,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Load          int               `json:"load"`
	Status        string            `json:"status,omitempty"`
	Healthy       bool              `json:"healthy"`
	LastHeartbeat string            `json:"last_heartbeat" jsonschema:"RFC 3339"`
}

type agentsOut struct {
	Agents []agentOut `json:"agents"`
}

func agentInfo(a *registry.Agent) agentOut {
	return agentOut{Agent: a.ID, Capabilities: a.Capabilities, Capacity: a.Capacity, Pool: a.Pool, Labels: a.Labels,
		Load: a.Load, Status: a.Status, Healthy: a.Healthy, LastHeartbeat: a.LastHeartbeat.UTC().Format(time.RFC3339Nano)}
}

// listAgents lists the agents the session may read (Options.Authorize is
// asked per agent, as the RPC API filters ListAgents by agent scopes),
// after a read barrier on the catalog shard.
func (s *server) listAgents(ctx context.Context, f registry.Filter) (agentsOut, error) {
	if err := s.catalogBarrier(ctx); err != nil {
		return agentsOut{}, err
	}
	out := agentsOut{Agents: []agentOut{}}
	for _, a := range s.st.Registry.List(f) {
		if s.authorize(ctx, "agents", a.ID, false) != nil {
			continue
		}
		out.Agents = append(out.Agents, agentInfo(a))
	}
	return out, nil
}

func (s *server) addAgentTools() {
	addTool(s, "agent_register", "Register yourself as an agent (or update your registration): your capabilities and capacity. Then call agent_heartbeat regularly so others see you are alive.", false,
		func(ctx context.Context, in registerIn) (okOut, error) {
			if err := s.authorize(ctx, "agents", in.Agent, true); err != nil {
				return okOut{}, err
			}
			hb, err := seconds("heartbeat_seconds", in.HeartbeatSeconds, 24*time.Hour)
			if err != nil {
				return okOut{}, err
			}
			c := in.Capacity
			if c == 0 {
				c = 1
			}
			err = s.st.Registry.Register(ctx, registry.AgentSpec{ID: in.Agent, Pool: in.Pool, Capabilities: in.Capabilities,
				Capacity: c, Labels: in.Labels, HeartbeatInterval: hb})
			return okOut{OK: err == nil}, err
		})

	addTool(s, "agent_heartbeat", "Report that you are alive, with your current load and a short status.", false,
		func(ctx context.Context, in heartbeatIn) (okOut, error) {
			if err := s.authorize(ctx, "agents", in.Agent, true); err != nil {
				return okOut{}, err
			}
			if len(in.Status) > MaxReasonSize {
				return okOut{}, invalid("status of %d bytes, at most %d", len(in.Status), MaxReasonSize)
			}
			err := s.st.Registry.Heartbeat(ctx, in.Agent, in.Load, in.Status)
			return okOut{OK: err == nil}, err
		})

	addTool(s, "agent_list", "List registered agents, optionally only those with given capabilities, in a pool, or of a health.", true,
		func(ctx context.Context, in agentsIn) (agentsOut, error) {
			switch in.Health {
			case "", "healthy", "unhealthy":
			default:
				return agentsOut{}, invalid("health %q: healthy, unhealthy or empty", in.Health)
			}
			return s.listAgents(ctx, registry.Filter{Pool: in.Pool, Capabilities: in.Capabilities, Health: in.Health})
		})
}
