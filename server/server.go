package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/flowdb/flowdb/api/flowdb/v1/flowdbv1connect"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/flowdb/flowdb/server/auth"
)

// Options configures a Server. DB, Queues, Registry and Vectors are
// required; the zero value of every other field takes its default.
type Options struct {
	DB       *db.DB
	Queues   *queue.Manager
	Registry *registry.Registry
	Vectors  *hnsw.Manager
	// Scheduler, if set, feeds the Assignments stream and its figures
	// appear in /metrics. Without one, Assignments fails with
	// ErrBadRequest.
	Scheduler *sched.Scheduler
	// Cluster, if set (a replicated node), adds Raft figures to /metrics
	// and readiness to Health.
	Cluster Cluster
	// Tokens authenticates callers. nil: no authentication, every caller
	// may do everything; CheckListen allows that on loopback only.
	Tokens *auth.Store
	// MaxRequestBytes bounds a request body (a message, once
	// decompressed). Default 40 MiB (a key-value batch may encode to
	// db.MaxBatchBytes, 32 MiB).
	MaxRequestBytes int
	// CompressMinBytes is the smallest response compressed for a client
	// that accepts compression (gzip); smaller ones go as they are, since
	// compressing a few hundred bytes costs more CPU than it saves on any
	// link. Default 8 KiB; negative: compress every response a client
	// accepts compressed.
	CompressMinBytes int
	// MaxLeaseWait bounds a Lease's wait_ms. Default 30s.
	MaxLeaseWait time.Duration
	// ScanPageSize is the largest page a Scan returns. Default 1,000.
	ScanPageSize int
	// AllowedHosts are host names (without port) that requests may name in
	// their Host header besides IP literals and "localhost" (the rule that
	// defeats DNS rebinding). Add the server's DNS names here.
	AllowedHosts []string
	// AllowedOrigins are browser origins ("https://ops.example.com") whose
	// state-changing requests are accepted besides same-origin ones.
	AllowedOrigins []string
	// Logger receives the server's events. Default DB.Logger(). Tokens
	// are never logged.
	Logger *slog.Logger
}

// Cluster is what a replicated node tells the server (flowctl adapts
// raftsm's *Node to it).
type Cluster interface {
	// Shards returns per-shard Raft figures, for Health and /metrics.
	Shards(ctx context.Context) ([]ShardFigures, error)
	// Counters returns the node's proposals, their retries and timeouts.
	Counters() (proposals, retries, timeouts uint64)
}

// ShardFigures are one shard's Raft figures on this node.
type ShardFigures struct {
	Shard     uint32
	HasLeader bool // some replica leads the shard, as this node knows
	IsLeader  bool // this node's replica leads it
	Term      uint64
	Applied   uint64
}

// Server serves the network API over one store. Create it with New; serve
// Handler on a listener CheckListen approved.
type Server struct {
	o       Options
	mux     *http.ServeMux
	metrics *metrics
	log     *slog.Logger
}

// New returns a Server over o's store.
func New(o Options) (*Server, error) {
	if o.DB == nil || o.Queues == nil || o.Registry == nil || o.Vectors == nil {
		return nil, fmt.Errorf("%w: DB, Queues, Registry and Vectors are required", ErrBadRequest)
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 40 << 20
	}
	if o.MaxLeaseWait <= 0 {
		o.MaxLeaseWait = 30 * time.Second
	}
	switch {
	case o.CompressMinBytes == 0:
		o.CompressMinBytes = 8 << 10
	case o.CompressMinBytes < 0:
		o.CompressMinBytes = 0
	}
	if o.ScanPageSize <= 0 {
		o.ScanPageSize = 1000
	}
	if o.Logger == nil {
		o.Logger = o.DB.Logger()
	}
	s := &Server{o: o, mux: http.NewServeMux(), log: o.Logger}
	s.metrics = newMetrics(s)
	opts := []connect.HandlerOption{
		connect.WithInterceptors(s.interceptor()),
		connect.WithReadMaxBytes(o.MaxRequestBytes),
		connect.WithCompressMinBytes(o.CompressMinBytes),
	}
	s.mux.Handle(flowdbv1connect.NewKVServiceHandler(&kvService{s}, opts...))
	s.mux.Handle(flowdbv1connect.NewQueueServiceHandler(&queueService{s}, opts...))
	s.mux.Handle(flowdbv1connect.NewRegistryServiceHandler(&registryService{s}, opts...))
	s.mux.Handle(flowdbv1connect.NewVectorServiceHandler(&vectorService{s}, opts...))
	s.mux.Handle(flowdbv1connect.NewServerServiceHandler(&serverService{s}, opts...))
	s.mux.Handle(flowdbv1connect.NewTxnServiceHandler(&txnService{s}, opts...))
	s.mux.Handle("GET /metrics", s.Require(auth.Server, "metrics", auth.Read, s.metrics.handler()))
	return s, nil
}

// Handle mounts h at pattern (http.ServeMux syntax) behind the server's
// middleware: the Host and cross-site checks, the size limit and
// authentication. h itself decides what each request needs (Require
// wraps a handler with one scope check); it finds the caller with
// auth.Caller. The MCP endpoint, the dashboard and the node's cluster
// administration mount here.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Require wraps h so that it runs only for callers whose token allows level
// on resource/name: 401 without a valid token, 403 outside its scopes.
func (s *Server) Require(resource, name string, level auth.Level, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := auth.Caller(r.Context())
		if err == nil {
			err = tok.Check(resource, name, level)
		}
		switch {
		case errors.Is(err, auth.ErrUnauthenticated):
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowdb"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
		case err != nil:
			http.Error(w, err.Error(), http.StatusForbidden)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// Handler returns the server's HTTP handler: every mounted service behind
// the browser-forgery checks, the size limit and authentication.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkBrowser(r); err != nil {
			s.metrics.rejected.WithLabelValues("forgery").Inc()
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		if r.ContentLength > int64(s.o.MaxRequestBytes) {
			s.metrics.rejected.WithLabelValues("size").Inc()
			// A Connect error body, so that Connect clients read the code;
			// gRPC requests carry no length and meet connect's own limit.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"code":"resource_exhausted","message":"request body of %d bytes exceeds the limit of %d"}`, r.ContentLength, s.o.MaxRequestBytes)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, int64(s.o.MaxRequestBytes)+1)
		if s.o.Tokens != nil {
			tok, err := s.o.Tokens.Authenticate(auth.Bearer(r.Header))
			if err != nil {
				s.metrics.rejected.WithLabelValues("unauthenticated").Inc()
			}
			r = r.WithContext(auth.WithCaller(r.Context(), tok, err))
		}
		s.mux.ServeHTTP(w, r)
	})
}

// simpleTypes are the content types a browser sends cross-site without a
// preflight (an HTML form or a plain fetch).
var simpleTypes = map[string]bool{"text/plain": true, "application/x-www-form-urlencoded": true, "multipart/form-data": true}

// apiTypes are the content types Connect, gRPC and gRPC-Web clients send,
// spelled as they send them; a request with one needs no parsing.
var apiTypes = map[string]bool{"application/proto": true, "application/json": true, "application/grpc": true,
	"application/grpc+proto": true, "application/grpc-web+proto": true, "application/connect+proto": true, "application/connect+json": true}

// checkBrowser rejects requests a web page could make a browser send:
// a Host header that names a foreign host (DNS rebinding), and, for every
// method but GET and HEAD, a cross-site Sec-Fetch-Site, a foreign Origin,
// or a content type a form or a simple fetch can send (or none).
func (s *Server) checkBrowser(r *http.Request) error {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if !s.hostAllowed(host) {
		return fmt.Errorf("host %q not allowed (add it with --allowed-host)", r.Host)
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return fmt.Errorf("cross-site request (Sec-Fetch-Site: %s) refused", site)
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.originAllowed(origin, r.Host) {
		return fmt.Errorf("origin %q not allowed", origin)
	}
	ct := r.Header.Get("Content-Type")
	if apiTypes[ct] {
		return nil // the content types of the API's own clients, as they send them
	}
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || simpleTypes[mt] {
		return fmt.Errorf("content type %q refused: state-changing requests must be application/json, application/proto or gRPC", ct)
	}
	return nil
}

func (s *Server) hostAllowed(host string) bool {
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	for _, h := range s.o.AllowedHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func (s *Server) originAllowed(origin, host string) bool {
	for _, o := range s.o.AllowedOrigins {
		if o == origin {
			return true
		}
	}
	// Same origin: the Origin's host:port is the request's Host.
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}

// interceptor authenticates Connect calls (the middleware found the
// caller), counts them, times them and turns their errors into Connect
// errors that carry their classes.
func (s *Server) interceptor() connect.Interceptor { return &interceptor{s} }

type interceptor struct{ s *Server }

// public are the procedures open to callers without a token.
var public = map[string]bool{flowdbv1connect.ServerServiceHealthProcedure: true}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		proc := req.Spec().Procedure
		var resp connect.AnyResponse
		_, err := auth.Caller(ctx)
		if err == nil || public[proc] {
			resp, err = next(ctx, req)
		}
		err = i.s.toConnect(err)
		i.s.metrics.observe(proc, err, time.Since(start))
		return resp, err
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		_, err := auth.Caller(ctx)
		if err == nil {
			err = next(ctx, conn)
		}
		err = i.s.toConnect(err)
		i.s.metrics.observe(conn.Spec().Procedure, err, time.Since(start))
		return err
	}
}

// allow checks the caller of ctx against one scope.
func (s *Server) allow(ctx context.Context, resource, name string, level auth.Level) error {
	tok, err := auth.Caller(ctx)
	if err != nil {
		return err
	}
	return tok.Check(resource, name, level)
}

// catalogBarrier makes the registry reads that follow linearizable on a
// replica (the registry's view lives on the catalog shard and its lookups
// read memory); nothing on a standalone store.
func (s *Server) catalogBarrier(ctx context.Context) error {
	return s.o.DB.ReadBarrier(ctx, keys.CatalogShard)
}

// nameBarrier is catalogBarrier for the data shard of a queue or
// collection.
func (s *Server) nameBarrier(ctx context.Context, name string) error {
	return s.o.DB.ReadBarrier(ctx, s.o.DB.Placement().ShardFor(name))
}

// caller returns ctx's token (nil without authentication). A caller that
// failed authentication gets a token without scopes: the interceptor
// refuses it before any handler runs, and were that check ever skipped,
// it would still see nothing.
func caller(ctx context.Context) *auth.Token {
	t, err := auth.Caller(ctx)
	if err != nil {
		return &auth.Token{Name: "(unauthenticated)"}
	}
	return t
}

// ErrInsecure: a listen address the server refuses to serve on as
// configured.
var ErrInsecure = errors.New("server: insecure listener refused")

// CheckListen applies the listening policy: on a non-loopback address the
// server needs TLS (unless insecure is set) and a tokens file (always:
// without one every caller could do everything).
func CheckListen(addr string, tlsOn, tokens, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInsecure, addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	if !tokens {
		return fmt.Errorf("%w: %s is not loopback: give a tokens file (--tokens)", ErrInsecure, addr)
	}
	if !tlsOn && !insecure {
		return fmt.Errorf("%w: %s is not loopback: give --tls-cert and --tls-key, or --insecure to serve plain text", ErrInsecure, addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TLSConfig loads a server certificate and key, and with clientCA a CA
// whose certificates clients must present (mutual TLS).
func TLSConfig(certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", clientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// HTTPServer returns an http.Server for h that speaks HTTP/1.1 and HTTP/2,
// the latter also in clear text (h2c, for gRPC clients on loopback).
func HTTPServer(h http.Handler, tc *tls.Config) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, TLSConfig: tc, Protocols: &p, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
}
