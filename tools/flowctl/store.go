package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
)

// How a data command runs. Its RunE parses and checks its arguments, then
// hands a function to withStore, which opens the store at --dir (or, inside
// a node, borrows the node's live store, see exec.go), runs the function,
// prints what it returned (JSON with --json, else text) and closes the
// store. With --node the whole RunE runs on the node instead (exec.go).

// store is an open store with every subsystem attached.
type store struct {
	*db.DB
	Q *queue.Manager
	R *registry.Registry
	V *hnsw.Manager
}

// attach registers every subsystem with d: the one place the CLI and the
// node list them. With loops false, as in the CLI, the subsystems run no
// background loops: each queue record processes the timers due at its
// time, and `agent expire` proposes the registry's expiry by hand. A node
// passes true.
func attach(d *db.DB, loops bool) (*store, error) {
	var qo *queue.Options
	ro := &registry.Options{MissedHeartbeats: missedHeartbeats}
	if !loops {
		qo, ro.CheckInterval = &queue.Options{TickInterval: -1}, -1
	}
	q, err := queue.Attach(d, qo)
	if err != nil {
		return nil, err
	}
	r, err := registry.Attach(d, ro)
	if err != nil {
		q.Close()
		return nil, err
	}
	v, err := hnsw.Attach(d)
	if err != nil {
		r.Close()
		q.Close()
		return nil, err
	}
	return &store{DB: d, Q: q, R: r, V: v}, nil
}

// detach stops what attach started; it leaves the DB open.
func (s *store) detach() {
	s.R.Close()
	s.Q.Close()
}

// Close detaches the subsystems and closes the store.
func (s *store) Close() error {
	s.detach()
	return s.DB.Close()
}

// missedHeartbeats is how many heartbeat intervals without one make an
// agent unhealthy (registry.Options.MissedHeartbeats), here and in the
// health the CLI computes from the current time (healthyNow).
const missedHeartbeats = 3

// openMode says what opening a directory without a store does.
type openMode bool

const (
	// mustExist reports it, so that a typo in --dir is not taken for a
	// new, empty store (read commands and updates of existing things).
	mustExist openMode = true
	// mayCreate creates the store (commands that create things).
	mayCreate openMode = false
)

// open opens the store at --dir with every subsystem attached.
func (a *app) open(mode openMode) (*store, error) {
	if a.dir == "" {
		return nil, usageError{errors.New("--dir is required (the store directory)")}
	}
	if mode == mustExist {
		st, err := os.Stat(a.dir)
		if err != nil {
			return nil, fmt.Errorf("no flowdb store at %s: %w", a.dir, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", a.dir)
		}
	}
	d, err := db.Open(a.dir, &db.Options{Logger: a.logger(), ErrorIfNotExists: mode == mustExist})
	switch {
	case errors.Is(err, db.ErrNotExist):
		if _, serr := os.Stat(filepath.Join(a.dir, "store", "FLOWDB")); serr == nil {
			return nil, fmt.Errorf("%s is a node's directory (its store is %s): while the node runs, "+
				"use --node with its admin address: %w", a.dir, filepath.Join(a.dir, "store"), err)
		}
		return nil, fmt.Errorf("no flowdb store at %s (a directory without a store; write to it with `flowctl --dir %s kv set` to create one): %w", a.dir, a.dir, err)
	case errors.Is(err, db.ErrLocked):
		return nil, fmt.Errorf("%s is open in %s; stop it first, or, if it is a node, use --node with its admin address: %w",
			a.dir, lockHolder(a.dir), err)
	case err != nil:
		return nil, err
	}
	s, err := attach(d, false)
	if err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}

// lockHolder names the process that holds dir's LOCK file ("process 1234
// (flowctl node start ...)"), found through /proc (Linux), or says
// "another process".
func lockHolder(dir string) string {
	lock, err := filepath.Abs(filepath.Join(dir, "LOCK"))
	if err != nil {
		return "another process"
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && target == lock {
				cmd, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
				line := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
				if pid == os.Getpid() {
					return fmt.Sprintf("this process (%d)", pid)
				}
				return fmt.Sprintf("process %d (%s)", pid, line)
			}
		}
	}
	return "another process"
}

// output is what a command prints on stdout: JSON with --json, else Text
// (a table, a few lines; nil prints nothing). A command without JSON of
// its own (a write) prints doneJSON.
type output struct {
	JSON any
	Text func(w io.Writer)
}

// doneJSON is what a command that has nothing else to say prints with
// --json: that it succeeded, and which command it was.
type doneJSON struct {
	OK      bool   `json:"ok"`
	Command string `json:"command"`
}

// print prints o. A nil slice prints as the empty JSON array.
func (a *app) print(o output) error {
	if !a.json {
		if o.Text != nil {
			o.Text(a.out)
		}
		return nil
	}
	v := o.JSON
	if v == nil {
		v = doneJSON{OK: true, Command: a.command}
	}
	if a.onJSON != nil {
		a.onJSON(v)
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.IsNil() {
		v = reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// withStore runs fn on the store (see open; inside a node, on the node's
// live store, which stays open), prints its output, and closes the store.
// The output is printed even when fn fails: check prints its report, then
// exits 1.
func (a *app) withStore(mode openMode, fn func(s *store) (output, error)) error {
	s := a.shared
	if s == nil {
		var err error
		if s, err = a.open(mode); err != nil {
			return err
		}
		defer s.Close()
	}
	out, err := fn(s)
	if err != nil {
		if out.JSON != nil || out.Text != nil {
			a.print(out) // a report that goes with the error (check)
		}
		return err
	}
	return a.print(out)
}
