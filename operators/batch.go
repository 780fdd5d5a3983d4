package operators

import (
	"context"
	"iter"
	"time"
)

// maxBatchPrealloc bounds the capacity Batch reserves for a new batch, so
// that a huge n does not cost memory until items actually arrive.
const maxBatchPrealloc = 1024

// Batch groups the values of seq into slices of at most n values, in order.
// A batch is yielded as soon as it holds n values, or once wait has passed
// since its first value arrived, whichever comes first. No batch is empty.
// wait == 0 means no time limit: a batch is yielded only when full, when
// seq yields an error, or when seq ends.
//
// Each batch is a new slice that the consumer owns and may keep.
//
// An error from seq first flushes the pending batch, then passes through
// (paired with a nil batch); Batch goes on reading seq after it. When seq
// ends, the pending batch is flushed. When ctx is done, the pending batch
// is flushed and the sequence ends with ctx.Err().
//
// n < 1 or wait < 0 is an error wrapping ErrInvalidArgument, yielded as the
// only value.
//
// Batch reads seq in one goroutine per pass, never more than one value
// ahead of the consumer, and stops it when the loop ends: see the package
// documentation for the case of an upstream blocked before its next value
// (build seq with ctx and cancel ctx after the loop).
func Batch[T any](ctx context.Context, seq iter.Seq2[T, error], n int, wait time.Duration) iter.Seq2[[]T, error] {
	return func(yield func([]T, error) bool) {
		if n < 1 {
			yield(nil, invalid("Batch: size %d, must be at least 1", n))
			return
		}
		if wait < 0 {
			yield(nil, invalid("Batch: wait %v, must not be negative", wait))
			return
		}
		values, stop := pull(seq)
		defer stop()

		var (
			pending []T
			timer   *time.Timer
			timeout <-chan time.Time // nil while no partial batch is timed
		)
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
		// flush yields the pending batch, if any, and reports whether the
		// consumer wants more.
		flush := func() bool {
			if timer != nil {
				timer.Stop()
			}
			timeout = nil
			if len(pending) == 0 {
				return true
			}
			b := pending
			pending = nil
			return yield(b, nil)
		}
		for {
			select {
			case m, ok := <-values:
				if !ok {
					flush()
					return
				}
				if m.err != nil {
					if !flush() || !yield(nil, m.err) {
						return
					}
					continue
				}
				if pending == nil {
					pending = make([]T, 0, min(n, maxBatchPrealloc))
					if wait > 0 {
						if timer == nil {
							timer = time.NewTimer(wait)
						} else {
							timer.Reset(wait)
						}
						timeout = timer.C
					}
				}
				pending = append(pending, m.v)
				if len(pending) >= n && !flush() {
					return
				}
			case <-timeout:
				timeout = nil
				if !flush() {
					return
				}
			case <-ctx.Done():
				if flush() {
					yield(nil, ctx.Err())
				}
				return
			}
		}
	}
}
