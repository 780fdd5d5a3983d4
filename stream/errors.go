package stream

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrCompacted reports that the stream's position is older than the
	// server's retained history: changes were lost. Use errors.As with
	// *CompactedError to get the compact revision; restart after it (and
	// re-list the state you mirror) to go on.
	ErrCompacted = errors.New("revision compacted")

	// ErrRetriesExhausted reports that a retryable failure persisted past
	// the MaxRetries option. The error also wraps the last failure.
	ErrRetriesExhausted = errors.New("retries exhausted")

	// ErrProtocol is wrapped by errors about responses that break the
	// feed's contract, such as an item without a valid revision. They are
	// retried like transport failures.
	ErrProtocol = errors.New("protocol error")

	// ErrInvalidOption is wrapped by the error Watch yields for a bad option.
	ErrInvalidOption = errors.New("invalid option")
)

// CompactedError is the error a stream ends with when history it needs
// was discarded. errors.Is(err, ErrCompacted) holds for it.
type CompactedError struct {
	// Position is the last revision the stream had delivered (or started
	// after).
	Position Revision
	// Compact is the server's compact revision: changes up to it are gone.
	Compact Revision
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("revision compacted: position %s is below the server's compact revision %s; changes in between are lost: re-list the current state, then watch after %s",
		e.Position, e.Compact, e.Compact)
}

// Is reports whether target is ErrCompacted.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// RetryError is the error a stream ends with when MaxRetries consecutive
// retries failed. errors.Is(err, ErrRetriesExhausted) holds for it, and it
// unwraps to the last failure.
type RetryError struct {
	Attempts int   // failed attempts in a row, the first included
	Err      error // the last failure
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("retries exhausted after %d failed attempts: %v", e.Attempts, e.Err)
}

// Unwrap returns the last failure.
func (e *RetryError) Unwrap() error { return e.Err }

// Is reports whether target is ErrRetriesExhausted.
func (e *RetryError) Is(target error) bool { return target == ErrRetriesExhausted }

// Fatal marks err as fatal: a Poller returns Fatal(err) for a failure that
// retrying cannot fix (a bad request, refused credentials, an unsupported
// server), and the engine ends the stream with it at once. The result wraps
// err, so errors.Is and errors.As see through it. Fatal(nil) is nil.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return &fatalError{err: err}
}

// IsFatal reports whether err, or an error it wraps, was marked with Fatal.
func IsFatal(err error) bool {
	var f *fatalError
	return errors.As(err, &f)
}

type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// RetryAfterError is implemented by errors that know how long the server
// asked the client to wait (an HTTP 429 or 503 with Retry-After). The
// engine waits at least that long, up to the maximum backoff, before the
// next retry.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}
