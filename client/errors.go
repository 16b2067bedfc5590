package client

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
)

// Error is a call's failure as the client sees it. errors.Is matches it
// against the engine's sentinel errors by their text, which the server
// sends along (its classes): errors.Is(err, queue.ErrLeaseLost) works
// without this package importing the engine, since every sentinel's text is
// unique (it starts with its package's name).
type Error struct {
	// Code is the Connect code (connect.CodeNotFound, ...).
	Code connect.Code
	// Msg is the server's message (or the transport's).
	Msg string
	// Classes are the texts of the sentinels the error matches.
	Classes []string
	cause   error
	txn     *v1.TxnErrorDetail // a refused transaction's (CommitTxn makes a *TxnError of it)
}

func (e *Error) Error() string { return e.Msg }

// Is matches a sentinel error by its text.
func (e *Error) Is(target error) bool {
	return target != nil && slices.Contains(e.Classes, target.Error())
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.cause }

// Texts of the engine sentinels the client itself decides (the engine's
// texts, so that errors.Is with db.ErrOutcomeUnknown and db.ErrClosed
// works; client_test checks they match).
const (
	classOutcomeUnknown = "db: outcome unknown"
	classClosed         = "db: closed"
)

// ErrOutcomeUnknown matches (errors.Is) a call that may or may not have
// been applied: the connection failed after the request was sent, or the
// caller's context ended first. It has the text of db.ErrOutcomeUnknown,
// which matches too.
var ErrOutcomeUnknown = errors.New(classOutcomeUnknown)

// fromConnect decodes an error from the wire.
func fromConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return &Error{Code: connect.CodeUnknown, Msg: err.Error(), cause: err}
	}
	e := &Error{Code: ce.Code(), Msg: ce.Message(), cause: ce.Unwrap()}
	for _, d := range ce.Details() {
		if m, derr := d.Value(); derr == nil {
			switch dm := m.(type) {
			case *v1.ErrorDetail:
				e.Classes = append(e.Classes, dm.Classes...)
			case *v1.TxnErrorDetail:
				e.txn = dm
			}
		}
	}
	return e
}

// outcomeUnknown marks err as a call whose outcome is unknown.
func outcomeUnknown(err error) error {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Code: connect.CodeUnknown, Msg: err.Error(), cause: err}
	}
	if !slices.Contains(e.Classes, classOutcomeUnknown) {
		e.Classes = append(e.Classes, classOutcomeUnknown)
		e.Msg = fmt.Sprintf("outcome unknown: %s", e.Msg)
	}
	return e
}

// notSent reports whether err proves the request never reached the server
// (the connection could not be made), so that any call may be retried.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// transport reports whether err is a failure of the connection rather than
// an answer from the server.
func transport(err error) bool {
	e, ok := err.(*Error)
	if !ok {
		return false
	}
	return len(e.Classes) == 0 && (e.Code == connect.CodeUnavailable || e.Code == connect.CodeUnknown || e.Code == connect.CodeInternal) && e.cause != nil
}

// retryable reports whether the server answered that nothing was done and
// the call may be sent again: the store was closing (db.ErrClosed refuses a
// call before it reaches the commit pipeline).
func retryable(err error) bool {
	e, ok := err.(*Error)
	return ok && slices.Contains(e.Classes, classClosed)
}
