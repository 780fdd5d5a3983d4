package operators

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

var errTransient = errors.New("connection reset")

// fromTheStart starts the first stream from the oldest change.
var fromTheStart = WithStreamOptions(stream.FromStart())

// constantWait is a reopen policy that waits d before every reopen, forever.
func constantWait(d time.Duration) stream.RetryPolicy {
	return stream.RetryPolicy{Min: d, Max: d, MaxRetries: stream.NoRetryLimit}
}

// resumeOpts are quick defaults for Resume over memSource: the stream gives
// up after one retry, so that Resume has something to resume.
func resumeOpts(extra ...ResumeOption) []ResumeOption {
	return append([]ResumeOption{
		WithStreamOptions(fastOpts(stream.MaxRetries(1))...),
		ReopenBackoff(constantWait(100 * time.Millisecond)),
	}, extra...)
}

func TestResumeOrdinary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(10, true)
		g := collect(Resume(t.Context(), src.source(), resumeOpts(fromTheStart)...))
		wantEqual(t, "revisions", revs(g.vals), seqRange(1, 10))
		if len(g.errs) != 1 || !errors.Is(g.errs[0], errEnd) || !stream.IsFatal(g.errs[0]) {
			t.Fatalf("errors %v, want the source's fatal end", g.errs)
		}
	})
}

func TestResumeEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(0, true)
		g := collect(Resume(t.Context(), src.source(), resumeOpts(fromTheStart)...))
		if len(g.vals) != 0 || len(g.errs) != 1 {
			t.Fatalf("got %v, want only the end error", g)
		}
		wantErrIs(t, g.errs[0], errEnd)
	})
}

func TestResumeReopensAfterLastDelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(10, true)
		failing := 0
		src.hook = func(_ context.Context, _ int, after stream.Revision) error {
			// Polls after revision 4 (a page boundary) fail 4 times in a
			// row: more than the stream's retries, so its watch ends and
			// Resume reopens, twice.
			if after == rev(4) && failing < 4 {
				failing++
				return errTransient
			}
			return nil
		}
		var reopens []error
		g := collect(Resume(t.Context(), src.source(), resumeOpts(fromTheStart,
			WithStreamOptions(stream.Prefetch(false)),
			OnReopen(func(err error) { reopens = append(reopens, err) }))...))
		wantEqual(t, "revisions (no repeat, no gap)", revs(g.vals), seqRange(1, 10))
		wantEqual(t, "reopens", len(reopens), 2) // 2 failures per watch (MaxRetries(1))
		wantErrIs(t, reopens[0], stream.ErrRetriesExhausted)
		wantErrIs(t, g.errs[0], errEnd)
	})
}

func TestResumeMaxReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(6, false)
		src.hook = func(_ context.Context, _ int, after stream.Revision) error {
			if after == rev(4) {
				return errTransient // forever
			}
			return nil
		}
		reopens := 0
		g := collect(Resume(t.Context(), src.source(), resumeOpts(fromTheStart, MaxReopens(3),
			WithStreamOptions(stream.Prefetch(false)),
			OnReopen(func(error) { reopens++ }))...))
		wantEqual(t, "revisions", revs(g.vals), []uint64{1, 2, 3, 4})
		wantEqual(t, "reopens", reopens, 3)
		if len(g.errs) != 1 {
			t.Fatalf("errors %v, want one", g.errs)
		}
		wantErrIs(t, g.errs[0], stream.ErrRetriesExhausted)
		wantErrIs(t, g.errs[0], errTransient)
	})
}

func TestResumeReopenPolicyGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(3, false)
		src.hook = func(context.Context, int, stream.Revision) error { return errTransient }
		g := collect(Resume(t.Context(), src.source(), resumeOpts(fromTheStart,
			ReopenBackoff(stream.RetryPolicy{MaxRetries: 0}))...))
		if len(g.vals) != 0 || len(g.errs) != 1 {
			t.Fatalf("got %v, want one error", g)
		}
		wantErrIs(t, g.errs[0], stream.ErrRetriesExhausted)
	})
}

func TestResumeWaitsBetweenReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(1, true)
		var at []time.Duration
		start := time.Now()
		fails := 0
		src.hook = func(_ context.Context, _ int, after stream.Revision) error {
			if fails < 4 { // two watches of two failed polls each
				fails++
				at = append(at, time.Since(start))
				return errTransient
			}
			return nil
		}
		g := collect(Resume(t.Context(), src.source(), resumeOpts(fromTheStart)...))
		wantEqual(t, "revisions", revs(g.vals), []uint64{1})
		// Polls at 0 and 1ms (the stream's own retry), then Resume waits
		// 100ms: 101ms and 102ms.
		wantEqual(t, "failed polls at", at, []time.Duration{0, time.Millisecond, 101 * time.Millisecond, 102 * time.Millisecond})
	})
}

func TestResumeFatalEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(6, false)
		src.hook = func(_ context.Context, _ int, after stream.Revision) error {
			if after == rev(4) {
				return stream.Fatal(errBoom)
			}
			return nil
		}
		reopened := false
		g := collect(Resume(t.Context(), src.source(), resumeOpts(fromTheStart,
			WithStreamOptions(stream.Prefetch(false)),
			OnReopen(func(error) { reopened = true }))...))
		wantEqual(t, "revisions", revs(g.vals), []uint64{1, 2, 3, 4})
		if len(g.errs) != 1 || !errors.Is(g.errs[0], errBoom) || reopened {
			t.Fatalf("errors %v, reopened %v: want the fatal error, no reopen", g.errs, reopened)
		}
	})
}

func TestResumeInvalidStreamOptionEnds(t *testing.T) {
	src := newMemSource(5, false)
	g := collect(Resume(context.Background(), src.source(), WithStreamOptions(stream.PageSize(0))))
	if len(g.vals) != 0 || len(g.errs) != 1 {
		t.Fatalf("got %v, want one error", g)
	}
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
	g = collect(Resume(context.Background(), src.source(), MaxReopens(-2)))
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
}

func TestResumeCompactionFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(10, true)
		src.compact(5)
		g := collect(Resume(t.Context(), src.source(), resumeOpts(StartAfter(rev(2)))...))
		if len(g.vals) != 0 || len(g.errs) != 1 {
			t.Fatalf("got %v, want one error", g)
		}
		var ce *stream.CompactedError
		if !errors.As(g.errs[0], &ce) || ce.Compact != rev(5) {
			t.Fatalf("error %v, want a CompactedError at 5", g.errs[0])
		}
	})
}

func TestResumeCompactionRestartsWithGapNotice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(10, true)
		src.hook = func(_ context.Context, _ int, after stream.Revision) error {
			if after == rev(3) { // history up to 6 is gone once 3 was delivered
				src.compact(6)
			}
			return nil
		}
		var out []any
		for ev, err := range Resume(t.Context(), src.source(), resumeOpts(fromTheStart, OnCompaction(Restart),
			WithStreamOptions(stream.PageSize(3), stream.Prefetch(false)))...) {
			var gap *GapError
			switch {
			case errors.As(err, &gap):
				if !errors.Is(err, ErrGap) {
					t.Fatal("GapError does not match ErrGap")
				}
				out = append(out, "gap "+gap.From.String()+".."+gap.To.String())
			case err != nil:
				wantErrIs(t, err, errEnd)
				out = append(out, "end")
			default:
				out = append(out, ev.Rev)
			}
		}
		wantEqual(t, "sequence", out, []any{uint64(1), uint64(2), uint64(3), "gap 3..6",
			uint64(7), uint64(8), uint64(9), uint64(10), "end"})
	})
}

func TestResumeFromNowKeepsPositionAcrossEarlyFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(5, false) // head 5: from now means after 5
		fails := 0
		src.hook = func(_ context.Context, _ int, after stream.Revision) error {
			if after == rev(5) && fails < 2 {
				if fails == 0 {
					src.add(2) // 6 and 7 happen while the stream is failing
				}
				fails++
				return errTransient
			}
			return nil
		}
		// A fake-time deadline turns a would-be hang into a failure.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		var got []uint64
		for ev, err := range Resume(ctx, src.source(), resumeOpts()...) { // from now
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.Rev)
			if len(got) == 2 {
				break
			}
		}
		// A reopen "from now" would have learned head 7 and skipped both.
		wantEqual(t, "revisions", got, []uint64{6, 7})
	})
}

func TestResumeBreakAfterFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newMemSource(10, false)
		polls := 0
		for ev, err := range Resume(t.Context(), src.source(), resumeOpts(fromTheStart)...) {
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "first", ev.Rev, uint64(1))
			break
		}
		src.mu.Lock()
		polls = src.polls
		src.mu.Unlock()
		if polls > 2 { // the page and at most one prefetch
			t.Fatalf("%d polls after a break at the first value", polls)
		}
	})
}

func TestResumeCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, failing := range []bool{false, true} {
			src := newMemSource(2, false)
			if failing { // cancel during the wait before a reopen
				src.hook = func(_ context.Context, _ int, after stream.Revision) error {
					if after == rev(2) {
						return errTransient
					}
					return nil
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(time.Second, cancel)
			start := time.Now()
			g := collect(Resume(ctx, src.source(), resumeOpts(fromTheStart,
				ReopenBackoff(constantWait(time.Hour)))...))
			wantEqual(t, "revisions", revs(g.vals), []uint64{1, 2})
			if len(g.errs) != 1 || g.errs[0] != context.Canceled {
				t.Fatalf("failing %v: errors %v, want [context.Canceled]", failing, g.errs)
			}
			wantEqual(t, "ended after", time.Since(start), time.Second)
		}
	})
}
