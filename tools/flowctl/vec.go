package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/vecio"
	"github.com/flowdb/flowdb/quant"
	"github.com/spf13/cobra"
)

func (a *app) vecCmd() *cobra.Command {
	c := &cobra.Command{Use: "vec", Short: "Vector collections: create, list, stats, import, compact, search, get, delete, drop"}
	c.AddCommand(a.vecCreateCmd(), a.vecListCmd(), a.vecStatsCmd(), a.vecImportCmd(), a.vecCompactCmd(), a.vecSearchCmd(),
		a.vecGetCmd(), a.vecDeleteCmd(), a.vecDropCmd())
	return c
}

func (a *app) vecCreateCmd() *cobra.Command {
	var cfg hnsw.Config
	var metric string
	c := &cobra.Command{
		Use:   "create NAME --dim N",
		Short: "Create a collection (no-op if it exists with the same settings)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := quant.ParseMetric(metric)
			if err != nil {
				return usageError{err}
			}
			cfg.Name, cfg.Metric = args[0], m
			return a.withStore(mayCreate, func(s *store) (output, error) {
				err := s.V.Create(cmd.Context(), cfg)
				if errors.Is(err, hnsw.ErrExists) {
					if st, serr := s.V.Stats(cfg.Name); serr == nil {
						return output{}, fmt.Errorf("%w with other settings: %s", err, configDiff(cmd, st.Config, cfg))
					}
				}
				return output{}, err
			})
		},
	}
	f := c.Flags()
	f.IntVar(&cfg.Dim, "dim", 0, "dimension (required)")
	f.StringVar(&metric, "metric", "l2", "l2, ip or cosine")
	f.IntVar(&cfg.M, "m", 0, "neighbors per node (default 16)")
	f.IntVar(&cfg.EfConstruction, "ef-construction", 0, "candidate list while inserting (default 200)")
	f.IntVar(&cfg.Ef, "ef", 0, "default search ef (default 64)")
	f.IntVar(&cfg.TrainSize, "train", 0, "vectors the quantizer is trained on; the graph is built at that size (default 1000)")
	f.BoolVar(&cfg.Float, "float", false, "quantization off: the graph keeps float32 vectors in RAM (4x the memory, exact distances)")
	return c
}

// configDiff says how the settings asked for (those given on the command
// line, and the dimension and metric) differ from a collection's.
func configDiff(cmd *cobra.Command, have, want hnsw.Config) string {
	var d []string
	diff := func(flag, name string, h, w any) {
		if (flag == "" || cmd.Flags().Changed(flag)) && h != w {
			d = append(d, fmt.Sprintf("%s is %v, not %v", name, h, w))
		}
	}
	diff("", "dim", have.Dim, want.Dim)
	diff("", "metric", have.Metric, want.Metric)
	diff("m", "m", have.M, want.M)
	diff("ef-construction", "ef-construction", have.EfConstruction, want.EfConstruction)
	diff("ef", "ef", have.Ef, want.Ef)
	diff("train", "train", have.TrainSize, want.TrainSize)
	diff("float", "float", have.Float, want.Float)
	if len(d) == 0 {
		return "(a default the collection was created with)"
	}
	return strings.Join(d, ", ")
}

// collectionJSON is a collection's settings and size, as --json prints it.
type collectionJSON struct {
	Name           string `json:"name"`
	Dim            int    `json:"dim"`
	Metric         string `json:"metric"`
	M              int    `json:"m"`
	EfConstruction int    `json:"ef_construction"`
	Ef             int    `json:"ef"`
	TrainSize      int    `json:"train_size"`
	Quantized      bool   `json:"quantized"`
	Vectors        int    `json:"vectors"`
	Trained        bool   `json:"trained"`
}

func toCollectionJSON(st hnsw.Stats) collectionJSON {
	c := st.Config
	return collectionJSON{Name: c.Name, Dim: c.Dim, Metric: c.Metric.String(), M: c.M, EfConstruction: c.EfConstruction,
		Ef: c.Ef, TrainSize: c.TrainSize, Quantized: !c.Float, Vectors: st.Vectors, Trained: st.Trained}
}

func (a *app) vecListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List collections",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				var out []hnsw.Stats
				var js []collectionJSON
				for _, n := range s.V.Collections() {
					st, err := s.V.Stats(n)
					if err != nil {
						return output{}, err
					}
					out = append(out, st)
					js = append(js, toCollectionJSON(st))
				}
				return output{JSON: js, Text: func(w io.Writer) {
					fmt.Fprintf(w, "%-24s %6s %-7s %10s %s\n", "NAME", "DIM", "METRIC", "VECTORS", "GRAPH")
					for _, st := range out {
						fmt.Fprintf(w, "%-24s %6d %-7s %10d %v\n", st.Config.Name, st.Config.Dim, st.Config.Metric, st.Vectors, st.Trained)
					}
				}}, nil
			})
		},
	}
}

func (a *app) vecStatsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats NAME",
		Short: "A collection's settings and size",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				st, err := s.V.Stats(args[0])
				if err != nil {
					return output{}, err
				}
				return output{JSON: toCollectionJSON(st), Text: func(w io.Writer) {
					c := st.Config
					fmt.Fprintf(w, "collection  %s\ndim         %d\nmetric      %s\nM           %d\nefC         %d\nef          %d\nvectors     %d\n",
						c.Name, c.Dim, c.Metric, c.M, c.EfConstruction, c.Ef, st.Vectors)
					if c.Float {
						fmt.Fprintf(w, "quantized   no (float32 graph)\n")
					} else {
						fmt.Fprintf(w, "quantized   int8\ngraph       %v (built at %d vectors)\n", st.Trained, c.TrainSize)
					}
				}}, nil
			})
		},
	}
}

// jsonVector is one line of a JSON-lines import, and what `vec get`
// prints.
type jsonVector struct {
	ID     vecID     `json:"id"`
	Vector []float32 `json:"vector"`
	Tags   []string  `json:"tags,omitempty"`
}

// vecID is a vector id in JSON: printed as a string (ids may exceed 2^53),
// read as a string or a number.
type vecID uint64

func (v vecID) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(v), 10) + `"`), nil
}

func (v *vecID) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("id %s: want an integer 0..2^64-1 (a number or a string)", b)
	}
	*v = vecID(n)
	return nil
}

const vecImportHelp = `Import vectors into collection NAME, in batches of --batch vectors (one record
each), then compact the collection's tables (see vec compact; --compact=false
skips it).

Formats (--format, else guessed from the file name; .gz files are unzipped):
  fvecs  little-endian: int32 dimension, then that many float32, per vector;
         ids 0, 1, 2, ... in file order
  idx    IDX images (as Fashion-MNIST's train-images-idx3-ubyte), one vector
         per image; ids 0, 1, 2, ... in file order
  jsonl  one JSON object per line (blank lines skipped):
           {"id": 7, "vector": [0.1, 0.2, ...], "tags": ["a", "b"]}
         id: 0..2^64-1, a number or a string (required); vector: numbers
         (required); tags: strings (optional). Any other field is an error,
         or, with --strict=false, a warning on stderr and ignored.

The file is read in full and checked before anything is written: a malformed
file changes nothing (exit 2). A vector the collection refuses (wrong
dimension, NaN, a zero vector under cosine) stops the import at its batch;
SIGINT or SIGTERM stops it after the batch being written. Either way flowctl
says how many vectors were committed, compacts what was imported, and
--resume on a rerun skips the ids already present.`

func (a *app) vecImportCmd() *cobra.Command {
	var format string
	var limit, batch int
	compact, strict := true, true
	var resume bool
	c := &cobra.Command{
		Use:         "import NAME FILE",
		Short:       "Import vectors from .fvecs, IDX (Fashion-MNIST) or JSON lines; gzip ok",
		Long:        vecImportHelp,
		Args:        exactArgs(2, "NAME and FILE"),
		Annotations: map[string]string{pathArgs: "1", longRunning: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, path := args[0], args[1]
			if format == "" {
				switch {
				case strings.Contains(path, ".fvecs"):
					format = "fvecs"
				case strings.Contains(path, "idx"):
					format = "idx"
				default:
					format = "jsonl"
				}
			}
			if batch < 1 || batch > hnsw.MaxBatch {
				return usageError{fmt.Errorf("--batch must be 1..%d", hnsw.MaxBatch)}
			}
			if limit < 0 {
				return usageError{errors.New("--limit must be >= 0")}
			}
			if format != "fvecs" && format != "idx" && format != "jsonl" {
				return usageError{fmt.Errorf("--format must be fvecs, jsonl or idx")}
			}
			r, err := vecio.Open(path)
			if err != nil {
				return err
			}
			defer r.Close()
			var vs []hnsw.Vector
			switch format {
			case "fvecs", "idx":
				var raw [][]float32
				if format == "fvecs" {
					raw, err = vecio.ReadFvecs(r, limit)
				} else {
					raw, err = vecio.ReadIDX(r, limit)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				for i, v := range raw {
					vs = append(vs, hnsw.Vector{ID: uint64(i), Values: v})
				}
			case "jsonl":
				if vs, err = readJSONL(r, limit, strict, a.errOut); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				return a.importVectors(cmd.Context(), s, name, vs, batch, resume, compact)
			})
		},
	}
	c.Flags().BoolVar(&compact, "compact", true, "compact the collection's tables when the import ends (see vec compact)")
	c.Flags().StringVar(&format, "format", "", "fvecs, jsonl or idx (default: from the file name)")
	c.Flags().IntVar(&limit, "limit", 0, "import at most this many (0: all)")
	c.Flags().IntVar(&batch, "batch", 1000, "vectors per record")
	c.Flags().BoolVar(&strict, "strict", true, "an unknown JSON-lines field is an error (false: a warning)")
	c.Flags().BoolVar(&resume, "resume", false, "skip the vectors whose ids the collection already holds (rerun of a stopped import)")
	return c
}

// importJSON is what vec import prints with --json.
type importJSON struct {
	Imported  int  `json:"imported"`
	Skipped   int  `json:"skipped"`
	Compacted bool `json:"compacted"`
}

// importVectors writes vs into collection name in batches. It stops at a
// batch the collection refuses, or between batches when ctx ends (a batch
// being written is finished, so the count committed is exact), and then
// still compacts what it imported.
func (a *app) importVectors(ctx context.Context, s *store, name string, vs []hnsw.Vector, batch int, resume, compact bool) (output, error) {
	if _, err := s.V.Stats(name); err != nil {
		return output{}, err
	}
	skipped := 0
	if resume {
		kept := vs[:0:0]
		for _, v := range vs {
			if _, err := s.V.Get(name, v.ID); err == nil {
				skipped++
				continue
			}
			kept = append(kept, v)
		}
		vs = kept
	}
	if !a.json {
		fmt.Fprintf(a.errOut, "importing %s into %s\n", plural(len(vs), "vector"), name)
	}
	bar := a.bar(len(vs), "importing "+name)
	done := 0
	var stop error
	for lo := 0; lo < len(vs); lo += batch {
		if err := ctx.Err(); err != nil {
			stop = err
			break
		}
		hi := min(lo+batch, len(vs))
		// The batch is finished even if ctx ends meanwhile: a write cut
		// short would leave its outcome unknown.
		if err := s.V.Upsert(context.WithoutCancel(ctx), name, vs[lo:hi]); err != nil {
			stop = fmt.Errorf("vectors %d-%d of the file (ids %d-%d): %w", lo+skipped, hi-1+skipped, vs[lo].ID, vs[hi-1].ID, err)
			break
		}
		done = hi
		if bar != nil {
			bar.Add(hi - lo)
		}
	}
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(a.errOut)
	}
	compacted := false
	if compact && done > 0 {
		if !a.json {
			fmt.Fprintf(a.errOut, "compacting %s\n", name)
		}
		if err := s.V.Compact(context.WithoutCancel(ctx), name); err != nil {
			return output{}, fmt.Errorf("imported %s; compacting: %w", plural(done, "vector"), err)
		}
		compacted = true
	}
	if stop != nil {
		msg := fmt.Sprintf("%s committed, %d not imported", plural(done, "vector"), len(vs)-done)
		if skipped > 0 {
			msg += fmt.Sprintf(" (%d already present were skipped)", skipped)
		}
		return output{}, fmt.Errorf("%w; %s: rerun with --resume to import the rest", stop, msg)
	}
	return output{JSON: importJSON{done, skipped, compacted}, Text: func(w io.Writer) {
		fmt.Fprintf(w, "imported %s into %s", plural(done, "vector"), name)
		if skipped > 0 {
			fmt.Fprintf(w, " (%d already present skipped)", skipped)
		}
		fmt.Fprintln(w)
	}}, nil
}

// readJSONL reads JSON-lines vectors (see vecImportHelp). An unknown field
// is an error, or with strict false a warning on warn (once per field).
func readJSONL(r io.Reader, limit int, strict bool, warn io.Writer) ([]hnsw.Vector, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []hnsw.Vector
	warned := map[string]bool{}
	for line := 1; (limit <= 0 || len(out) < limit) && sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var jv struct {
			ID     *vecID    `json:"id"`
			Vector []float32 `json:"vector"`
			Tags   []string  `json:"tags"`
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		err := dec.Decode(&jv)
		if err != nil && !strict {
			if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				if !warned[f] {
					fmt.Fprintf(warn, "flowctl: warning: line %d: unknown field %s ignored (reported once)\n", line, f)
					warned[f] = true
				}
				err = json.Unmarshal(sc.Bytes(), &jv)
			}
		}
		switch {
		case err != nil:
			return nil, usageError{fmt.Errorf("line %d: %w", line, err)}
		case jv.ID == nil:
			return nil, usageError{fmt.Errorf("line %d: no \"id\"", line)}
		case jv.Vector == nil:
			return nil, usageError{fmt.Errorf("line %d: no \"vector\"", line)}
		}
		out = append(out, hnsw.Vector{ID: uint64(*jv.ID), Values: jv.Vector, Tags: jv.Tags})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", vecio.ErrFormat, err)
	}
	return out, nil
}

// parseVector reads a vector argument: a JSON array of numbers, or - or
// @FILE holding one (see readValue).
func (a *app) parseVector(s string) ([]float32, error) {
	b, err := a.readValue(s)
	if err != nil {
		return nil, err
	}
	var v []float32
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, usageError{fmt.Errorf("vector must be a JSON array of numbers: %w", err)}
	}
	return v, nil
}

// hitJSON is a search result as --json prints it.
type hitJSON struct {
	ID       uint64   `json:"id,string"`
	Distance float32  `json:"distance"`
	Tags     []string `json:"tags,omitempty"`
}

func (a *app) vecSearchCmd() *cobra.Command {
	var k, ef int
	var tags string
	c := &cobra.Command{
		Use:   "search NAME '[x1, x2, ...]'",
		Short: "The k nearest vectors (re-ranked exactly), optionally only those with every --tags",
		Long: "The k nearest vectors (re-ranked exactly), optionally only those with every --tags.\n" +
			"The vector is a JSON array of numbers, or - (standard input) or @FILE holding one.",
		Args:        exactArgs(2, "NAME VECTOR"),
		Annotations: map[string]string{valueArgs: "1"},
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := a.parseVector(args[1])
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				hits, err := s.V.Search(cmd.Context(), args[0], q, k, hnsw.SearchOptions{Ef: ef, Tags: splitList(tags)})
				if err != nil {
					return output{}, err
				}
				js := []hitJSON{}
				for _, h := range hits {
					js = append(js, hitJSON{h.ID, h.Distance, h.Tags})
				}
				return output{JSON: js, Text: func(w io.Writer) {
					fmt.Fprintf(w, "%-20s %14s %s\n", "ID", "DISTANCE", "TAGS")
					for _, h := range hits {
						fmt.Fprintf(w, "%-20d %14.6g %s\n", h.ID, h.Distance, strings.Join(h.Tags, ","))
					}
				}}, nil
			})
		},
	}
	c.Flags().IntVar(&k, "k", 10, "results")
	c.Flags().IntVar(&ef, "ef", 0, "candidate list (default: the collection's)")
	c.Flags().StringVar(&tags, "tags", "", "only vectors with all of these tags (comma-separated)")
	return c
}

func (a *app) vecGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME ID",
		Short: "A stored vector and its tags",
		Args:  exactArgs(2, "NAME ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[1])
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				v, err := s.V.Get(args[0], id)
				if err != nil {
					return output{}, err
				}
				return output{JSON: jsonVector{ID: vecID(v.ID), Vector: v.Values, Tags: v.Tags}, Text: func(w io.Writer) {
					b, _ := json.Marshal(v.Values)
					fmt.Fprintf(w, "id      %d\ntags    %s\nvector  %s\n", v.ID, strings.Join(v.Tags, ","), b)
				}}, nil
			})
		},
	}
}

func (a *app) vecDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME ID...",
		Short: "Delete vectors by id",
		Args:  minArgs(2, "NAME and at least one ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []uint64
			for _, s := range args[1:] {
				id, err := parseID(s)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				n, err := s.V.Delete(cmd.Context(), args[0], ids)
				if err != nil {
					return output{}, err
				}
				return output{JSON: deletedJSON{n}, Text: func(w io.Writer) { fmt.Fprintf(w, "deleted %s\n", plural(n, "vector")) }}, nil
			})
		},
	}
}

type deletedJSON struct {
	Deleted int `json:"deleted"`
}

func (a *app) vecCompactCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compact NAME",
		Short: "Compact a collection's tables into the LSM's last level, so that searches read one table per vector",
		Long: "Rewrites the tables holding the collection's vectors, graph, codes and tags into the last\n" +
			"level of the LSM. Worth it after a bulk load that is searched afterwards: each vector a search\n" +
			"re-ranks is then one table probe instead of one per level. Changes no data; `vec import` runs it.",
		Args:        exactArgs(1, "NAME"),
		Annotations: map[string]string{longRunning: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				if err := s.V.Compact(cmd.Context(), args[0]); err != nil {
					return output{}, err
				}
				return output{JSON: compactedJSON{args[0]},
					Text: func(w io.Writer) { fmt.Fprintf(w, "compacted %s\n", args[0]) }}, nil
			})
		},
	}
}

type compactedJSON struct {
	Compacted string `json:"compacted"`
}

func (a *app) vecDropCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "drop NAME",
		Short: "Delete a collection and all its vectors",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				return output{}, s.V.Drop(cmd.Context(), args[0])
			})
		},
	}
}
