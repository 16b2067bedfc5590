// Command embedquality measures the retrieval quality of flowdb's built-in
// hashed embedder (package embed) next to a plain keyword baseline (BM25),
// on a retrieval set built offline from the Go standard library's package
// documentation in GOROOT: for every package whose doc has a first sentence
// and at least -min bytes after it, the query is the first sentence with its
// "Package x" opening removed, and the target is the rest of the doc; every
// other package's rest is a distractor. It prints recall@1, recall@10 and
// MRR per method.
//
//	cd bench && go run ./embedquality [-min 300] [-dims 256,1024]
package main

import (
	"context"
	"flag"
	"fmt"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/flowdb/flowdb/embed"
)

type pair struct{ pkg, query, target string }

var opening = regexp.MustCompile(`^Package \S+ (is |are |provides |implements |contains |defines )?`)

// collect builds the retrieval set.
func collect(min int) ([]pair, error) {
	root, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %w", err)
	}
	src := filepath.Join(strings.TrimSpace(string(root)), "src")
	var out []pair
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		switch d.Name() {
		case "testdata", "vendor", "internal", "cmd":
			return filepath.SkipDir
		}
		fset := token.NewFileSet()
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil
		}
		docs := map[string]string{} // package name -> its longest file doc
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(path, e.Name()), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				continue
			}
			if f.Doc != nil && len(f.Doc.Text()) > len(docs[f.Name.Name]) {
				docs[f.Name.Name] = f.Doc.Text()
			} else if _, ok := docs[f.Name.Name]; !ok {
				docs[f.Name.Name] = ""
			}
		}
		for _, name := range slices.Sorted(maps.Keys(docs)) {
			if name == "main" || strings.HasSuffix(name, "_test") {
				continue
			}
			text := docs[name]
			var dp doc.Package
			syn := dp.Synopsis(text)
			i := strings.Index(text, syn[:min2(len(syn), 20)])
			if syn == "" || i != 0 {
				continue
			}
			// The synopsis normalizes spaces: cut the text after the
			// sentence's end, found by its last word.
			words := strings.Fields(syn)
			last := words[len(words)-1]
			j := strings.Index(text, last)
			if j < 0 {
				continue
			}
			rest := strings.TrimSpace(text[j+len(last):])
			q := strings.TrimSpace(opening.ReplaceAllString(syn, ""))
			if len(rest) < min || len(q) < 15 {
				continue
			}
			rel, _ := filepath.Rel(src, path)
			out = append(out, pair{pkg: rel, query: q, target: rest})
		}
		return nil
	})
	sort.Slice(out, func(a, b int) bool { return out[a].pkg < out[b].pkg })
	return out, err
}

func min2(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// scores of the kind: scores(q)[d] higher is better.
type scorer func(q int) []float64

type result struct {
	r1, r10, mrr float64
}

func evaluate(n int, score scorer) result {
	var r result
	for q := range n {
		s := score(q)
		rank := 1
		for d := range n {
			if d != q && s[d] > s[q] {
				rank++
			}
		}
		if rank == 1 {
			r.r1++
		}
		if rank <= 10 {
			r.r10++
		}
		r.mrr += 1 / float64(rank)
	}
	r.r1 /= float64(n)
	r.r10 /= float64(n)
	r.mrr /= float64(n)
	return r
}

// bm25 scores with k1 1.2, b 0.75 over embed.Words tokens.
func bm25(ps []pair) scorer {
	docs := make([]map[string]float64, len(ps))
	lens := make([]float64, len(ps))
	df := map[string]float64{}
	var avg float64
	for i, p := range ps {
		docs[i] = map[string]float64{}
		for _, w := range embed.Words(p.target) {
			docs[i][w]++
			lens[i]++
		}
		for w := range docs[i] {
			df[w]++
		}
		avg += lens[i]
	}
	avg /= float64(len(ps))
	N := float64(len(ps))
	return func(q int) []float64 {
		s := make([]float64, len(ps))
		for _, w := range embed.Words(ps[q].query) {
			idf := math.Log(1 + (N-df[w]+0.5)/(df[w]+0.5))
			for d := range ps {
				if tf := docs[d][w]; tf > 0 {
					s[d] += idf * tf * 2.2 / (tf + 1.2*(0.25+0.75*lens[d]/avg))
				}
			}
		}
		return s
	}
}

func hashed(ps []pair, dim int) (scorer, error) {
	h, err := embed.NewHashed(dim)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	emb := func(texts []string) ([][]float32, error) {
		var out [][]float32
		for i := 0; i < len(texts); i += embed.MaxBatch {
			batch := texts[i:min2(len(texts), i+embed.MaxBatch)]
			for j := range batch {
				if len(batch[j]) > embed.MaxTextSize {
					batch[j] = batch[j][:embed.MaxTextSize]
				}
			}
			vs, err := h.Embed(ctx, batch)
			if err != nil {
				return nil, err
			}
			out = append(out, vs...)
		}
		return out, nil
	}
	var qs, ds []string
	for _, p := range ps {
		qs, ds = append(qs, p.query), append(ds, p.target)
	}
	qv, err := emb(qs)
	if err != nil {
		return nil, err
	}
	dv, err := emb(ds)
	if err != nil {
		return nil, err
	}
	return func(q int) []float64 {
		s := make([]float64, len(ps))
		for d := range ps {
			var dot float64
			for i := range qv[q] {
				dot += float64(qv[q][i]) * float64(dv[d][i])
			}
			s[d] = dot
		}
		return s
	}, nil
}

func main() {
	min := flag.Int("min", 300, "least bytes of doc after the first sentence")
	dims := flag.String("dims", "256,1024", "hashed embedder dimensions")
	flag.Parse()
	ps, err := collect(*min)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("retrieval set: %d Go standard library packages (%s), query = first sentence, target = rest of the package doc\n\n", len(ps), runtime.Version())
	fmt.Println("| method | recall@1 | recall@10 | MRR |")
	fmt.Println("|---|---:|---:|---:|")
	r := evaluate(len(ps), bm25(ps))
	fmt.Printf("| BM25 (k1 1.2, b 0.75) | %.3f | %.3f | %.3f |\n", r.r1, r.r10, r.mrr)
	for _, ds := range strings.Split(*dims, ",") {
		dim, err := strconv.Atoi(ds)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		s, err := hashed(ps, dim)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		r := evaluate(len(ps), s)
		fmt.Printf("| hashed, %d dims (cosine) | %.3f | %.3f | %.3f |\n", dim, r.r1, r.r10, r.mrr)
	}
	fmt.Printf("| random ranking (expected) | %.3f | %.3f | - |\n", 1/float64(len(ps)), 10/float64(len(ps)))
}
