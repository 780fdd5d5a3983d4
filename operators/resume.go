package operators

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/towerwatch/towerwatch/internal/ctxtime"
	"github.com/towerwatch/towerwatch/stream"
)

// ErrGap is matched (errors.Is) by the *GapError that Resume yields when it
// restarts a compacted stream under the Restart policy.
var ErrGap = errors.New("gap in the change stream")

// GapError is Resume's gap notice: the stream's position fell below the
// server's compact revision, so the changes with revisions in (From, To]
// may be lost, and the stream goes on after To.
//
// It is the one non-final error of this package: the sequence goes on after
// it. On receiving it, re-list the state you mirror (the listing reflects
// every change up to now, including the lost ones), then keep ranging:
// what follows are the changes after To, some of which the listing may
// already show; applying a change twice must be harmless (it is for
// level-based consumers that store the latest state of each object).
type GapError struct {
	From stream.Revision // the last revision delivered (or started after) before the gap
	To   stream.Revision // the compact revision: the stream restarts after it
}

func (e *GapError) Error() string {
	return fmt.Sprintf("gap in the change stream: revisions after %s up to %s compacted away", e.From, e.To)
}

// Is reports whether target is ErrGap.
func (e *GapError) Is(target error) bool { return target == ErrGap }

// CompactionPolicy says what Resume does when the stream is compacted.
type CompactionPolicy int

const (
	// Fail ends the sequence with the stream's *stream.CompactedError
	// (errors.Is(err, stream.ErrCompacted)). It is the default.
	Fail CompactionPolicy = iota
	// Restart yields a *GapError, then reopens the stream after the compact
	// revision and goes on.
	Restart
)

// ResumeOption configures Resume. Each constructor checks its argument: a
// bad one is recorded as an error wrapping stream.ErrInvalidOption, which
// Err returns at once and Resume yields as the only value of its sequence.
type ResumeOption func(*resumeConfig)

// Err returns the error o records for a bad argument (wrapping
// stream.ErrInvalidOption), or nil, so that a caller can check an option
// where its value is given. For WithStreamOptions, that includes the
// errors of the stream options (stream.Validate).
func (o ResumeOption) Err() error {
	if o == nil {
		return nil
	}
	var c resumeConfig
	o(&c)
	if c.err != nil {
		return c.err
	}
	return stream.Validate(c.streamOpts...)
}

type resumeConfig struct {
	streamOpts []stream.Option
	start      stream.Revision
	hasStart   bool
	policy     CompactionPolicy
	reopen     stream.RetryPolicy
	onReopen   func(error)
	err        error
}

// DefaultReopenBackoff returns the policy Resume reopens with by default:
// waits from 1 s growing 1.5-fold to 30 s, jitter 0.5, never giving up.
func DefaultReopenBackoff() stream.RetryPolicy {
	return stream.RetryPolicy{
		Min:        time.Second,
		Max:        30 * time.Second,
		Multiplier: 1.5,
		Jitter:     0.5,
		MaxRetries: stream.NoRetryLimit,
	}
}

// WithStreamOptions passes options to every stream.Watch that Resume opens.
// Resume adds its own stream.After on each reopen, which overrides a start
// position given here; the one given here (stream.After, stream.FromStart,
// stream.FromNow, or the option LoadAfter returns) applies to the first
// open, unless StartAfter is given too.
func WithStreamOptions(opts ...stream.Option) ResumeOption {
	return func(c *resumeConfig) { c.streamOpts = append(c.streamOpts, opts...) }
}

// StartAfter starts the first stream after rev, as stream.After does. rev
// must not be the zero Revision; for a checkpoint that may hold nothing
// yet, use LoadAfter and pass its option with WithStreamOptions:
//
//	after, err := operators.LoadAfter(ctx, store, stream.FromStart())
//	...
//	operators.Resume(ctx, src, operators.WithStreamOptions(after))
func StartAfter(rev stream.Revision) ResumeOption {
	return func(c *resumeConfig) {
		if rev.IsZero() {
			c.fail("StartAfter: zero revision")
		}
		c.start, c.hasStart = rev, true
	}
}

// OnCompaction sets the compaction policy: Fail (the default) or Restart.
func OnCompaction(p CompactionPolicy) ResumeOption {
	return func(c *resumeConfig) {
		if p != Fail && p != Restart {
			c.fail("OnCompaction(%d): unknown policy", int(p))
		}
		c.policy = p
	}
}

// MaxReopens bounds the reopens in a row that deliver nothing: once n
// reopens have each ended again before delivering a value, Resume ends
// with the last failure. A delivered value resets the count. It sets the
// MaxRetries of the reopen policy (see ReopenBackoff), whose default is
// stream.NoRetryLimit: no limit. A compaction restart counts as a reopen:
// with MaxReopens(0), Resume never reopens, and a compaction ends it with
// the *stream.CompactedError even under the Restart policy. n must not be
// below stream.NoRetryLimit.
func MaxReopens(n int) ResumeOption {
	return func(c *resumeConfig) {
		if n < stream.NoRetryLimit {
			c.fail("MaxReopens(%d): below stream.NoRetryLimit", n)
		}
		c.reopen.MaxRetries = n
	}
}

// ReopenBackoff sets the policy for reopening (default
// DefaultReopenBackoff()): the wait between a failure and the reopen that
// follows (Min, Max, Multiplier, Jitter, and a Retry-After the failure
// carries) and, as MaxRetries, how many reopens in a row may deliver
// nothing (see MaxReopens, which changes that one field). The count and
// the wait are reset when a value is delivered. A compaction restart
// counts, but does not wait. As everywhere in towerwatch, zero MaxRetries
// gives up at once: start from DefaultReopenBackoff() to change one field.
// p must be valid (p.Validate).
func ReopenBackoff(p stream.RetryPolicy) ResumeOption {
	return func(c *resumeConfig) {
		if err := p.Validate(); err != nil && c.err == nil {
			c.err = fmt.Errorf("operators: Resume: ReopenBackoff: %w", err)
		}
		c.reopen = p
	}
}

// OnReopen sets a hook called with the failure (or the compaction) that
// ends a stream, just before Resume reopens it. It runs on the range
// goroutine.
func OnReopen(f func(err error)) ResumeOption {
	return func(c *resumeConfig) { c.onReopen = f }
}

func (c *resumeConfig) fail(format string, args ...any) {
	if c.err == nil {
		c.err = invalid("Resume: "+format, args...)
	}
}

// Resume watches src like stream.Watch, and when the stream ends with a
// failure that reopening may fix, reopens it after the last delivered
// revision, so that the consumer sees one unbroken stream: ordered, no
// revision twice, none skipped.
//
// What reopens is decided by stream.IsFinal, the one rule of towerwatch:
// a *stream.RetryError (the stream's own retries, bounded by
// stream.MaxRetries, ran out) reopens, at the position it carries if
// nothing was delivered yet; final errors end the sequence: ctx.Err() when
// ctx is done, an error marked with stream.Fatal, an invalid option
// (stream.ErrInvalidOption), and a compaction under the Fail policy. Under
// the Restart policy, a compaction yields a *GapError (not final: see
// GapError), then the stream reopens after the compact revision.
//
// Reopens follow the ReopenBackoff policy (by default, no limit, and 1 s
// to 30 s apart); see also MaxReopens. Each reopen is reported to the
// OnReopen hook.
//
// Resume runs on the range goroutine (the stream's own prefetch aside); a
// break or ctx ends it at once, also during the wait before a reopen. Each
// range over the returned sequence is an independent pass, starting again
// from the configured start.
func Resume[E any](ctx context.Context, src stream.Source[E], opts ...ResumeOption) iter.Seq2[E, error] {
	cfg := &resumeConfig{reopen: DefaultReopenBackoff()}
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
	return func(yield func(E, error) bool) {
		var zero E
		if cfg.err != nil {
			yield(zero, cfg.err)
			return
		}
		if src == nil {
			yield(zero, invalid("Resume: nil Source"))
			return
		}
		r := resumer[E]{cfg: cfg, src: src}
		if err := r.run(ctx, yield); err != nil {
			yield(zero, err)
		}
	}
}

type resumer[E any] struct {
	cfg *resumeConfig
	src stream.Source[E]
}

// run returns the error that ends the sequence, or nil when the consumer
// stopped.
func (r *resumer[E]) run(ctx context.Context, yield func(E, error) bool) error {
	var (
		pos     stream.Revision // last revision delivered, or started after; zero: unknown
		retrier = r.cfg.reopen.Start()
	)
	for {
		opts := r.cfg.streamOpts
		opts = opts[:len(opts):len(opts)] // appending must not share the caller's array
		switch {
		case !pos.IsZero():
			opts = append(opts, stream.After(pos))
		case r.cfg.hasStart:
			opts = append(opts, stream.After(r.cfg.start))
		}
		// With no known position (the first open, or a reopen after a
		// stream that failed while still learning the head revision), the
		// options decide where to start. Nothing has been delivered then,
		// so starting from now again skips and repeats nothing.

		var end error
		delivered := false
		for ev, err := range stream.Watch(ctx, r.src, opts...) {
			if err != nil {
				end = err
				break
			}
			rev, rerr := r.src.Revision(ev)
			if rerr != nil { // Watch checked it already: the source is inconsistent
				return stream.Fatal(fmt.Errorf("operators: Resume: revision of a delivered item: %w", rerr))
			}
			pos = rev
			delivered = true
			if !yield(ev, nil) {
				return nil
			}
		}
		if end == nil { // a stream ends without an error only when the consumer stops
			return nil
		}
		var (
			re *stream.RetryError
			ce *stream.CompactedError
		)
		if pos.IsZero() && errors.As(end, &re) {
			pos = re.Position // where the engine started; zero if it never learned it
		}
		if delivered {
			retrier.Reset()
		}

		compacted := errors.As(end, &ce)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case compacted && r.cfg.policy == Restart:
			// reopen after the gap, below
		case stream.IsFinal(end):
			return end
		}
		// What is not final (a retry error, an unexpected failure) and a
		// compaction to restart after reopen, within the policy's limit.
		wait, ok := retrier.Next(end)
		if !ok {
			if n := retrier.Failures() - 1; n > 0 {
				return fmt.Errorf("operators: Resume: gave up after %d reopens in a row: %w", n, end)
			}
			return end
		}
		if compacted {
			from := ce.Position
			if from.IsZero() {
				from = pos
			}
			if !yield(zero[E](), &GapError{From: from, To: ce.Compact}) {
				return nil
			}
			if r.cfg.onReopen != nil {
				r.cfg.onReopen(end)
			}
			pos = ce.Compact
			continue
		}
		if r.cfg.onReopen != nil {
			r.cfg.onReopen(end)
		}
		if err := ctxtime.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func zero[E any]() (z E) { return }
