package stream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

func after(n uint64) stream.Option { return stream.After(stream.RevisionFromUint64(n)) }

// drain reads exactly want items, then checks nothing else is pending.
func drainN(t *testing.T, seq func(func(change, error) bool), n int) []string {
	t.Helper()
	got, err := collect(seq, n)
	if err != nil {
		t.Fatalf("stream ended after %d items: %v", len(got), err)
	}
	return got
}

func TestWatchDeliversBacklogInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(2500)
		got := drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(100), quiet()), 2500)
		if want := since(f, 0); !slices.Equal(got, want) {
			t.Fatalf("got %d items, want %d; first diff at %d", len(got), len(want), firstDiff(got, want))
		}
	})
}

// The guarantee matrix: every server behaviour DESIGN.md leaves open, with
// and without prefetch and with ParallelCatchUp(4), with faults and
// appends during the watch.
func TestWatchGuaranteesUnderServerKnobs(t *testing.T) {
	for _, inclusive := range []bool{false, true} {
		for _, shuffle := range []bool{false, true} {
			for _, repeat := range []int{0, 3} {
				for _, depth := range []int{1, 0, 4} { // the default prefetch, Prefetch(false), ParallelCatchUp(4)
					name := fmt.Sprintf("inclusive=%v/shuffle=%v/repeat=%d/depth=%d", inclusive, shuffle, repeat, depth)
					mode := stream.Prefetch(depth > 0)
					if depth > 1 {
						mode = stream.ParallelCatchUp(depth)
					}
					t.Run(name, func(t *testing.T) {
						synctest.Test(t, func(t *testing.T) {
							f := newFeed(1000)
							f.SetBehavior(streamtest.Behavior{Inclusive: inclusive, Shuffle: shuffle, RepeatEvery: repeat})
							f.Inject(nil, failWith(errFlaky), nil, nil, failWith(errFlaky), failWith(errFlaky))
							var got []string
							for c, err := range stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(64),
								mode, stream.PollInterval(time.Second), quiet()) {
								if err != nil {
									t.Fatalf("after %d items: %v", len(got), err)
								}
								got = append(got, strconv.FormatUint(c.Rev, 10))
								if len(got) == 500 {
									f.Append(700) // changes arriving during the watch
								}
								if len(got) == 1700 {
									break
								}
							}
							if want := since(f, 0); !slices.Equal(got, want) {
								t.Fatalf("delivered sequence differs from the server's at %d (got %d, want %d)", firstDiff(got, want), len(got), len(want))
							}
						})
					})
				}
			}
		}
	}
}

func TestWatchResumable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(300)
		first := drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(50), quiet()), 123)
		last := stream.MustParseRevision(first[len(first)-1])
		rest := drainN(t, stream.Watch(t.Context(), f, stream.After(last), stream.PageSize(50), quiet()), 300-123)
		if all := append(first, rest...); !slices.Equal(all, since(f, 0)) {
			t.Fatalf("two runs differ from the server's sequence at %d", firstDiff(all, since(f, 0)))
		}
	})
}

func TestWatchFromNowSkipsHistory(t *testing.T) {
	for _, oldest := range []bool{false, true} {
		t.Run(fmt.Sprintf("oldest=%v", oldest), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFeed(500)
				f.SetBehavior(streamtest.Behavior{OldestOnAbsent: oldest})
				f.OnPoll(func(context.Context, stream.Revision) error {
					if len(f.Polls()) == 1 { // after learning the head
						f.Append(3)
					}
					return nil
				})
				got := drainN(t, stream.Watch(t.Context(), f, quiet()), 3)
				if want := []string{"501", "502", "503"}; !slices.Equal(got, want) {
					t.Fatalf("got %v, want %v", got, want)
				}
				if c := f.Polls()[0]; !c.After.IsZero() || c.Limit != 1 {
					t.Fatalf("first poll %+v, want no start revision and limit 1", c)
				}
			})
		})
	}
}

func TestWatchFromNowOnEmptyFeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(0)
		f.OnPoll(func(context.Context, stream.Revision) error {
			if len(f.Polls()) == 2 {
				f.Append(2)
			}
			return nil
		})
		got := drainN(t, stream.Watch(t.Context(), f, quiet()), 2)
		if !slices.Equal(got, []string{"1", "2"}) {
			t.Fatal(got)
		}
	})
}

// A backlog of 100 pages is drained without a single poll-interval wait.
func TestCatchUpDoesNotSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(100 * 100)
		start := time.Now()
		drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(100), stream.PollInterval(time.Hour), quiet()), 10000)
		if d := time.Since(start); d != 0 {
			t.Fatalf("catching up 100 pages took %v of (fake) time, want 0", d)
		}
		if n := len(f.Polls()); n != 100 && n != 101 {
			t.Fatalf("%d polls for 100 pages", n)
		}
	})
}

func TestIdlePollingKeepsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(10)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		revs, err := collect(stream.Watch(ctx, f, after(10), stream.PollInterval(10*time.Second), quiet()), -1)
		if !errors.Is(err, context.DeadlineExceeded) || len(revs) != 0 {
			t.Fatalf("got %v, %v", revs, err)
		}
		calls := f.Polls()
		for i := 1; i < len(calls); i++ {
			gap := calls[i].At.Sub(calls[i-1].At)
			if gap < 10*time.Second || gap > 11*time.Second {
				t.Fatalf("poll %d came %v after the previous one, want 10s to 11s", i, gap)
			}
		}
		if n := len(calls); n < 55 || n > 61 {
			t.Fatalf("%d polls in 10 minutes at a 10s interval", n)
		}
	})
}

func TestBackoffStaysWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(1)
		for range 12 {
			f.Inject(failWith(errFlaky))
		}
		var warnings atomic.Int32
		got := drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.Backoff(time.Second, 8*time.Second),
			stream.OnWarning(func(err error) {
				if !errors.Is(err, errFlaky) {
					t.Errorf("warning %v", err)
				}
				warnings.Add(1)
			}), quiet()), 1)
		if !slices.Equal(got, []string{"1"}) || warnings.Load() != 12 {
			t.Fatalf("got %v after %d warnings", got, warnings.Load())
		}
		calls := f.Polls()
		for i := 1; i < len(calls); i++ {
			gap := calls[i].At.Sub(calls[i-1].At)
			if gap < time.Second || gap > 8*time.Second {
				t.Fatalf("retry %d waited %v, outside [1s, 8s]", i, gap)
			}
			if i > 6 && gap < 4*time.Second {
				t.Fatalf("retry %d waited only %v: backoff does not grow", i, gap)
			}
		}
	})
}

type retryAfter struct{ d time.Duration }

func (r retryAfter) Error() string             { return "429 too many requests" }
func (r retryAfter) RetryAfter() time.Duration { return r.d }

func TestBackoffHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(1)
		f.Inject(failWith(fmt.Errorf("poll: %w", retryAfter{5 * time.Second})))
		drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.Backoff(100*time.Millisecond, time.Minute), quiet()), 1)
		calls := f.Polls()
		if gap := calls[1].At.Sub(calls[0].At); gap != 5*time.Second {
			t.Fatalf("waited %v after a Retry-After of 5s", gap)
		}
	})
}

func TestMaxRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(5)
		f.Inject(failWith(errFlaky), failWith(errFlaky), failWith(errFlaky), failWith(errFlaky))
		_, err := collect(stream.Watch(t.Context(), f, stream.FromStart(), stream.MaxRetries(3), quiet()), -1)
		var re *stream.RetryError
		if !errors.Is(err, stream.ErrRetriesExhausted) || !errors.As(err, &re) || !errors.Is(err, errFlaky) || re.Attempts != 4 {
			t.Fatalf("err = %v", err)
		}
		if n := len(f.Polls()); n != 4 {
			t.Fatalf("%d polls, want 4 (one try and three retries)", n)
		}
	})
}

func TestMaxRetriesResetsAfterSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(5)
		f.Inject(failWith(errFlaky), nil, failWith(errFlaky), nil, failWith(errFlaky))
		got := drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(2), stream.MaxRetries(1), quiet()), 5)
		if !slices.Equal(got, since(f, 0)) {
			t.Fatal(got)
		}
	})
}

func TestFatalErrorEndsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(5)
		denied := errors.New("401 unauthorized")
		f.Inject(failWith(stream.Fatal(denied)))
		start := time.Now()
		_, err := collect(stream.Watch(t.Context(), f, stream.FromStart(), quiet()), -1)
		if !errors.Is(err, denied) || !stream.IsFatal(err) || time.Since(start) != 0 || len(f.Polls()) != 1 {
			t.Fatalf("err = %v after %v and %d polls", err, time.Since(start), len(f.Polls()))
		}
		if stream.Fatal(nil) != nil || stream.IsFatal(denied) {
			t.Fatal("Fatal(nil) or IsFatal of an unmarked error")
		}
	})
}

func TestCompaction(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start uint64
		opts  []stream.Option
	}{
		{"start below compact", 10, nil},
		{"compacted during catch-up", 0, []stream.Option{stream.PageSize(10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFeed(100)
				if tc.start > 0 {
					f.Compact(50)
				}
				var got []string
				var err error
				start := stream.FromStart()
				if tc.start > 0 {
					start = after(tc.start)
				}
				for c, e := range stream.Watch(t.Context(), f, append(tc.opts, start, quiet())...) {
					if err = e; e != nil {
						break
					}
					got = append(got, strconv.FormatUint(c.Rev, 10))
					if len(got) == 5 {
						f.Compact(60)
					}
				}
				var ce *stream.CompactedError
				if !errors.Is(err, stream.ErrCompacted) || !errors.As(err, &ce) {
					t.Fatalf("err = %v", err)
				}
				if tc.start > 0 && (len(got) != 0 || ce.Compact.String() != "50" || ce.Position.String() != "10") {
					t.Fatalf("got %v, %+v", got, ce)
				}
				if tc.start == 0 && (ce.Compact.String() != "60" || ce.Position.String() != got[len(got)-1]) {
					t.Fatalf("got %v, %+v", got, ce)
				}
				if want := "revision compacted: position " + ce.Position.String() + " is below compact revision " + ce.Compact.String(); err.Error() != want {
					t.Fatalf("err.Error() = %q, want %q", err, want)
				}
			})
		})
	}
}

func TestItemWithoutValidRevisionIsNeverDeliveredNorSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(6)
		bad := 2
		src := stream.NewSource(func(ctx context.Context, a stream.Revision, limit int) (stream.Page[change], error) {
			p, err := f.Poll(ctx, a, limit)
			if bad > 0 && len(p.Items) > 2 {
				bad--
				p.Items[2] = change{Rev: 3, Key: []string{"no revision", "zero revision"}[bad]}
			}
			return p, err
		}, func(c change) (stream.Revision, error) {
			switch c.Key {
			case "no revision":
				return stream.Revision{}, errors.New("no revision")
			case "zero revision":
				return stream.Revision{}, nil
			}
			return f.Revision(c)
		})
		var warns []error
		got := drainN(t, stream.Watch(t.Context(), src, stream.FromStart(), stream.OnWarning(func(err error) { warns = append(warns, err) }), quiet()), 6)
		if !slices.Equal(got, since(f, 0)) || len(warns) != 2 {
			t.Fatalf("got %v with warnings %v", got, warns)
		}
		for _, w := range warns {
			if !errors.Is(w, stream.ErrProtocol) {
				t.Fatalf("warning %v is not a protocol error", w)
			}
		}
	})
}

func TestCancelInterruptsBackoffAndHungPoll(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(context.Context) error
	}{
		{"backoff", failWith(errFlaky)},
		{"hung poll", hang},
		{"interval", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFeed(0)
				f.Inject(nil, tc.fault)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() {
					_, err := collect(stream.Watch(ctx, f, stream.FromStart(), stream.PollTimeout(0), stream.Backoff(time.Hour, time.Hour), stream.PollInterval(time.Hour), quiet()), -1)
					done <- err
				}()
				time.Sleep(time.Minute) // fake time: the watch is now waiting
				synctest.Wait()
				start := time.Now()
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) || time.Since(start) != 0 {
					t.Fatalf("err %v after %v", err, time.Since(start))
				}
			})
		})
	}
}

func TestPollTimeoutRetriesHungPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(3)
		f.Inject(hang)
		var warn error
		got := drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.PollTimeout(5*time.Second),
			stream.OnWarning(func(err error) { warn = err }), quiet()), 3)
		if len(got) != 3 || !errors.Is(warn, context.DeadlineExceeded) || !strings.Contains(warn.Error(), "timed out") {
			t.Fatalf("got %v, warning %v", got, warn)
		}
	})
}

// Breaking out of the loop while a prefetch is in flight cancels and
// reaps it before the range statement returns.
func TestBreakStopsPrefetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(1000)
		var inflight atomic.Int32
		f.OnPoll(func(ctx context.Context, _ stream.Revision) error {
			if len(f.Polls()) >= 1 {
				inflight.Add(1)
				defer inflight.Add(-1)
				return hang(ctx)
			}
			return nil
		})
		for range stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(10), stream.PollTimeout(0), quiet()) {
			synctest.Wait() // the prefetch is now hanging
			if inflight.Load() != 1 {
				t.Fatalf("%d prefetches in flight, want 1", inflight.Load())
			}
			break
		}
		if inflight.Load() != 0 {
			t.Fatal("prefetch still running after break")
		}
	})
}

// A slow consumer never makes the engine fetch more than one page ahead.
func TestPrefetchIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(1000)
		n := 0
		for _, err := range stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(10), quiet()) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			time.Sleep(time.Second) // a slow consumer (fake time)
			synctest.Wait()
			if polls := len(f.Polls()); polls > (n-1)/10+2 {
				t.Fatalf("after %d items, %d polls: more than one page ahead", n, polls)
			}
			if n == 95 {
				break
			}
		}
	})
}

func TestInvalidOptions(t *testing.T) {
	f := newFeed(1)
	for _, opt := range []stream.Option{
		stream.PageSize(1), stream.PollInterval(0), stream.MaxRetries(-2), stream.Backoff(0, time.Second),
		stream.Backoff(time.Second, time.Millisecond), stream.PollTimeout(-1), stream.After(stream.Revision{}),
		stream.Retry(stream.RetryPolicy{Jitter: 2}), stream.ParallelCatchUp(0), stream.Retry(stream.RetryPolicy{Min: time.Second, Max: time.Millisecond}),
	} {
		if err := opt.Err(); !errors.Is(err, stream.ErrInvalidOption) {
			t.Errorf("Err() = %v", err)
		}
		_, err := collect(stream.Watch(context.Background(), f, stream.FromStart(), opt), -1)
		if !errors.Is(err, stream.ErrInvalidOption) || err.Error() != opt.Err().Error() {
			t.Errorf("Watch yields %v, Err() says %v", err, opt.Err())
		}
	}
	_, err := collect(stream.Watch[change](context.Background(), nil), -1)
	if !errors.Is(err, stream.ErrInvalidOption) {
		t.Errorf("nil source: %v", err)
	}
	if len(f.Polls()) != 0 {
		t.Error("polled despite a bad option")
	}
}

func TestValidate(t *testing.T) {
	if err := stream.Validate(stream.FromStart(), nil, stream.MaxRetries(stream.NoRetryLimit), stream.Retry(stream.DefaultRetryPolicy())); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	var nilOpt stream.Option
	if nilOpt.Err() != nil || stream.After(stream.RevisionFromUint64(0)).Err() != nil {
		t.Fatal("nil option or After(0) reported invalid")
	}
	err := stream.Validate(stream.PageSize(5), stream.PageSize(1), stream.PollInterval(-1))
	if !errors.Is(err, stream.ErrInvalidOption) || !strings.Contains(err.Error(), "PageSize(1)") || !strings.Contains(err.Error(), "PollInterval(-1ns)") {
		t.Fatalf("Validate = %v, want both bad options", err)
	}
	_, werr := collect(stream.Watch(context.Background(), newFeed(1), stream.PageSize(1), stream.PollInterval(-1)), -1)
	if werr == nil || werr.Error() != stream.Validate(stream.PageSize(1), stream.PollInterval(-1)).Error() {
		t.Fatalf("Watch yields %v, Validate says %v", werr, err)
	}
}

// FromStart starts at the oldest change kept: over a compacted feed it
// moves to the compact revision without an error, also when the server
// compacts again before the first change is delivered; once a change is
// delivered, a compaction past the position ends the stream as usual.
func TestFromStartOverCompactedFeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(100)
		f.Compact(100)
		f.Inject(nil, func(context.Context) error { f.Append(10); f.Compact(105); return nil })
		got := drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), quiet()), 5)
		if !slices.Equal(got, since(f, 105)) {
			t.Fatalf("got %v, want 106 to 110", got)
		}
		if p := f.Polls(); p[0].After.String() != "0" || p[1].After.String() != "100" {
			t.Fatalf("polls after %v, %v; want 0, then 100", p[0].After, p[1].After)
		}
		f = newFeed(100)
		f.Compact(40)
		got = drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(10), quiet()), 60)
		if !slices.Equal(got, since(f, 40)) {
			t.Fatalf("got %v, want 41 to 100", got)
		}

		var n int
		var err error
		for _, e := range stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(10), quiet()) {
			if err = e; e != nil {
				break
			}
			if n++; n == 3 {
				f.Compact(70)
			}
		}
		var ce *stream.CompactedError
		if !errors.As(err, &ce) || ce.Compact.String() != "70" {
			t.Fatalf("after %d changes: %v, want a compaction at 70", n, err)
		}
	})
}

// FromNow over a source that reports no head starts from the oldest change
// kept, even above a compact revision.
func TestFromNowWithoutHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(10)
		f.Compact(5)
		src := stream.NewSource(func(ctx context.Context, a stream.Revision, limit int) (stream.Page[change], error) {
			p, err := f.Poll(ctx, a, limit)
			p.Head = stream.Revision{}
			return p, err
		}, f.Revision)
		got := drainN(t, stream.Watch(t.Context(), src, quiet()), 5)
		if !slices.Equal(got, since(f, 5)) {
			t.Fatal(got)
		}
	})
}

// The engine's two phases, learning the head and polling, share one
// retry budget that a success resets, and a *RetryError says where the
// stream stood.
func TestRetryErrorPosition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(3)
		f.Inject(failWith(errFlaky), failWith(errFlaky))
		_, err := collect(stream.Watch(t.Context(), f, stream.MaxRetries(1), quiet()), -1)
		var re *stream.RetryError
		if !errors.As(err, &re) || re.Attempts != 2 || !re.Position.IsZero() || stream.IsFinal(err) {
			t.Fatalf("learning the head: %v", err)
		}
		if want := "retries exhausted after 2 attempts: " + errFlaky.Error(); err.Error() != want {
			t.Fatalf("%q, want %q", err, want)
		}

		f.Inject(failWith(errFlaky), nil, nil, failWith(errFlaky), failWith(errFlaky))
		got, err := collect(stream.Watch(t.Context(), f, stream.Retry(stream.RetryPolicy{MaxRetries: 1}), quiet()), -1)
		if len(got) != 0 || !errors.As(err, &re) || re.Attempts != 2 || re.Position.String() != "3" {
			t.Fatalf("polling: got %v, %v", got, err)
		}
		if want := "retries exhausted after 2 attempts at revision 3: " + errFlaky.Error(); err.Error() != want {
			t.Fatalf("%q, want %q", err, want)
		}
	})
}

func TestOnPollDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(5)
		f.OnPoll(func(context.Context, stream.Revision) error { time.Sleep(3 * time.Second); return nil })
		var infos []stream.PollInfo
		drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.OnPoll(func(p stream.PollInfo) { infos = append(infos, p) }), quiet()), 5)
		if len(infos) != 1 || infos[0].Duration != 3*time.Second {
			t.Fatalf("%+v, want one poll of 3s", infos)
		}
	})
}

func TestOnPollReportsProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFeed(25)
		var infos []stream.PollInfo
		drainN(t, stream.Watch(t.Context(), f, stream.FromStart(), stream.PageSize(10), stream.Prefetch(false),
			stream.OnPoll(func(p stream.PollInfo) { infos = append(infos, p) }), quiet()), 25)
		if len(infos) != 3 || infos[0].Head.String() != "25" || infos[0].New != 10 || infos[0].CaughtUp ||
			infos[2].Last.String() != "25" || !infos[2].CaughtUp {
			t.Fatalf("%+v", infos)
		}
	})
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Cancelling ctx while the consumer handles an item of a page ends the
// stream with ctx.Err() at the next value: the rest of the page is not
// delivered after the context is done.
func TestCancelDuringPageStopsDelivery(t *testing.T) {
	for _, prefetch := range []bool{true, false} {
		t.Run(fmt.Sprintf("prefetch=%v", prefetch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFeed(100)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var got []string
				var err error
				for c, e := range stream.Watch(ctx, f, stream.FromStart(), stream.PageSize(50), stream.Prefetch(prefetch), quiet()) {
					if err = e; e != nil {
						break
					}
					got = append(got, strconv.FormatUint(c.Rev, 10))
					if len(got) == 3 {
						cancel()
					}
				}
				if len(got) != 3 || !errors.Is(err, context.Canceled) {
					t.Fatalf("after cancel at item 3: got %d items, then %v", len(got), err)
				}
			})
		})
	}
}
