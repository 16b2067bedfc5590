package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/spf13/cobra"
)

// parseBytes reads a key or value argument: "hex:..." is hex, anything else
// is taken literally.
func parseBytes(s string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(s, "hex:"); ok {
		b, err := hex.DecodeString(rest)
		if err != nil {
			return nil, usageError{fmt.Errorf("bad hex %q: %v", s, err)}
		}
		return b, nil
	}
	return []byte(s), nil
}

type kvJSON struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

func toJSON(e db.Entry) kvJSON {
	j := kvJSON{Namespace: e.Namespace, Key: printable(e.Key), Value: printable(e.Value)}
	if !e.ExpiresAt.IsZero() {
		j.ExpiresAt = e.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	return j
}

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s needs %s (got %s)", cmdName(cmd), names, plural(len(args), "argument"))}
		}
		return nil
	}
}

func maxArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError{fmt.Errorf("%s takes %s (got %s)", cmdName(cmd), names, plural(len(args), "argument"))}
		}
		return nil
	}
}

func minArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("%s needs %s (got %s)", cmdName(cmd), names, plural(len(args), "argument"))}
		}
		return nil
	}
}

func (a *app) kvCmd() *cobra.Command {
	kv := &cobra.Command{Use: "kv", Short: "Read and write the key-value space"}
	kv.AddCommand(a.kvGetCmd(), a.kvSetCmd(), a.kvDelCmd(), a.kvScanCmd())
	return kv
}

func (a *app) kvGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAMESPACE KEY",
		Short: "Print the value of a key",
		Args:  exactArgs(2, "NAMESPACE and KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseBytes(args[1])
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				e, err := s.GetEntry(cmd.Context(), args[0], key)
				if errors.Is(err, db.ErrNotFound) {
					return output{}, fmt.Errorf("%s/%s: %w", args[0], args[1], err)
				}
				if err != nil {
					return output{}, err
				}
				return output{JSON: toJSON(e), Text: func(w io.Writer) { fmt.Fprintln(w, printable(e.Value)) }}, nil
			})
		},
	}
}

func (a *app) kvSetCmd() *cobra.Command {
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "set NAMESPACE KEY VALUE",
		Short: "Store a value (durably) under a key; VALUE - reads standard input, @FILE a file",
		Long: "Store a value (durably) under a key. VALUE is the value itself, hex:... for bytes\n" +
			"that are not text, - to read standard input, or @FILE to read a file (values up to 16 MiB).",
		Args:        exactArgs(3, "NAMESPACE, KEY and VALUE"),
		Annotations: map[string]string{valueArgs: "2"},
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseBytes(args[1])
			if err != nil {
				return err
			}
			val, err := a.readValue(args[2])
			if err != nil {
				return err
			}
			return a.withStore(mayCreate, func(s *store) (output, error) {
				return output{}, s.SetTTL(cmd.Context(), args[0], key, val, ttl)
			})
		},
	}
	c.Flags().DurationVar(&ttl, "ttl", 0, "expire the key after this long (0: never)")
	return c
}

func (a *app) kvDelCmd() *cobra.Command {
	var prefix bool
	c := &cobra.Command{
		Use:   "del NAMESPACE KEY",
		Short: "Delete a key (or, with --prefix, every key starting with KEY)",
		Args:  exactArgs(2, "NAMESPACE and KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseBytes(args[1])
			if err != nil {
				return err
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				if prefix {
					return output{}, s.DeletePrefix(cmd.Context(), args[0], key)
				}
				return output{}, s.Delete(cmd.Context(), args[0], key)
			})
		},
	}
	c.Flags().BoolVar(&prefix, "prefix", false, "delete every key with this prefix")
	return c
}

func (a *app) kvScanCmd() *cobra.Command {
	var prefix, start, end string
	var reverse bool
	var limit int
	c := &cobra.Command{
		Use:   "scan NAMESPACE",
		Short: "List keys in order, with bounds",
		Args:  exactArgs(1, "NAMESPACE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := db.ScanOptions{Reverse: reverse, Limit: limit}
			var err error
			for _, f := range []struct {
				s   string
				dst *[]byte
			}{{prefix, &o.Prefix}, {start, &o.Start}, {end, &o.End}} {
				if f.s != "" {
					if *f.dst, err = parseBytes(f.s); err != nil {
						return err
					}
				}
			}
			if limit < 0 {
				return usageError{errors.New("--limit must be >= 0")}
			}
			return a.withStore(mustExist, func(s *store) (output, error) {
				// Text streams as the scan goes; JSON is one array.
				var out []kvJSON
				for e, err := range s.Scan(cmd.Context(), args[0], o) {
					if err != nil {
						return output{}, err
					}
					if a.json {
						out = append(out, toJSON(e))
					} else {
						fmt.Fprintf(a.out, "%s\t%s\n", printable(e.Key), printable(e.Value))
					}
				}
				return output{JSON: out}, nil
			})
		},
	}
	c.Flags().StringVar(&prefix, "prefix", "", "only keys with this prefix")
	c.Flags().StringVar(&start, "start", "", "inclusive lower bound")
	c.Flags().StringVar(&end, "end", "", "exclusive upper bound")
	c.Flags().BoolVar(&reverse, "reverse", false, "descending order")
	c.Flags().IntVar(&limit, "limit", 0, "stop after this many keys (0: all)")
	return c
}
