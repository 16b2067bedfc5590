package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
)

// TestErrorClasses: the classes a node sends back with a command's error
// are those the engine and every attached subsystem registered, and on
// the client errors.Is matches each of them (and nothing else).
func TestErrorClasses(t *testing.T) {
	a := &app{dir: filepath.Join(t.TempDir(), "store")}
	s, err := a.open(mayCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, sentinel := range []error{db.ErrNotFound, db.ErrKeyTooLarge, queue.ErrLeaseLost, queue.ErrInvalid,
		registry.ErrNotFound, hnsw.ErrNoCollection, hnsw.ErrZeroVector, quant.ErrDimension} {
		err := fmt.Errorf("flowctl: %w", sentinel)
		classes := errorClasses(s.DB, err)
		if !slices.Contains(classes, sentinel.Error()) {
			t.Errorf("%v: classes %q", sentinel, classes)
		}
		re := &remoteError{msg: err.Error(), classes: classes}
		if !errors.Is(re, sentinel) || errors.Is(re, queue.ErrFull) {
			t.Errorf("%v: errors.Is on the client", sentinel)
		}
	}
	if c := errorClasses(s.DB, errors.New("something else")); len(c) != 0 {
		t.Errorf("an unclassed error got classes %q", c)
	}
}
