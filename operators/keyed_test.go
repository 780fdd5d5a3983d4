package operators

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// kc is the change type of the HandleByKey tests.
type kc struct {
	Rev uint64
	Key string
}

func kcKey(c kc) string { return c.Key }

func kcRev(c kc) (stream.Revision, error) { return stream.RevisionFromUint64(c.Rev), nil }

// kcSeq yields cs, then err if it is not nil; pulled counts the values
// it yielded.
func kcSeq(pulled *atomic.Int64, err error, cs ...kc) iter.Seq2[kc, error] {
	return func(yield func(kc, error) bool) {
		for _, c := range cs {
			if pulled != nil {
				pulled.Add(1)
			}
			if !yield(c, nil) {
				return
			}
		}
		if err != nil {
			yield(kc{}, err)
		}
	}
}

// kcGen returns n changes, revisions 1..n, over keys k0..k(keys-1) at
// random.
func kcGen(rng *rand.Rand, n, keys int) []kc {
	cs := make([]kc, n)
	for i := range cs {
		cs[i] = kc{Rev: uint64(i + 1), Key: fmt.Sprintf("k%d", rng.IntN(keys))}
	}
	return cs
}

// keyedPerKey returns the revisions of cs per key, in order.
func keyedPerKey(cs []kc) map[string][]uint64 {
	m := map[string][]uint64{}
	for _, c := range cs {
		m[c.Key] = append(m[c.Key], c.Rev)
	}
	return m
}

// keyedMarks collects what a HandleByKey sequence yields.
type keyedMarks struct {
	mu   sync.Mutex
	revs []uint64
	errs []error
	last atomic.Uint64 // the newest watermark
}

func (m *keyedMarks) add(r stream.Revision, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.errs = append(m.errs, err)
		return
	}
	n, _ := r.Uint64()
	m.revs = append(m.revs, n)
	m.last.Store(n)
}

func collectKeyedMarks(seq iter.Seq2[stream.Revision, error]) *keyedMarks {
	m := &keyedMarks{}
	for r, err := range seq {
		m.add(r, err)
	}
	return m
}

// increasing fails unless the watermarks increase strictly.
func (m *keyedMarks) increasing(t *testing.T) {
	t.Helper()
	for i := 1; i < len(m.revs); i++ {
		if m.revs[i] <= m.revs[i-1] {
			t.Fatalf("watermarks %v do not increase", m.revs)
		}
	}
}

func (m *keyedMarks) final() uint64 {
	if len(m.revs) == 0 {
		return 0
	}
	return m.revs[len(m.revs)-1]
}

// keyedRecorder is a handler that records the calls per key and fails the test
// when two calls of one key overlap.
type keyedRecorder struct {
	mu      sync.Mutex
	handled map[string][]uint64
	active  map[string]int
	running int
	maxRun  int
	overlap int
	before  func(ctx context.Context, c kc) error // runs inside the call
}

func newKeyedRecorder(before func(ctx context.Context, c kc) error) *keyedRecorder {
	return &keyedRecorder{handled: map[string][]uint64{}, active: map[string]int{}, before: before}
}

func (r *keyedRecorder) handle(ctx context.Context, c kc) error {
	r.mu.Lock()
	r.active[c.Key]++
	if r.active[c.Key] > 1 {
		r.overlap++
	}
	r.running++
	r.maxRun = max(r.maxRun, r.running)
	r.mu.Unlock()
	var err error
	if r.before != nil {
		err = r.before(ctx, c)
	}
	r.mu.Lock()
	r.active[c.Key]--
	r.running--
	if err == nil {
		r.handled[c.Key] = append(r.handled[c.Key], c.Rev)
	}
	r.mu.Unlock()
	return err
}

func (r *keyedRecorder) snapshot() (handled map[string][]uint64, running, maxRun, overlap int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	handled = map[string][]uint64{}
	for k, v := range r.handled {
		handled[k] = slices.Clone(v)
	}
	return handled, r.running, r.maxRun, r.overlap
}

// keyedQuickRetry retries after 1 ms, 2 ms, 4 ms, ..., exactly, up to n times.
func keyedQuickRetry(n int) KeyedOption {
	return RetryHandler(stream.RetryPolicy{Min: time.Millisecond, Max: time.Second, Multiplier: 2, MaxRetries: n})
}

func TestHandleByKeyPerKeyOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for i := range 10 {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		changes := kcGen(rng, 300, 1+rng.IntN(12))
		delay := make(map[uint64]time.Duration)
		for _, c := range changes {
			delay[c.Rev] = time.Duration(rng.IntN(10_000)) * time.Microsecond
		}
		n := 1 + rng.IntN(8)
		synctest.Test(t, func(t *testing.T) {
			rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
				time.Sleep(delay[c.Rev]) // simulated work
				return nil
			})
			m := collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, changes...), n, kcKey, kcRev, rec.handle, MaxPending(1+rng.IntN(64))))
			if len(m.errs) > 0 {
				t.Fatal(m.errs)
			}
			m.increasing(t)
			handled, _, maxRun, overlap := rec.snapshot()
			wantEqual(t, "handled per key", handled, keyedPerKey(changes))
			wantEqual(t, "overlapping calls of one key", overlap, 0)
			wantEqual(t, "final watermark", m.final(), uint64(len(changes)))
			if maxRun > n {
				t.Fatalf("%d calls at a time with %d workers", maxRun, n)
			}
		})
	}
}

// TestHandleByKeyParallel proves that n keys are handled at the same
// time: every call waits until the test releases it, and once every
// goroutine is blocked, n calls are in progress, no more.
func TestHandleByKeyParallel(t *testing.T) {
	for _, tc := range []struct{ n, keys, want int }{{4, 4, 4}, {3, 10, 3}, {8, 5, 5}} {
		t.Run(fmt.Sprintf("n=%d,keys=%d", tc.n, tc.keys), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
					<-release
					return nil
				})
				var changes []kc
				for i := range 3 * tc.keys {
					changes = append(changes, kc{Rev: uint64(i + 1), Key: fmt.Sprintf("k%d", i%tc.keys)})
				}
				done := make(chan *keyedMarks)
				go func() {
					done <- collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, changes...), tc.n, kcKey, kcRev, rec.handle))
				}()
				synctest.Wait()
				_, running, _, _ := rec.snapshot()
				wantEqual(t, "calls in progress", running, tc.want)
				close(release)
				m := <-done
				if len(m.errs) > 0 {
					t.Fatal(m.errs)
				}
				handled, _, maxRun, overlap := rec.snapshot()
				wantEqual(t, "handled", handled, keyedPerKey(changes))
				wantEqual(t, "most calls at a time", maxRun, tc.want)
				wantEqual(t, "overlaps", overlap, 0)
			})
		})
	}
}

// TestHandleByKeyRetryPerKey: a's first change fails three times; with a
// single worker, b and c are handled at once while a backs off 1 s, 2 s,
// 4 s (no jitter), and a's second change waits for its first.
func TestHandleByKeyRetryPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		type call struct {
			rev uint64
			at  time.Duration
		}
		var (
			mu    sync.Mutex
			calls []call
			fails = 3
		)
		handle := func(ctx context.Context, c kc) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{c.Rev, time.Since(start)})
			if c.Rev == 1 && fails > 0 {
				fails--
				return errBoom
			}
			return nil
		}
		changes := []kc{{1, "a"}, {2, "b"}, {3, "a"}, {4, "b"}, {5, "c"}}
		policy := stream.RetryPolicy{Min: time.Second, Max: time.Minute, Multiplier: 2, MaxRetries: 3}
		m := collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, changes...), 1, kcKey, kcRev, handle, RetryHandler(policy)))
		if len(m.errs) > 0 {
			t.Fatal(m.errs)
		}
		slices.SortStableFunc(calls, func(x, y call) int { return cmp.Or(cmp.Compare(x.at, y.at), cmp.Compare(x.rev, y.rev)) })
		s := time.Second
		wantEqual(t, "calls", calls, []call{{1, 0}, {2, 0}, {4, 0}, {5, 0}, {1, s}, {1, 3 * s}, {1, 7 * s}, {3, 7 * s}})
		// 2 may be coalesced into 5, but nothing passes 1 before 7 s.
		if m.revs[0] < 2 || m.final() != 5 {
			t.Fatalf("watermarks %v, want [2 5] or [5]", m.revs)
		}
	})
}

func TestHandleByKeyRetryAfterOtherKeysGoOn(t *testing.T) {
	// a fails forever (NoRetryLimit); the other keys keep flowing, until
	// the changes after a fill MaxPending.
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			if c.Key == "a" {
				return errBoom
			}
			return nil
		})
		var changes []kc
		for i := range 100 {
			changes = append(changes, kc{Rev: uint64(i + 1), Key: []string{"a", "b", "c", "d"}[i%4]})
		}
		var pulled atomic.Int64
		done := make(chan *keyedMarks)
		go func() {
			done <- collectKeyedMarks(HandleByKey(ctx, kcSeq(&pulled, nil, changes...), 2, kcKey, kcRev, rec.handle,
				MaxPending(20), RetryHandler(stream.RetryPolicy{Min: time.Second, MaxRetries: stream.NoRetryLimit})))
		}()
		synctest.Wait()
		handled, _, _, _ := rec.snapshot()
		wantEqual(t, "changes read", pulled.Load(), int64(20))
		wantEqual(t, "b handled", handled["b"], []uint64{2, 6, 10, 14, 18})
		wantEqual(t, "a handled", len(handled["a"]), 0)
		cancel()
		m := <-done
		wantEqual(t, "watermarks", m.revs, []uint64(nil))
		wantEqual(t, "errors", len(m.errs), 1)
		wantErrIs(t, m.errs[0], context.Canceled)
	})
}

// TestHandleByKeyWatermarkProperty completes the calls in random orders
// and checks, after each completion, that the watermark is exactly the
// highest revision below which everything is handled: never past an
// unhandled change, never behind once the pass is idle.
func TestHandleByKeyWatermarkProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for i := range 40 {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		changes := kcGen(rng, 10+rng.IntN(40), 1+rng.IntN(6))
		n, maxPending, newest := 1+rng.IntN(4), 1+rng.IntN(20), rng.IntN(3) == 0
		synctest.Test(t, func(t *testing.T) {
			var (
				mu      sync.Mutex
				waiting = map[uint64]chan struct{}{} // started calls
				handled = map[uint64]bool{}
			)
			handle := func(ctx context.Context, c kc) error {
				ch := make(chan struct{})
				mu.Lock()
				waiting[c.Rev] = ch
				mu.Unlock()
				<-ch
				return nil
			}
			opts := []KeyedOption{MaxPending(maxPending)}
			if newest {
				opts = append(opts, NewestOnly())
			}
			m := &keyedMarks{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for r, err := range HandleByKey(t.Context(), kcSeq(nil, nil, changes...), n, kcKey, kcRev, handle, opts...) {
					m.add(r, err)
				}
			}()
			// later[i]: a change of the same key comes after changes[i].
			later := make([]bool, len(changes))
			seen := map[string]bool{}
			for i := len(changes) - 1; i >= 0; i-- {
				later[i] = seen[changes[i].Key]
				seen[changes[i].Key] = true
			}
			for {
				synctest.Wait()
				w := m.last.Load()
				mu.Lock()
				want := uint64(0)
				for j, c := range changes {
					if !handled[c.Rev] && !(newest && later[j]) {
						break
					}
					want = c.Rev
				}
				for _, c := range changes[:w] {
					if !handled[c.Rev] && !(newest && later[c.Rev-1]) {
						t.Fatalf("watermark %d passes unhandled %d (handled %v)", w, c.Rev, handled)
					}
				}
				if !newest && w != want {
					t.Fatalf("idle watermark %d, want %d", w, want)
				}
				var started []uint64
				for r := range waiting {
					started = append(started, r)
				}
				slices.Sort(started)
				if len(started) == 0 {
					mu.Unlock()
					break
				}
				r := started[rng.IntN(len(started))]
				close(waiting[r])
				delete(waiting, r)
				handled[r] = true
				mu.Unlock()
			}
			<-done
			if len(m.errs) > 0 {
				t.Fatal(m.errs)
			}
			m.increasing(t)
			wantEqual(t, "final watermark", m.final(), uint64(len(changes)))
			if !newest {
				wantEqual(t, "handled", len(handled), len(changes))
			}
		})
	}
}

func TestHandleByKeyPoisonStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			if c.Rev == 2 {
				return errBoom
			}
			return nil
		})
		changes := []kc{{1, "b"}, {2, "a"}, {3, "b"}, {4, "a"}, {5, "c"}}
		m := collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, changes...), 2, kcKey, kcRev, rec.handle, keyedQuickRetry(2)))
		wantEqual(t, "errors", len(m.errs), 1)
		var ke *KeyedError
		if !errors.As(m.errs[0], &ke) {
			t.Fatalf("error %v, want a *KeyedError", m.errs[0])
		}
		wantErrIs(t, m.errs[0], errBoom)
		wantEqual(t, "key", ke.Key, any("a"))
		wantEqual(t, "revision", ke.Revision, rev(2))
		wantEqual(t, "attempts", ke.Attempts, 3)
		wantEqual(t, "watermarks", m.revs, []uint64{1})
		handled, _, _, _ := rec.snapshot()
		wantEqual(t, "a handled", len(handled["a"]), 0)
	})
}

func TestHandleByKeyPoisonFinalNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		handle := func(ctx context.Context, c kc) error {
			calls++
			return stream.Fatal(errBoom)
		}
		m := collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, kc{1, "a"}), 1, kcKey, kcRev, handle, keyedQuickRetry(5)))
		wantEqual(t, "calls", calls, 1)
		wantEqual(t, "errors", len(m.errs), 1)
		var ke *KeyedError
		if !errors.As(m.errs[0], &ke) || ke.Attempts != 1 {
			t.Fatalf("error %v, want a *KeyedError after 1 attempt", m.errs[0])
		}
	})
}

func TestHandleByKeyPoisonSkip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			if c.Rev == 2 {
				return errBoom
			}
			return nil
		})
		var skipped []kc
		var skipErr error
		report := func(c kc, err error) {
			skipped = append(skipped, c)
			skipErr = err
		}
		changes := []kc{{1, "b"}, {2, "a"}, {3, "b"}, {4, "a"}, {5, "c"}}
		m := collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, changes...), 2, kcKey, kcRev, rec.handle, keyedQuickRetry(2), SkipPoison(report)))
		if len(m.errs) > 0 {
			t.Fatal(m.errs)
		}
		wantEqual(t, "skipped", skipped, []kc{{2, "a"}})
		var ke *KeyedError
		if !errors.As(skipErr, &ke) || ke.Attempts != 3 || !errors.Is(skipErr, errBoom) {
			t.Fatalf("reported %v, want a *KeyedError for errBoom after 3 attempts", skipErr)
		}
		wantEqual(t, "final watermark", m.final(), uint64(5))
		handled, _, _, _ := rec.snapshot()
		wantEqual(t, "handled", handled, map[string][]uint64{"a": {4}, "b": {1, 3}, "c": {5}})
	})
}

// TestHandleByKeyBounded: with a handler that does not return, the
// upstream is read exactly MaxPending values far.
func TestHandleByKeyBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			<-release
			return nil
		})
		changes := kcGen(rand.New(rand.NewPCG(1, 2)), 200, 50)
		var pulled atomic.Int64
		done := make(chan *keyedMarks)
		go func() {
			done <- collectKeyedMarks(HandleByKey(t.Context(), kcSeq(&pulled, nil, changes...), 3, kcKey, kcRev, rec.handle, MaxPending(7)))
		}()
		synctest.Wait()
		wantEqual(t, "read", pulled.Load(), int64(7))
		_, running, _, _ := rec.snapshot()
		if running > 3 || running < 1 {
			t.Fatalf("%d calls in progress", running)
		}
		close(release)
		m := <-done
		if len(m.errs) > 0 {
			t.Fatal(m.errs)
		}
		wantEqual(t, "read", pulled.Load(), int64(200))
		wantEqual(t, "final watermark", m.final(), uint64(200))
	})
}

func TestHandleByKeyNewestOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			if c.Rev == 1 {
				<-release
			}
			return nil
		})
		ch := make(chan kc)
		seq := func(yield func(kc, error) bool) {
			for c := range ch {
				if !yield(c, nil) {
					return
				}
			}
		}
		done := make(chan *keyedMarks)
		go func() {
			done <- collectKeyedMarks(HandleByKey(t.Context(), seq, 2, kcKey, kcRev, rec.handle, NewestOnly()))
		}()
		ch <- kc{1, "a"}
		synctest.Wait() // a1 is being handled
		for _, c := range []kc{{2, "a"}, {3, "a"}, {4, "a"}, {5, "b"}} {
			ch <- c
		}
		synctest.Wait()
		handled, _, _, _ := rec.snapshot()
		wantEqual(t, "handled while a1 runs", handled, map[string][]uint64{"b": {5}})
		close(release)
		synctest.Wait()
		ch <- kc{6, "a"}
		close(ch)
		m := <-done
		if len(m.errs) > 0 {
			t.Fatal(m.errs)
		}
		handled, _, _, _ = rec.snapshot()
		wantEqual(t, "handled", handled, map[string][]uint64{"a": {1, 4, 6}, "b": {5}})
		wantEqual(t, "final watermark", m.final(), uint64(6))
		m.increasing(t)
	})
}

// TestHandleByKeyUpstreamError: an error from the upstream comes after the
// watermark of every change before it.
func TestHandleByKeyUpstreamError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			time.Sleep(time.Duration(c.Rev%3) * time.Millisecond)
			return nil
		})
		changes := kcGen(rand.New(rand.NewPCG(3, 4)), 50, 5)
		var order []string
		for r, err := range HandleByKey(t.Context(), kcSeq(nil, errBoom, changes...), 4, kcKey, kcRev, rec.handle) {
			if err != nil {
				order = append(order, err.Error())
				continue
			}
			n, _ := r.Uint64()
			order = append(order, fmt.Sprint(n))
		}
		if len(order) < 2 || order[len(order)-1] != errBoom.Error() || order[len(order)-2] != "50" {
			t.Fatalf("yielded %v, want ..., 50, %v", order, errBoom)
		}
	})
}

func TestHandleByKeyCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var started, returned atomic.Int64
		rec := newKeyedRecorder(func(hctx context.Context, c kc) error {
			if c.Rev <= 2 {
				return nil
			}
			started.Add(1)
			<-hctx.Done()
			returned.Add(1)
			return hctx.Err()
		})
		changes := kcGen(rand.New(rand.NewPCG(5, 6)), 100, 10)
		changes[0].Key, changes[1].Key = "x", "y" // keys of their own
		for i := range changes[2:] {
			changes[2+i].Key = fmt.Sprint(i % 10)
		}
		done := make(chan *keyedMarks)
		go func() {
			done <- collectKeyedMarks(HandleByKey(ctx, kcSeq(nil, nil, changes...), 4, kcKey, kcRev, rec.handle))
		}()
		synctest.Wait()
		cancel()
		m := <-done
		wantEqual(t, "last watermark", m.final(), uint64(2))
		wantEqual(t, "errors", len(m.errs), 1)
		wantErrIs(t, m.errs[0], context.Canceled)
		if started.Load() != 4 || returned.Load() != 4 {
			t.Fatalf("%d calls started, %d returned; want the 4 in progress", started.Load(), returned.Load())
		}
		_, running, _, _ := rec.snapshot()
		wantEqual(t, "calls in progress after the end", running, 0)
	})
}

func TestHandleByKeyBreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			if c.Rev == 1 {
				return nil
			}
			<-ctx.Done() // stopped by the break
			return ctx.Err()
		})
		changes := kcGen(rand.New(rand.NewPCG(7, 8)), 100, 10)
		for r, err := range HandleByKey(t.Context(), kcSeq(nil, nil, changes...), 4, kcKey, kcRev, rec.handle) {
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "first watermark", r, rev(1))
			break
		}
		_, running, _, _ := rec.snapshot()
		wantEqual(t, "calls in progress after the break", running, 0)
	})
}

func TestHandleByKeyPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handle := func(ctx context.Context, c kc) error {
			if c.Rev == 3 {
				panic("kaboom")
			}
			return nil
		}
		changes := []kc{{1, "a"}, {2, "b"}, {3, "c"}, {4, "a"}}
		m := collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, changes...), 1, kcKey, kcRev, handle, SkipPoison(func(kc, error) {})))
		wantEqual(t, "errors", len(m.errs), 1)
		var ke *KeyedError
		var pe *PanicError
		if !errors.As(m.errs[0], &ke) || !errors.As(m.errs[0], &pe) {
			t.Fatalf("error %v, want a *KeyedError wrapping a *PanicError", m.errs[0])
		}
		wantEqual(t, "key", ke.Key, any("c"))
		wantEqual(t, "revision", ke.Revision, rev(3))
		wantEqual(t, "panic value", pe.Value, any("kaboom"))
		wantEqual(t, "last watermark", m.final(), uint64(2))
	})
}

func TestHandleByKeyRevisionErrors(t *testing.T) {
	ctx := context.Background()
	nop := func(context.Context, kc) error { return nil }
	m := collectKeyedMarks(HandleByKey(ctx, kcSeq(nil, nil, kc{2, "a"}, kc{1, "b"}), 1, kcKey, kcRev, nop))
	wantEqual(t, "errors", len(m.errs), 1)
	wantErrIs(t, m.errs[0], stream.ErrProtocol)

	bad := func(kc) (stream.Revision, error) { return stream.Revision{}, errBoom }
	m = collectKeyedMarks(HandleByKey(ctx, kcSeq(nil, nil, kc{1, "a"}), 1, kcKey, bad, nop))
	wantEqual(t, "errors", len(m.errs), 1)
	wantErrIs(t, m.errs[0], errBoom)
}

func TestHandleByKeyInvalid(t *testing.T) {
	ctx := context.Background()
	seq := kcSeq(nil, nil, kc{1, "a"})
	nop := func(context.Context, kc) error { return nil }
	for name, s := range map[string]iter.Seq2[stream.Revision, error]{
		"n=0":              HandleByKey(ctx, seq, 0, kcKey, kcRev, nop),
		"nil seq":          HandleByKey(ctx, nil, 1, kcKey, kcRev, nop),
		"nil key":          HandleByKey[kc, string](ctx, seq, 1, nil, kcRev, nop),
		"nil revision":     HandleByKey(ctx, seq, 1, kcKey, nil, nop),
		"nil handler":      HandleByKey(ctx, seq, 1, kcKey, kcRev, nil),
		"MaxPending(0)":    HandleByKey(ctx, seq, 1, kcKey, kcRev, nop, MaxPending(0)),
		"SkipPoison(nil)":  HandleByKey(ctx, seq, 1, kcKey, kcRev, nop, SkipPoison[kc](nil)),
		"SkipPoison(int)":  HandleByKey(ctx, seq, 1, kcKey, kcRev, nop, SkipPoison(func(int, error) {})),
		"bad RetryHandler": HandleByKey(ctx, seq, 1, kcKey, kcRev, nop, RetryHandler(stream.RetryPolicy{Jitter: 2})),
	} {
		t.Run(name, func(t *testing.T) {
			m := collectKeyedMarks(s)
			wantEqual(t, "watermarks", len(m.revs), 0)
			wantEqual(t, "errors", len(m.errs), 1)
			wantErrIs(t, m.errs[0], stream.ErrInvalidOption)
		})
	}
	wantErrIs(t, MaxPending(-1).Err(), stream.ErrInvalidOption)
	wantEqual(t, "NewestOnly().Err()", NewestOnly().Err(), nil)
}

// TestHandleByKeySlowBody: a loop body that takes long (a checkpoint
// save) does not hold the handling up, and gets the newest watermark
// next.
func TestHandleByKeySlowBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{}) // closed once the body is in its slow part
		rec := newKeyedRecorder(func(ctx context.Context, c kc) error {
			if c.Rev > 1 {
				<-gate
			}
			return nil
		})
		changes := kcGen(rand.New(rand.NewPCG(13, 14)), 100, 10)
		release := make(chan struct{})
		var got []stream.Revision
		done := make(chan struct{})
		go func() {
			defer close(done)
			for r, err := range HandleByKey(t.Context(), kcSeq(nil, nil, changes...), 3, kcKey, kcRev, rec.handle, MaxPending(200)) {
				if err != nil {
					t.Error(err)
					return
				}
				got = append(got, r)
				if len(got) == 1 {
					close(gate)
					<-release // a slow save
				}
			}
		}()
		synctest.Wait()
		handled, _, _, _ := rec.snapshot()
		wantEqual(t, "handled while the body blocks", handled, keyedPerKey(changes))
		close(release)
		<-done
		wantEqual(t, "watermarks", got, []stream.Revision{rev(1), rev(100)})
	})
}

// TestHandleByKeyNoticeWaitsForBody: after an error from the upstream,
// nothing read after it is handled until the loop body is done with it
// (a re-list on a gap notice comes first).
func TestHandleByKeyNoticeWaitsForBody(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newKeyedRecorder(nil)
		relisted := make(chan struct{})
		seq := func(yield func(kc, error) bool) {
			_ = yield(kc{1, "a"}, nil) && yield(kc{}, errBoom) && yield(kc{2, "a"}, nil) && yield(kc{3, "b"}, nil)
		}
		done := make(chan *keyedMarks)
		go func() {
			m := &keyedMarks{}
			for r, err := range HandleByKey(t.Context(), seq, 2, kcKey, kcRev, rec.handle) {
				if err != nil {
					<-relisted // the body re-lists
				}
				m.add(r, err)
			}
			done <- m
		}()
		synctest.Wait()
		handled, _, _, _ := rec.snapshot()
		wantEqual(t, "handled during the re-list", handled, map[string][]uint64{"a": {1}})
		close(relisted)
		m := <-done
		handled, _, _, _ = rec.snapshot()
		wantEqual(t, "handled", handled, map[string][]uint64{"a": {1, 2}, "b": {3}})
		wantEqual(t, "errors", len(m.errs), 1)
		wantEqual(t, "first watermark", m.revs[0], uint64(1))
		wantEqual(t, "last watermark", m.final(), uint64(3))
	})
}

// TestHandleByKeyPoisonCancelsOthers: a poison change stops the calls of
// the other keys in progress (their context is cancelled), and the pass
// ends once they have returned.
//
// a's handler fails only once b's and c's calls are running: a worker
// that gets a job checks the pass's context before it calls the handler
// (call), so without the gate a can fail before b's or c's handler is
// entered, and those are then never called. b and c are dispatched
// before a (oldest change first, 3 workers), so the gate always opens.
func TestHandleByKeyPoisonCancelsOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var started, interrupted atomic.Int64
		bcRunning := make(chan struct{}) // closed when b's and c's calls have started
		handle := func(ctx context.Context, c kc) error {
			if c.Key == "a" {
				<-bcRunning
				return stream.Fatal(errBoom)
			}
			if started.Add(1) == 2 {
				close(bcRunning)
			}
			<-ctx.Done()
			interrupted.Add(1)
			return ctx.Err()
		}
		changes := []kc{{1, "b"}, {2, "c"}, {3, "a"}, {4, "d"}}
		m := collectKeyedMarks(HandleByKey(t.Context(), kcSeq(nil, nil, changes...), 3, kcKey, kcRev, handle))
		wantEqual(t, "errors", len(m.errs), 1)
		wantErrIs(t, m.errs[0], errBoom)
		// b and c, and d if a worker took it before a's failure was seen.
		if n := started.Load(); n < 2 || n > 3 || interrupted.Load() != n {
			t.Fatalf("%d calls started, %d interrupted; want b and c (and maybe d), all interrupted", n, interrupted.Load())
		}
		wantEqual(t, "watermarks", len(m.revs), 0)
	})
}
