package operators

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// change is a test value: the newest state of object ID at revision Rev.
type change struct {
	ID  string
	Rev int
}

func changeID(c change) string { return c.ID }

func TestCoalesceByKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFeed[change]()
		go func() {
			for _, c := range []change{{"a", 1}, {"b", 2}, {"a", 3}, {"c", 4}, {"b", 5}} {
				f.ch <- c
			}
			time.Sleep(20 * time.Millisecond) // the window closes at 10ms
			f.ch <- change{"a", 6}
			f.ch <- change{"a", 7}
			close(f.ch)
		}()
		start := time.Now()
		var out []change
		var at []time.Duration
		for c, err := range CoalesceByKey(ctx, f.seq(ctx), changeID, 10*time.Millisecond) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
			at = append(at, time.Since(start))
		}
		// Newest per key, in the order of the newest occurrence.
		wantEqual(t, "values", out, []change{{"a", 3}, {"c", 4}, {"b", 5}, {"a", 7}})
		wantEqual(t, "times", at, []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond})
	})
}

func TestCoalesceByKeyEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := collect(CoalesceByKey(t.Context(), seqOf[change](nil), changeID, time.Second))
		if len(g.vals)+len(g.errs) != 0 {
			t.Fatalf("got %v, want nothing", g)
		}
	})
}

func TestCoalesceByKeyFlushesAtEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		g := collect(CoalesceByKey(t.Context(), seqOf(nil, change{"a", 1}, change{"a", 2}, change{"b", 3}), changeID, time.Hour))
		wantEqual(t, "values", g.vals, []change{{"a", 2}, {"b", 3}})
		wantEqual(t, "elapsed", time.Since(start), time.Duration(0)) // no wait for the window
	})
}

func TestCoalesceByKeyUpstreamError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seq := func(yield func(change, error) bool) {
			_ = yield(change{"a", 1}, nil) && yield(change{"a", 2}, nil) &&
				yield(change{}, errBoom) && yield(change{"a", 3}, nil)
		}
		var out []any
		for c, err := range CoalesceByKey(t.Context(), seq, changeID, time.Hour) {
			if err != nil {
				out = append(out, err)
				continue
			}
			out = append(out, c)
		}
		wantEqual(t, "sequence", out, []any{change{"a", 2}, errBoom, change{"a", 3}})
	})
}

func TestCoalesceByKeyBreakAfterFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFeed[change]()
		go func() {
			f.ch <- change{"a", 1}
			f.ch <- change{"b", 2}
			// Blocks until the reading goroutine quits (it does at once).
			select {
			case f.ch <- change{"c", 3}:
			case <-ctx.Done():
			}
		}()
		n := 0
		for c, err := range CoalesceByKey(ctx, f.seq(ctx), changeID, time.Millisecond) {
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "first", c, change{"a", 1})
			n++
			break
		}
		wantEqual(t, "values seen", n, 1)
	})
}

func TestCoalesceByKeyCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		f := newFeed[change]()
		go func() { f.ch <- change{"a", 1}; f.ch <- change{"a", 2} }()
		time.AfterFunc(time.Millisecond, cancel)
		var out []any
		for c, err := range CoalesceByKey(ctx, f.seq(ctx), changeID, time.Hour) {
			if err != nil {
				out = append(out, err)
				continue
			}
			out = append(out, c)
		}
		wantEqual(t, "sequence", out, []any{change{"a", 2}, context.Canceled})
	})
}

// ticking yields 1, 2, 3, ... one every d, forever, ignoring any context,
// and counts the values it yielded.
func ticking(yielded *int, d time.Duration) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		for i := 1; ; i++ {
			time.Sleep(d)
			*yielded = i
			if !yield(i, nil) {
				return
			}
		}
	}
}

func identity(i int) int { return i }

// TestCoalesceByKeyCancelLosesNothing: when ctx is done while the reading
// goroutine holds a window, that window is still delivered, before
// ctx.Err(), which comes once. Only the one value the goroutine has read
// ahead may be dropped.
func TestCoalesceByKeyCancelLosesNothing(t *testing.T) {
	for range 20 { // the consumer's select picks at random among ready cases
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var yielded int
			var vals []int
			var errs []error
			for v, err := range CoalesceByKey(ctx, ticking(&yielded, time.Microsecond), identity, 10*time.Microsecond) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				vals = append(vals, v)
				if len(vals) == 15 { // within the second window
					cancel()
					synctest.Wait()
				}
			}
			if len(vals) < 15 || !slices.Equal(vals, seqRangeInt(1, len(vals))) {
				t.Fatalf("values %v, want 1, 2, 3 ... 15 ... without a gap", vals)
			}
			wantEqual(t, "errors", errs, []error{context.Canceled})
			time.Sleep(time.Millisecond) // the reading goroutine reads its last value
			synctest.Wait()              // and ends
			if yielded > len(vals)+1 {
				t.Fatalf("upstream yielded %d values, %d delivered: more than one lost", yielded, len(vals))
			}
		})
	}
}

// TestCoalesceByKeyCancelWithErrorInFlight: ctx is done at the instant
// the upstream yields an error. If the reading goroutine took the error
// (the upstream's yield returned true), it is delivered after the held
// value and before ctx.Err(); the held value is delivered either way.
func TestCoalesceByKeyCancelWithErrorInFlight(t *testing.T) {
	for range 50 {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var taken bool
			seq := func(yield func(change, error) bool) {
				if !yield(change{"a", 1}, nil) {
					return
				}
				time.Sleep(time.Millisecond)
				taken = yield(change{}, errBoom)
				<-ctx.Done()
			}
			time.AfterFunc(time.Millisecond, cancel)
			g := collect(CoalesceByKey(ctx, seq, changeID, time.Hour))
			synctest.Wait() // the reading goroutine has ended: taken is set
			wantEqual(t, "values", g.vals, []change{{"a", 1}})
			want := []error{context.Canceled}
			if taken {
				want = []error{errBoom, context.Canceled}
			}
			wantEqual(t, "errors", g.errs, want)
		})
	}
}

// TestCoalesceByKeyWaitsForConsumer: while the consumer handles a window,
// the upstream waits, with at most one value read ahead, so a slow
// consumer gets windows no larger than the upstream fills in one window.
func TestCoalesceByKeyWaitsForConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var yielded int
		n := 0
		for v, err := range CoalesceByKey(ctx, ticking(&yielded, time.Microsecond), identity, 10*time.Microsecond) {
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // a slow consumer
			synctest.Wait()
			// v's window holds at most 11 values (one per µs for 10µs),
			// and the goroutine holds at most one more.
			if yielded > v+12 {
				t.Fatalf("at value %d the upstream has yielded %d: it did not wait for the consumer", v, yielded)
			}
			if n++; n == 30 {
				break
			}
		}
	})
}

// TestCoalesceByKeyKeyNotConcurrentWithBody: the key function and the
// loop body may share state without a lock (go test -race checks it).
func TestCoalesceByKeyKeyNotConcurrentWithBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var yielded, calls int
		key := func(i int) int { calls++; return i }
		for v, err := range CoalesceByKey(ctx, ticking(&yielded, time.Microsecond), key, 3*time.Microsecond) {
			if err != nil {
				t.Fatal(err)
			}
			if calls < v {
				t.Fatalf("value %d delivered after %d key calls", v, calls)
			}
			if v >= 100 {
				break
			}
		}
		// The reading goroutine may sleep in ticking, which ignores ctx:
		// let it wake and see that the loop is done.
		time.Sleep(time.Millisecond)
	})
}

func TestCoalesceByKeyKeyPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		key := func(c change) string {
			if c.ID == "bad" {
				panic("bad key")
			}
			return c.ID
		}
		var out []change
		p := func() (p any) {
			defer func() { p = recover() }()
			for c, err := range CoalesceByKey(t.Context(), seqOf(nil, change{"a", 1}, change{"bad", 2}, change{"c", 3}), key, time.Hour) {
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, c)
			}
			return nil
		}()
		// Raised on the range goroutine, like a panic in the loop body;
		// what was held is dropped. synctest.Test checks that the reading
		// goroutine has ended.
		wantEqual(t, "panic", p, any("bad key"))
		wantEqual(t, "values", len(out), 0)
	})
}

func TestCoalesceByKeyInvalid(t *testing.T) {
	for _, w := range []time.Duration{0, -time.Second} {
		g := collect(CoalesceByKey(context.Background(), seqOf(nil, change{"a", 1}), changeID, w))
		if len(g.vals) != 0 || len(g.errs) != 1 {
			t.Fatalf("window %v: got %v, want one error", w, g)
		}
		wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
	}
	g := collect(CoalesceByKey[change, string](context.Background(), seqOf(nil, change{"a", 1}), nil, time.Second))
	if len(g.errs) != 1 {
		t.Fatalf("nil key: got %v, want one error", g)
	}
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
}

func TestCoalescerBoundedMemory(t *testing.T) {
	var c coalescer[change, string]
	for i := range 100_000 {
		c.add(fmt.Sprint(i%10), change{fmt.Sprint(i % 10), i})
	}
	if c.live != 10 || len(c.entries) > 128 {
		t.Fatalf("live %d, entries %d: want 10 live and a bounded slice", c.live, len(c.entries))
	}
	var out []change
	c.flush(func(v change, _ error) bool { out = append(out, v); return true })
	want := make([]change, 10)
	for i := range 10 {
		want[i] = change{fmt.Sprint(i), 99_990 + i}
	}
	wantEqual(t, "flushed", out, want)
}

// TestCoalesceByKeySilentUpstreamEndsWithCtxErr: as for Batch.
func TestCoalesceByKeySilentUpstreamEndsWithCtxErr(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var errs []error
			for _, err := range CoalesceByKey(ctx, silentOnCancel(ctx), func(v int) int { return v }, time.Second) {
				if err != nil {
					errs = append(errs, err)
				} else {
					cancel()
					synctest.Wait()
				}
			}
			if len(errs) != 1 || errs[0] != context.Canceled {
				t.Fatalf("errors %v, want [context canceled]", errs)
			}
		})
	}
}
