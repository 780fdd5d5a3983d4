package operators

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

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
	return fmt.Sprintf("gap in the change stream: changes after %s up to %s were compacted away; re-list, then continue after %s", e.From, e.To, e.To)
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

// ResumeOption configures Resume.
type ResumeOption func(*resumeConfig)

type resumeConfig struct {
	streamOpts []stream.Option
	start      stream.Revision
	hasStart   bool
	policy     CompactionPolicy
	maxReopens int // -1: no limit
	backoff    func() backoff.BackOff
	onReopen   func(error)
	err        error
}

// DefaultReopenBackoff returns the backoff Resume uses between reopens by
// default: exponential from 1 s to 30 s, with jitter, never giving up.
func DefaultReopenBackoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = time.Second
	b.MaxInterval = 30 * time.Second
	return b
}

// WithStreamOptions passes options to every stream.Watch that Resume opens.
// Resume adds its own stream.After on each reopen, which overrides a start
// position given here; the one given here (or StartAfter) applies to the
// first open.
func WithStreamOptions(opts ...stream.Option) ResumeOption {
	return func(c *resumeConfig) { c.streamOpts = append(c.streamOpts, opts...) }
}

// StartAfter starts the first stream after rev, as stream.After does (the
// zero Revision means from now). Use it with a checkpoint:
//
//	rev, err := store.Load(ctx)
//	...
//	operators.Resume(ctx, src, operators.StartAfter(rev))
func StartAfter(rev stream.Revision) ResumeOption {
	return func(c *resumeConfig) { c.start, c.hasStart = rev, true }
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
// with the last failure. A delivered value resets the count. The default
// is no limit. A compaction restart counts as a reopen: with
// MaxReopens(0), Resume never reopens, and a compaction ends it with the
// *stream.CompactedError even under the Restart policy.
func MaxReopens(n int) ResumeOption {
	return func(c *resumeConfig) {
		if n < 0 {
			c.fail("MaxReopens(%d): must not be negative", n)
		}
		c.maxReopens = n
	}
}

// ReopenBackoff sets the wait between a failure and the reopen that
// follows; newBackOff is called once per pass over the sequence. The
// backoff is reset when a value is delivered. When it returns
// backoff.Stop, Resume ends with the last failure. A compaction restart
// does not wait. The default is DefaultReopenBackoff.
func ReopenBackoff(newBackOff func() backoff.BackOff) ResumeOption {
	return func(c *resumeConfig) {
		if newBackOff == nil {
			c.fail("ReopenBackoff(nil)")
		}
		c.backoff = newBackOff
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
// Failures that reopen: a *stream.RetryError (the stream's own retries,
// bounded by stream.MaxRetries, ran out), and any other error that is not
// one of the following. Errors that end the sequence: ctx.Err() when ctx
// is done, an error marked with stream.Fatal, an invalid option
// (stream.ErrInvalidOption or ErrInvalidArgument), and a compaction under
// the Fail policy. Under the Restart policy, a compaction yields a
// *GapError (not final: see GapError), then the stream reopens after the
// compact revision.
//
// Reopens are bounded by MaxReopens and spaced by ReopenBackoff (by
// default, no limit, and 1 s to 30 s). Each reopen is reported to the
// OnReopen hook.
//
// Resume runs on the range goroutine (the stream's own prefetch aside); a
// break or ctx ends it at once, also during the wait before a reopen. Each
// range over the returned sequence is an independent pass, starting again
// from the configured start.
func Resume[E any](ctx context.Context, src stream.Source[E], opts ...ResumeOption) iter.Seq2[E, error] {
	cfg := &resumeConfig{maxReopens: -1, backoff: DefaultReopenBackoff}
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
		bo      backoff.BackOff
		reopens int // reopens in a row without a delivered value
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

		tracked := &startTracker[E]{Source: r.src}
		var end error
		delivered := false
		for ev, err := range stream.Watch(ctx, stream.Source[E](tracked), opts...) {
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
		if pos.IsZero() {
			pos = tracked.start()
		}
		if delivered {
			reopens = 0
			if bo != nil {
				bo.Reset()
			}
		}

		var ce *stream.CompactedError
		compacted := errors.As(end, &ce)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(end, stream.ErrRetriesExhausted):
			// reopen
		case stream.IsFatal(end), errors.Is(end, stream.ErrInvalidOption), errors.Is(end, ErrInvalidArgument):
			return end
		case compacted && r.cfg.policy != Restart:
			return end
		}
		// Every other error (a retry error, a compaction to restart after,
		// an unexpected failure) reopens, within the limit.
		if r.cfg.maxReopens >= 0 && reopens >= r.cfg.maxReopens {
			if reopens == 0 {
				return end
			}
			return fmt.Errorf("operators: Resume gave up after %d reopens in a row: %w", reopens, end)
		}
		reopens++
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
		if bo == nil {
			bo = r.cfg.backoff()
		}
		wait := bo.NextBackOff()
		if wait == backoff.Stop {
			return fmt.Errorf("operators: Resume gave up after %d reopens in a row (backoff stopped): %w", reopens-1, end)
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

// startTracker records where the engine started: the revision of its
// first poll after a known position (the start revision, or the head it
// learned for FromNow). It lets Resume reopen at that position when the
// stream fails before delivering anything.
type startTracker[E any] struct {
	stream.Source[E]
	mu    sync.Mutex
	first stream.Revision
}

func (t *startTracker[E]) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[E], error) {
	if !after.IsZero() {
		t.mu.Lock()
		if t.first.IsZero() {
			t.first = after
		}
		t.mu.Unlock()
	}
	return t.Source.Poll(ctx, after, limit)
}

func (t *startTracker[E]) start() stream.Revision {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.first
}
