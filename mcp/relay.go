package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Relay copies MCP messages between a client-facing transport (local, for
// instance sdk.StdioTransport for an MCP client that started this process)
// and a server (remote, for instance sdk.StreamableClientTransport to a
// node's endpoint at Path), both ways, until local ends, ctx ends, or the
// server refuses the caller (ErrRefused). `flowctl mcp --node` is this
// relay.
//
// Each message from local is sent on its own, so that a long call (a
// lease wait) holds no other call up. Every call gets exactly one answer:
// the server's, or, when the server did not answer it, a JSON-RPC error
// of code CodeUnreachable (the call may or may not have been done: the
// connection broke after it was sent, or it was never sent because the
// server could not be reached or refused the request, for instance a 413
// for a request over the server's own size limit). After such a failure the relay connects
// again for the next call, so a server restart or one refused message
// does not end it: the stateless endpoint serves each call on its own.
//
// A call over MaxHTTPBody is not sent: it is answered with CodeTooLarge
// (the endpoint's 413 would break the connection the other calls in
// flight wait on). A request the server answers 401 or 403 on the HTTP
// level (the token was refused: the remote transport's HTTP client
// reports it as ErrRefused, see BearerTransport) is answered with
// CodeRefused, as is every other call in flight, and ends the relay with
// that error. When local ends (the client closed its side), the relay
// waits for the answers to the calls still in flight, however long they
// take (a lease wait runs to its end; ctx bounds it), and writes them,
// before it returns nil.
func Relay(ctx context.Context, local, remote sdk.Transport) error {
	// ctx (cancelled by drain's end, stop or the caller) bounds the calls
	// to the server; wctx (stop or the caller) the client's side, so that
	// an answer received before the end is still written.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ctx, cancel := context.WithCancel(wctx)
	defer cancel()
	lc, err := local.Connect(wctx)
	if err != nil {
		return err
	}
	defer lc.Close()
	r := &relay{ctx: ctx, wctx: wctx, cancel: wcancel, lc: lc, remote: remote, pending: map[jsonrpc.ID]*remoteConn{}}
	if _, err := r.conn(nil); err != nil {
		return err
	}
	for {
		msg, err := lc.Read(wctx)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.stop(fmt.Errorf("mcp relay: client: %w", err))
			}
			break
		}
		var call *jsonrpc.Request
		if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
			call = req
		}
		// Params hold nearly all of a large message, so only a message
		// whose params come near the limit is encoded (again) to measure it.
		if call != nil && len(call.Params) > MaxHTTPBody-4096 && tooLarge(msg) {
			// The endpoint refuses it with a 413 that breaks the SDK's
			// connection, and with it the answers to the calls in flight.
			r.unanswered(call, CodeTooLarge, fmt.Errorf("a message of over %d bytes, the endpoint's limit: not sent", MaxHTTPBody))
			continue
		}
		rc, err := r.conn(call)
		if err != nil {
			r.unanswered(call, CodeUnreachable, err)
			continue
		}
		r.wg.Go(func() {
			err := rc.c.Write(ctx, msg)
			if err == nil || ctx.Err() != nil {
				return
			}
			// The connection may be broken for good (the SDK fails it on an
			// HTTP answer that is not JSON-RPC): the next call gets a new one.
			r.retire(rc)
			if errors.Is(err, ErrRefused) {
				r.refuse(err)
				return
			}
			if call != nil && r.answered(call.ID) {
				r.unanswered(call, CodeUnreachable, err)
			}
		})
	}
	r.drain()
	cancel()
	r.closeAll()
	r.wg.Wait()
	if errors.Is(r.first, context.Canceled) { // the caller ended ctx
		return nil
	}
	return r.first
}

// tooLarge reports whether msg encodes to more than MaxHTTPBody bytes.
func tooLarge(msg jsonrpc.Message) bool {
	b, err := jsonrpc.EncodeMessage(msg)
	return err == nil && len(b) > MaxHTTPBody
}

// CodeUnreachable is the JSON-RPC error code with which Relay answers a
// call the server did not answer. Relay's codes are in JSON-RPC's range
// for implementations (-32000 to -32099), clear of the ones MCP and the
// SDK give a meaning (-32002 resource not found, -32003 and -32004
// closing, -32020 and up).
const CodeUnreachable = -32001

// CodeRefused is the JSON-RPC error code with which Relay answers a call
// whose HTTP request the server refused with 401 or 403 (ErrRefused), and
// the other calls in flight then.
const CodeRefused = -32010

// CodeTooLarge is the JSON-RPC error code with which Relay answers a call
// over MaxHTTPBody: it is not sent, so nothing was done.
const CodeTooLarge = -32011

// ErrRefused is what BearerTransport returns for an HTTP answer of 401
// (no valid token) or 403 (forbidden before any MCP message was read).
var ErrRefused = errors.New("the server refused the request's token")

// BearerTransport returns an http.RoundTripper over base (nil:
// http.DefaultTransport) that sends token as a bearer token (none when
// token is empty) and turns a 401 or 403 answer into an error wrapping
// ErrRefused, so that Relay can tell a refused token from an unreachable
// server.
func BearerTransport(token string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return bearer{token: token, base: base}
}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := b.base.RoundTrip(r)
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("%w: HTTP %d: %s", ErrRefused, resp.StatusCode, bytesTrim(body))
	}
	return resp, err
}

func bytesTrim(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b)
}

// relay is Relay's state: the current connection to the server, the calls
// in flight and the connection each went out on.
type relay struct {
	ctx    context.Context    // the server's side
	wctx   context.Context    // the client's side
	cancel context.CancelFunc // ends both
	lc     sdk.Connection
	remote sdk.Transport
	wg     sync.WaitGroup

	mu      sync.Mutex
	cur     *remoteConn
	conns   []*remoteConn // every open one, retired ones included
	pending map[jsonrpc.ID]*remoteConn
	idle    chan struct{} // closed when pending empties, while draining
	first   error
}

// remoteConn is one connection to the server and its reader.
type remoteConn struct {
	c       sdk.Connection
	retired bool
}

// conn returns the current connection, connecting when there is none,
// and records call (nil: none) as in flight on it, in one step: a
// connection retired meanwhile is never handed out.
func (r *relay) conn(call *jsonrpc.Request) (*remoteConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc := r.cur
	if rc == nil {
		c, err := r.remote.Connect(r.ctx)
		if err != nil {
			return nil, fmt.Errorf("mcp relay: server: %w", err)
		}
		rc = &remoteConn{c: c}
		r.cur = rc
		r.conns = append(r.conns, rc)
		r.wg.Go(func() { r.read(rc) })
	}
	if call != nil {
		r.pending[call.ID] = rc
	}
	return rc, nil
}

// read copies rc's messages to the client until rc ends; then it answers
// the calls that went out on rc and got no answer.
func (r *relay) read(rc *remoteConn) {
	for {
		msg, err := rc.c.Read(r.ctx)
		if err != nil {
			r.retire(rc)
			if r.ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			var lost []jsonrpc.ID
			for id, c := range r.pending {
				if c == rc {
					lost = append(lost, id)
				}
			}
			r.mu.Unlock()
			for _, id := range lost {
				if r.answered(id) {
					r.unanswered(&jsonrpc.Request{ID: id}, CodeUnreachable, err)
				}
			}
			return
		}
		if resp, ok := msg.(*jsonrpc.Response); ok && !r.answered(resp.ID) {
			continue // answered already (as unreachable)
		}
		if err := r.lc.Write(r.wctx, msg); err != nil {
			r.stop(fmt.Errorf("mcp relay: client: %w", err))
			return
		}
	}
}

// answered takes id off the calls in flight, and reports whether it was
// one (only the first answer to a call is passed on).
func (r *relay) answered(id jsonrpc.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc, ok := r.pending[id]
	if ok {
		delete(r.pending, id)
		if rc.retired {
			r.closeIdle(rc)
		}
		if len(r.pending) == 0 && r.idle != nil {
			close(r.idle)
			r.idle = nil
		}
	}
	return ok
}

// retire stops new calls from going out on rc; it closes once its calls
// are answered.
func (r *relay) retire(rc *remoteConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc.retired = true
	if r.cur == rc {
		r.cur = nil
	}
	r.closeIdle(rc)
}

// closeIdle closes a retired rc with no call in flight. r.mu is held.
func (r *relay) closeIdle(rc *remoteConn) {
	for _, c := range r.pending {
		if c == rc {
			return
		}
	}
	for i, c := range r.conns {
		if c == rc {
			r.conns = append(r.conns[:i], r.conns[i+1:]...)
			r.wg.Go(func() { rc.c.Close() })
			return
		}
	}
}

// unanswered answers call (nil: a notification, nobody waits) with a
// JSON-RPC error.
func (r *relay) unanswered(call *jsonrpc.Request, code int64, err error) {
	if call == nil {
		return
	}
	msg := fmt.Sprintf("the flowdb server did not answer the call (it may or may not have been done): %v", err)
	switch code {
	case CodeRefused:
		msg = fmt.Sprintf("the flowdb server refused the relay's token: %v", err)
	case CodeTooLarge:
		msg = err.Error()
	}
	if werr := r.lc.Write(r.wctx, &jsonrpc.Response{ID: call.ID, Error: &jsonrpc.Error{Code: code, Message: msg}}); werr != nil {
		r.stop(fmt.Errorf("mcp relay: client: %w", werr))
	}
}

// refuse answers every call in flight with CodeRefused (the server
// refused the token: none of them is answered otherwise) and ends the
// relay with err.
func (r *relay) refuse(err error) {
	r.mu.Lock()
	ids := make([]jsonrpc.ID, 0, len(r.pending))
	for id := range r.pending {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		if r.answered(id) {
			r.unanswered(&jsonrpc.Request{ID: id}, CodeRefused, err)
		}
	}
	r.stop(fmt.Errorf("mcp relay: %w", err))
}

// stop ends the relay with err (the first error wins).
func (r *relay) stop(err error) {
	r.mu.Lock()
	if r.first == nil {
		r.first = err
	}
	r.mu.Unlock()
	r.cancel()
}

// drain waits until every call in flight has been answered, or ctx ends.
func (r *relay) drain() {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	r.idle = idle
	r.mu.Unlock()
	select {
	case <-idle:
	case <-r.ctx.Done():
	}
}

// closeAll closes every connection to the server.
func (r *relay) closeAll() {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, rc := range conns {
		rc.c.Close()
	}
}
