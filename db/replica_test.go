package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/wal"
)

func openTest(tb testing.TB) *DB {
	tb.Helper()
	d := openTestStore(tb, "store", vfs.NewMem())
	tb.Cleanup(func() { d.Close() })
	return d
}

// TestResultsRoundTrip: results travel from a replica's state machine to
// the proposer with N, Data and typed errors intact, for the engine's
// sentinels and for those a state machine registered.
func TestResultsRoundTrip(t *testing.T) {
	d := openTest(t)
	errCustom := errors.New("custom: refused")
	if err := d.Attach(Machine{Name: "test", Errors: []error{errCustom},
		Kinds: []KindSpec{{Kind: 200, Name: "test", Apply: func(*Tx, wal.Record) (wal.Result, error) { return wal.Result{}, nil }}}}); err != nil {
		t.Fatal(err)
	}
	// A later machine must keep the errors registered before it.
	if err := d.Attach(Machine{Name: "noop", Check: func(context.Context, pebble.Reader) []error { return nil }}); err != nil {
		t.Fatal(err)
	}
	in := []wal.Result{{N: 7, Data: []byte("id")}}
	for _, s := range append(append([]error{}, engineErrors...), errCustom) {
		in = append(in, wal.Result{N: 1, Err: fmt.Errorf("%w: detail", s)})
	}
	in = append(in, wal.Result{Err: fmt.Errorf("%w: %w", ErrBadRecord, ErrEmptyKey)}, wal.Result{Err: errors.New("unregistered")})
	out, err := d.DecodeResults(encodeResults(d.reg.load(), in))
	if err != nil || len(out) != len(in) {
		t.Fatalf("decode: %d results, %v", len(out), err)
	}
	for i := range in {
		if out[i].N != in[i].N || !bytes.Equal(out[i].Data, in[i].Data) {
			t.Fatalf("result %d: %+v, want %+v", i, out[i], in[i])
		}
		if (in[i].Err == nil) != (out[i].Err == nil) {
			t.Fatalf("result %d: error %v, want %v", i, out[i].Err, in[i].Err)
		}
		if in[i].Err == nil {
			continue
		}
		if out[i].Err.Error() != in[i].Err.Error() {
			t.Fatalf("result %d: text %q, want %q", i, out[i].Err, in[i].Err)
		}
		for _, s := range append(append([]error{}, engineErrors...), errCustom) {
			if errors.Is(in[i].Err, s) != errors.Is(out[i].Err, s) {
				t.Fatalf("result %d (%v): errors.Is(%v) = %v after decoding", i, in[i].Err, s, errors.Is(out[i].Err, s))
			}
		}
	}
	if _, err := d.DecodeResults([]byte{5, 1}); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("truncated results: %v", err)
	}
}

// FuzzDecodeResults: any bytes decode or fail with wal.ErrCorrupt, never
// panic; what decodes re-encodes to the same bytes.
func FuzzDecodeResults(f *testing.F) {
	d := openTest(f)
	f.Add(encodeResults(d.reg.load(), []wal.Result{{N: 1, Data: []byte("x")}, {Err: fmt.Errorf("%w: y", ErrNotFound)}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := d.DecodeResults(b)
		if err != nil {
			if !errors.Is(err, wal.ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if _, err := d.DecodeResults(encodeResults(d.reg.load(), rs)); err != nil {
			t.Fatalf("re-encoding of decoded results does not decode: %v", err)
		}
	})
}
