package operators

import (
	"context"
	"errors"
	"iter"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// upstream is a Broadcaster's upstream driven by the test: every pass
// reads the same feed, and passes are counted.
type upstream struct {
	f      *feed[int]
	mu     sync.Mutex
	passes int
	ended  int // passes that have returned
}

func newUpstream() *upstream { return &upstream{f: newFeed[int]()} }

func (u *upstream) open(ctx context.Context) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		u.mu.Lock()
		u.passes++
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			u.ended++
			u.mu.Unlock()
		}()
		u.f.seq(ctx)(yield)
	}
}

func (u *upstream) counts() (passes, ended int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.passes, u.ended
}

// subscribe ranges over b in a new goroutine until the sequence ends, or
// until stopAfter values when stopAfter > 0; the result is sent on the
// returned channel.
func subscribe(ctx context.Context, b *Broadcaster[int], stopAfter int, opts ...BroadcastOption) <-chan got[int] {
	out := make(chan got[int], 1)
	go func() {
		var g got[int]
		for v, err := range b.Subscribe(ctx, opts...) {
			if err != nil {
				g.errs = append(g.errs, err)
				continue
			}
			g.vals = append(g.vals, v)
			if stopAfter > 0 && len(g.vals) == stopAfter {
				break
			}
		}
		out <- g
	}()
	return out
}

func TestBroadcast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream()
		b := Broadcast(t.Context(), u.open)
		s1 := subscribe(t.Context(), b, 0)
		s2 := subscribe(t.Context(), b, 0, Buffer(0))
		synctest.Wait()
		wantEqual(t, "subscribers", b.Subscribers(), 2)
		for i := 1; i <= 5; i++ {
			u.f.ch <- i
		}
		u.f.errs <- errBoom // the upstream's final error
		close(u.f.ch)
		for _, s := range []<-chan got[int]{s1, s2} {
			g := <-s
			wantEqual(t, "values", g.vals, []int{1, 2, 3, 4, 5})
			if len(g.errs) != 1 || g.errs[0] != errBoom {
				t.Fatalf("errors %v, want [boom]", g.errs)
			}
		}
		passes, ended := u.counts()
		wantEqual(t, "passes started, ended", [2]int{passes, ended}, [2]int{1, 1})
	})
}

// TestBroadcastLateJoinerGetsFinalError: a subscriber that joins after
// the upstream's final error was delivered, but before the upstream pass
// has returned, ends with that error, not as if the upstream had completed.
func TestBroadcastLateJoinerGetsFinalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream()
		b := Broadcast(t.Context(), u.open)
		s1 := subscribe(t.Context(), b, 0)
		synctest.Wait()
		u.f.errs <- errBoom // delivered to s1; the pass has not returned yet
		synctest.Wait()
		s2 := subscribe(t.Context(), b, 0)
		synctest.Wait()
		close(u.f.ch)
		for i, s := range []<-chan got[int]{s1, s2} {
			g := <-s
			if len(g.vals) != 0 || len(g.errs) != 1 || g.errs[0] != errBoom {
				t.Fatalf("subscriber %d got %v, want only [boom]", i+1, g)
			}
		}
	})
}

func TestBroadcastEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream()
		b := Broadcast(t.Context(), u.open)
		s := subscribe(t.Context(), b, 0)
		synctest.Wait()
		close(u.f.ch)
		g := <-s
		if len(g.vals)+len(g.errs) != 0 {
			t.Fatalf("got %v, want nothing", g)
		}
	})
}

func TestBroadcastJoinLateAndLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		u := newUpstream()
		b := Broadcast(ctx, u.open)
		keeper := subscribe(ctx, b, 0) // keeps the pass going
		first := subscribe(ctx, b, 2)  // leaves after 2 values
		synctest.Wait()
		u.f.ch <- 1
		u.f.ch <- 2
		wantEqual(t, "first", (<-first).vals, []int{1, 2})
		late := subscribe(ctx, b, 0) // joins the same pass
		synctest.Wait()
		wantEqual(t, "subscribers", b.Subscribers(), 2)
		u.f.ch <- 3
		u.f.ch <- 4
		close(u.f.ch)
		wantEqual(t, "late", (<-late).vals, []int{3, 4}) // no replay
		wantEqual(t, "keeper", (<-keeper).vals, []int{1, 2, 3, 4})
		passes, _ := u.counts()
		wantEqual(t, "passes", passes, 1)
	})
}

func TestBroadcastLastLeaveStopsUpstreamAndNextSubscribeRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream()
		b := Broadcast(t.Context(), u.open)
		s := subscribe(t.Context(), b, 1)
		synctest.Wait()
		u.f.ch <- 1
		wantEqual(t, "first pass", (<-s).vals, []int{1})
		// The last subscriber left: the pass was cancelled and waited for.
		passes, ended := u.counts()
		wantEqual(t, "passes started, ended", [2]int{passes, ended}, [2]int{1, 1})
		wantEqual(t, "subscribers", b.Subscribers(), 0)

		s = subscribe(t.Context(), b, 1)
		synctest.Wait()
		u.f.ch <- 2
		wantEqual(t, "second pass", (<-s).vals, []int{2})
		passes, ended = u.counts()
		wantEqual(t, "passes started, ended", [2]int{passes, ended}, [2]int{2, 2})
	})
}

func TestBroadcastBreakAfterFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var yielded int
		b := Broadcast(t.Context(), func(context.Context) iter.Seq2[int, error] { return count(&yielded) })
		for v, err := range b.Subscribe(t.Context()) {
			if err != nil || v != 1 {
				t.Fatalf("first = %v, %v", v, err)
			}
			break
		}
		// The upstream (which ignores its context) stopped at its next value.
		if yielded > DefaultSubscriberBuffer+2 {
			t.Fatalf("upstream yielded %d values", yielded)
		}
	})
}

func TestBroadcastDropSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		u := newUpstream()
		b := Broadcast(ctx, u.open)
		fast := subscribe(ctx, b, 0)
		// slow joins, then reads nothing until released.
		release := make(chan struct{})
		slow := make(chan got[int], 1)
		go func() {
			var g got[int]
			for v, err := range b.Subscribe(ctx, Buffer(2), WhenSlow(DropSlow)) {
				<-release
				if err != nil {
					g.errs = append(g.errs, err)
					continue
				}
				g.vals = append(g.vals, v)
			}
			slow <- g
		}()
		synctest.Wait()
		for i := 1; i <= 6; i++ {
			u.f.ch <- i // never blocked by slow
		}
		synctest.Wait()
		wantEqual(t, "subscribers after the drop", b.Subscribers(), 2) // slow has not left yet
		close(release)
		g := <-slow
		// 1 was taken by the loop, 2 and 3 buffered, 4 did not fit.
		wantEqual(t, "slow values", g.vals, []int{1, 2, 3})
		if len(g.errs) != 1 || !errors.Is(g.errs[0], ErrSlowSubscriber) {
			t.Fatalf("slow errors %v, want ErrSlowSubscriber", g.errs)
		}
		close(u.f.ch)
		wantEqual(t, "fast values", (<-fast).vals, []int{1, 2, 3, 4, 5, 6})
	})
}

func TestBroadcastDropSlowStillGetsFinalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream()
		b := Broadcast(t.Context(), u.open, Buffer(1), WhenSlow(DropSlow))
		release := make(chan struct{})
		slow := make(chan got[int], 1)
		go func() {
			var g got[int]
			for v, err := range b.Subscribe(t.Context()) {
				<-release
				if err != nil {
					g.errs = append(g.errs, err)
					continue
				}
				g.vals = append(g.vals, v)
			}
			slow <- g
		}()
		synctest.Wait()
		u.f.ch <- 1 // taken by the loop
		u.f.ch <- 2 // buffered
		synctest.Wait()
		u.f.errs <- errBoom // no room: held, not dropped
		close(u.f.ch)       // so it is the final value
		close(release)
		g := <-slow
		wantEqual(t, "values", g.vals, []int{1, 2})
		if len(g.errs) != 1 || g.errs[0] != errBoom {
			t.Fatalf("errors %v, want [boom]", g.errs)
		}
	})
}

func TestBroadcastBlockOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		u := newUpstream()
		b := Broadcast(ctx, u.open, Buffer(1))
		fast := subscribe(ctx, b, 0)
		release := make(chan struct{})
		slowDone := make(chan []int, 1)
		go func() {
			var vals []int
			for v, err := range b.Subscribe(ctx) {
				if err != nil {
					break
				}
				<-release
				vals = append(vals, v)
			}
			slowDone <- vals
		}()
		synctest.Wait()
		sent := 0
		go func() {
			for i := 1; i <= 5; i++ {
				u.f.ch <- i
				sent = i
			}
			close(u.f.ch)
		}()
		synctest.Wait()
		// slow holds 1 in its loop and 2 in its buffer; 3 waits for room,
		// so the upstream is blocked: 4 is not taken.
		wantEqual(t, "values taken from the upstream", sent, 3)
		close(release)
		wantEqual(t, "slow", <-slowDone, []int{1, 2, 3, 4, 5})
		wantEqual(t, "fast", (<-fast).vals, []int{1, 2, 3, 4, 5})
	})
}

func TestBroadcastContextCancelEndsAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		u := newUpstream()
		b := Broadcast(ctx, u.open)
		s1 := subscribe(t.Context(), b, 0)
		s2 := subscribe(t.Context(), b, 0)
		synctest.Wait()
		u.f.ch <- 1
		time.AfterFunc(time.Second, cancel)
		for _, s := range []<-chan got[int]{s1, s2} {
			g := <-s
			wantEqual(t, "values", g.vals, []int{1})
			if len(g.errs) != 1 || g.errs[0] != context.Canceled {
				t.Fatalf("errors %v, want [context.Canceled]", g.errs)
			}
		}
		// A later subscriber ends at once.
		g := <-subscribe(t.Context(), b, 0)
		if len(g.errs) != 1 || g.errs[0] != context.Canceled {
			t.Fatalf("late subscriber: %v, want context.Canceled", g)
		}
	})
}

func TestBroadcastSubscriberCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream()
		b := Broadcast(t.Context(), u.open)
		ctx, cancel := context.WithCancel(t.Context())
		other := subscribe(t.Context(), b, 0)
		s := subscribe(ctx, b, 0)
		synctest.Wait()
		time.AfterFunc(time.Second, cancel)
		g := <-s
		if len(g.errs) != 1 || g.errs[0] != context.Canceled {
			t.Fatalf("errors %v, want [context.Canceled]", g.errs)
		}
		wantEqual(t, "subscribers", b.Subscribers(), 1) // the other one goes on
		u.f.ch <- 7
		close(u.f.ch)
		wantEqual(t, "other", (<-other).vals, []int{7})
	})
}

func TestBroadcastWaitSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUpstream()
		b := Broadcast(t.Context(), u.open)
		waited := make(chan error, 1)
		go func() { waited <- b.WaitSubscribers(t.Context(), 2) }()
		s1 := subscribe(t.Context(), b, 1)
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("WaitSubscribers returned %v with one subscriber", err)
		default:
		}
		s2 := subscribe(t.Context(), b, 1)
		synctest.Wait()
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("WaitSubscribers still waiting with two subscribers")
		}
		u.f.ch <- 1
		wantEqual(t, "s1", (<-s1).vals, []int{1})
		wantEqual(t, "s2", (<-s2).vals, []int{1})

		// Both left: waiting for one more ends with ctx.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := b.WaitSubscribers(ctx, 1); err != context.DeadlineExceeded {
			t.Fatalf("WaitSubscribers with nobody joined: %v, want DeadlineExceeded", err)
		}
	})
}

func TestBroadcastInvalid(t *testing.T) {
	b := Broadcast(context.Background(), (func(context.Context) iter.Seq2[int, error])(nil))
	g := collect(b.Subscribe(context.Background()))
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
	u := newUpstream()
	b = Broadcast(context.Background(), u.open, Buffer(-1))
	g = collect(b.Subscribe(context.Background()))
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
	g = collect(Broadcast(context.Background(), u.open).Subscribe(context.Background(), WhenSlow(7)))
	if len(g.errs) != 1 || len(g.vals) != 0 {
		t.Fatalf("got %v, want one error", g)
	}
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
	if p, _ := u.counts(); p != 0 {
		t.Fatalf("%d passes started for invalid subscriptions", p)
	}
}
