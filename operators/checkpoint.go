package operators

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// CheckpointStore persists the revision of the last value a consumer has
// finished with, so that a restarted process resumes after it.
type CheckpointStore interface {
	// Load returns the stored revision, or the zero Revision (and no
	// error) when nothing has been stored yet.
	Load(ctx context.Context) (stream.Revision, error)
	// Save stores rev, replacing what was stored. It must be atomic: after
	// a crash at any moment, Load returns either the old or the new
	// revision.
	Save(ctx context.Context, rev stream.Revision) error
}

// LoadAfter loads the stored revision and returns the stream option that
// starts a watch after it: stream.After(rev). With nothing stored (a first
// run), it returns ifNone, the start you choose for that case: usually
// stream.FromStart() (everything the server keeps) or stream.FromNow()
// (only what happens from now on). A nil ifNone means stream.FromNow(),
// Watch's default.
//
//	after, err := operators.LoadAfter(ctx, store, stream.FromStart())
//	if err != nil {
//		return err
//	}
//	events := stream.Watch(ctx, src, after)
//
// For Resume, pass the option with WithStreamOptions(after).
func LoadAfter(ctx context.Context, store CheckpointStore, ifNone stream.Option) (stream.Option, error) {
	if store == nil {
		return nil, invalid("LoadAfter: nil store")
	}
	rev, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	if rev.IsZero() {
		if ifNone == nil {
			return stream.FromNow(), nil
		}
		return ifNone, nil
	}
	return stream.After(rev), nil
}

// Default checkpoint intervals.
const (
	DefaultCheckpointEvery    = 100
	DefaultCheckpointInterval = time.Second
)

// CheckpointOption configures Checkpoint. Each constructor checks its
// argument: a bad one is recorded as an error wrapping
// stream.ErrInvalidOption, which Err returns at once and Checkpoint yields
// as the only value of its sequence.
type CheckpointOption func(*checkpointConfig)

// Err returns the error o records for a bad argument (wrapping
// stream.ErrInvalidOption), or nil, so that a caller can check an option
// where its value is given (a flag, a config file) rather than once the
// loop runs.
func (o CheckpointOption) Err() error {
	if o == nil {
		return nil
	}
	var c checkpointConfig
	o(&c)
	return c.err
}

type checkpointConfig struct {
	every      int
	interval   time.Duration
	idle       time.Duration // 0: no idle save
	beforeSave func(context.Context) error
	onIdle     func()
	onSaveErr  func(error)
	err        error
}

func (c *checkpointConfig) fail(format string, args ...any) {
	if c.err == nil {
		c.err = invalid("Checkpoint: "+format, args...)
	}
}

// SaveEvery saves once n values have been finished since the last save
// (default 100). SaveEvery(1) saves after every value. n must be positive.
func SaveEvery(n int) CheckpointOption {
	return func(c *checkpointConfig) {
		if n < 1 {
			c.fail("SaveEvery(%d): must be at least 1", n)
		}
		c.every = n
	}
}

// SaveInterval also saves when a value is finished d or more after the
// last save (default 1 s); zero turns the time rule off. The rule is
// checked as values finish, with no timer: an idle stream saves nothing
// new until its next value or its end (see SaveWhenIdle for that). d must
// not be negative.
func SaveInterval(d time.Duration) CheckpointOption {
	return func(c *checkpointConfig) {
		if d < 0 {
			c.fail("SaveInterval(%v): must not be negative", d)
		}
		c.interval = d
	}
}

// SaveWhenIdle also saves when no value has arrived for grace after the
// last finished one: once the upstream goes quiet (a caught-up stream),
// the checkpoint reaches the last value within grace, instead of waiting
// for the next value or the end. grace must be positive.
//
// Noticing silence needs a timer while the upstream is blocked, so with
// this option Checkpoint reads seq in one goroutine of its own, which
// hands values over one at a time (at most one value read ahead of the
// consumer); saves, the BeforeSave hook and revision still run on the
// range goroutine, between values, never while the loop body runs. That
// goroutine follows the rule of the package documentation: build seq with
// ctx and cancel ctx when the loop is done. With this option, Checkpoint
// also watches ctx like Batch does: when ctx is done, it saves and ends
// with ctx.Err(), even if seq has not noticed yet.
func SaveWhenIdle(grace time.Duration) CheckpointOption {
	return func(c *checkpointConfig) {
		if grace <= 0 {
			c.fail("SaveWhenIdle(%v): must be positive", grace)
		}
		c.idle = grace
	}
}

// BeforeSave sets a hook that runs before each save, on the range
// goroutine while the loop body is not running: for example to flush
// buffered output, so that the checkpoint never runs ahead of what the
// body has written. The final saves (break, error, end, panic) pass it
// ctx without its cancellation, as they pass the store. An error from the
// hook ends the sequence as a failed save does (after a break, it goes to
// OnSaveError), and the save does not happen.
func BeforeSave(f func(ctx context.Context) error) CheckpointOption {
	return func(c *checkpointConfig) { c.beforeSave = f }
}

// OnIdle sets a hook that runs each time the SaveWhenIdle grace passes
// with no new value after a finished one, right after the idle save (if
// there was something to save), on the range goroutine while the loop body
// is not running: for example to tell a progress display that the stream
// has gone quiet. It needs SaveWhenIdle; without it, it is never called.
func OnIdle(f func()) CheckpointOption {
	return func(c *checkpointConfig) { c.onIdle = f }
}

// OnSaveError sets a hook for a save that fails after the consumer broke
// out of the loop, when the error can no longer be yielded. By default it
// is logged with slog at Warn level.
func OnSaveError(f func(error)) CheckpointOption {
	return func(c *checkpointConfig) { c.onSaveErr = f }
}

// Checkpoint passes seq through and records, in store, the revision of
// each value the consumer has finished with. A value is finished when the
// loop body returns for it and asks for the next one; the value during
// which the body breaks (or panics) is not, since it may not have been
// handled. So after a crash the stream resumes at most a few values early
// (at-least-once delivery), never past an unhandled value.
//
// revision reads the revision of a value (for a stream, src.Revision);
// revisions must increase along seq, as they do along a stream.
//
// Saves happen on the range goroutine, between values: after SaveEvery
// values (default 100), or once SaveInterval (default 1 s) has passed since
// the last save, whichever comes first, when the upstream has been silent
// for the SaveWhenIdle grace (off by default), and once more when the loop
// ends: on break, on an error from seq (before the error is passed on, so
// a consumer that stops at the error has its checkpoint), on the end of
// seq, and on a panic in the loop body. A save only happens when some
// value finished since the last one; the BeforeSave hook runs right before
// each. The final saves use ctx without its cancellation
// (context.WithoutCancel), so that a cancelled ctx still gets its
// checkpoint.
//
// If a save fails, the BeforeSave hook fails, or revision fails, the
// sequence yields that error (wrapped, with the upstream's error joined in
// when there was one) and ends. A save that fails after a break cannot be
// yielded: it goes to the OnSaveError hook.
//
// Without SaveWhenIdle, Checkpoint runs entirely on the range goroutine;
// with it, it reads seq in one goroutine (see SaveWhenIdle).
//
// Start the stream after the stored revision, with LoadAfter.
func Checkpoint[T any](ctx context.Context, seq iter.Seq2[T, error], store CheckpointStore, revision func(T) (stream.Revision, error), opts ...CheckpointOption) iter.Seq2[T, error] {
	cfg := &checkpointConfig{every: DefaultCheckpointEvery, interval: DefaultCheckpointInterval}
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
	return func(yield func(T, error) bool) {
		var zero T
		switch {
		case cfg.err != nil:
			yield(zero, cfg.err)
			return
		case seq == nil:
			yield(zero, invalid("Checkpoint: nil sequence"))
			return
		case store == nil:
			yield(zero, invalid("Checkpoint: nil store"))
			return
		case revision == nil:
			yield(zero, invalid("Checkpoint: nil revision function"))
			return
		}
		c := &checkpointer[T]{store: store, cfg: cfg, revision: revision, yield: yield, lastSave: time.Now()}
		c.stopped = true // until the loop ends by itself: the consumer stopped or panicked
		defer func() {
			if c.stopped {
				if err := c.flush(context.WithoutCancel(ctx)); err != nil {
					if cfg.onSaveErr != nil {
						cfg.onSaveErr(err)
					} else {
						slog.Warn("towerwatch: saving the checkpoint after the loop ended failed", "error", err)
					}
				}
			}
		}()
		if cfg.idle > 0 {
			c.runIdle(ctx, seq)
		} else {
			c.run(ctx, seq)
		}
	}
}

// run is Checkpoint on the range goroutine alone.
func (c *checkpointer[T]) run(ctx context.Context, seq iter.Seq2[T, error]) {
	for v, err := range seq {
		if !c.handle(ctx, v, err) {
			return
		}
	}
	c.end(ctx)
}

// runIdle is Checkpoint with SaveWhenIdle: a goroutine reads seq and hands
// each value over; the range goroutine waits for the next one with a timer
// armed while something finished is unsaved, and saves when it fires.
func (c *checkpointer[T]) runIdle(ctx context.Context, seq iter.Seq2[T, error]) {
	ch := make(chan msg[T])
	left := make(chan struct{}) // closed when the consumer has left
	defer close(left)
	go func() {
		defer close(ch)
		for v, err := range seq {
			select {
			case ch <- msg[T]{v, err}:
			case <-left:
				return
			}
		}
	}()
	timer := time.NewTimer(c.cfg.idle)
	timer.Stop()
	defer timer.Stop()
	var idle <-chan time.Time // timer.C while armed
	passedCtxErr := false     // the upstream's ctx error was passed on
	for {
		select {
		case m, ok := <-ch:
			timer.Stop()
			idle = nil
			if !ok {
				c.end(ctx)
				return
			}
			if m.err != nil && ctx.Err() != nil && errors.Is(m.err, ctx.Err()) {
				passedCtxErr = true
			}
			if !c.handle(ctx, m.v, m.err) {
				return
			}
			if m.err == nil && (c.unsaved > 0 || c.cfg.onIdle != nil) {
				timer.Reset(c.cfg.idle)
				idle = timer.C
			}
		case <-idle:
			idle = nil
			if !c.save(ctx) {
				return
			}
			if c.cfg.onIdle != nil {
				c.cfg.onIdle()
			}
		case <-ctx.Done():
			c.stopped = false
			var zero T
			if err := c.flush(context.WithoutCancel(ctx)); err != nil {
				c.yield(zero, joinErrs(err, ctx.Err()))
				return
			}
			if !passedCtxErr {
				c.yield(zero, ctx.Err())
			}
			return
		}
	}
}

// handle passes one value (or error) of seq on and saves when due. It
// reports whether to go on.
func (c *checkpointer[T]) handle(ctx context.Context, v T, err error) bool {
	var zero T
	if err != nil {
		if serr := c.flush(context.WithoutCancel(ctx)); serr != nil {
			c.stopped = false
			c.yield(zero, joinErrs(serr, err))
			return false
		}
		return c.yield(v, err)
	}
	rev, rerr := c.revision(v)
	if rerr != nil {
		c.stopped = false
		if serr := c.flush(context.WithoutCancel(ctx)); serr != nil {
			rerr = joinErrs(serr, rerr)
		}
		c.yield(zero, fmt.Errorf("operators: Checkpoint: revision of a value: %w", rerr))
		return false
	}
	if !c.yield(v, nil) {
		return false
	}
	c.finished(rev)
	if c.due() {
		return c.save(ctx)
	}
	return true
}

// save saves during the loop. A save that failed because ctx is done is
// left to the final save, which runs without ctx's cancellation. It
// reports whether to go on.
func (c *checkpointer[T]) save(ctx context.Context) bool {
	if serr := c.flush(ctx); serr != nil && ctx.Err() == nil {
		c.stopped = false
		var zero T
		c.yield(zero, serr)
		return false
	}
	return true
}

// end is the end of seq: the final save.
func (c *checkpointer[T]) end(ctx context.Context) {
	c.stopped = false
	if err := c.flush(context.WithoutCancel(ctx)); err != nil {
		var zero T
		c.yield(zero, err)
	}
}

// joinErrs joins a save error with the upstream error it came with.
func joinErrs(saveErr, upstream error) error {
	return fmt.Errorf("%w (while passing on: %w)", saveErr, upstream)
}

type checkpointer[T any] struct {
	store    CheckpointStore
	cfg      *checkpointConfig
	revision func(T) (stream.Revision, error)
	yield    func(T, error) bool
	stopped  bool            // the loop is ending because the consumer stopped or panicked
	last     stream.Revision // last finished
	unsaved  int             // values finished since the last save
	lastSave time.Time
}

func (c *checkpointer[T]) finished(rev stream.Revision) {
	c.last = rev
	c.unsaved++
}

func (c *checkpointer[T]) due() bool {
	return c.unsaved >= c.cfg.every ||
		(c.unsaved > 0 && c.cfg.interval > 0 && time.Since(c.lastSave) >= c.cfg.interval)
}

// flush runs the BeforeSave hook, then saves the last finished revision,
// if it is not saved yet.
func (c *checkpointer[T]) flush(ctx context.Context) error {
	if c.unsaved == 0 {
		return nil
	}
	if c.cfg.beforeSave != nil {
		if err := c.cfg.beforeSave(ctx); err != nil {
			return fmt.Errorf("operators: Checkpoint: before saving revision %s: %w", c.last, err)
		}
	}
	if err := c.store.Save(ctx, c.last); err != nil {
		return fmt.Errorf("operators: Checkpoint: saving revision %s: %w", c.last, err)
	}
	c.unsaved = 0
	c.lastSave = time.Now()
	return nil
}
