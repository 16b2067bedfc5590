package client

import (
	"errors"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
)

// The texts the client decides on its own are the engine's.
func TestEngineTexts(t *testing.T) {
	if classOutcomeUnknown != db.ErrOutcomeUnknown.Error() || classClosed != db.ErrClosed.Error() {
		t.Fatalf("client texts %q, %q; engine %q, %q", classOutcomeUnknown, classClosed, db.ErrOutcomeUnknown, db.ErrClosed)
	}
	err := outcomeUnknown(errors.New("connection reset"))
	if !errors.Is(err, db.ErrOutcomeUnknown) || !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("outcomeUnknown matches wrongly: %v", err)
	}
	e := &Error{Classes: []string{queue.ErrLeaseLost.Error()}}
	if !errors.Is(e, queue.ErrLeaseLost) || errors.Is(e, queue.ErrCanceled) || errors.Is(e, nil) {
		t.Fatal("Error.Is by text")
	}
}
