package informer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

var discard = slog.New(slog.DiscardHandler)

// start runs inf in the bubble and returns a stop func that cancels it
// and checks that Run returned ctx.Err().
func start(t *testing.T, inf *informer.Informer[string, *obj]) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	}
}

// startSynced adds a recorder to inf, runs it (see start) and waits for
// its sync.
func startSynced(t *testing.T, inf *informer.Informer[string, *obj]) (rec *recorder, stop func()) {
	t.Helper()
	rec = newRecorder()
	inf.AddHandler(rec)
	stop = start(t, inf)
	if err := inf.WaitForSync(t.Context()); err != nil {
		stop()
		t.Fatal(err)
	}
	return rec, stop
}

// settle lets fake time pass until the informer and its handlers are idle.
func settle() {
	time.Sleep(2 * time.Second)
	synctest.Wait()
}

func TestInitialSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(20)
		inf := newInformer(t, w)
		rec := newRecorder()
		reg := inf.AddHandler(rec)
		require.False(t, inf.HasSynced())
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		settle()
		require.True(t, reg.HasSynced())
		require.Equal(t, w.state(), storeState(inf))
		ev := rec.take()
		require.Len(t, ev, 20)
		for _, e := range ev {
			require.Equal(t, "add", e.Kind)
			require.True(t, e.Initial, e)
		}
		w.update(id(3), "STOPPED")
		w.insert(obj{ID: "vm-new", Status: "RUNNING"})
		w.remove(id(5))
		settle()
		require.Equal(t, []event{
			{"update", id(3), 1, "STOPPED", false},
			{"add", "vm-new", 0, "RUNNING", false},
			{"delete", id(5), 0, "RUNNING", false},
		}, rec.take())
		require.Equal(t, w.state(), storeState(inf))
		known, bad := rec.view()
		require.Empty(t, bad)
		require.Equal(t, w.state(), known)
	})
}

// behaviors are the server behaviours a feed's API may leave open.
var behaviors = map[string]streamtest.Behavior{
	"plain":            {},
	"inclusive":        {Inclusive: true},
	"oldest on absent": {OldestOnAbsent: true},
	"shuffled":         {Shuffle: true},
	"repeated pages":   {RepeatEvery: 2},
	"all":              {Inclusive: true, OldestOnAbsent: true, Shuffle: true, RepeatEvery: 3},
}

// Inserts, updates and deletes while the informer lists, before and after
// the page being read, including deletions that shift the offset pages:
// the store ends equal to the server, the handlers get only the initial
// Adds of the final state, and nothing is notified twice.
func TestChangesDuringList(t *testing.T) {
	for name, b := range behaviors {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(30)
				w.feed.SetBehavior(b)
				fetch := 0
				w.beforeFetch = func(int) {
					fetch++
					switch fetch {
					case 2: // second page: page 1 is read
						w.update(id(1), "STOPPED")    // already listed
						w.remove(id(0))               // already listed: shifts everything down
						w.remove(id(2))               // again
						w.insert(obj{ID: "vm-0001a"}) // before the offset: shifts up
						w.update(id(20), "SUSPENDED") // not yet listed
						w.remove(id(25))              // not yet listed
						w.insert(obj{ID: "vm-9999"})  // at the end
					case 4:
						w.update(id(20), "STOPPED") // twice during the list
					}
				}
				inf := newInformer(t, w)
				rec, stop := startSynced(t, inf)
				defer stop()
				settle()
				want := w.state()
				require.Equal(t, want, storeState(inf))
				ev := rec.take()
				require.Len(t, ev, len(want))
				for _, e := range ev {
					require.True(t, e.Kind == "add" && e.Initial, e)
					require.Equal(t, want[e.ID].Gen, e.Gen, e)
				}
				// The changes after the sync only.
				w.update(id(20), "RUNNING")
				settle()
				require.Equal(t, []event{{"update", id(20), 3, "RUNNING", false}}, rec.take())
				_, bad := rec.view()
				require.Empty(t, bad)
			})
		})
	}
}

// A change in (H, H2] whose result the list already holds is replayed
// silently, and a server that repeats the start revision (inclusive
// start) across the list boundary does not make it notified again.
func TestChangeRepeatedAcrossListBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(5)
		w.feed.SetBehavior(streamtest.Behavior{Inclusive: true})
		w.beforeFetch = func(skip int) {
			if skip == 0 {
				w.update(id(1), "STOPPED") // before the list reads it
			}
		}
		inf := newInformer(t, w)
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		for _, e := range rec.take() {
			require.Equal(t, "add", e.Kind)
		}
		settle()
		require.Empty(t, rec.take())
		got, _ := inf.Store().Get(id(1))
		require.Equal(t, "STOPPED", got.Status)
	})
}

// Compaction while the informer is behind: a re-list diff with tombstones;
// nothing is lost; the store equals the server; the hook and counter say so.
func TestCompactionWhileBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(10)
		gate := make(chan struct{})
		var relists []informer.RelistInfo
		inf := newInformer(t, w, informer.OnRelist(func(ri informer.RelistInfo) { relists = append(relists, ri) }))
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		rec.take()

		// The informer falls behind: its polls hang.
		var blocked atomic.Bool
		blocked.Store(true)
		w.onPoll(func(ctx context.Context) error {
			if blocked.Load() {
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
		settle()
		w.update(id(1), "STOPPED")
		w.remove(id(2))
		w.insert(obj{ID: "vm-new"})
		w.insert(obj{ID: "vm-gone"})
		w.remove("vm-gone")
		w.compactAll()
		blocked.Store(false)
		close(gate)
		settle()

		require.Equal(t, w.state(), storeState(inf))
		known, bad := rec.view()
		require.Empty(t, bad)
		require.Equal(t, w.state(), known)
		ev := rec.take()
		require.ElementsMatch(t, []event{
			{"update", id(1), 1, "STOPPED", false},
			{"delete", id(2), 0, "RUNNING", true},
			{"add", "vm-new", 0, "", false},
		}, ev)
		require.Equal(t, 1, inf.Relists())
		require.Len(t, relists, 1)
		require.ErrorIs(t, relists[0].Cause, stream.ErrCompacted)
		require.Equal(t, informer.RelistInfo{Cause: relists[0].Cause, Objects: 10, Added: 1, Updated: 1, Deleted: 1,
			Duration: relists[0].Duration}, relists[0])

		// And it goes on watching.
		w.update(id(3), "STOPPED")
		settle()
		require.Equal(t, []event{{"update", id(3), 1, "STOPPED", false}}, rec.take())
	})
}

// A compaction before the first sync (the replay's start is gone) makes
// the start begin again; the first sync is still one initial Add each.
func TestCompactionDuringFirstSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(8)
		once := true
		w.beforeFetch = func(int) {
			if once {
				once = false
				w.update(id(1), "STOPPED")
				w.compactAll()
			}
		}
		inf := newInformer(t, w)
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		ev := rec.take()
		require.Len(t, ev, 8)
		for _, e := range ev {
			require.True(t, e.Kind == "add" && e.Initial)
		}
		require.Equal(t, w.state(), storeState(inf))
		require.Equal(t, 0, inf.Relists())
	})
}

// blocker blocks in every call until released, counting calls.
type blocker struct {
	release chan struct{}
	rec     *recorder
}

func (b *blocker) OnAdd(o *obj, initial bool)    { <-b.release; b.rec.OnAdd(o, initial) }
func (b *blocker) OnUpdate(old, o *obj)          { <-b.release; b.rec.OnUpdate(old, o) }
func (b *blocker) OnDelete(o *obj, unknown bool) { <-b.release; b.rec.OnDelete(o, unknown) }

// A handler that blocks delays neither the informer nor another handler;
// its queue stays bounded by the number of keys (coalescing), and once it
// is released it sees the net state, each change a valid transition.
func TestBlockingHandlerDelaysOnlyItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(10)
		inf := newInformer(t, w)
		slow := &blocker{release: make(chan struct{}), rec: newRecorder()}
		slowReg := inf.AddHandler(slow)
		fast := newRecorder()
		inf.AddHandler(fast)
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		settle()
		for round := range 100 {
			for i := range 10 {
				w.update(id(i), "S"+string(rune('A'+round%26)))
			}
			if round%10 == 0 {
				w.insert(obj{ID: "tmp"}) // added and deleted while the handler is blocked
				settle()
				w.remove("tmp")
			}
			settle()
		}
		w.remove(id(9))
		settle()
		require.Equal(t, w.state(), storeState(inf))
		known, bad := fast.view()
		require.Empty(t, bad)
		require.Equal(t, w.state(), known)
		require.Len(t, fast.take(), 10+1000+20+1)
		// The slow handler is in its first call; the rest is coalesced to
		// one pending notification per key.
		require.LessOrEqual(t, slowReg.Pending(), 10)
		require.False(t, slowReg.HasSynced())
		close(slow.release)
		settle()
		known, bad = slow.rec.view()
		require.Empty(t, bad)
		require.Equal(t, w.state(), known)
		require.True(t, slowReg.HasSynced())
		require.LessOrEqual(t, len(slow.rec.take()), 10+10+1)
	})
}

func TestLateHandlerGetsAdds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(12)
		inf := newInformer(t, w)
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		w.update(id(0), "STOPPED")
		settle()
		late := newRecorder()
		reg := inf.AddHandler(late)
		settle()
		require.True(t, reg.HasSynced())
		ev := late.take()
		require.Len(t, ev, 12)
		for _, e := range ev {
			require.True(t, e.Kind == "add" && e.Initial)
		}
		known, _ := late.view()
		require.Equal(t, w.state(), known)
		w.remove(id(0))
		settle()
		require.Equal(t, []event{{"delete", id(0), 1, "STOPPED", false}}, late.take())
		reg.Remove()
		reg.Remove()
		w.update(id(1), "STOPPED")
		settle()
		require.Empty(t, late.take())
	})
}

// A handler added from within a handler, and one removed from within
// itself, work without deadlock.
func TestHandlerAddsAndRemovesFromHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(3)
		inf := newInformer(t, w)
		inner := newRecorder()
		var self *informer.Registration[string, *obj]
		calls := 0
		self = inf.AddHandler(informer.HandlerFuncs[*obj]{AddFunc: func(*obj, bool) {
			calls++
			if calls == 1 {
				inf.AddHandler(inner)
				self.Remove()
			}
		}})
		stop := start(t, inf)
		defer stop()
		settle()
		require.Equal(t, 1, calls)
		known, _ := inner.view()
		require.Len(t, known, 3)
	})
}

func TestTransform(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(0)
		w.insert(obj{ID: "a", Blob: "big"})
		inf := newInformer(t, w, informer.Transform(func(o *obj) *obj {
			c := *o
			c.Blob = ""
			return &c
		}))
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		w.insert(obj{ID: "b", Blob: "big"})
		settle()
		for _, k := range []string{"a", "b"} {
			o, ok := inf.Store().Get(k)
			require.True(t, ok)
			require.Empty(t, o.Blob)
		}
	})
}

func TestIndexFollowsChangesAndDeletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(6) // clusters c0 c1 c2, two each
		inf := newInformer(t, w, informer.Index("cluster", func(o *obj) []string { return []string{o.Cluster} }))
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		ids := func(vs []*obj, err error) []string {
			require.NoError(t, err)
			var out []string
			for _, v := range vs {
				out = append(out, v.ID)
			}
			return out
		}
		require.ElementsMatch(t, []string{id(0), id(3)}, ids(inf.Store().ByIndex("cluster", "c0")))
		w.move(id(0), "c1")
		w.remove(id(3))
		settle()
		require.Empty(t, ids(inf.Store().ByIndex("cluster", "c0")))
		require.ElementsMatch(t, []string{id(0), id(1), id(4)}, ids(inf.Store().ByIndex("cluster", "c1")))
		vals, err := inf.Store().IndexValues("cluster")
		require.NoError(t, err)
		require.Equal(t, []string{"c1", "c2"}, vals)
		_, err = inf.Store().ByIndex("nope", "x")
		require.ErrorIs(t, err, informer.ErrUnknownIndex)
	})
}

// Readers of the store (Get, List, Len, ByIndex) run while the informer
// applies changes: under -race, this checks the store's locking.
func TestStoreConcurrentReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(20)
		inf := newInformer(t, w, informer.Index("cluster", func(o *obj) []string { return []string{o.Cluster} }))
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		var (
			readers sync.WaitGroup
			quit    = make(chan struct{})
		)
		for range 4 {
			readers.Go(func() {
				for {
					select {
					case <-quit:
						return
					case <-time.After(time.Millisecond):
					}
					st := inf.Store()
					for _, o := range st.List() {
						_ = o.Status
					}
					_, _ = st.Get(id(3))
					_ = st.Len()
					if _, err := st.ByIndex("cluster", "c1"); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := range 60 {
			if i%2 == 0 {
				w.update(id(i%20), "STOPPED")
			} else {
				w.move(id(i%20), "c"+strconv.Itoa(i%3))
			}
			time.Sleep(10 * time.Millisecond)
		}
		w.remove(id(5))
		settle()
		close(quit)
		readers.Wait()
		require.Equal(t, w.state(), storeState(inf))
	})
}

func TestResyncRelistsPeriodically(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(4)
		inf := newInformer(t, w, informer.Resync(time.Minute))
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		rec.take()
		w.silently(func(m map[string]obj) { // a change the feed never told
			delete(m, id(1))
			o := m[id(2)]
			o.Status = "LOST"
			m[id(2)] = o
		})
		time.Sleep(time.Minute)
		settle()
		require.ElementsMatch(t, []event{
			{"delete", id(1), 0, "RUNNING", true},
			{"update", id(2), 0, "LOST", false},
		}, rec.take())
		require.Equal(t, 1, inf.Relists())
		require.Equal(t, w.state(), storeState(inf))
	})
}

func TestDecodeErrorRelists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(3)
		bad := errors.New("bad json")
		var causes []error
		dec := func(ctx context.Context, it streamtest.Item) (informer.Change[*obj], error) {
			c, err := decode(ctx, it)
			if err == nil && c.Object.Status == "GARBLED" {
				return informer.Change[*obj]{}, bad
			}
			return c, err
		}
		inf, err := informer.New(w.lister(5), w.feed, dec, keyOf, informer.Logger(discard),
			informer.WatchOptions(stream.Logger(discard)),
			informer.OnRelist(func(ri informer.RelistInfo) { causes = append(causes, ri.Cause) }))
		require.NoError(t, err)
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		w.update(id(1), "GARBLED")
		settle()
		require.Len(t, causes, 1)
		var de *informer.DecodeError
		require.ErrorAs(t, causes[0], &de)
		require.ErrorIs(t, causes[0], bad)
		require.Equal(t, w.state(), storeState(inf)) // the re-list brought the change
	})
}

func TestFatalErrorEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(3)
		refused := errors.New("401 refused")
		w.onPoll(func(context.Context) error { return stream.Fatal(refused) })
		inf := newInformer(t, w)
		err := inf.Run(t.Context())
		require.ErrorIs(t, err, refused)
		require.True(t, stream.IsFatal(err))
		require.ErrorIs(t, inf.Run(t.Context()), informer.ErrRunning)
	})
}

func TestFatalListErrorEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(3)
		refused := errors.New("403")
		lister := informer.ListFunc[*obj](func(context.Context, func([]*obj) error) error { return stream.Fatal(refused) })
		inf, err := informer.New(lister, w.feed, decode, keyOf, informer.Logger(discard))
		require.NoError(t, err)
		require.ErrorIs(t, inf.Run(t.Context()), refused)
	})
}

// Transient failures of the list, the head request and the watch (also a
// *stream.RetryError, the stream's retries exhausted) are retried: Run
// goes on and loses nothing.
func TestTransientFailuresAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(9)
		var fails atomic.Int32
		fails.Store(3)
		w.onPoll(func(context.Context) error {
			if fails.Add(-1) >= 0 {
				return errors.New("503")
			}
			return nil
		})
		listFails := 2
		base := w.lister(4)
		lister := informer.ListFunc[*obj](func(ctx context.Context, yield func([]*obj) error) error {
			if listFails > 0 {
				listFails--
				return errors.New("list: connection reset")
			}
			return base.List(ctx, yield)
		})
		inf, err := informer.New(lister, w.feed, decode, keyOf, informer.Logger(discard),
			informer.WatchOptions(stream.MaxRetries(0), stream.Logger(discard), stream.PollInterval(time.Second)))
		require.NoError(t, err)
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		rec.take()
		fails.Store(2) // the watch fails now: MaxRetries(0) ends the stream with a RetryError
		w.update(id(4), "STOPPED")
		time.Sleep(2 * time.Minute)
		settle()
		require.Equal(t, []event{{"update", id(4), 1, "STOPPED", false}}, rec.take())
		require.Equal(t, w.state(), storeState(inf))
		require.Equal(t, 0, inf.Relists())
	})
}

func TestCancelFreesEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(5)
		inf := newInformer(t, w)
		for range 3 {
			inf.AddHandler(newRecorder())
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- inf.Run(ctx) }()
		require.NoError(t, inf.WaitForSync(ctx))
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		// A handler added after Run returned is never started.
		inf.AddHandler(newRecorder())
		synctest.Wait()
		require.Equal(t, 5, inf.Store().Len()) // the store keeps its state
	})
}

func TestWaitForSyncCancelled(t *testing.T) {
	w := newWorld(1)
	inf := newInformer(t, w)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, inf.WaitForSync(ctx), context.Canceled)
}

func TestOptionsValidate(t *testing.T) {
	w := newWorld(1)
	for name, opt := range map[string]informer.Option{
		"empty index": informer.Index("", func(*obj) []string { return nil }),
		"nil index":   informer.Index[*obj]("x", nil),
		"resync":      informer.Resync(-time.Second),
		"backoff":     informer.Backoff(time.Second, time.Millisecond),
		"retry":       informer.Retry(stream.RetryPolicy{Jitter: 2}),
		"watch":       informer.WatchOptions(stream.PageSize(1)),
		"transform":   informer.Transform[*obj](nil),
		"equal":       informer.Equal[*obj](nil),
	} {
		require.ErrorIs(t, opt.Err(), stream.ErrInvalidOption, name)
		_, err := informer.New(w.lister(5), w.feed, decode, keyOf, opt)
		require.ErrorIs(t, err, stream.ErrInvalidOption, name)
	}
	// A function of another object type.
	_, err := informer.New(w.lister(5), w.feed, decode, keyOf,
		informer.Index("x", func(string) []string { return nil }))
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	_, err = informer.New(w.lister(5), w.feed, decode, keyOf,
		informer.Index("x", func(*obj) []string { return nil }), informer.Index("x", func(*obj) []string { return nil }))
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	_, err = informer.New[string, *obj, streamtest.Item](nil, w.feed, decode, keyOf)
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	require.NoError(t, informer.Resync(time.Minute).Err())
	require.NoError(t, informer.Validate(informer.Resync(time.Minute), nil))
	require.ErrorIs(t, informer.Validate(informer.Resync(time.Minute), informer.Resync(-1)), stream.ErrInvalidOption)
}

func TestEqualOption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(2)
		// Objects equal when the status is: a generation bump alone is no update.
		inf := newInformer(t, w, informer.Resync(time.Minute),
			informer.Equal(func(a, b *obj) bool { return a.Status == b.Status }))
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		rec.take()
		w.silently(func(m map[string]obj) {
			o := m[id(0)]
			o.Gen = 7
			m[id(0)] = o
		})
		time.Sleep(time.Minute)
		settle()
		require.Empty(t, rec.take())
		require.Equal(t, 1, inf.Relists())
	})
}

// With a retry limit, a list that keeps failing ends Run with a
// *stream.RetryError wrapping the last failure.
func TestRetryLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(1)
		down := errors.New("connection refused")
		lister := informer.ListFunc[*obj](func(context.Context, func([]*obj) error) error { return down })
		p := stream.DefaultRetryPolicy()
		p.MaxRetries = 3
		inf, err := informer.New(lister, w.feed, decode, keyOf, informer.Logger(discard), informer.Retry(p))
		require.NoError(t, err)
		err = inf.Run(t.Context())
		var re *stream.RetryError
		require.ErrorAs(t, err, &re)
		require.Equal(t, 4, re.Attempts)
		require.ErrorIs(t, err, down)
	})
}

// staleSource answers its poll number staleAt with a copy of its first
// answer (the head request before the list): a stale page, as a caching
// proxy or a retried response could give.
type staleSource struct {
	*streamtest.Feed
	mu      sync.Mutex
	n       int
	staleAt int
	first   stream.Page[streamtest.Item]
}

func (s *staleSource) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[streamtest.Item], error) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if n == s.staleAt {
		return s.first, nil
	}
	p, err := s.Feed.Poll(ctx, after, limit)
	if n == 1 {
		s.first = p
	}
	return p, err
}

// A stale answer right after the list (to the head request or to the
// first poll of the watch) does not make the informer sync before it has
// replayed the changes made during the list: no handler sees an object go
// back to an older state.
func TestStalePageAfterListDoesNotSyncEarly(t *testing.T) {
	for _, staleAt := range []int{2, 3} {
		t.Run(fmt.Sprint("poll ", staleAt), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(5)
				once := true
				w.beforeFetch = func(int) {
					if once {
						once = false
						w.update(id(1), "STOPPED")   // gen 1
						w.update(id(1), "SUSPENDED") // gen 2, what the list reads
					}
				}
				src := &staleSource{Feed: w.feed, staleAt: staleAt}
				inf, err := informer.New(w.lister(7), stream.Source[streamtest.Item](src), decode, keyOf, informer.Logger(discard),
					informer.WatchOptions(stream.PollInterval(100*time.Millisecond), stream.Logger(discard)))
				require.NoError(t, err)
				rec, stop := startSynced(t, inf)
				defer stop()
				settle()
				for _, e := range rec.take() {
					require.True(t, e.Kind == "add" && e.Initial, "a notification besides the initial Adds: %v", e)
				}
				got, _ := inf.Store().Get(id(1))
				require.Equal(t, 2, got.Gen)
			})
		})
	}
}

// noHead hides the server's head revision (a feed that reports none).
type noHead struct{ *streamtest.Feed }

func (s noHead) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[streamtest.Item], error) {
	p, err := s.Feed.Poll(ctx, after, limit)
	p.Head = stream.Revision{}
	return p, err
}

// Without a head, the informer replays from the start until caught up,
// then syncs, and goes on.
func TestFeedWithoutHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(6)
		inf, err := informer.New(w.lister(4), stream.Source[streamtest.Item](noHead{w.feed}), decode, keyOf, informer.Logger(discard),
			informer.WatchOptions(stream.PollInterval(100*time.Millisecond), stream.Logger(discard)))
		require.NoError(t, err)
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		require.Len(t, rec.take(), 6)
		w.update(id(2), "STOPPED")
		settle()
		require.Equal(t, []event{{"update", id(2), 1, "STOPPED", false}}, rec.take())
		require.Equal(t, w.state(), storeState(inf))
	})
}

// After the sync, an update of an object the store does not hold is an
// add, and a delete of one it does not hold is ignored.
func TestUnknownObjectChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(3)
		inf := newInformer(t, w)
		rec, stop := startSynced(t, inf)
		defer stop()
		settle()
		require.Len(t, rec.take(), 3)

		// Objects the informer never heard of (their inserts were lost).
		w.silently(func(objs map[string]obj) {
			objs["vm-x"] = obj{ID: "vm-x", Status: "RUNNING"}
			objs["vm-y"] = obj{ID: "vm-y", Status: "RUNNING"}
		})
		w.update("vm-x", "STOPPED")
		w.remove("vm-y")
		w.update(id(1), "STOPPED")
		settle()
		require.Equal(t, []event{
			{"add", "vm-x", 1, "STOPPED", false},
			{"update", id(1), 1, "STOPPED", false},
		}, rec.take())
		_, bad := rec.view()
		require.Empty(t, bad)
		require.Equal(t, w.state(), storeState(inf))
	})
}

// Without a head but with the oldest changes compacted away, the informer
// starts after the compact revision (its head lookup takes the higher of
// the two, as stream.FromNow does): it syncs instead of re-listing for
// ever on a compacted "0".
func TestFeedWithoutHeadCompacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(6)
		w.update(id(1), "STOPPED")
		w.feed.Compact(w.feed.Head())
		w.update(id(3), "STOPPED")
		inf, err := informer.New(w.lister(4), stream.Source[streamtest.Item](noHead{w.feed}), decode, keyOf, informer.Logger(discard),
			informer.WatchOptions(stream.PollInterval(100*time.Millisecond), stream.Logger(discard)))
		require.NoError(t, err)
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		settle()
		require.Equal(t, w.state(), storeState(inf))
	})
}

// The informer does not use stream.OnPoll: the caller's own hook (for
// metrics, say) keeps working next to it.
func TestCallersOnPollKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(3)
		var polls atomic.Int32
		inf := newInformer(t, w, informer.WatchOptions(stream.OnPoll(func(stream.PollInfo) { polls.Add(1) })))
		stop := start(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		w.update(id(0), "STOPPED")
		settle()
		got, _ := inf.Store().Get(id(0))
		require.Equal(t, "STOPPED", got.Status)
		require.Positive(t, polls.Load())
	})
}
