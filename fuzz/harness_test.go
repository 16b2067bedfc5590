package fuzz

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/wal"
)

// A record harness makes a record target's verdict a function of its input
// alone: the base state is built once into an in-memory file system, and
// every input is applied to a fresh copy of it (a clone of that file
// system, opened with every subsystem attached). A failure then replays
// from the saved input, which a target that applies every input to one
// shared store cannot promise (a failing input there may only fail after
// the ones before it).
type harness struct {
	base *vfs.MemFS
}

// env is one input's store, every subsystem attached.
type env struct {
	d *db.DB
	q *queue.Manager
	r *registry.Registry
	v *hnsw.Manager
}

const harnessDir = "/h"

func openEnv(fs vfs.FS) (*env, error) {
	o := testutil.StoreOptions(fs, nil)
	o.Durability = db.NoSync
	d, err := db.Open(harnessDir, o)
	if err != nil {
		return nil, err
	}
	e := &env{d: d}
	if e.q, err = queue.Attach(d, &queue.Options{TickInterval: -1}); err != nil {
		d.Close()
		return nil, err
	}
	if e.r, err = registry.Attach(d, &registry.Options{CheckInterval: -1}); err != nil {
		e.q.Close()
		d.Close()
		return nil, err
	}
	if e.v, err = hnsw.Attach(d); err != nil {
		e.r.Close()
		e.q.Close()
		d.Close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() error {
	return errors.Join(e.q.Close(), e.r.Close(), e.d.Close())
}

// newHarness builds the base state with setup.
func newHarness(f testing.TB, setup func(ctx context.Context, e *env) error) *harness {
	fs := vfs.NewCrashableMem()
	e, err := openEnv(fs)
	if err != nil {
		f.Fatal(err)
	}
	if err := setup(context.Background(), e); err != nil {
		f.Fatal(err)
	}
	if err := e.close(); err != nil {
		f.Fatal(err)
	}
	return &harness{base: fs}
}

// fresh opens a copy of the base state for one input; the test closes it.
func (h *harness) fresh(t testing.TB) *env {
	// Everything was synced when the base store closed; keeping all
	// unsynced data as well makes the copy exact whatever the RNG draws.
	clone := h.base.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 1))})
	e, err := openEnv(clone)
	if err != nil {
		t.Fatalf("open a copy of the base state: %v", err)
	}
	t.Cleanup(func() {
		if err := e.close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

// apply proposes one record and checks what every record must keep,
// whatever its body: the result is nil or one of the typed errors in ok
// (db.ErrBadRecord always is); the applied index advances by one; the
// engine still accepts a write afterwards (a malformed record must not stop
// it); and the store passes Check. It returns the record's error.
func (e *env) apply(t testing.TB, kind wal.Kind, body []byte, ok ...error) error {
	t.Helper()
	ctx := context.Background()
	before := e.d.AppliedIndex()
	res, err := e.d.Propose(ctx, wal.Record{Kind: kind, Body: body})
	if err == nil {
		err = res.Err
	}
	if err != nil && !errors.Is(err, db.ErrBadRecord) {
		typed := false
		for _, o := range ok {
			typed = typed || errors.Is(err, o)
		}
		if !typed {
			t.Fatalf("kind %d body %x: untyped error %v", kind, body, err)
		}
	}
	if got := e.d.AppliedIndex(); got != before+1 {
		t.Fatalf("kind %d body %x: applied index %d -> %d", kind, body, before, got)
	}
	probe := []byte("probe-" + strconv.FormatUint(before, 10))
	if perr := e.d.Set(ctx, "harness", probe, probe); perr != nil {
		t.Fatalf("kind %d body %x: the engine refused a write after it: %v", kind, body, perr)
	}
	if rep, cerr := e.d.Check(ctx, nil); cerr != nil || !rep.OK() {
		t.Fatalf("kind %d body %x left the store damaged: %v %+v", kind, body, cerr, rep)
	}
	return err
}
