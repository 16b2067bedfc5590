// Package embed turns text into vectors for flowdb's vector memory.
//
// An Embedder maps texts to vectors of one fixed dimension. Three kinds are
// provided:
//
//  1. None: vectors are supplied by the caller; Embed refuses text with
//     ErrNoText.
//  2. OpenAI: a client of an OpenAI-compatible /v1/embeddings endpoint
//     (Ollama, llama.cpp server, vLLM, hosted services), configured by URL,
//     model, dimension and a bearer key given directly, read from a file or
//     from an environment variable. Every call is bounded by a timeout;
//     failures are typed: ErrTimeout, ErrRemote (a *RemoteError with the
//     HTTP status and the endpoint's message), ErrDimension, ErrNotFinite.
//     It never retries and never puts the key in an error.
//  3. Hashed: the built-in embedder. No model, no network, deterministic:
//     signed feature hashing of word unigrams, word bigrams and character
//     trigrams into Dim (default 256) buckets, L2-normalized (use cosine).
//
// Contract: Embed returns exactly one vector of length Dim per text, in
// order, or an error and no vectors. Texts must be non-empty and at most
// MaxTextSize bytes, at most MaxBatch per call (ErrInvalid). Every Embedder
// here is safe for concurrent use. Returned vectors belong to the caller.
//
// # What the hashed embedder is worth
//
// Hashed is a lexical method: it finds texts that share words and word
// pieces with the query, nothing more. It knows no synonyms and no meaning,
// so a query phrased in other words than the stored text is found only
// through the words they happen to share. It is there so that memory works
// out of the box, with no model to download; a real embedding model behind
// OpenAI retrieves by meaning and should be preferred where one is
// available.
//
// It was measured against a plain keyword baseline (BM25, k1 1.2, b 0.75,
// same tokenizer) on a retrieval set built offline from the Go standard
// library's package documentation (bench/embedquality: the query is a
// package doc's first sentence without its "Package x" opening, the target
// is the rest of that doc, every other package's doc is a distractor). On
// that set the hashed embedder at 256 dimensions finds the right document
// less often than BM25 at rank 1 and at rank 10 (collisions in 256 buckets
// and the lack of inverse document frequency cost it), and closes part of
// the gap at higher dimensions. bench/RESULTS.md holds the dated figures
// (recall@1, recall@10, MRR) and the command that printed them.
package embed
