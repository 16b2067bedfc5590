package mcp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/embed"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Stack is the store the server works on: a DB with its subsystems
// attached. The server does not own it: closing the server's sessions
// leaves it open, and the caller closes it after the last session ends.
type Stack struct {
	DB       *db.DB
	Queues   *queue.Manager
	Registry *registry.Registry
	Vectors  *hnsw.Manager
}

// Access is one thing a tool call touches, passed to Options.Authorize.
type Access struct {
	// Kind is "queue", "collection", "namespace" or "agents".
	Kind string
	// Name is the queue, collection or namespace, or the agent id.
	Name string
	// Write is true for a change, false for a read.
	Write bool
	// Create is true when the call creates the queue or collection
	// (queue_create, the first memory_remember into a collection); Write
	// is then true too. The network endpoint asks admin level for it, as
	// the RPC API does for CreateQueue and CreateCollection.
	Create bool
}

// Options configure a server. Zero fields take the defaults given.
type Options struct {
	// Embedder turns memory texts into vectors. Default: embed.NewHashed(0)
	// (no model, no network).
	Embedder embed.Embedder
	// CallTimeout bounds every tool call and resource read (default 30s):
	// a call never blocks past it.
	CallTimeout time.Duration
	// MaxLeaseWait bounds task_lease's wait_seconds (default 20s, at most
	// CallTimeout less one second).
	MaxLeaseWait time.Duration
	// Authorize, if set, is asked before a tool touches anything; an error
	// refuses the call with a "forbidden" tool error. The stdio server
	// passes nil (the local user owns the store); a network server maps
	// its token scopes here.
	Authorize func(ctx context.Context, a Access) error
	// Name and Version are the implementation reported to clients
	// (defaults "flowdb", "dev").
	Name, Version string
}

// Limits on tool arguments, checked before anything is written.
const (
	MaxPayloadSize  = 1 << 20 // task payloads and results, bytes
	MaxReasonSize   = 4 << 10 // nack reasons and statuses
	MaxMetadataSize = 16 << 10
	MaxTags         = 32
	MaxLeaseBatch   = 100
	MaxRecallK      = 100
	MaxScanLimit    = 1000
	MaxStepOps      = 256 // memories + kv writes + follow-up tasks in one step
	MaxDim          = 1 << 14
)

// ErrInvalid marks tool arguments the server refused before anything was
// done; ErrForbidden marks calls Options.Authorize refused. Both reach the
// model as tool errors.
var (
	ErrInvalid   = errors.New("mcp: invalid argument")
	ErrForbidden = errors.New("mcp: forbidden")
)

// server holds what every handler needs.
type server struct {
	st  Stack
	o   Options
	sdk *sdk.Server
}

// NewServer returns an MCP server over st with every tool, resource and
// prompt of this package. Serve it on stdio with
// srv.Run(ctx, &mcp.StdioTransport{}) (that is `flowctl mcp`), or mount it
// on HTTP with the SDK's mcp.NewStreamableHTTPHandler behind the network
// server's authentication (Options.Authorize maps token scopes).
func NewServer(st Stack, o *Options) (*sdk.Server, error) {
	if st.DB == nil || st.Queues == nil || st.Registry == nil || st.Vectors == nil {
		return nil, fmt.Errorf("%w: incomplete stack", ErrInvalid)
	}
	var oo Options
	if o != nil {
		oo = *o
	}
	if oo.Embedder == nil {
		h, err := embed.NewHashed(0)
		if err != nil {
			return nil, err
		}
		oo.Embedder = h
	}
	if oo.CallTimeout == 0 {
		oo.CallTimeout = 30 * time.Second
	}
	if oo.CallTimeout < 2*time.Second {
		return nil, fmt.Errorf("%w: CallTimeout %v under 2s", ErrInvalid, oo.CallTimeout)
	}
	if oo.MaxLeaseWait == 0 {
		oo.MaxLeaseWait = 20 * time.Second
	}
	if max := oo.CallTimeout - time.Second; oo.MaxLeaseWait > max || oo.MaxLeaseWait < 0 {
		oo.MaxLeaseWait = max
	}
	if oo.Name == "" {
		oo.Name = "flowdb"
	}
	if oo.Version == "" {
		oo.Version = "dev"
	}
	s := &server{st: st, o: oo}
	s.sdk = sdk.NewServer(&sdk.Implementation{Name: oo.Name, Version: oo.Version}, &sdk.ServerOptions{
		Instructions: instructions,
	})
	s.sdk.AddReceivingMiddleware(keepExtra)
	s.addTaskTools()
	s.addMemoryTools()
	s.addAgentTools()
	s.addKVTools()
	s.addStepTool()
	s.addResources()
	s.addPrompts()
	return s.sdk, nil
}

const instructions = `flowdb gives agents durable task queues, vector memory, an agent registry and a key-value store.
Work loop: task_lease a task (keep its id and token), do the work, then task_ack it with a result (or task_nack with a reason to retry it later), or finish it with step to ack, store memories, write keys and enqueue follow-up tasks in one atomic commit.
Leases expire: call task_extend before lease_seconds run out on long work. An acknowledged task or a stored memory survives crashes.
Errors are tool results whose text starts with a code (lease_lost, unknown_queue, queue_full, not_found, invalid_argument, wrong_dimension, forbidden, timeout, ...) followed by what to do.`

// addTool registers a typed tool whose calls run under the call deadline
// and whose errors become tool errors a model can act on.
func addTool[In, Out any](s *server, name, desc string, readOnly bool, h func(ctx context.Context, in In) (Out, error)) {
	t := &sdk.Tool{Name: name, Description: desc, Annotations: &sdk.ToolAnnotations{ReadOnlyHint: readOnly}}
	sdk.AddTool(s.sdk, t, func(ctx context.Context, _ *sdk.CallToolRequest, in In) (*sdk.CallToolResult, Out, error) {
		ctx, cancel := context.WithTimeout(ctx, s.o.CallTimeout)
		defer cancel()
		out, err := h(ctx, in)
		if err != nil {
			var zero Out
			return nil, zero, toolError(ctx, err)
		}
		return nil, out, nil
	})
}

// authorize asks Options.Authorize.
func (s *server) authorize(ctx context.Context, kind, name string, write bool) error {
	return s.authorizeAccess(ctx, Access{Kind: kind, Name: name, Write: write})
}

// authorizeAccess asks Options.Authorize about a.
func (s *server) authorizeAccess(ctx context.Context, a Access) error {
	if s.o.Authorize == nil {
		return nil
	}
	if err := s.o.Authorize(ctx, a); err != nil {
		what := map[bool]string{true: "write", false: "read"}[a.Write]
		if a.Create {
			what = "create"
		}
		return fmt.Errorf("%w: %s %q (%s): %v", ErrForbidden, a.Kind, a.Name, what, err)
	}
	return nil
}

// extraKey is the context key of the transport's *sdk.RequestExtra.
type extraKey struct{}

// keepExtra puts each request's transport information (on HTTP: its
// headers and the token the endpoint verified for that very request) on
// the handler's context, where Options.Authorize finds it with
// RequestExtra. A session's own context comes from the request that opened
// it; a call must be judged by the request that carries it.
func keepExtra(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		return next(context.WithValue(ctx, extraKey{}, req.GetExtra()), method, req)
	}
}

// RequestExtra returns the transport information of the call ctx belongs
// to: on streamable HTTP the request's headers and verified token; nil on
// stdio and in-memory transports.
func RequestExtra(ctx context.Context) *sdk.RequestExtra {
	e, _ := ctx.Value(extraKey{}).(*sdk.RequestExtra)
	return e
}

// barrier makes the reads of the queue or collection name that follow
// linearizable on a replica (a Raft read index on its shard), as the RPC
// API does; nothing on a standalone store.
func (s *server) barrier(ctx context.Context, name string) error {
	return s.st.DB.ReadBarrier(ctx, s.st.DB.Placement().ShardFor(name))
}

// catalogBarrier is barrier for the registry, which lives on the catalog
// shard.
func (s *server) catalogBarrier(ctx context.Context) error {
	return s.st.DB.ReadBarrier(ctx, keys.CatalogShard)
}

// toolErr is an error as a model sees it: a code, the cause, and a hint.
type toolErr struct {
	code, hint string
	err        error
}

func (e *toolErr) Error() string {
	if e.hint == "" {
		return e.code + ": " + e.err.Error()
	}
	return e.code + ": " + e.err.Error() + ". " + e.hint
}

func (e *toolErr) Unwrap() error { return e.err }

// toolError classifies err for a model.
func toolError(ctx context.Context, err error) error {
	var te *toolErr
	if errors.As(err, &te) {
		return err
	}
	c := func(code, hint string) error { return &toolErr{code: code, hint: hint, err: err} }
	switch {
	case errors.Is(err, ErrForbidden):
		return c("forbidden", "This session may not touch that; do not retry")
	case errors.Is(err, errUnknownQueue):
		return c("unknown_queue", "Check the queue name (resource flowdb://queues lists them) or create it with queue_create")
	case errors.Is(err, errUnknownCollection):
		return c("unknown_collection", "Nothing was remembered in that collection yet; check the name (resource flowdb://collections)")
	case errors.Is(err, queue.ErrLeaseLost):
		return c("lease_lost", "The lease expired or the task was leased again; do not ack or nack it, lease a new task")
	case errors.Is(err, queue.ErrFull):
		return c("queue_full", "The queue is at capacity; retry later or enqueue with a higher priority")
	case errors.Is(err, queue.ErrCanceled):
		return c("canceled", "The task was canceled; drop it and lease another")
	case errors.Is(err, queue.ErrAtCapacity):
		return c("at_capacity", "The agent holds as many tasks as its capacity; ack some first")
	case errors.Is(err, hnsw.ErrDimension), errors.Is(err, embed.ErrDimension):
		return c("wrong_dimension", "The vector's length differs from the collection's dimension (resource flowdb://collections)")
	case errors.Is(err, hnsw.ErrNotFinite), errors.Is(err, embed.ErrNotFinite):
		return c("not_finite", "Vectors must hold finite numbers")
	case errors.Is(err, hnsw.ErrZeroVector):
		return c("zero_vector", "The vector (or the text's embedding) is all zeros; give a text with words or a non-zero vector")
	case errors.Is(err, embed.ErrNoText):
		return c("vector_required", "This server has no text embedder; pass vector instead of text")
	case errors.Is(err, embed.ErrTimeout), errors.Is(err, embed.ErrRemote):
		return c("embedder_failed", "The embedding service failed; retry later or pass a vector")
	case errors.Is(err, db.ErrCrossShard):
		return c("cross_shard", "Nothing was written. On a replicated store one call commits on one shard: give the queue, collections and namespaces a step touches one placement group, {group} in each name")
	case errors.Is(err, db.ErrConditionFailed):
		return c("condition_failed", "Nothing was written; read the current state and retry")
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, hnsw.ErrNotFound), errors.Is(err, db.ErrNotFound), errors.Is(err, registry.ErrNotFound):
		return c("not_found", "")
	case errors.Is(err, ErrInvalid), errors.Is(err, queue.ErrInvalid), errors.Is(err, registry.ErrInvalid), errors.Is(err, hnsw.ErrInvalid),
		errors.Is(err, embed.ErrInvalid), errors.Is(err, db.ErrEmptyKey), errors.Is(err, db.ErrKeyTooLarge), errors.Is(err, db.ErrNamespaceTooLarge),
		errors.Is(err, db.ErrValueTooLarge), errors.Is(err, db.ErrInvalidTTL), errors.Is(err, db.ErrTxnTooLarge), errors.Is(err, queue.ErrExists), errors.Is(err, hnsw.ErrExists):
		return c("invalid_argument", "Fix the argument and call again")
	case errors.Is(err, db.ErrOutcomeUnknown):
		return c("outcome_unknown", "It may or may not have been written; read the state before retrying")
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return c("timeout", "The call ran out of time; retry")
	case errors.Is(err, db.ErrClosed), errors.Is(err, db.ErrFatal), errors.Is(err, db.ErrReadOnly):
		return c("unavailable", "The store is not accepting writes; retry later")
	}
	return c("error", "")
}

var (
	errUnknownQueue      = errors.New("unknown queue")
	errUnknownCollection = errors.New("unknown collection")
)

// invalid returns an ErrInvalid error.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// seconds converts a non-negative number of seconds, at most max.
func seconds(name string, v float64, max time.Duration) (time.Duration, error) {
	if math.IsNaN(v) || v < 0 || time.Duration(v*float64(time.Second)) > max {
		return 0, invalid("%s %v outside 0..%v", name, v, max.Seconds())
	}
	return time.Duration(v * float64(time.Second)), nil
}

// vector converts a JSON vector to float32, refusing overflow and NaN.
func vector(v []float64) ([]float32, error) {
	if len(v) > MaxDim {
		return nil, invalid("vector of %d values, at most %d", len(v), MaxDim)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		if math.IsNaN(x) || math.Abs(x) > math.MaxFloat32 {
			return nil, fmt.Errorf("%w: value %d (%g) is not a finite float32", hnsw.ErrNotFinite, i, x)
		}
		out[i] = float32(x)
	}
	return out, nil
}

// checkTags bounds a tag list.
func checkTags(tags []string) error {
	if len(tags) > MaxTags {
		return invalid("%d tags, at most %d", len(tags), MaxTags)
	}
	for _, t := range tags {
		if t == "" || len(t) > 128 {
			return invalid("tag %q: 1..128 bytes", t)
		}
	}
	return nil
}
