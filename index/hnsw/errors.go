package hnsw

import (
	"errors"
	"fmt"

	"github.com/flowdb/flowdb/db"
)

// Errors of collections, besides those of the graph (graph.go), which
// collections return too.
var (
	// ErrNoCollection: an unknown collection.
	ErrNoCollection = errors.New("hnsw: no such collection")
	// ErrExists: a collection of that name exists with another config.
	ErrExists = errors.New("hnsw: collection exists")
)

// errBadRecord rejects a malformed record: a body that does not decode or
// is out of bounds, or a train record that does not fit its collection.
var errBadRecord = fmt.Errorf("%w: vector record", db.ErrBadRecord)
