package db

import "errors"

// Errors returned by the engine. Match them with errors.Is: most are returned
// wrapped with detail.
var (
	// ErrClosed: the DB is closed, or was closed while the call waited.
	ErrClosed = errors.New("db: closed")
	// ErrLocked: another process (or another DB in this process) has the
	// directory open.
	ErrLocked = errors.New("db: directory is locked by another open store")
	// ErrNotExist: Options.ErrorIfNotExists was set and dir holds no store.
	ErrNotExist = errors.New("db: no store in directory")
	// ErrReadOnly: a mutation was attempted on a store opened read-only.
	ErrReadOnly = errors.New("db: store is read-only")
	// ErrFatal: a write to disk failed (for example fsync); the engine has
	// stopped accepting writes and nothing after the failure was
	// acknowledged. Close and reopen the store to recover.
	ErrFatal = errors.New("db: engine stopped after an I/O failure")
	// ErrOutcomeUnknown: the caller's context ended after the mutation was
	// handed to the commit pipeline and before it was acknowledged; it may
	// or may not have been applied.
	ErrOutcomeUnknown = errors.New("db: outcome unknown")

	// ErrNotFound: no live value under the key (absent or expired).
	ErrNotFound = errors.New("db: not found")
	// ErrEmptyKey: a key of zero length.
	ErrEmptyKey = errors.New("db: empty key")
	// ErrKeyTooLarge: a key over MaxKeySize.
	ErrKeyTooLarge = errors.New("db: key too large")
	// ErrNamespaceTooLarge: a namespace over MaxNamespaceSize.
	ErrNamespaceTooLarge = errors.New("db: namespace too large")
	// ErrValueTooLarge: a value over MaxValueSize.
	ErrValueTooLarge = errors.New("db: value too large")
	// ErrBatchTooLarge: a batch over MaxBatchOps operations or MaxBatchBytes.
	ErrBatchTooLarge = errors.New("db: batch too large")
	// ErrEmptyBatch: a batch with no operations.
	ErrEmptyBatch = errors.New("db: empty batch")
	// ErrInvalidTTL: a negative TTL, or one that overflows the clock.
	ErrInvalidTTL = errors.New("db: invalid ttl")
	// ErrInvalidRange: scan bounds with Start > End.
	ErrInvalidRange = errors.New("db: invalid scan range")
	// ErrInvalidOptions: Options that fail validation.
	ErrInvalidOptions = errors.New("db: invalid options")

	// ErrBadRecord: a record body that its state machine cannot decode. The
	// record is rejected (it changes nothing) and the rest of its frame
	// applies.
	ErrBadRecord = errors.New("db: malformed record")
	// ErrUnknownKind: a record whose kind no state machine registered. It is
	// rejected and changes nothing.
	ErrUnknownKind = errors.New("db: unknown record kind")
	// ErrKindRegistered: Attach was given a record kind or a table that
	// another machine (or the same one) already registered.
	ErrKindRegistered = errors.New("db: record kind already registered")
)
