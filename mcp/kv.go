package mcp

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/flowdb/flowdb/db"
)

type kvGetIn struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"key namespace (default empty)"`
	Key       string `json:"key" jsonschema:"the key"`
}

type kvGetOut struct {
	Found     bool   `json:"found"`
	Value     string `json:"value,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty" jsonschema:"RFC 3339; absent for a key without TTL"`
}

type kvSetIn struct {
	Namespace  string  `json:"namespace,omitempty" jsonschema:"key namespace (default empty)"`
	Key        string  `json:"key" jsonschema:"the key (1-4096 bytes)"`
	Value      string  `json:"value" jsonschema:"the value (up to 1 MiB)"`
	TTLSeconds float64 `json:"ttl_seconds,omitempty" jsonschema:"delete the key after this many seconds (default: never)"`
}

type kvScanIn struct {
	Namespace string `json:"namespace,omitempty" jsonschema:"key namespace (default empty)"`
	Prefix    string `json:"prefix,omitempty" jsonschema:"only keys starting with this"`
	After     string `json:"after,omitempty" jsonschema:"only keys after this one (pass the last key of a page to get the next)"`
	Limit     int    `json:"limit,omitempty" jsonschema:"most entries (default 100, at most 1000)"`
}

type kvEntry struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type kvScanOut struct {
	Entries []kvEntry `json:"entries"`
	More    bool      `json:"more" jsonschema:"true if more keys follow: scan again with after set to the last key"`
}

// checkNamespace authorizes ns and refuses the reserved namespaces.
func (s *server) checkNamespace(ctx context.Context, ns string, write bool) error {
	if err := s.authorize(ctx, "namespace", ns, write); err != nil {
		return err
	}
	if strings.HasPrefix(ns, reservedPrefix) {
		return invalid("namespaces starting with %q are reserved", reservedPrefix)
	}
	return nil
}

// kvSet validates one write for DB.SetTTL or Txn.SetTTL.
func kvSet(in kvSetIn) (time.Duration, error) {
	if len(in.Value) > MaxPayloadSize {
		return 0, invalid("value of %d bytes, at most %d", len(in.Value), MaxPayloadSize)
	}
	return seconds("ttl_seconds", in.TTLSeconds, 10*365*24*time.Hour)
}

func (s *server) addKVTools() {
	addTool(s, "kv_get", "Read a key's value from a namespace of the key-value store (found false if absent or expired).", true,
		func(ctx context.Context, in kvGetIn) (kvGetOut, error) {
			if err := s.checkNamespace(ctx, in.Namespace, false); err != nil {
				return kvGetOut{}, err
			}
			e, err := s.st.DB.GetEntry(ctx, in.Namespace, []byte(in.Key))
			if errors.Is(err, db.ErrNotFound) {
				return kvGetOut{}, nil
			}
			if err != nil {
				return kvGetOut{}, err
			}
			out := kvGetOut{Found: true, Value: string(e.Value)}
			if !e.ExpiresAt.IsZero() {
				out.ExpiresAt = e.ExpiresAt.UTC().Format(time.RFC3339Nano)
			}
			return out, nil
		})

	addTool(s, "kv_set", "Write a key, optionally with a time to live.", false,
		func(ctx context.Context, in kvSetIn) (okOut, error) {
			if err := s.checkNamespace(ctx, in.Namespace, true); err != nil {
				return okOut{}, err
			}
			ttl, err := kvSet(in)
			if err != nil {
				return okOut{}, err
			}
			if ttl > 0 {
				err = s.st.DB.SetTTL(ctx, in.Namespace, []byte(in.Key), []byte(in.Value), ttl)
			} else {
				err = s.st.DB.Set(ctx, in.Namespace, []byte(in.Key), []byte(in.Value))
			}
			return okOut{OK: err == nil}, err
		})

	addTool(s, "kv_scan", "List keys and values in key order, optionally by prefix, one page at a time.", true,
		func(ctx context.Context, in kvScanIn) (kvScanOut, error) {
			if err := s.checkNamespace(ctx, in.Namespace, false); err != nil {
				return kvScanOut{}, err
			}
			lim := in.Limit
			if lim == 0 {
				lim = 100
			}
			if lim < 0 || lim > MaxScanLimit {
				return kvScanOut{}, invalid("limit %d outside 1..%d", in.Limit, MaxScanLimit)
			}
			o := db.ScanOptions{Limit: lim + 1}
			if in.Prefix != "" {
				o.Prefix = []byte(in.Prefix)
			}
			if in.After != "" {
				o.Start = append([]byte(in.After), 0)
			}
			out := kvScanOut{Entries: []kvEntry{}}
			for e, err := range s.st.DB.Scan(ctx, in.Namespace, o) {
				if err != nil {
					return kvScanOut{}, err
				}
				if len(out.Entries) == lim {
					out.More = true
					break
				}
				out.Entries = append(out.Entries, kvEntry{Key: string(e.Key), Value: string(e.Value)})
			}
			return out, nil
		})
}
