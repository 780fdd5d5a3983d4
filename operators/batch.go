package operators

import (
	"context"
	"errors"
	"iter"
	"sync"
	"sync/atomic"
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
// n < 1 or wait < 0 is an error wrapping stream.ErrInvalidOption, yielded
// as the only value.
//
// Batch reads seq in one goroutine per pass, which fills the next batch
// while the consumer handles the current one: it reads ahead of the
// consumer by at most one batch (n values), and hands batches over, not
// values, so the cost per value is an append under an uncontended lock.
// Build seq with ctx and cancel ctx when the loop is done, or that
// goroutine outlives the loop until seq's next value (see the package
// documentation):
//
//	ctx, cancel := context.WithCancel(ctx)
//	defer cancel() // stops the reading goroutine, whatever ends the loop
//	for batch, err := range operators.Batch(ctx, stream.Watch(ctx, src), 100, time.Second) {
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
		b := &batcher[T]{n: n, wait: wait, out: make(chan batchMsg[T]), done: make(chan struct{})}
		var timeout <-chan time.Time // nil without a time limit
		if wait > 0 {
			b.timer = time.NewTimer(wait)
			b.timer.Stop()
			timeout = b.timer.C
			defer b.timer.Stop()
		}
		go b.read(seq)
		defer b.stop()
		var received uint64 // number of the last message received
		for {
			select {
			case m, ok := <-b.out:
				if !ok {
					if cerr := ctx.Err(); cerr != nil {
						yield(nil, cerr) // the upstream ended silently on cancel
					}
					return
				}
				received = m.id
				if len(m.batch) > 0 && !yield(m.batch, nil) {
					return
				}
				if m.err != nil {
					if cerr := ctx.Err(); cerr != nil && errors.Is(m.err, cerr) {
						// The upstream ended because ctx is done: end
						// with ctx.Err() once, as below.
						yield(nil, cerr)
						return
					}
					if !yield(nil, m.err) {
						return
					}
				}
			case <-timeout:
				if p := b.takeDue(); p != nil && !yield(p, nil) {
					return
				}
			case <-ctx.Done():
				b.cancelled(ctx, received, yield)
				return
			}
		}
	}
}

// batcher is one pass of Batch. Its goroutine (read) appends values to
// pending and hands full batches, errors and the last batch over out; the
// consumer takes a partial batch from pending when its wait has passed.
type batcher[T any] struct {
	n     int
	wait  time.Duration
	timer *time.Timer // nil when wait is 0
	out   chan batchMsg[T]
	done  chan struct{} // closed when the consumer has left
	quit  atomic.Bool   // the consumer has left

	mu      sync.Mutex
	pending []T
	first   time.Time   // when pending's first value arrived
	handed  batchMsg[T] // the last message read took out to hand over
}

// batchMsg is a batch (possibly empty) followed by an error (possibly
// nil). Messages are numbered from 1 in the order read hands them over.
type batchMsg[T any] struct {
	batch []T
	err   error
	id    uint64
}

// read is the reading goroutine. It returns when seq ends, or when the
// consumer has left: at once if it is waiting to hand a batch over, else
// at seq's next value.
func (b *batcher[T]) read(seq iter.Seq2[T, error]) {
	defer close(b.out)
	for v, err := range seq {
		if b.quit.Load() {
			return
		}
		if err != nil {
			if !b.send(b.handOver(err)) {
				return
			}
			continue
		}
		if full, m := b.add(v); full && !b.send(m) {
			return
		}
	}
	if m := b.handOver(nil); len(m.batch) > 0 {
		b.send(m)
	}
}

// add appends v to the pending batch, starting the batch's wait if v is
// its first value. Once the batch is full, it takes it out and returns
// the message that hands it over.
func (b *batcher[T]) add(v T) (full bool, m batchMsg[T]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = make([]T, 0, min(b.n, maxBatchPrealloc))
		if b.timer != nil {
			b.first = time.Now()
			b.timer.Reset(b.wait)
		}
	}
	b.pending = append(b.pending, v)
	if len(b.pending) < b.n {
		return false, m
	}
	return true, b.handOverLocked(nil)
}

// handOver takes the pending batch (possibly none) out with err, as the
// next message to hand over.
func (b *batcher[T]) handOver(err error) batchMsg[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handOverLocked(err)
}

func (b *batcher[T]) handOverLocked(err error) batchMsg[T] {
	b.handed = batchMsg[T]{batch: b.pending, err: err, id: b.handed.id + 1}
	b.pending = nil
	if b.timer != nil {
		b.timer.Stop()
	}
	return b.handed
}

// cancelled ends a pass whose ctx is done: it yields what read has taken
// out but not handed over yet (an upstream error too, unless it is ctx's),
// then the pending batch, then ctx.Err().
func (b *batcher[T]) cancelled(ctx context.Context, received uint64, yield func([]T, error) bool) {
	b.mu.Lock()
	var m batchMsg[T]
	if b.handed.id > received {
		m = b.handed
	}
	pending := b.pending
	b.pending = nil
	b.mu.Unlock()
	cerr := ctx.Err()
	if len(m.batch) > 0 && !yield(m.batch, nil) {
		return
	}
	if m.err != nil && !errors.Is(m.err, cerr) && !yield(nil, m.err) {
		return
	}
	if len(pending) > 0 && !yield(pending, nil) {
		return
	}
	yield(nil, cerr)
}

// takeDue takes the pending batch out if its wait has passed, or returns
// nil. A timer tick that raced with a full batch must not cut the next
// batch short.
func (b *batcher[T]) takeDue() []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil || time.Since(b.first) < b.wait {
		return nil
	}
	p := b.pending
	b.pending = nil
	if b.timer != nil {
		b.timer.Stop()
	}
	return p
}

// send hands m to the consumer; false means the consumer has left.
func (b *batcher[T]) send(m batchMsg[T]) bool {
	select {
	case b.out <- m:
		return true
	case <-b.done:
		return false
	}
}

// stop tells the reading goroutine that the consumer has left.
func (b *batcher[T]) stop() {
	b.quit.Store(true)
	close(b.done)
}
