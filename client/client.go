package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/flowdb/flowdb/api/flowdb/v1/flowdbv1connect"
)

// Options configures a Client. Zero fields take the defaults.
type Options struct {
	// Token is the bearer token sent with every call ("" for none).
	Token string
	// TLS configures https:// addresses (server CA, client certificate for
	// mutual TLS). Default: the system roots.
	TLS *tls.Config
	// HTTPClient, if set, replaces the pooled client the Client builds
	// (MaxConns connections kept per server).
	HTTPClient *http.Client
	// MaxConns bounds the pooled connections to the server. Default 256.
	MaxConns int
	// JSON sends JSON instead of binary protobuf (for debugging). Default
	// false.
	JSON bool
	// Compress asks the server for gzip-compressed responses (it compresses
	// those over its CompressMinBytes) and compresses requests over 8 KiB.
	// Default false: on loopback and fast links compression costs more CPU
	// than it saves (a leased batch of 32 random 256-byte payloads does
	// not shrink), and agents' payloads are often compressed already.
	Compress bool
	// Retries is how many times a call that is safe to repeat is sent
	// again after a connection failure. Default 4; negative: none.
	Retries int
	// RetryBackoff is the first wait between retries, doubling. Default
	// 50ms.
	RetryBackoff time.Duration
	// NoCoalesce turns off the coalescing of single-task Enqueue and Ack
	// calls into batch requests. Default false (coalescing on).
	NoCoalesce bool
	// CoalesceMax bounds a coalesced batch. Default 512.
	CoalesceMax int
	// CoalesceFlights bounds the batch requests in flight per queue and
	// kind; calls that arrive meanwhile wait and leave together in the
	// next batch. Default 4.
	CoalesceFlights int
	// CallTimeout bounds a coalesced batch request (which serves many
	// callers' contexts at once). Default 30s.
	CallTimeout time.Duration
}

// Client calls a flowdb server. It is safe for concurrent use; create one
// per server and share it.
type Client struct {
	o   Options
	kv  flowdbv1connect.KVServiceClient
	q   flowdbv1connect.QueueServiceClient
	reg flowdbv1connect.RegistryServiceClient
	vec flowdbv1connect.VectorServiceClient
	srv flowdbv1connect.ServerServiceClient
	txn flowdbv1connect.TxnServiceClient

	enq *coalescers[enqItem, uint64]
	ack *coalescers[ackItem, struct{}]
	hc  *http.Client
}

// New returns a client of the server at baseURL (http://HOST:PORT or
// https://HOST:PORT).
func New(baseURL string, o *Options) (*Client, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("client: %q: want http://HOST:PORT or https://HOST:PORT", baseURL)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 256
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 50 * time.Millisecond
	}
	if opts.CoalesceMax <= 0 {
		opts.CoalesceMax = 512
	}
	if opts.CoalesceFlights <= 0 {
		opts.CoalesceFlights = 4
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     opts.TLS,
			MaxIdleConns:        opts.MaxConns,
			MaxIdleConnsPerHost: opts.MaxConns,
			MaxConnsPerHost:     opts.MaxConns,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
		hc = &http.Client{Transport: tr}
	}
	var copts []connect.ClientOption
	if opts.JSON {
		copts = append(copts, connect.WithProtoJSON())
	}
	if opts.Compress {
		copts = append(copts, connect.WithSendGzip(), connect.WithCompressMinBytes(8<<10))
	} else {
		// Neither connect nor net/http (which asks for gzip on its own
		// and decompresses transparently) may ask for compressed
		// responses.
		copts = append(copts, connect.WithAcceptCompression("gzip", nil, nil), connect.WithInterceptors(identity{}))
	}
	if opts.Token != "" {
		copts = append(copts, connect.WithInterceptors(bearer(opts.Token)))
	}
	baseURL = strings.TrimSuffix(baseURL, "/")
	c := &Client{o: opts, hc: hc,
		kv:  flowdbv1connect.NewKVServiceClient(hc, baseURL, copts...),
		q:   flowdbv1connect.NewQueueServiceClient(hc, baseURL, copts...),
		reg: flowdbv1connect.NewRegistryServiceClient(hc, baseURL, copts...),
		vec: flowdbv1connect.NewVectorServiceClient(hc, baseURL, copts...),
		srv: flowdbv1connect.NewServerServiceClient(hc, baseURL, copts...),
		txn: flowdbv1connect.NewTxnServiceClient(hc, baseURL, copts...),
	}
	c.enq = newCoalescers(opts.CoalesceMax, opts.CoalesceFlights, c.sendEnqueues)
	c.ack = newCoalescers(opts.CoalesceMax, opts.CoalesceFlights, c.sendAcks)
	return c, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// bearer adds the Authorization header to every call.
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// identity asks for uncompressed responses (Options.Compress unset).
type identity struct{}

func (identity) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Accept-Encoding", "identity")
		return next(ctx, req)
	}
}

func (identity) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (identity) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// safety says whether a call may be sent twice.
type safety bool

const (
	// once: a call that must not be repeated once it may have reached the
	// server (an enqueue without idempotency key, an ack): a connection
	// failure after sending gives ErrOutcomeUnknown.
	once safety = false
	// idempotent: a read, or a write whose repetition changes nothing
	// (set, delete, register, heartbeat, upsert, an enqueue with an
	// idempotency key).
	idempotent safety = true
)

// call runs f with the client's retry policy. Any call is retried when its
// connection could not be made (it never left); an idempotent one also
// when the connection failed later or the server was closing. A call that
// is not idempotent and whose connection failed after sending gets
// ErrOutcomeUnknown, as does any call whose context ended while it was in
// flight.
func call[T any](ctx context.Context, c *Client, s safety, f func(context.Context) (*connect.Response[T], error)) (*T, error) {
	backoff := c.o.RetryBackoff
	for attempt := 0; ; attempt++ {
		resp, err := f(ctx)
		if err == nil {
			return resp.Msg, nil
		}
		err = fromConnect(err)
		if ctx.Err() != nil {
			if s == idempotent {
				return nil, err
			}
			return nil, outcomeUnknown(err)
		}
		again := notSent(err) || (s == idempotent && (transport(err) || retryable(err)))
		if !again || attempt >= c.o.Retries {
			if transport(err) && s == once && !notSent(err) {
				return nil, outcomeUnknown(err)
			}
			return nil, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		backoff *= 2
	}
}

// ms converts a duration to the wire's milliseconds.
func ms(d time.Duration) int64 { return d.Milliseconds() }

// unixNano converts a time to the wire (the zero time: 0).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNano converts a wire time.
func fromNano(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}
