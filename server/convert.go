package server

import (
	"fmt"
	"math"
	"time"
)

// ms converts a duration in milliseconds from the wire; negative values
// pass through for the engine to reject with its own error, overflowing
// ones are ErrBadRequest.
func ms(field string, v int64) (time.Duration, error) {
	if v > math.MaxInt64/int64(time.Millisecond) || v < math.MinInt64/int64(time.Millisecond) {
		return 0, fmt.Errorf("%w: %s %d ms overflows", ErrBadRequest, field, v)
	}
	return time.Duration(v) * time.Millisecond, nil
}

// unixNano converts a wire time (0: unset).
func unixNano(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

// toNano converts a time to the wire (the zero time: 0).
func toNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// need returns ErrBadRequest when a required message field is missing.
func need(field string, present bool) error {
	if !present {
		return fmt.Errorf("%w: %s is required", ErrBadRequest, field)
	}
	return nil
}
