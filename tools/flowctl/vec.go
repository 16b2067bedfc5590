package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/vecio"
	"github.com/flowdb/flowdb/quant"
	"github.com/schollz/progressbar/v3"
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
				return output{}, s.V.Create(cmd.Context(), cfg)
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

func (a *app) vecListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List collections",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				var out []hnsw.Stats
				for _, n := range s.V.Collections() {
					st, err := s.V.Stats(n)
					if err != nil {
						return output{}, err
					}
					out = append(out, st)
				}
				return output{JSON: out, Text: func(w io.Writer) {
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
				return output{JSON: st, Text: func(w io.Writer) {
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

// jsonVector is one line of a JSON-lines import.
type jsonVector struct {
	ID     uint64    `json:"id"`
	Vector []float32 `json:"vector"`
	Tags   []string  `json:"tags"`
}

func (a *app) vecImportCmd() *cobra.Command {
	var format string
	var limit, batch int
	compact := true
	c := &cobra.Command{
		Use:   "import NAME FILE",
		Short: "Import vectors from .fvecs, JSON lines ({\"id\":1,\"vector\":[...],\"tags\":[...]}) or IDX (Fashion-MNIST; gzip ok)",
		Long: "Import vectors in batches (one record each). --format fvecs|jsonl|idx, or guessed from the\n" +
			"file name. fvecs and idx vectors get ids 0, 1, 2, ... in file order. Shows progress.\n" +
			"Then compacts the collection's tables (see `vec compact`) unless --compact=false.",
		Args:        exactArgs(2, "NAME FILE"),
		Annotations: map[string]string{pathArgs: "1"},
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
					return err
				}
				for i, v := range raw {
					vs = append(vs, hnsw.Vector{ID: uint64(i), Values: v})
				}
			case "jsonl":
				if vs, err = readJSONL(r, limit); err != nil {
					return err
				}
			default:
				return usageError{fmt.Errorf("--format must be fvecs, jsonl or idx")}
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				var bar *progressbar.ProgressBar
				if !a.json {
					bar = progressbar.NewOptions(len(vs), progressbar.OptionSetWriter(a.errOut),
						progressbar.OptionSetDescription("importing "+name), progressbar.OptionShowCount())
				}
				for lo := 0; lo < len(vs); lo += batch {
					hi := min(lo+batch, len(vs))
					if err := s.V.Upsert(cmd.Context(), name, vs[lo:hi]); err != nil {
						return output{}, fmt.Errorf("vectors %d-%d: %w", lo, hi-1, err)
					}
					if bar != nil {
						bar.Add(hi - lo)
					}
				}
				if bar != nil {
					bar.Finish()
					fmt.Fprintln(a.errOut)
				}
				if compact {
					if !a.json {
						fmt.Fprintf(a.errOut, "compacting %s\n", name)
					}
					if err := s.V.Compact(cmd.Context(), name); err != nil {
						return output{}, fmt.Errorf("imported %d vectors; compacting: %w", len(vs), err)
					}
				}
				return output{JSON: map[string]any{"imported": len(vs), "compacted": compact},
					Text: func(w io.Writer) { fmt.Fprintf(w, "imported %d vectors into %s\n", len(vs), name) }}, nil
			})
		},
	}
	c.Flags().BoolVar(&compact, "compact", true, "compact the collection's tables when the import ends (see `vec compact`)")
	c.Flags().StringVar(&format, "format", "", "fvecs, jsonl or idx (default: from the file name)")
	c.Flags().IntVar(&limit, "limit", 0, "import at most this many (0: all)")
	c.Flags().IntVar(&batch, "batch", 1000, "vectors per record")
	return c
}

func readJSONL(r io.Reader, limit int) ([]hnsw.Vector, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []hnsw.Vector
	for line := 1; sc.Scan() && (limit <= 0 || len(out) < limit); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var jv jsonVector
		if err := json.Unmarshal(sc.Bytes(), &jv); err != nil {
			return nil, usageError{fmt.Errorf("line %d: %w", line, err)}
		}
		out = append(out, hnsw.Vector{ID: jv.ID, Values: jv.Vector, Tags: jv.Tags})
	}
	return out, sc.Err()
}

func parseVector(s string) ([]float32, error) {
	var v []float32
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, usageError{fmt.Errorf("vector must be a JSON array of numbers: %w", err)}
	}
	return v, nil
}

func (a *app) vecSearchCmd() *cobra.Command {
	var k, ef int
	var tags string
	c := &cobra.Command{
		Use:   "search NAME '[x1, x2, ...]'",
		Short: "The k nearest vectors (re-ranked exactly), optionally only those with every --tags",
		Args:  exactArgs(2, "NAME VECTOR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := parseVector(args[1])
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				hits, err := s.V.Search(cmd.Context(), args[0], q, k, hnsw.SearchOptions{Ef: ef, Tags: splitList(tags)})
				if err != nil {
					return output{}, err
				}
				return output{JSON: hits, Text: func(w io.Writer) {
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
				return output{JSON: jsonVector{ID: v.ID, Vector: v.Values, Tags: v.Tags}, Text: func(w io.Writer) {
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
		Args:  cobra.MinimumNArgs(2),
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
				return output{JSON: map[string]int{"deleted": n}, Text: func(w io.Writer) { fmt.Fprintf(w, "deleted %d\n", n) }}, nil
			})
		},
	}
}

func (a *app) vecCompactCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compact NAME",
		Short: "Compact a collection's tables into the LSM's last level, so that searches read one table per vector",
		Long: "Rewrites the tables holding the collection's vectors, graph, codes and tags into the last\n" +
			"level of the LSM. Worth it after a bulk load that is searched afterwards: each vector a search\n" +
			"re-ranks is then one table probe instead of one per level. Changes no data; `vec import` runs it.",
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(mustExist, func(s *store) (output, error) {
				if err := s.V.Compact(cmd.Context(), args[0]); err != nil {
					return output{}, err
				}
				return output{JSON: map[string]any{"compacted": args[0]},
					Text: func(w io.Writer) { fmt.Fprintf(w, "compacted %s\n", args[0]) }}, nil
			})
		},
	}
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
