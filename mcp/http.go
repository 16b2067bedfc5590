package mcp

import (
	"context"
	"fmt"
	"net/http"

	flowserver "github.com/flowdb/flowdb/server"
	"github.com/flowdb/flowdb/server/auth"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Path is where Mount serves the MCP endpoint.
const Path = "/mcp"

// MaxHTTPBody bounds one HTTP request of the MCP endpoint (413 above it):
// a task payload of MaxPayloadSize bytes may take up to six times as many
// once escaped in JSON.
const MaxHTTPBody = 8 << 20

// tokenKey is the key of the caller's *auth.Token in the SDK's
// TokenInfo.Extra.
const tokenKey = "flowdb.token"

// Mount serves the MCP endpoint over st at Path on srv, with the SDK's
// streamable HTTP transport in its stateless mode (each POST is a whole
// exchange; GET and DELETE answer 405), behind srv's middleware (Host and
// cross-site checks, size limit, authentication). `flowctl serve` and `flowctl node
// start` call it; on a node st is the node's own replicated store, so
// writes go through Raft as the RPC API's do.
//
// Authentication and authorization follow the RPC API (package
// server/auth): a request without a valid bearer token is answered 401
// before any MCP message is read, and every tool call is checked against
// the scopes of the token on the very request that carries it (a revoked
// token stops working at once). Scope maps each Access to the scope it needs; a
// refused call is a "forbidden" tool error that changed nothing.
// o.Authorize, if set, is asked as well. A server without a tokens file
// (loopback only) lets every caller do everything, as its RPC API does.
func Mount(srv *flowserver.Server, st Stack, o *Options) error {
	h, err := NewHTTPHandler(st, o)
	if err != nil {
		return err
	}
	srv.Handle(Path, h)
	return nil
}

// NewHTTPHandler returns the endpoint Mount mounts, for a server that
// mounts it itself. It must run behind server.Server's middleware: it
// finds the caller with auth.Caller.
func NewHTTPHandler(st Stack, o *Options) (http.Handler, error) {
	var oo Options
	if o != nil {
		oo = *o
	}
	also := oo.Authorize
	// Two servers over the same stack: a server without tokens lets every
	// caller do everything (as its RPC API does); with tokens, a call is
	// checked against the token of its own request, and a call that
	// carries none is refused (fail closed).
	open := oo
	openSrv, err := NewServer(st, &open)
	if err != nil {
		return nil, err
	}
	oo.Authorize = func(ctx context.Context, a Access) error {
		tok := callerToken(ctx)
		if tok == nil {
			return auth.ErrUnauthenticated
		}
		res, name, level := Scope(a)
		if err := tok.Check(res, name, level); err != nil {
			return err
		}
		if also != nil {
			return also(ctx, a)
		}
		return nil
	}
	srv, err := NewServer(st, &oo)
	if err != nil {
		return nil, err
	}
	// Stateless: every POST stands alone (the tools keep no session
	// state), so a client outlives a server restart, and no session needs
	// a GET stream, a DELETE or an idle timeout. The SDK's own DNS
	// rebinding check (a loopback listener refuses every Host but
	// localhost) is off: the server's Host rule (IP literals, localhost,
	// AllowedHosts) has run before, and a reverse proxy on the same machine
	// forwards the public name the operator allowed.
	handler := func(s *sdk.Server) http.Handler {
		return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s },
			&sdk.StreamableHTTPOptions{Stateless: true, MaxRequestBodyBytes: MaxHTTPBody, PropagateRequestCancellation: true,
				DisableLocalhostProtection: true})
	}
	stream := handler(openSrv)
	// The SDK's bearer middleware carries the token into each request's
	// RequestExtra. The server's middleware already verified the secret:
	// the verifier only hands its verdict over.
	verified := sdkauth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*sdkauth.TokenInfo, error) {
		tok, err := auth.Caller(ctx)
		if err != nil || tok == nil {
			return nil, fmt.Errorf("%w: %v", sdkauth.ErrInvalidToken, err)
		}
		return &sdkauth.TokenInfo{UserID: tok.Name, Expiration: tok.Expires, Extra: map[string]any{tokenKey: tok}}, nil
	}, &sdkauth.RequireBearerTokenOptions{AllowMissingExpiration: true})(handler(srv))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := auth.Caller(r.Context())
		switch {
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowdb"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
		case tok == nil: // a server without tokens
			stream.ServeHTTP(w, r)
		default:
			verified.ServeHTTP(w, r)
		}
	}), nil
}

// callerToken returns the token the endpoint verified for the request of
// the call ctx belongs to, or nil when the request carried none (the
// endpoint answers 401 before such a request reaches the SDK; were one to
// get through, Authorize refuses its calls).
func callerToken(ctx context.Context) *auth.Token {
	e := RequestExtra(ctx)
	if e == nil || e.TokenInfo == nil {
		return nil
	}
	tok, ok := e.TokenInfo.Extra[tokenKey].(*auth.Token)
	if !ok {
		return &auth.Token{Name: "(unknown)"} // no scopes: refused everything
	}
	return tok
}

// Scope returns the scope a token needs for a, as the RPC API asks it:
//
//	queue      queue:NAME       read, write; admin to create (queue_create)
//	collection vec:NAME         read, write; admin to create (first remember)
//	namespace  kv:NAME          read, write
//	agents     agent:AGENT_ID   read (agent_list shows the readable ones), write
func Scope(a Access) (resource, name string, level auth.Level) {
	level = auth.Read
	if a.Write {
		level = auth.Write
	}
	if a.Create {
		level = auth.Admin
	}
	switch a.Kind {
	case "queue":
		resource = auth.Queue
	case "collection":
		resource = auth.Vec
	case "namespace":
		resource = auth.KV
	case "agents":
		resource = auth.Agent
	default:
		resource = "(" + a.Kind + ")" // no scope names it: refused
	}
	return resource, a.Name, level
}
