package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Embedder turns texts into vectors of one fixed dimension.
//
// Embed returns one vector per text, in order, each of length Dim. It must
// honour ctx: a caller's deadline bounds the call. Implementations are safe
// for concurrent use.
type Embedder interface {
	// Name identifies the embedder and its model in descriptions and
	// errors, e.g. "hashed-256" or "openai:nomic-embed-text".
	Name() string
	// Dim is the length of every vector Embed returns.
	Dim() int
	// Embed embeds texts (at least one) and returns their vectors.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalid: an argument was refused before anything was sent
	// (no texts, an empty or oversized text, a bad option).
	ErrInvalid = errors.New("embed: invalid argument")
	// ErrNoText: the embedder embeds no text (None): the caller must
	// supply vectors.
	ErrNoText = errors.New("embed: this embedder takes no text; supply vectors")
	// ErrRemote: the embeddings endpoint answered with an error status or
	// a body that is not a valid embeddings response. *RemoteError holds
	// the details.
	ErrRemote = errors.New("embed: embeddings endpoint failed")
	// ErrTimeout: the endpoint did not answer within the timeout (or the
	// caller's deadline).
	ErrTimeout = errors.New("embed: embeddings endpoint timed out")
	// ErrDimension: the endpoint returned vectors of a length other than
	// the configured dimension, or vectors of different lengths.
	ErrDimension = errors.New("embed: wrong vector dimension")
	// ErrNotFinite: a vector holds NaN or an infinity.
	ErrNotFinite = errors.New("embed: vector not finite")
)

// MaxTextSize is the longest text, in bytes, any embedder here accepts.
const MaxTextSize = 64 << 10

// MaxBatch is the most texts one Embed call accepts.
const MaxBatch = 256

// checkTexts validates a batch of texts.
func checkTexts(texts []string) error {
	if len(texts) == 0 {
		return fmt.Errorf("%w: no texts", ErrInvalid)
	}
	if len(texts) > MaxBatch {
		return fmt.Errorf("%w: %d texts, at most %d", ErrInvalid, len(texts), MaxBatch)
	}
	for i, t := range texts {
		if t == "" {
			return fmt.Errorf("%w: text %d is empty", ErrInvalid, i)
		}
		if len(t) > MaxTextSize {
			return fmt.Errorf("%w: text %d is %d bytes, at most %d", ErrInvalid, i, len(t), MaxTextSize)
		}
	}
	return nil
}

// CheckVector reports ErrDimension if v's length is not dim (dim 0: any
// non-empty length) and ErrNotFinite if v holds NaN or an infinity.
func CheckVector(v []float32, dim int) error {
	if len(v) == 0 || (dim > 0 && len(v) != dim) {
		return fmt.Errorf("%w: %d values, want %d", ErrDimension, len(v), dim)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: value %d is %v", ErrNotFinite, i, x)
		}
	}
	return nil
}

// Normalize scales v to unit L2 length in place; a zero vector stays zero.
func Normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

// None is the embedder of caller-supplied vectors: it embeds no text
// (ErrNoText) and only states the dimension vectors must have.
type None struct {
	// Dimension of the vectors callers supply; 0 means any (the first
	// vector stored in a collection fixes it).
	Dimension int
}

// Name implements Embedder.
func (n None) Name() string { return "none" }

// Dim implements Embedder.
func (n None) Dim() int { return n.Dimension }

// Embed implements Embedder: it always fails with ErrNoText.
func (n None) Embed(context.Context, []string) ([][]float32, error) { return nil, ErrNoText }
