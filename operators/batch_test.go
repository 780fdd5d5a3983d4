package operators

import (
	"context"
	"iter"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

func TestBatchBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := collect(Batch(t.Context(), seqOf(nil, 1, 2, 3, 4, 5, 6, 7), 3, time.Second))
		wantEqual(t, "batches", g.vals, [][]int{{1, 2, 3}, {4, 5, 6}, {7}})
		wantEqual(t, "errors", len(g.errs), 0)
	})
}

func TestBatchEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := collect(Batch(t.Context(), seqOf[int](nil), 3, time.Second))
		if len(g.vals)+len(g.errs) != 0 {
			t.Fatalf("got %v, want nothing (no empty batch)", g)
		}
	})
}

func TestBatchByTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFeed[int]()
		go func() {
			f.ch <- 1
			time.Sleep(3 * time.Millisecond)
			f.ch <- 2 // the wait runs from the first value: still [1 2] at 10ms
			time.Sleep(20 * time.Millisecond)
			f.ch <- 3
			f.ch <- 4
			f.ch <- 5 // full: at once
			f.ch <- 6
			close(f.ch)
		}()
		start := time.Now()
		type stamped struct {
			b  []int
			at time.Duration
		}
		var out []stamped
		for b, err := range Batch(ctx, f.seq(ctx), 3, 10*time.Millisecond) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, stamped{b, time.Since(start)})
		}
		want := []stamped{
			{[]int{1, 2}, 10 * time.Millisecond},
			{[]int{3, 4, 5}, 23 * time.Millisecond},
			{[]int{6}, 23 * time.Millisecond}, // flushed by the end of the feed
		}
		wantEqual(t, "batches", out, want)
	})
}

func TestBatchWaitZeroMeansSizeOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFeed[int]()
		go func() {
			f.ch <- 1
			time.Sleep(time.Hour)
			f.ch <- 2
			f.ch <- 3
			time.Sleep(time.Hour)
			close(f.ch)
		}()
		start := time.Now()
		var at []time.Duration
		var bs [][]int
		for b, err := range Batch(ctx, f.seq(ctx), 2, 0) {
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, b)
			at = append(at, time.Since(start))
		}
		wantEqual(t, "batches", bs, [][]int{{1, 2}, {3}})
		wantEqual(t, "times", at, []time.Duration{time.Hour, 2 * time.Hour})
	})
}

func TestBatchUpstreamErrorFlushesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seq := func(yield func(int, error) bool) {
			_ = yield(1, nil) && yield(2, nil) && yield(0, errBoom) && yield(3, nil)
		}
		var out []any
		for b, err := range Batch(t.Context(), seq, 5, time.Second) {
			if err != nil {
				if b != nil {
					t.Fatalf("batch %v with the error, want nil", b)
				}
				out = append(out, err)
				continue
			}
			out = append(out, b)
		}
		wantEqual(t, "sequence", out, []any{[]int{1, 2}, errBoom, []int{3}})
	})
}

func TestBatchBreakAfterFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var yielded int
		for b, err := range Batch(t.Context(), count(&yielded), 2, time.Second) {
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "first batch", b, []int{1, 2})
			break
		}
		synctest.Wait() // the reading goroutine has returned (synctest.Test checks it)
		// It reads ahead by at most one batch: 3 and 4, then it stops at
		// 5 at the latest.
		if yielded > 5 {
			t.Fatalf("upstream yielded %d values, want at most one batch ahead of the consumer", yielded)
		}
	})
}

func TestBatchCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		f := newFeed[int]()
		go func() { f.ch <- 1 }()
		time.AfterFunc(5*time.Millisecond, cancel)
		var out []any
		for b, err := range Batch(ctx, f.seq(ctx), 3, time.Hour) {
			if err != nil {
				out = append(out, err)
				continue
			}
			out = append(out, b)
		}
		// The pending batch is flushed, then ctx.Err() ends the sequence.
		wantEqual(t, "sequence", out, []any{[]int{1}, context.Canceled})
	})
}

// TestBatchCancelLosesNothing: when ctx is done while the reading
// goroutine holds a full batch it has not handed over yet, that batch is
// still delivered, before ctx.Err(), which comes once.
func TestBatchCancelLosesNothing(t *testing.T) {
	for range 20 { // the consumer's select picks at random among ready cases
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var yielded int
			var vals []int
			var errs []error
			for b, err := range Batch(ctx, count(&yielded), 2, time.Hour) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				vals = append(vals, b...)
				if len(vals) == 2 {
					cancel()
					synctest.Wait() // the goroutine now holds [3 4], waiting to hand it over
				}
			}
			if len(vals) < 4 || !slices.Equal(vals, seqRangeInt(1, len(vals))) {
				t.Fatalf("values %v, want 1, 2, 3, 4 ... without a gap", vals)
			}
			wantEqual(t, "errors", errs, []error{context.Canceled})
		})
	}
}

func seqRangeInt(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestBatchCancelWithUpstreamIgnoringContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		release := make(chan struct{})
		stuck := func(yield func(int, error) bool) { <-release } // never yields
		time.AfterFunc(time.Second, cancel)
		g := collect(Batch(ctx, stuck, 3, time.Millisecond))
		if len(g.errs) != 1 || g.errs[0] != context.Canceled {
			t.Fatalf("errors %v, want [context.Canceled]", g.errs)
		}
		close(release) // lets the reading goroutine end
	})
}

func TestBatchInvalid(t *testing.T) {
	for _, c := range []struct {
		n    int
		wait time.Duration
	}{{0, time.Second}, {-1, 0}, {1, -time.Second}} {
		g := collect(Batch(context.Background(), seqOf(nil, 1, 2), c.n, c.wait))
		if len(g.vals) != 0 || len(g.errs) != 1 {
			t.Fatalf("Batch(%d, %v): got %v, want one error", c.n, c.wait, g)
		}
		wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
	}
}

func TestBatchOverWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		src := newMemSource(10, true)
		events := stream.Watch(ctx, src.source(), fastOpts(stream.FromStart())...)
		var got []uint64
		var end error
		for b, err := range Batch(ctx, events, 4, 50*time.Millisecond) {
			if err != nil {
				end = err
				break
			}
			if len(b) > 4 {
				t.Fatalf("batch of %d", len(b))
			}
			got = append(got, revs(b)...)
		}
		wantEqual(t, "revisions", got, seqRange(1, 10))
		wantErrIs(t, end, errEnd)
	})
}

func TestBatchOverWatchBreakThenCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		src := newMemSource(3, false) // then caught up: the watch waits between polls
		events := stream.Watch(ctx, src.source(), fastOpts(stream.FromStart())...)
		for b, err := range Batch(ctx, events, 10, 5*time.Millisecond) {
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "first batch", revs(b), []uint64{1, 2, 3})
			break
		}
		// The reading goroutine may wait inside the watch: cancelling the
		// watch's context releases it (synctest.Test fails otherwise).
		cancel()
	})
}

// silentOnCancel yields 1, then ends without an error once ctx is done,
// as an upstream that ignores errors might.
func silentOnCancel(ctx context.Context) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		if yield(1, nil) {
			<-ctx.Done()
		}
	}
}

// TestBatchSilentUpstreamEndsWithCtxErr: when ctx is done, Batch ends with
// ctx.Err() even if its upstream then ends without an error (the closed
// channel and ctx.Done race in Batch's select: repeat to take both).
func TestBatchSilentUpstreamEndsWithCtxErr(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var errs []error
			for b, err := range Batch(ctx, silentOnCancel(ctx), 10, time.Second) {
				if err != nil {
					errs = append(errs, err)
				} else if len(b) > 0 {
					cancel()
					synctest.Wait() // the upstream has ended
				}
			}
			if len(errs) != 1 || errs[0] != context.Canceled {
				t.Fatalf("errors %v, want [context canceled]", errs)
			}
		})
	}
}
