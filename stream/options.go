package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of the Watch options.
const (
	DefaultPollInterval = time.Second
	DefaultPageSize     = 1000 // CloudTower's maximum
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultPollTimeout  = 60 * time.Second
)

// Option configures Watch. An option given a bad value records an error
// wrapping ErrInvalidOption: Err returns it at once (and Validate checks a
// list), and Watch yields it as the sequence's only value.
type Option func(*config)

// Err returns the error o records, wrapping ErrInvalidOption, or nil if o
// is valid. It applies o to a scratch configuration. A nil Option is valid
// and does nothing.
func (o Option) Err() error {
	if o == nil {
		return nil
	}
	var c config
	o(&c)
	return errors.Join(c.errs...)
}

// Validate returns the errors of opts, joined (nil if every option is
// valid): the error Watch would yield for them.
func Validate(opts ...Option) error { return ValidateOptions(opts...) }

// ValidateOptions returns the errors of opts' Err methods, joined (nil if
// every option is valid). It is the Validate of every package whose options
// follow the project's rule (an Err method reporting a bad argument where
// the option is built): informer.Validate, promwatch.Validate, ...
func ValidateOptions[O interface{ Err() error }](opts ...O) error {
	var errs []error
	for _, o := range opts {
		if err := o.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PollInfo describes one successful poll, for progress displays and
// metrics. See OnPoll.
type PollInfo struct {
	Position Revision      // last revision delivered or started after, before this page
	Last     Revision      // newest revision in this page, zero if it had none
	Head     Revision      // the server's head revision, zero if unknown
	Compact  Revision      // the server's compact revision, zero if none
	Items    int           // items the page held
	New      int           // items that will be delivered (not seen before)
	CaughtUp bool          // the engine believes nothing more is waiting
	Duration time.Duration // how long the poll took
}

// start is where a stream starts.
type start int

const (
	startNow   start = iota // at the server's head
	startFirst              // at the oldest change kept
	startAfter              // after config.after
)

type config struct {
	start       start
	after       Revision
	interval    time.Duration
	pageSize    int
	retry       RetryPolicy
	pollTimeout time.Duration
	prefetch    bool
	parallel    int // ParallelCatchUp's n; 0: off
	onWarning   func(error)
	onPoll      func(PollInfo)
	logger      *slog.Logger
	errs        []error
}

func newConfig(opts []Option) *config {
	c := &config{
		interval:    DefaultPollInterval,
		pageSize:    DefaultPageSize,
		retry:       DefaultRetryPolicy(),
		pollTimeout: DefaultPollTimeout,
		prefetch:    true,
	}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// After starts the stream after rev: the first change delivered is the
// first one newer than rev. rev must not be the zero Revision: say FromNow
// or FromStart instead.
func After(rev Revision) Option {
	return func(c *config) {
		if rev.IsZero() {
			c.fail("After: zero revision")
		}
		c.start, c.after = startAfter, rev
	}
}

// FromNow starts the stream at the server's head: it asks for the head
// revision first, then delivers only changes that follow it. This is the
// default. On a source that reports no head, it starts as FromStart.
func FromNow() Option {
	return func(c *config) { c.start, c.after = startNow, Revision{} }
}

// FromStart starts the stream at the oldest change the server keeps: it
// polls after revision 0, and while nothing has been delivered yet, a
// compact revision above the position moves the position up to it instead
// of ending the stream with ErrCompacted (nothing that is kept was
// skipped).
func FromStart() Option {
	return func(c *config) { c.start, c.after = startFirst, Revision{} }
}

// PollInterval sets the wait between polls once the stream has caught up
// (default 1 s; a jitter of up to 10% is added). While catching up the
// engine never waits. It must be positive.
func PollInterval(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("PollInterval(%v): must be positive", d)
		}
		c.interval = d
	}
}

// PageSize sets the most changes asked for per request (default 1000,
// CloudTower's maximum). It must be at least 2, so that a page always has
// room for a new change next to a repeated start revision.
func PageSize(n int) Option {
	return func(c *config) {
		if n < 2 {
			c.fail("PageSize(%d): must be at least 2", n)
		}
		c.pageSize = n
	}
}

// Retry sets the policy for retrying failed polls (default
// DefaultRetryPolicy()). MaxRetries and Backoff change single fields of it.
func Retry(p RetryPolicy) Option {
	return func(c *config) {
		if err := p.Validate(); err != nil {
			c.errs = append(c.errs, err)
		}
		c.retry = p
	}
}

// MaxRetries bounds the retries of a failing poll: after n retries in a row
// have failed, the stream ends with a *RetryError. MaxRetries(0) ends it at
// the first failure; NoRetryLimit, the default, retries forever.
func MaxRetries(n int) Option {
	return func(c *config) {
		if n < NoRetryLimit {
			c.fail("MaxRetries(%d): below NoRetryLimit", n)
		}
		c.retry.MaxRetries = n
	}
}

// Backoff sets the bounds of the wait before a retry (default 500 ms to
// 30 s): the Min and Max of the retry policy. The wait grows exponentially
// from min, with jitter, up to max.
func Backoff(min, max time.Duration) Option {
	return func(c *config) {
		if min <= 0 || max < min {
			c.fail("Backoff(%v, %v): want 0 < min <= max", min, max)
		}
		c.retry.Min, c.retry.Max = min, max
	}
}

// PollTimeout bounds each poll (default 60 s); a poll that takes longer is
// cancelled and retried. Zero means no bound. It must not be negative.
func PollTimeout(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("PollTimeout(%v): must not be negative", d)
		}
		c.pollTimeout = d
	}
}

// Prefetch turns prefetching on (the default) or off. While catching up,
// prefetching fetches the next page while the consumer handles the current
// one; it never runs more than one page ahead.
func Prefetch(on bool) Option {
	return func(c *config) { c.prefetch = on }
}

// ParallelCatchUp lets the engine have up to n polls in flight while it
// catches up (n = 1 is the default prefetch), to drain a backlog over a
// slow link n times faster: a serial client gets at most one page per
// round trip. It is off by default; Prefetch(false) turns it off too.
// n must be at least 1.
//
// Only the first of those polls starts after the last revision received;
// the others start after estimated revisions, ahead of pages not yet
// received (the previous start plus the larger of PageSize-1 and 0.9 times
// the span of revisions of the last full page). A full page after s that
// ends at revision L holds every change in (s, L], and a page that is not
// full every change after s up to the head; so a page whose start is at
// or below the last revision delivered before it continues the stream
// without a gap (its overlap is dropped like a repeated page), and a page
// that started above it is discarded and that range polled again. The
// guarantees are therefore the same as without the option, for any
// Source, filtered or not: a wrong estimate costs a request, never a
// change. Revisions that do not fit in a uint64 are not estimated (the
// engine then runs one poll ahead).
//
// Once a poll finds the stream caught up, the polls in flight are
// cancelled and, until the next full page, the engine polls one request
// at a time. Memory is bounded by n + 1 pages: n polled or in flight and
// the one being delivered. While catching up with it, a Poll's after
// revision may be an estimate and says nothing about what was delivered
// (see "When a Source is polled" in the package doc).
func ParallelCatchUp(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("ParallelCatchUp(%d): must be at least 1", n)
		}
		c.parallel = n
	}
}

// OnWarning sets a hook called with each non-fatal failure (a poll that
// will be retried). It runs on the engine's goroutine and must not block.
func OnWarning(f func(error)) Option {
	return func(c *config) { c.onWarning = f }
}

// OnPoll sets a hook called after each successful poll, before its items
// are delivered. It runs on the engine's goroutine and must not block.
func OnPoll(f func(PollInfo)) Option {
	return func(c *config) { c.onPoll = f }
}

// Logger sets the logger for retries and state changes (default
// slog.Default()). Warnings are logged at Warn level, the rest at Debug.
func Logger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}
