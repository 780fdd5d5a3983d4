package informer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// Option configures New. Each option checks its arguments where it is
// built; New returns the first error an option recorded, wrapping
// stream.ErrInvalidOption.
type Option func(*config)

type namedIndex struct {
	name string
	f    any // func(V) []string
}

type config struct {
	indexes   []namedIndex
	transform any // func(V) V
	equal     any // func(a, b V) bool
	resync    time.Duration
	retry     stream.RetryPolicy
	watchOpts []stream.Option
	onRelist  func(RelistInfo)
	logger    *slog.Logger
	err       error
}

func newConfig(opts []Option) *config {
	c := &config{retry: stream.DefaultRetryPolicy()}
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
		c.err = fmt.Errorf("%w: informer: "+format, append([]any{stream.ErrInvalidOption}, args...)...)
	}
}

// Err returns the error o records, if any: a bad argument, checked where
// the option is built, without building an informer.
func (o Option) Err() error {
	if o == nil {
		return nil
	}
	c := &config{}
	o(c)
	return c.err
}

// Validate returns the errors of opts, joined (nil if every option is
// valid): the error New would return for them (New also checks that the
// functions given to Index, Transform and Equal take its object type).
func Validate(opts ...Option) error { return stream.ValidateOptions(opts...) }

// Index registers an index: f returns the index values of an object (for
// example its cluster's id), and Store.ByIndex(name, value) returns the
// objects with that value. The name must be unique and non-empty, and V
// must be the informer's object type (New reports a mismatch).
func Index[V any](name string, f func(obj V) []string) Option {
	return func(c *config) {
		switch {
		case name == "":
			c.fail("Index: empty name")
		case f == nil:
			c.fail("Index(%q): nil func", name)
		}
		for _, ix := range c.indexes {
			if ix.name == name {
				c.fail("Index(%q): registered twice", name)
			}
		}
		c.indexes = append(c.indexes, namedIndex{name: name, f: f})
	}
}

// Transform sets a function applied to every object, listed or from a
// change, before it is keyed and stored; use it to drop fields the program
// does not need. It must keep the key, must not modify its argument in
// place if the lister or decoder shares it, and must be fast: it runs on
// the informer's goroutine.
func Transform[V any](f func(obj V) V) Option {
	return func(c *config) {
		if f == nil {
			c.fail("Transform: nil func")
		}
		c.transform = f
	}
}

// Equal sets the equality a re-list uses to tell changed objects from
// unchanged ones (an Update is notified only for changed ones). The default
// compares the objects' JSON encodings (encoding/json), which suits
// generated API models.
func Equal[V any](f func(a, b V) bool) Option {
	return func(c *config) {
		if f == nil {
			c.fail("Equal: nil func")
		}
		c.equal = f
	}
}

// Resync makes the informer re-list every period once synced, and apply
// the difference with the store as Add, Update and Delete notifications
// (deletes marked finalStateUnknown), as after a compaction. It is off by
// default (zero); it is a safety net, not needed for correctness. The
// period must not be negative.
func Resync(period time.Duration) Option {
	return func(c *config) {
		if period < 0 {
			c.fail("Resync(%v): must not be negative", period)
		}
		c.resync = period
	}
}

// Retry sets the policy for trying again a failed list or head request,
// and for reopening the watch after it ended with a *stream.RetryError
// (default stream.DefaultRetryPolicy(): 500 ms to 30 s, forever). With a
// MaxRetries limit, Run returns a *stream.RetryError once that many
// attempts in a row have failed. The policy is checked with Validate.
func Retry(p stream.RetryPolicy) Option {
	err := p.Validate()
	return func(c *config) {
		if err != nil {
			c.fail("Retry: %w", err)
		}
		c.retry = p
	}
}

// Backoff is a shorthand for Retry with the default policy's other
// fields: waits from min to max, retrying forever.
func Backoff(min, max time.Duration) Option {
	return func(c *config) {
		if min <= 0 || max < min {
			c.fail("Backoff(%v, %v): want 0 < min <= max", min, max)
		}
		c.retry.Min, c.retry.Max = min, max
	}
}

// WatchOptions adds options for the change stream (stream.Watch), such as
// stream.PollInterval, stream.Retry, or the hooks stream.OnPoll and
// stream.OnWarning, which the informer leaves to the caller (it watches
// the pages through the Source instead). The informer chooses the start
// position itself: start options (stream.After, stream.FromNow,
// stream.FromStart) are overridden. Calls accumulate. Bad options are
// reported here (stream.Validate).
func WatchOptions(opts ...stream.Option) Option {
	err := stream.Validate(opts...)
	return func(c *config) {
		if err != nil {
			c.fail("WatchOptions: %w", err)
		}
		for _, o := range opts {
			if o != nil {
				c.watchOpts = append(c.watchOpts, o)
			}
		}
	}
}

// OnRelist sets a hook called after each re-list after the first sync
// (compaction, a gap, an undecodable change, or Resync), once its
// differences have been applied to the store and queued to the handlers.
// It runs on the informer's goroutine and must not block.
func OnRelist(f func(RelistInfo)) Option {
	return func(c *config) { c.onRelist = f }
}

// Logger sets the logger (default slog.Default()): re-lists and retries
// at Info and Warn level.
func Logger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}
