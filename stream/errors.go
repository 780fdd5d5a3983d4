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
	// the retry policy's MaxRetries. The error also wraps the last failure.
	// It is not final (see IsFinal): opening the stream again, later, may
	// succeed.
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
//
// The changes after Position up to Compact are lost. To go on, re-list the
// current state you mirror, then watch After(Compact); operators.Resume can
// do this for you.
type CompactedError struct {
	// Position is the last revision the stream had delivered (or started
	// after).
	Position Revision
	// Compact is the server's compact revision: changes up to it are gone.
	Compact Revision
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("revision compacted: position %s is below compact revision %s", e.Position, e.Compact)
}

// Is reports whether target is ErrCompacted.
func (e *CompactedError) Is(target error) bool { return target == ErrCompacted }

// RetryError is the error a stream ends with when MaxRetries consecutive
// retries failed (and the error Retrier.Wait returns then).
// errors.Is(err, ErrRetriesExhausted) holds for it, and it unwraps to the
// last failure. It is not final: a supervisor may open the stream again
// After(Position), later.
type RetryError struct {
	Attempts int   // failed attempts in a row, the first included
	Err      error // the last failure
	// Position is the last revision the stream had delivered, or started
	// after; zero if the stream gave up before it knew its start (FromNow
	// while learning the head revision).
	Position Revision
}

func (e *RetryError) Error() string {
	if e.Position.IsZero() {
		return fmt.Sprintf("retries exhausted after %d attempts: %v", e.Attempts, e.Err)
	}
	return fmt.Sprintf("retries exhausted after %d attempts at revision %s: %v", e.Attempts, e.Position, e.Err)
}

// Unwrap returns the last failure.
func (e *RetryError) Unwrap() error { return e.Err }

// Is reports whether target is ErrRetriesExhausted.
func (e *RetryError) Is(target error) bool { return target == ErrRetriesExhausted }

// Fatal marks err as fatal: a Poller returns Fatal(err) for a failure that
// retrying cannot fix (a bad request, refused credentials, an unsupported
// server), and the engine ends the stream with it at once; IsFinal holds
// for it. The result wraps err, so errors.Is and errors.As see through it.
// Fatal(nil) is nil.
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
// asked the client to wait (an HTTP 429 or 503 with Retry-After). A
// Retrier waits at least that long, up to the policy's Max, before the
// next retry.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}
