package operators

import (
	"context"
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
// starts a watch after it: stream.After(rev). With nothing stored, that is
// stream.After of the zero Revision, which means from now.
//
//	after, err := operators.LoadAfter(ctx, store)
//	if err != nil {
//		return err
//	}
//	events := stream.Watch(ctx, src, after)
//
// For Resume, pass the loaded revision with StartAfter instead.
func LoadAfter(ctx context.Context, store CheckpointStore) (stream.Option, error) {
	rev, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	return stream.After(rev), nil
}

// Default checkpoint intervals.
const (
	DefaultCheckpointEvery    = 100
	DefaultCheckpointInterval = time.Second
)

// CheckpointOption configures Checkpoint.
type CheckpointOption func(*checkpointConfig)

type checkpointConfig struct {
	every     int
	interval  time.Duration
	onSaveErr func(error)
	err       error
}

// SaveEvery saves once n values have been finished since the last save
// (default 100). SaveEvery(1) saves after every value. n must be positive.
func SaveEvery(n int) CheckpointOption {
	return func(c *checkpointConfig) {
		if n < 1 && c.err == nil {
			c.err = invalid("Checkpoint: SaveEvery(%d): must be at least 1", n)
		}
		c.every = n
	}
}

// SaveInterval also saves when a value is finished d or more after the
// last save (default 1 s); zero turns the time rule off. The rule is
// checked as values finish, with no timer: an idle stream saves nothing
// new until its next value or its end. d must not be negative.
func SaveInterval(d time.Duration) CheckpointOption {
	return func(c *checkpointConfig) {
		if d < 0 && c.err == nil {
			c.err = invalid("Checkpoint: SaveInterval(%v): must not be negative", d)
		}
		c.interval = d
	}
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
// the last save, whichever comes first, and once more when the loop ends:
// on break, on an error from seq (before the error is passed on, so a
// consumer that stops at the error has its checkpoint), on the end of seq,
// and on a panic in the loop body. A save only happens when some value
// finished since the last one. The final saves use ctx without its
// cancellation (context.WithoutCancel), so that a cancelled ctx still gets
// its checkpoint.
//
// If a save fails, or revision fails, the sequence yields that error
// (wrapped, with the upstream's error joined in when there was one) and
// ends. A save that fails after a break cannot be yielded: it goes to the
// OnSaveError hook.
//
// Start the stream after the stored revision, with LoadAfter for
// stream.Watch or StartAfter for Resume.
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
		case store == nil:
			yield(zero, invalid("Checkpoint: nil store"))
			return
		case revision == nil:
			yield(zero, invalid("Checkpoint: nil revision function"))
			return
		}
		c := checkpointer{store: store, cfg: cfg, lastSave: time.Now()}
		stopped := true // the consumer stopped or panicked
		defer func() {
			if stopped {
				if err := c.flush(context.WithoutCancel(ctx)); err != nil {
					if cfg.onSaveErr != nil {
						cfg.onSaveErr(err)
					} else {
						slog.Warn("towerwatch: saving the checkpoint after the loop ended failed", "error", err)
					}
				}
			}
		}()
		for v, err := range seq {
			if err != nil {
				if serr := c.flush(context.WithoutCancel(ctx)); serr != nil {
					stopped = false
					yield(zero, joinErrs(serr, err))
					return
				}
				if !yield(v, err) {
					return
				}
				continue
			}
			rev, rerr := revision(v)
			if rerr != nil {
				stopped = false
				if serr := c.flush(context.WithoutCancel(ctx)); serr != nil {
					rerr = joinErrs(serr, rerr)
				}
				yield(zero, fmt.Errorf("operators: Checkpoint: revision of a value: %w", rerr))
				return
			}
			if !yield(v, nil) {
				return
			}
			c.finished(rev)
			if c.due() {
				// A save that failed because ctx is done is left to the
				// final save, which runs without ctx's cancellation.
				if serr := c.flush(ctx); serr != nil && ctx.Err() == nil {
					stopped = false
					yield(zero, serr)
					return
				}
			}
		}
		stopped = false
		if err := c.flush(context.WithoutCancel(ctx)); err != nil {
			yield(zero, err)
		}
	}
}

// joinErrs joins a save error with the upstream error it came with.
func joinErrs(saveErr, upstream error) error {
	return fmt.Errorf("%w (while passing on: %w)", saveErr, upstream)
}

type checkpointer struct {
	store    CheckpointStore
	cfg      *checkpointConfig
	last     stream.Revision // last finished
	unsaved  int             // values finished since the last save
	lastSave time.Time
}

func (c *checkpointer) finished(rev stream.Revision) {
	c.last = rev
	c.unsaved++
}

func (c *checkpointer) due() bool {
	return c.unsaved >= c.cfg.every ||
		(c.unsaved > 0 && c.cfg.interval > 0 && time.Since(c.lastSave) >= c.cfg.interval)
}

// flush saves the last finished revision if it is not saved yet.
func (c *checkpointer) flush(ctx context.Context) error {
	if c.unsaved == 0 {
		return nil
	}
	if err := c.store.Save(ctx, c.last); err != nil {
		return fmt.Errorf("operators: Checkpoint: saving revision %s: %w", c.last, err)
	}
	c.unsaved = 0
	c.lastSave = time.Now()
	return nil
}
