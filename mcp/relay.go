package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Relay copies MCP messages between a client-facing transport (local, for
// instance sdk.StdioTransport for an MCP client that started this process)
// and a server (remote, for instance sdk.StreamableClientTransport to a
// node's endpoint at Path), both ways, until local ends (nil: the client
// closed its side), ctx ends, or remote fails for good (its error).
// `flowctl mcp --node` is this relay.
//
// Each message from local is sent on its own, so that a long call (a
// lease wait) holds no other call up. A call the server did not answer is
// answered to the client with a JSON-RPC error of code CodeUnreachable.
// If the server could not be reached (connection refused: the node
// restarts) the relay keeps going: the stateless endpoint serves the next
// call whichever server process answers it. An answer that ends the
// remote connection for good (401: a token refused) ends the relay.
func Relay(ctx context.Context, local, remote sdk.Transport) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lc, err := local.Connect(ctx)
	if err != nil {
		return err
	}
	defer lc.Close()
	rc, err := remote.Connect(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()

	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	stop := func(err error) {
		errOnce.Do(func() { first = err })
		cancel()
	}
	// remote -> local
	wg.Go(func() {
		for {
			msg, err := rc.Read(ctx)
			if err != nil {
				stop(fmt.Errorf("mcp relay: server: %w", err))
				return
			}
			if err := lc.Write(ctx, msg); err != nil {
				stop(fmt.Errorf("mcp relay: client: %w", err))
				return
			}
		}
	})
	// local -> remote
	for {
		msg, err := lc.Read(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil // the client is done
			} else {
				err = fmt.Errorf("mcp relay: client: %w", err)
			}
			stop(err)
			break
		}
		wg.Go(func() {
			err := rc.Write(ctx, msg)
			if err == nil || ctx.Err() != nil {
				return
			}
			req, ok := msg.(*jsonrpc.Request)
			if !ok || !req.IsCall() {
				return // a notification or a response: nobody waits for it
			}
			resp := &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: CodeUnreachable,
				Message: fmt.Sprintf("the flowdb server did not answer the call (it may or may not have been done): %v", err)}}
			if err := lc.Write(ctx, resp); err != nil {
				stop(fmt.Errorf("mcp relay: client: %w", err))
			}
		})
	}
	lc.Close()
	rc.Close()
	wg.Wait()
	if errors.Is(first, context.Canceled) { // the caller ended ctx
		return nil
	}
	return first
}

// CodeUnreachable is the JSON-RPC error code with which Relay answers a
// call it could not deliver.
const CodeUnreachable = -32001
