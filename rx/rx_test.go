package rx

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reactivex/rxgo/v2"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/stream"
)

var errEnd = errors.New("end of the test feed")

type event struct{ Rev uint64 }

// memSource serves events 1..n, then fails with Fatal(errEnd) when end is
// set, else waits for new events like a caught-up server (the engine
// polls again after its interval). polling counts polls in flight.
type memSource struct {
	n       uint64
	end     bool
	block   bool // a poll with nothing new blocks until its context is done
	polling atomic.Int32
}

func (s *memSource) source() stream.Source[event] {
	return stream.NewSource(stream.PollFunc[event](s.poll), func(e event) (stream.Revision, error) {
		return stream.RevisionFromUint64(e.Rev), nil
	})
}

func (s *memSource) poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[event], error) {
	s.polling.Add(1)
	defer s.polling.Add(-1)
	a, _ := after.Uint64()
	p := stream.Page[event]{Head: stream.RevisionFromUint64(s.n)}
	for r := a + 1; r <= s.n && len(p.Items) < limit; r++ {
		p.Items = append(p.Items, event{r})
	}
	if len(p.Items) == 0 && !after.IsZero() {
		if s.end {
			return p, stream.Fatal(errEnd)
		}
		if s.block {
			<-ctx.Done()
			return p, ctx.Err()
		}
	}
	return p, nil
}

func watchOpts() []stream.Option {
	return []stream.Option{
		stream.FromStart(),
		stream.PollInterval(10 * time.Millisecond),
		stream.PageSize(3),
		stream.Logger(slog.New(slog.DiscardHandler)),
	}
}

func TestFromSourceToSeq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{n: 5, end: true}
		obs := FromSource(t.Context(), src.source(), watchOpts()...)
		var got []uint64
		var errs []error
		for ev, err := range ToSeq[event](t.Context(), obs) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			got = append(got, ev.Rev)
		}
		if len(got) != 5 || got[0] != 1 || got[4] != 5 {
			t.Fatalf("got %v, want 1..5", got)
		}
		if len(errs) != 1 || !errors.Is(errs[0], errEnd) {
			t.Fatalf("errors %v, want the end error", errs)
		}
		// Cold: a second observation is a new watch from the start.
		n := 0
		for _, err := range ToSeq[event](t.Context(), obs) {
			if err == nil {
				n++
			}
		}
		if n != 5 {
			t.Fatalf("second pass: %d values, want 5", n)
		}
	})
}

func TestFromSeqEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		empty := func(func(int, error) bool) {}
		n := 0
		for range ToSeq[int](t.Context(), FromSeq[int](t.Context(), empty)) {
			n++
		}
		if n != 0 {
			t.Fatalf("%d values from an empty stream", n)
		}
	})
}

func TestFromSeqError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seq := func(yield func(int, error) bool) {
			_ = yield(1, nil) && yield(0, errEnd)
		}
		var out []any
		for v, err := range ToSeq[int](t.Context(), FromSeq(t.Context(), iter.Seq2[int, error](seq))) {
			if err != nil {
				out = append(out, err)
				continue
			}
			out = append(out, v)
		}
		if len(out) != 2 || out[0] != 1 || out[1] != errEnd {
			t.Fatalf("got %v, want [1 end]", out)
		}
	})
}

// TestToSeqBreakStopsThePoll: breaking out of ToSeq over an rxgo chain
// stops every stage and the upstream poll: no goroutine is left.
func TestToSeqBreakStopsThePoll(t *testing.T) {
	defer goleak.VerifyNone(t)
	src := &memSource{n: 3, block: true}
	obs := FromSource(context.Background(), src.source(), watchOpts()...).
		Filter(func(v any) bool { return v.(event).Rev != 2 }).
		Map(func(_ context.Context, v any) (any, error) { return v.(event).Rev * 10, nil })
	var got []uint64
	for v, err := range ToSeq[uint64](context.Background(), obs) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
		if len(got) == 2 {
			break // the watch is now waiting in a blocked poll
		}
	}
	if len(got) != 2 || got[0] != 10 || got[1] != 30 {
		t.Fatalf("got %v, want [10 30]", got)
	}
}

// TestDisposeByObserveContext: cancelling the context given to Observe
// (rxgo.WithContext) stops the pass and interrupts its poll.
func TestDisposeByObserveContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{n: 2, block: true}
		obs := FromSource(t.Context(), src.source(), watchOpts()...)
		ctx, cancel := context.WithCancel(t.Context())
		ch := obs.Observe(rxgo.WithContext(ctx))
		for range 2 {
			if item := <-ch; item.E != nil {
				t.Fatal(item.E)
			}
		}
		time.Sleep(time.Second) // fake time: past the poll interval
		synctest.Wait()
		if src.polling.Load() != 1 {
			t.Fatal("no poll waiting for new events")
		}
		cancel()
		for item := range ch { // closed once the pass has stopped
			if item.E == nil {
				t.Fatalf("value %v after cancel", item.V)
			}
		}
		synctest.Wait()
		if src.polling.Load() != 0 {
			t.Fatal("a poll is still in flight after the pass stopped")
		}
		// synctest.Test fails if a goroutine of the pass is left blocked.
	})
}

// TestDisposeByForEach: ForEach with rxgo.WithContext, cancelled.
func TestDisposeByForEach(t *testing.T) {
	defer goleak.VerifyNone(t)
	src := &memSource{n: 2, block: true}
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := FromSource(context.Background(), src.source(), watchOpts()...).
		ForEach(func(any) {
			if n.Add(1) == 2 {
				cancel()
			}
		}, func(error) {}, func() {}, rxgo.WithContext(ctx))
	<-done
	if n.Load() != 2 {
		t.Fatalf("%d values", n.Load())
	}
}

// TestCancelFromContext: cancelling the context given to FromSource ends
// the pass; the stream's ctx error arrives as the last item if there is
// room, and the channel closes.
func TestCancelFromContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &memSource{n: 1, block: true}
		ctx, cancel := context.WithCancel(t.Context())
		ch := FromSource(ctx, src.source(), watchOpts()...).Observe(rxgo.WithBufferedChannel(1))
		if item := <-ch; item.E != nil || item.V.(event).Rev != 1 {
			t.Fatalf("first item %+v", item)
		}
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		for item := range ch {
			if item.E == nil {
				t.Fatalf("value %v after cancel", item.V)
			}
		}
		if d := time.Since(start); d != time.Second {
			t.Fatalf("closed after %v, want 1s", d)
		}
		synctest.Wait()
		if src.polling.Load() != 0 {
			t.Fatal("poll still in flight")
		}
	})
}

func TestToSeqCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		var errs []error
		for _, err := range ToSeq[int](ctx, rxgo.Never()) {
			errs = append(errs, err)
		}
		if len(errs) != 1 || errs[0] != context.Canceled {
			t.Fatalf("errors %v, want [context.Canceled]", errs)
		}
	})
}

func TestToSeqItemType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := rxgo.Just(1, "two", 3)()
		var vals []int
		var errs []error
		for v, err := range ToSeq[int](t.Context(), obs) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			vals = append(vals, v)
		}
		if len(vals) != 2 || vals[0] != 1 || vals[1] != 3 {
			t.Fatalf("values %v, want [1 3]", vals)
		}
		if len(errs) != 1 || !errors.Is(errs[0], ErrItemType) {
			t.Fatalf("errors %v, want one ErrItemType", errs)
		}
		if want := "rx: unexpected item type: got string, want int"; errs[0].Error() != want {
			t.Fatalf("error %q, want %q", errs[0], want)
		}
	})
}

func TestToSeqNilForInterfaceType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan rxgo.Item, 2)
		ch <- rxgo.Of(nil)
		ch <- rxgo.Of(errors.New("x")) // an error as a value
		close(ch)
		var got []error
		for v, err := range ToSeq[error](t.Context(), rxgo.FromChannel(ch)) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if len(got) != 2 || got[0] != nil || got[1] == nil {
			t.Fatalf("got %v, want [nil x]", got)
		}
		ch = make(chan rxgo.Item, 1)
		ch <- rxgo.Of(nil)
		close(ch)
		for _, err := range ToSeq[int](t.Context(), rxgo.FromChannel(ch)) {
			if !errors.Is(err, ErrItemType) {
				t.Fatalf("nil for int: %v, want ErrItemType", err)
			}
		}
	})
}

func TestToSeqNil(t *testing.T) {
	for _, err := range ToSeq[int](context.Background(), nil) {
		if err == nil {
			t.Fatal("no error for a nil Observable")
		}
	}
}

// TestToSeqCancelEndsWithCtxErr: when ctx is done, the observable built
// with it completes too; ToSeq must still end with ctx.Err(), not end
// silently because the closed channel won the select.
func TestToSeqCancelEndsWithCtxErr(t *testing.T) {
	for range 30 {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			obs := FromSeqFunc(ctx, func(ctx context.Context) iter.Seq2[int, error] {
				return func(yield func(int, error) bool) {
					if yield(1, nil) {
						<-ctx.Done() // then ends without an error
					}
				}
			})
			var errs []error
			for _, err := range ToSeq[int](ctx, obs) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				cancel()
				synctest.Wait() // the pass has ended and closed its channel
			}
			if len(errs) != 1 || errs[0] != context.Canceled {
				t.Fatalf("errors %v, want [context.Canceled]", errs)
			}
		})
	}
}
