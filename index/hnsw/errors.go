package hnsw

import (
	"errors"
	"fmt"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/wal"
)

// More errors.
var (
	// ErrNoCollection: an unknown collection.
	ErrNoCollection = errors.New("hnsw: no such collection")
	// ErrExists: a collection of that name exists with another config.
	ErrExists = errors.New("hnsw: collection exists")
)

func rejected(err error) (wal.Result, error) { return wal.Result{Err: err}, nil }

var errBadRecord = fmt.Errorf("%w: vector record", db.ErrBadRecord)
