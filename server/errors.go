package server

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	flowdbv1 "github.com/flowdb/flowdb/api/flowdb/v1"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/flowdb/flowdb/server/auth"
)

// ErrBadRequest: a request the server rejects before it reaches the store
// (a missing message, a duration that overflows, an unknown metric or
// operation).
var ErrBadRequest = errors.New("server: bad request")

// codes maps sentinel errors to Connect codes, first match wins. Every
// sentinel a call can return must be listed, or the call answers Internal
// (its classes still travel).
var codes = []struct {
	err  error
	code connect.Code
}{
	{auth.ErrUnauthenticated, connect.CodeUnauthenticated},
	{auth.ErrForbidden, connect.CodePermissionDenied},
	{db.ErrOutcomeUnknown, connect.CodeUnknown},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
	{context.Canceled, connect.CodeCanceled},
	{db.ErrNotFound, connect.CodeNotFound},
	{queue.ErrNotFound, connect.CodeNotFound},
	{registry.ErrNotFound, connect.CodeNotFound},
	{hnsw.ErrNotFound, connect.CodeNotFound},
	{hnsw.ErrNoCollection, connect.CodeNotFound},
	{queue.ErrExists, connect.CodeAlreadyExists},
	{hnsw.ErrExists, connect.CodeAlreadyExists},
	{queue.ErrFull, connect.CodeResourceExhausted},
	{queue.ErrLeaseLost, connect.CodeFailedPrecondition},
	{queue.ErrCanceled, connect.CodeFailedPrecondition},
	{queue.ErrNotReady, connect.CodeFailedPrecondition},
	{queue.ErrAtCapacity, connect.CodeFailedPrecondition},
	{db.ErrReadOnly, connect.CodeFailedPrecondition},
	{db.ErrClosed, connect.CodeUnavailable},
	{db.ErrFatal, connect.CodeUnavailable},
	{ErrBadRequest, connect.CodeInvalidArgument},
	{db.ErrEmptyKey, connect.CodeInvalidArgument},
	{db.ErrKeyTooLarge, connect.CodeInvalidArgument},
	{db.ErrNamespaceTooLarge, connect.CodeInvalidArgument},
	{db.ErrValueTooLarge, connect.CodeInvalidArgument},
	{db.ErrBatchTooLarge, connect.CodeInvalidArgument},
	{db.ErrEmptyBatch, connect.CodeInvalidArgument},
	{db.ErrInvalidTTL, connect.CodeInvalidArgument},
	{db.ErrInvalidRange, connect.CodeInvalidArgument},
	{db.ErrCrossShard, connect.CodeInvalidArgument},
	{queue.ErrInvalid, connect.CodeInvalidArgument},
	{registry.ErrInvalid, connect.CodeInvalidArgument},
	{hnsw.ErrInvalid, connect.CodeInvalidArgument},
	{hnsw.ErrDimension, connect.CodeInvalidArgument},
	{hnsw.ErrNotFinite, connect.CodeInvalidArgument},
	{hnsw.ErrZeroVector, connect.CodeInvalidArgument},
	{sched.ErrInvalid, connect.CodeInvalidArgument},
	{db.ErrTxnTooLarge, connect.CodeInvalidArgument},
	{db.ErrEmptyTxn, connect.CodeInvalidArgument},
	{db.ErrNotTransactional, connect.CodeInvalidArgument},
	{db.ErrConditionFailed, connect.CodeFailedPrecondition},
	{db.ErrIdempotencyKeyReused, connect.CodeFailedPrecondition},
	// Last: a refused transaction answers with its operation's code above.
	{db.ErrTxnRejected, connect.CodeFailedPrecondition},
}

// localClasses are sentinels of this side of the wire that the engine does
// not list (db.DB.ErrorClasses) but a client must be able to match.
var localClasses = []error{auth.ErrUnauthenticated, auth.ErrForbidden, ErrBadRequest}

// classes returns the texts of the sentinels err matches.
func (s *Server) classes(err error) []string {
	var out []string
	for _, c := range s.o.DB.ErrorClasses(err) {
		out = append(out, c.Error())
	}
	for _, c := range localClasses {
		if errors.Is(err, c) {
			out = append(out, c.Error())
		}
	}
	return out
}

// codeOf returns the Connect code for err.
func codeOf(err error) connect.Code {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return connect.CodeInternal
}

// toConnect turns a handler's error into the error the client sees: its
// code, its text and an ErrorDetail with its classes, and for a refused
// transaction (*db.TxnError) a TxnErrorDetail. Errors that are
// already Connect errors (limits enforced by connect itself) pass as they
// are.
func (s *Server) toConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	e := connect.NewError(codeOf(err), err)
	if cl := s.classes(err); len(cl) > 0 {
		if d, derr := connect.NewErrorDetail(&flowdbv1.ErrorDetail{Classes: cl}); derr == nil {
			e.AddDetail(d)
		}
	}
	var te *db.TxnError
	if errors.As(err, &te) {
		td := &flowdbv1.TxnErrorDetail{Op: int32(te.Op), Kind: te.Kind}
		if te.Err != nil {
			td.Code, td.Message = codeOf(te.Err).String(), te.Err.Error()
		}
		if d, derr := connect.NewErrorDetail(td); derr == nil {
			e.AddDetail(d)
		}
	}
	return e
}

// itemError encodes the outcome of one item of a batch.
func (s *Server) itemError(err error) *flowdbv1.ItemError {
	if err == nil {
		return &flowdbv1.ItemError{}
	}
	return &flowdbv1.ItemError{Code: codeOf(err).String(), Message: err.Error(), Classes: s.classes(err)}
}
