package embed_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowdb/flowdb/embed"
)

func cos(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestHashed(t *testing.T) {
	h, err := embed.NewHashed(0)
	if err != nil {
		t.Fatal(err)
	}
	if h.Dim() != embed.DefaultHashedDim {
		t.Fatalf("dim %d", h.Dim())
	}
	ctx := context.Background()
	vs, err := h.Embed(ctx, []string{
		"lease a task from the billing queue",
		"lease tasks from the billing queues",
		"the weather in Paris is sunny today",
		"lease a task from the billing queue",
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if len(v) != h.Dim() {
			t.Fatalf("vector %d has %d values", i, len(v))
		}
		if n := cos(v, v); math.Abs(n-1) > 1e-5 {
			t.Fatalf("vector %d norm² %v", i, n)
		}
	}
	if cos(vs[0], vs[3]) < 0.99999 {
		t.Fatal("same text, different vectors")
	}
	near, far := cos(vs[0], vs[1]), cos(vs[0], vs[2])
	if near <= far+0.3 {
		t.Fatalf("related texts %.3f not clearly closer than unrelated %.3f", near, far)
	}
	for _, bad := range [][]string{nil, {""}, {strings.Repeat("x", embed.MaxTextSize+1)}} {
		if _, err := h.Embed(ctx, bad); !errors.Is(err, embed.ErrInvalid) {
			t.Fatalf("Embed(%d texts) = %v, want ErrInvalid", len(bad), err)
		}
	}
	if _, err := embed.NewHashed(3); !errors.Is(err, embed.ErrInvalid) {
		t.Fatal(err)
	}
}

func TestNone(t *testing.T) {
	if _, err := (embed.None{Dimension: 4}).Embed(context.Background(), []string{"x"}); !errors.Is(err, embed.ErrNoText) {
		t.Fatal(err)
	}
	if err := embed.CheckVector([]float32{1, float32(math.NaN())}, 2); !errors.Is(err, embed.ErrNotFinite) {
		t.Fatal(err)
	}
	if err := embed.CheckVector([]float32{1}, 2); !errors.Is(err, embed.ErrDimension) {
		t.Fatal(err)
	}
}

// fakeMu guards what fakeEndpoint's handlers share with the test (a slow
// handler may still run when the test moves on).
var fakeMu sync.Mutex

// set sets *p to v under fakeMu; get reads *p under it.
func set(p *string, v string) { fakeMu.Lock(); *p = v; fakeMu.Unlock() }
func get(p *string) string    { fakeMu.Lock(); defer fakeMu.Unlock(); return *p }

// fakeEndpoint speaks the OpenAI embeddings wire format; behaviour picks
// what it does.
func fakeEndpoint(t *testing.T, dim int, behaviour *string, gotKey *string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
			http.Error(w, `{"error":{"message":"not found"}}`, 404)
			return
		}
		fakeMu.Lock()
		*gotKey = r.Header.Get("Authorization")
		behaviour := *behaviour
		fakeMu.Unlock()
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model == "" {
			http.Error(w, `{"error":{"message":"bad request"}}`, 400)
			return
		}
		dim := dim
		switch behaviour {
		case "error":
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":{"message":"rate limited, key sk-secret","type":"rate_limit"}}`))
			return
		case "slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return
		case "garbage":
			w.Write([]byte(`{"data": [`))
			return
		case "short":
			dim--
		case "nan":
		}
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var data []item
		// Answer in reverse order: the client must place by index.
		for i := len(req.Input) - 1; i >= 0; i-- {
			v := make([]float32, dim)
			v[0] = float32(len(req.Input[i]))
			data = append(data, item{Index: i, Embedding: v})
		}
		if behaviour == "nan" {
			w.Write([]byte(`{"data":[{"index":0,"embedding":[1e39,0,0,0]}]}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"data": data, "model": req.Model})
	}))
}

func TestOpenAI(t *testing.T) {
	behaviour, gotKey := "", ""
	srv := fakeEndpoint(t, 4, &behaviour, &gotKey)
	defer srv.Close()
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("sk-secret\n"), 0o600)
	e, err := embed.NewOpenAI(embed.OpenAIOptions{URL: srv.URL + "/v1", Model: "m", Dim: 4, KeyFile: keyFile, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	vs, err := e.Embed(ctx, []string{"a", "bbb"})
	if err != nil {
		t.Fatal(err)
	}
	if vs[0][0] != 1 || vs[1][0] != 3 || len(vs[1]) != 4 {
		t.Fatalf("vectors %v", vs)
	}
	if get(&gotKey) != "Bearer sk-secret" {
		t.Fatalf("Authorization %q", get(&gotKey))
	}

	cases := []struct {
		behaviour string
		want      error
	}{
		{"error", embed.ErrRemote},
		{"slow", embed.ErrTimeout},
		{"garbage", embed.ErrRemote},
		{"short", embed.ErrDimension},
		{"nan", embed.ErrNotFinite},
	}
	for _, c := range cases {
		set(&behaviour, c.behaviour)
		start := time.Now()
		_, err := e.Embed(ctx, []string{"a"})
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.behaviour, err, c.want)
		}
		if strings.Contains(err.Error(), "sk-secret") {
			t.Fatalf("%s: key leaked into %q", c.behaviour, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s: took %v, timeout 300ms", c.behaviour, d)
		}
	}
	var re *embed.RemoteError
	set(&behaviour, "error")
	if _, err := e.Embed(ctx, []string{"a"}); !errors.As(err, &re) || re.Status != 429 || !strings.Contains(re.Message, "rate limited") {
		t.Fatalf("%v", err)
	}

	// The caller's deadline wins over the longer timeout.
	set(&behaviour, "slow")
	e2, _ := embed.NewOpenAI(embed.OpenAIOptions{URL: srv.URL + "/v1/embeddings", Model: "m", Dim: 4})
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := e2.Embed(cctx, []string{"a"}); !errors.Is(err, embed.ErrTimeout) {
		t.Fatalf("caller deadline: %v", err)
	}
	if get(&gotKey) != "" {
		t.Fatalf("no key configured, sent %q", get(&gotKey))
	}

	t.Setenv("FLOWDB_TEST_EMBED_KEY", "sk-env")
	set(&behaviour, "")
	e3, err := embed.NewOpenAI(embed.OpenAIOptions{URL: srv.URL + "/v1", Model: "m", Dim: 4, KeyEnv: "FLOWDB_TEST_EMBED_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e3.Embed(ctx, []string{"x"}); err != nil || get(&gotKey) != "Bearer sk-env" {
		t.Fatalf("%v %q", err, get(&gotKey))
	}

	for _, o := range []embed.OpenAIOptions{
		{URL: "ftp://x", Model: "m", Dim: 4},
		{URL: srv.URL, Dim: 4},
		{URL: srv.URL, Model: "m"},
		{URL: srv.URL, Model: "m", Dim: 4, KeyFile: "/nonexistent/key"},
		{URL: srv.URL, Model: "m", Dim: 4, KeyEnv: "FLOWDB_TEST_UNSET_VARIABLE"},
	} {
		if _, err := embed.NewOpenAI(o); !errors.Is(err, embed.ErrInvalid) {
			t.Fatalf("%+v: %v", o, err)
		}
	}
}
