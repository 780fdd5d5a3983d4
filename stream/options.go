package stream

import (
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

// Option configures Watch.
type Option func(*config)

// PollInfo describes one successful poll, for progress displays and
// metrics. See OnPoll.
type PollInfo struct {
	Position Revision // last revision delivered or started after, before this page
	Last     Revision // newest revision in this page, zero if it had none
	Head     Revision // the server's head revision, zero if unknown
	Compact  Revision // the server's compact revision, zero if none
	Items    int      // items the page held
	New      int      // items that will be delivered (not seen before)
	CaughtUp bool     // the engine believes nothing more is waiting
}

type config struct {
	after       Revision
	fromNow     bool
	interval    time.Duration
	pageSize    int
	maxRetries  int // -1: forever
	minBackoff  time.Duration
	maxBackoff  time.Duration
	pollTimeout time.Duration
	prefetch    bool
	onWarning   func(error)
	onPoll      func(PollInfo)
	logger      *slog.Logger
	err         error
}

func newConfig(opts []Option) *config {
	c := &config{
		fromNow:     true,
		interval:    DefaultPollInterval,
		pageSize:    DefaultPageSize,
		maxRetries:  -1,
		minBackoff:  DefaultMinBackoff,
		maxBackoff:  DefaultMaxBackoff,
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
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
	}
}

// After starts the stream after rev: the first change delivered is the
// first one newer than rev. The zero Revision means the same as FromNow.
func After(rev Revision) Option {
	return func(c *config) { c.after, c.fromNow = rev, rev.IsZero() }
}

// FromNow starts the stream at the server's head: it asks for the head
// revision first, then delivers only changes that follow it. This is the
// default.
func FromNow() Option {
	return func(c *config) { c.after, c.fromNow = Revision{}, true }
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

// MaxRetries bounds the retries of a failing poll: after n retries in a row
// have failed, the stream ends with a *RetryError. MaxRetries(0) ends it at
// the first failure. The default is to retry forever. n must not be negative.
func MaxRetries(n int) Option {
	return func(c *config) {
		if n < 0 {
			c.fail("MaxRetries(%d): must not be negative", n)
		}
		c.maxRetries = n
	}
}

// Backoff sets the bounds of the wait before a retry (default 500 ms to
// 30 s). The wait grows exponentially from min, with jitter, up to max.
func Backoff(min, max time.Duration) Option {
	return func(c *config) {
		if min <= 0 || max < min {
			c.fail("Backoff(%v, %v): want 0 < min <= max", min, max)
		}
		c.minBackoff, c.maxBackoff = min, max
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
