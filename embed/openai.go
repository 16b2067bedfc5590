package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"
)

// OpenAIOptions configures an OpenAI-compatible embeddings client. Ollama,
// llama.cpp's server, vLLM and hosted services speak this wire format:
//
//	POST {URL}  {"model": M, "input": ["text", ...], "encoding_format": "float"}
//	200         {"data": [{"index": 0, "embedding": [0.1, ...]}, ...]}
//	4xx/5xx     {"error": {"message": "...", "type": "..."}}
type OpenAIOptions struct {
	// URL of the endpoint. A URL that does not end in "/embeddings" gets it
	// appended, so "http://localhost:11434/v1" works. Required.
	URL string
	// Model is sent as "model". Required.
	Model string
	// Dim is the dimension the model returns; a response of another length
	// fails with ErrDimension. Required (it fixes collections' dimensions
	// before the first call).
	Dim int
	// The bearer key, taken from the first of these that is set: Key
	// itself, the contents of KeyFile (surrounding space trimmed), or the
	// environment variable KeyEnv. None set: no Authorization header
	// (local servers need none). The key is never put in an error.
	Key     string
	KeyFile string
	KeyEnv  string
	// Timeout bounds each call (default 30s); a caller's earlier deadline
	// wins.
	Timeout time.Duration
	// Client is the HTTP client (default a new one; tests pass their own).
	Client *http.Client
}

// OpenAI is an Embedder that calls an OpenAI-compatible embeddings endpoint.
// It makes one request per Embed call and does not retry: the caller (a
// model, through a tool error) decides whether to try again.
type OpenAI struct {
	url, model, key string
	dim             int
	timeout         time.Duration
	client          *http.Client
}

// RemoteError is the error of a failed request; it matches ErrRemote.
type RemoteError struct {
	// Status is the HTTP status (0: the body, not the status, was wrong).
	Status int
	// Message is the endpoint's error message, or what was wrong with the
	// body.
	Message string
}

func (e *RemoteError) Error() string {
	if e.Status == 0 {
		return "embed: embeddings endpoint: " + e.Message
	}
	return fmt.Sprintf("embed: embeddings endpoint answered %d: %s", e.Status, e.Message)
}

// Is makes RemoteError match ErrRemote.
func (e *RemoteError) Is(target error) bool { return target == ErrRemote }

// NewOpenAI validates o and returns the client. It reads KeyFile now, so a
// missing file fails here and not at the first call.
func NewOpenAI(o OpenAIOptions) (*OpenAI, error) {
	if o.URL == "" || !(strings.HasPrefix(o.URL, "http://") || strings.HasPrefix(o.URL, "https://")) {
		return nil, fmt.Errorf("%w: embeddings URL %q must be http:// or https://", ErrInvalid, o.URL)
	}
	if o.Model == "" {
		return nil, fmt.Errorf("%w: no embeddings model", ErrInvalid)
	}
	if o.Dim <= 0 || o.Dim > 1<<16 {
		return nil, fmt.Errorf("%w: embeddings dimension %d", ErrInvalid, o.Dim)
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout", ErrInvalid)
	}
	e := &OpenAI{url: o.URL, model: o.Model, dim: o.Dim, timeout: o.Timeout, client: o.Client}
	if !strings.HasSuffix(e.url, "/embeddings") {
		e.url = strings.TrimSuffix(e.url, "/") + "/embeddings"
	}
	if e.timeout == 0 {
		e.timeout = 30 * time.Second
	}
	if e.client == nil {
		e.client = &http.Client{}
	}
	switch {
	case o.Key != "":
		e.key = o.Key
	case o.KeyFile != "":
		b, err := os.ReadFile(o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: embeddings key file: %v", ErrInvalid, err)
		}
		e.key = strings.TrimSpace(string(b))
	case o.KeyEnv != "":
		e.key = os.Getenv(o.KeyEnv)
		if e.key == "" {
			return nil, fmt.Errorf("%w: environment variable %s is empty", ErrInvalid, o.KeyEnv)
		}
	}
	return e, nil
}

// Name implements Embedder.
func (e *OpenAI) Name() string { return "openai:" + e.model }

// Dim implements Embedder.
func (e *OpenAI) Dim() int { return e.dim }

// MaxResponseSize bounds the body read from the endpoint.
const MaxResponseSize = 64 << 20

// Embed implements Embedder.
func (e *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := checkTexts(texts); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	body, err := json.Marshal(map[string]any{"model": e.model, "input": texts, "encoding_format": "float"})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.key != "" {
		req.Header.Set("Authorization", "Bearer "+e.key)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return nil, fmt.Errorf("%w after %v (%s)", ErrTimeout, e.timeout, e.url)
		}
		return nil, &RemoteError{Message: "request failed: " + e.redact(err.Error())}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w after %v (%s)", ErrTimeout, e.timeout, e.url)
		}
		return nil, &RemoteError{Status: resp.StatusCode, Message: "reading body: " + err.Error()}
	}
	if len(raw) > MaxResponseSize {
		return nil, &RemoteError{Status: resp.StatusCode, Message: "response too large"}
	}
	var r struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	jerr := json.Unmarshal(raw, &r)
	if resp.StatusCode != http.StatusOK {
		msg := http.StatusText(resp.StatusCode)
		if jerr == nil && r.Error != nil && r.Error.Message != "" {
			msg = r.Error.Message
		}
		return nil, &RemoteError{Status: resp.StatusCode, Message: e.redact(msg)}
	}
	if jerr != nil {
		return nil, &RemoteError{Message: "malformed response: " + jerr.Error()}
	}
	if len(r.Data) != len(texts) {
		return nil, &RemoteError{Message: fmt.Sprintf("%d embeddings for %d texts", len(r.Data), len(texts))}
	}
	out := make([][]float32, len(texts))
	for _, d := range r.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, &RemoteError{Message: fmt.Sprintf("bad or repeated index %d", d.Index)}
		}
		v := make([]float32, len(d.Embedding))
		for i, x := range d.Embedding {
			if math.Abs(x) > math.MaxFloat32 {
				return nil, fmt.Errorf("%w: value %d (%g) overflows float32", ErrNotFinite, i, x)
			}
			v[i] = float32(x)
		}
		if err := CheckVector(v, e.dim); err != nil {
			return nil, err
		}
		out[d.Index] = v
	}
	return out, nil
}

// redact removes the key from s, should an endpoint echo it.
func (e *OpenAI) redact(s string) string {
	if e.key == "" {
		return s
	}
	return strings.ReplaceAll(s, e.key, "[key]")
}
