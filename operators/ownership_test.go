package operators

import (
	"context"
	"iter"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// live is an upstream like a caught-up stream: it yields what is sent on
// ch and otherwise waits, until ch is closed or its own ctx is done. It
// records when it has returned.
type live struct {
	ch       chan int
	returned atomic.Bool
}

func (l *live) seq(ctx context.Context) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		defer l.returned.Store(true)
		for {
			select {
			case v, ok := <-l.ch:
				if !ok || !yield(v, nil) {
					return
				}
			case <-ctx.Done():
				yield(0, ctx.Err())
				return
			}
		}
	}
}

// TestReaderGoroutineOwnership shows the rule of the package
// documentation for the operators that read their upstream in a
// goroutine (Batch, CoalesceByKey, HandleByKey, Checkpoint with
// SaveWhenIdle): after a break, the reading goroutine is released by
// cancelling the context the upstream was built with. Without the cancel it stays blocked inside the
// upstream, holding whatever the upstream holds (for a stream, a poll
// loop), until the upstream's next value; with it (defer cancel()), it is
// gone as soon as the loop is done.
func TestReaderGoroutineOwnership(t *testing.T) {
	ops := map[string]func(ctx context.Context, seq iter.Seq2[int, error]) iter.Seq2[int, error]{
		"Batch": func(ctx context.Context, seq iter.Seq2[int, error]) iter.Seq2[int, error] {
			return Map(Batch(ctx, seq, 1, 0), func(b []int) int { return b[0] })
		},
		"CoalesceByKey": func(ctx context.Context, seq iter.Seq2[int, error]) iter.Seq2[int, error] {
			return CoalesceByKey(ctx, seq, func(v int) int { return v }, time.Millisecond)
		},
		"HandleByKey": func(ctx context.Context, seq iter.Seq2[int, error]) iter.Seq2[int, error] {
			marks := HandleByKey(ctx, seq, 2, func(v int) int { return v },
				func(v int) (stream.Revision, error) { return rev(uint64(v)), nil },
				func(context.Context, int) error { return nil })
			return Map(marks, func(r stream.Revision) int { n, _ := r.Uint64(); return int(n) })
		},
		"Checkpoint/SaveWhenIdle": func(ctx context.Context, seq iter.Seq2[int, error]) iter.Seq2[int, error] {
			return Checkpoint(ctx, seq, &memStore{}, func(v int) (stream.Revision, error) { return rev(uint64(v)), nil }, SaveWhenIdle(time.Millisecond))
		},
	}
	for name, op := range ops {
		t.Run(name+"/without cancel", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.WithoutCancel(t.Context()) // never cancelled
				up := &live{ch: make(chan int)}
				go func() { up.ch <- 1 }()
				for range op(ctx, up.seq(ctx)) {
					break
				}
				synctest.Wait()
				if up.returned.Load() {
					t.Fatal("the upstream returned without a next value or a cancel")
				}
				// The goroutine lingers until the upstream's next value,
				// which it then drops.
				up.ch <- 2
				synctest.Wait()
				if !up.returned.Load() {
					t.Fatal("the upstream did not return at its next value")
				}
			})
		})
		t.Run(name+"/defer cancel", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := &live{ch: make(chan int)}
				go func() { up.ch <- 1 }()
				func() {
					ctx, cancel := context.WithCancel(t.Context())
					defer cancel() // frees the reading goroutine, whatever ends the loop
					for range op(ctx, up.seq(ctx)) {
						break
					}
				}()
				synctest.Wait()
				if !up.returned.Load() {
					t.Fatal("the upstream still runs after the loop and the cancel")
				}
			})
		})
	}
}
