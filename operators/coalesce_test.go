package operators

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
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

func TestCoalesceByKeyInvalid(t *testing.T) {
	for _, w := range []time.Duration{0, -time.Second} {
		g := collect(CoalesceByKey(context.Background(), seqOf(nil, change{"a", 1}), changeID, w))
		if len(g.vals) != 0 || len(g.errs) != 1 {
			t.Fatalf("window %v: got %v, want one error", w, g)
		}
		wantErrIs(t, g.errs[0], ErrInvalidArgument)
	}
	g := collect(CoalesceByKey[change, string](context.Background(), seqOf(nil, change{"a", 1}), nil, time.Second))
	if len(g.errs) != 1 {
		t.Fatalf("nil key: got %v, want one error", g)
	}
	wantErrIs(t, g.errs[0], ErrInvalidArgument)
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
