package server_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/flowdb/flowdb/client"
	"github.com/flowdb/flowdb/server"
)

// Responses are compressed only when the client asks (client
// Options.Compress) and only over the server's CompressMinBytes: the
// default client asks for none, although net/http would ask for gzip on
// its own.
func TestCompression(t *testing.T) {
	e := start(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	encodings := map[string]string{} // procedure -> response Content-Encoding
	h := e.srv.Handler()
	hs := server.HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		mu.Lock()
		encodings[r.URL.Path] = w.Header().Get("Content-Encoding")
		mu.Unlock()
	}), nil)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	ctx := context.Background()
	get := func(c *client.Client, key string) string {
		t.Helper()
		v, err := c.Get(ctx, "n", []byte(key))
		if err != nil || len(v) == 0 {
			t.Fatalf("get %s: %d bytes, %v", key, len(v), err)
		}
		mu.Lock()
		defer mu.Unlock()
		return encodings["/flowdb.v1.KVService/Get"]
	}
	plain, err := client.New("http://"+l.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := client.New("http://"+l.Addr().String(), &client.Options{Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close(); gz.Close() })
	if err := plain.Set(ctx, "n", []byte("big"), make([]byte, 20000)); err != nil {
		t.Fatal(err)
	}
	if err := plain.Set(ctx, "n", []byte("small"), make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if enc := get(plain, "big"); enc != "" {
		t.Fatalf("default client got a %q response", enc)
	}
	if enc := get(gz, "big"); enc != "gzip" {
		t.Fatalf("compressing client, 20 kB response: %q, want gzip", enc)
	}
	if enc := get(gz, "small"); enc != "" {
		t.Fatalf("compressing client, small response: %q, want none (under CompressMinBytes)", enc)
	}
}
