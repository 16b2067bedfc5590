package embed

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/cespare/xxhash/v2"
)

// DefaultHashedDim is the dimension of NewHashed(0).
const DefaultHashedDim = 256

// Hashed is the built-in embedder: no model, no network, no state. A text's
// vector is the signed feature hashing ("hashing trick") of three feature
// families, each feature counted with a sub-linear weight 1+ln(count):
//
//   - word unigrams (lower-cased letter/digit runs, a short English stop
//     list removed), weight 1;
//   - adjacent word bigrams, weight 0.5;
//   - character trigrams of each word padded with '<' and '>', weight 0.25
//     (so "queue" and "queues" share most of their features).
//
// Each feature is hashed with xxhash into one of Dim buckets and a sign; the
// sum is L2-normalized, so cosine distance is the natural metric. The same
// text always gives the same vector on every machine and version of this
// package that keeps the feature list above (the feature list is part of
// the contract: changing it changes stored vectors).
type Hashed struct {
	dim int
}

// NewHashed returns the hashed embedder with dim buckets (0: DefaultHashedDim).
func NewHashed(dim int) (*Hashed, error) {
	if dim == 0 {
		dim = DefaultHashedDim
	}
	if dim < 8 || dim > 1<<16 {
		return nil, fmt.Errorf("%w: hashed dimension %d (want 8..65536)", ErrInvalid, dim)
	}
	return &Hashed{dim: dim}, nil
}

// Name implements Embedder.
func (h *Hashed) Name() string { return "hashed-" + strconv.Itoa(h.dim) }

// Dim implements Embedder.
func (h *Hashed) Dim() int { return h.dim }

// Embed implements Embedder. A text with no letters or digits embeds to the
// zero vector, which cosine collections refuse (the caller sees that error).
func (h *Hashed) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := checkTexts(texts); err != nil {
		return nil, err
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = h.vector(t)
	}
	return out, nil
}

// vector embeds one text.
func (h *Hashed) vector(text string) []float32 {
	counts := make(map[string]float64)
	words := Words(text)
	prev := ""
	for _, w := range words {
		if !stop[w] {
			counts["w:"+w] += 1
		}
		if prev != "" {
			counts["b:"+prev+" "+w] += 0.5
		}
		prev = w
		p := "<" + w + ">"
		r := []rune(p)
		for j := 0; j+3 <= len(r); j++ {
			counts["c:"+string(r[j:j+3])] += 0.25
		}
	}
	v := make([]float32, h.dim)
	for f, c := range counts {
		x := xxhash.Sum64String(f)
		idx := int(x % uint64(h.dim))
		w := 1 + math.Log(c/unit(f))
		w *= unit(f)
		if x>>63 == 1 {
			w = -w
		}
		v[idx] += float32(w)
	}
	Normalize(v)
	return v
}

// unit is the weight of one occurrence of feature f.
func unit(f string) float64 {
	switch f[0] {
	case 'w':
		return 1
	case 'b':
		return 0.5
	}
	return 0.25
}

// Words splits text into lower-cased runs of letters and digits: the
// tokenizer of Hashed, exported so that keyword baselines tokenize alike.
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// stop is the stop list of word unigrams.
var stop = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be by for from has have in is it its of on or that the
		this to was were will with which when if then than not no can may must should do does this these those
		there their they them we you he she his her our your i me my us`) {
		m[w] = true
	}
	return m
}()
