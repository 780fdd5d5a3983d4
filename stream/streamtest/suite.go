package streamtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// Harness is what TestSource needs to drive a Source over its backend:
// a change feed it can append to, compact and make fail once. The newHarness
// function given to TestSource builds one per case, over a fresh, empty
// backend (no change yet, nothing compacted), and releases it with
// t.Cleanup. A method that the backend cannot support may call t.Skip on
// the t given to newHarness: it is the case's own.
type Harness[E any] interface {
	// Source returns the Source under test, over the backend. The suite
	// calls it for each watch it runs; watches run one after another,
	// never two at once.
	Source() stream.Source[E]
	// Append adds n changes to the backend and returns their revisions,
	// ascending and above every revision appended before.
	Append(n int) []stream.Revision
	// Compact discards every change at or below upTo, a revision Append
	// returned. From then on the Source reports upTo as its compact
	// revision (Page.Compact).
	Compact(upTo stream.Revision)
	// FailNext makes the next poll fail with a transient error: one the
	// engine retries (not marked with stream.Fatal).
	FailNext()
}

// Options the suite watches with: short intervals, so that it runs quickly
// over real time too, and pages smaller than the backlogs it appends.
const (
	suitePageSize     = 7
	suitePollInterval = 10 * time.Millisecond
	suiteTimeout      = time.Minute // a case that takes longer has hung
)

// TestSource checks that a Source keeps the contract of package stream,
// in the spirit of testing/fstest.TestFS. Each case (a subtest) builds its
// own Harness with newHarness and runs stream.Watch over the harness's
// Source:
//
//   - Backlog: a backlog of several pages, watched FromStart;
//   - EmptyFeed: polls over an empty feed yield nothing, then the changes
//     appended;
//   - FromNow: only the changes appended after the head was learned;
//   - ResumeAfter: After(r) yields exactly what followed r, also after a
//     break at a random point;
//   - Compaction: After a compacted revision ends with ErrCompacted (with
//     the Position and Compact revisions), FromStart and After(compact)
//     start at the oldest change kept;
//   - TransientError: a failed poll is retried, nothing lost or repeated;
//   - Cancel: cancelling ctx while idle or within a page ends the stream
//     with ctx.Err() at once, no poll left running;
//   - Break: breaking out of the loop while catching up leaves no poll
//     running.
//
// Every delivered sequence is checked to be ordered, unique and reliable
// (the exact revisions appended). Cases never sleep to wait: they wait for
// the polls the source reports, with a one-minute guard, so TestSource
// works over real time (a fake server over loopback HTTP, a JetStream
// server): it watches with a 10 ms poll interval. Goroutines the source
// leaves behind are for the caller's goleak.VerifyTestMain to find.
//
// A third party checks its Source with a test like
//
//	func TestConformance(t *testing.T) {
//		streamtest.TestSource(t, func(t *testing.T) streamtest.Harness[MyEvent] {
//			backend := startBackend(t) // fresh and empty; t.Cleanup stops it
//			return myHarness{backend}
//		})
//	}
//
// and runs it with go test -race. See TestSourceInBubble for a harness
// whose backend runs inside a testing/synctest bubble.
//
// Options given in opts are added to every watch the suite runs, after its
// own (such as stream.ParallelCatchUp(4) to check a Source under parallel
// catch-up); options that change the start position, the page size or
// the poll interval would break the suite's cases.
func TestSource[E any](t *testing.T, newHarness func(t *testing.T) Harness[E], opts ...stream.Option) {
	t.Helper()
	for _, c := range cases[E]() {
		t.Run(c.name, func(t *testing.T) { c.run(t, harnessWith(newHarness(t), opts)) })
	}
}

// TestSourceInBubble is TestSource with each case in its own
// testing/synctest bubble, for a backend that lives in memory (such as a
// fake server behind an in-memory http.RoundTripper): newHarness runs
// inside the bubble, time is fake, and every goroutine the case started,
// the backend's included, must have ended when the case's t.Cleanup
// functions have run.
func TestSourceInBubble[E any](t *testing.T, newHarness func(t *testing.T) Harness[E], opts ...stream.Option) {
	t.Helper()
	for _, c := range cases[E]() {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { c.run(t, harnessWith(newHarness(t), opts)) })
		})
	}
}

type suiteCase[E any] struct {
	name string
	run  func(t *testing.T, h Harness[E])
}

func cases[E any]() []suiteCase[E] {
	return []suiteCase[E]{
		{"Backlog", testBacklog[E]},
		{"EmptyFeed", testEmptyFeed[E]},
		{"FromNow", testFromNow[E]},
		{"ResumeAfter", testResumeAfter[E]},
		{"Compaction", testCompaction[E]},
		{"TransientError", testTransientError[E]},
		{"Cancel", testCancel[E]},
		{"Break", testBreak[E]},
	}
}

func testBacklog[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	want := appendN(t, h, 5*suitePageSize+3)
	s := newSpy(h)
	got, err := s.take(ctx, last(want), stream.FromStart())
	checkDelivered(t, got, err, want)
	s.checkIdle(t)
}

func testEmptyFeed[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	s := newSpy(h)
	w := s.start(t, ctx, stream.FromStart())
	s.waitPolls(t, ctx, 3)
	w.checkNothing(t)
	want := appendN(t, h, 3)
	got, err := w.next(t, last(want))
	checkDelivered(t, got, err, want)
	w.stop(t)
}

func testFromNow[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	appendN(t, h, 2*suitePageSize+1) // history that FromNow skips
	s := newSpy(h)
	w := s.start(t, ctx, stream.FromNow())
	s.waitPolls(t, ctx, 2) // the head, then a poll after it
	w.checkNothing(t)
	want := appendN(t, h, 3)
	got, err := w.next(t, last(want))
	checkDelivered(t, got, err, want)
	w.stop(t)
}

func testResumeAfter[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	all := appendN(t, h, 4*suitePageSize+2)
	s := newSpy(h)
	got, err := s.take(ctx, last(all), stream.After(all[9]))
	checkDelivered(t, got, err, all[10:])

	// Break at a point within a page, then resume after the last revision
	// handled.
	first, err := s.take(ctx, all[suitePageSize+2], stream.FromStart())
	checkDelivered(t, first, err, all[:suitePageSize+3])
	if t.Failed() {
		return
	}
	rest, err := s.take(ctx, last(all), stream.After(first[len(first)-1]))
	checkDelivered(t, rest, err, all[len(first):])
	s.checkIdle(t)
}

func testCompaction[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	all := appendN(t, h, 3*suitePageSize)
	compact := all[9]
	h.Compact(compact)
	s := newSpy(h)

	got, err := s.take(ctx, last(all), stream.After(all[4]))
	var ce *stream.CompactedError
	switch {
	case len(got) != 0:
		t.Errorf("After(%s) over a feed compacted up to %s delivered %v", all[4], compact, got)
	case !errors.As(err, &ce) || !errors.Is(err, stream.ErrCompacted) || !stream.IsFinal(err):
		t.Errorf("After(%s) over a feed compacted up to %s ended with %v, want a *stream.CompactedError", all[4], compact, err)
	case ce.Compact != compact || ce.Position != all[4]:
		t.Errorf("CompactedError{Position: %s, Compact: %s}, want {%s, %s}", ce.Position, ce.Compact, all[4], compact)
	}

	got, err = s.take(ctx, last(all), stream.FromStart())
	checkDelivered(t, got, err, all[10:])
	got, err = s.take(ctx, last(all), stream.After(compact))
	checkDelivered(t, got, err, all[10:])
	s.checkIdle(t)
}

func testTransientError[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	want := appendN(t, h, 2*suitePageSize+4)
	s := newSpy(h)
	h.FailNext()
	got, err := s.take(ctx, last(want), stream.FromStart())
	checkDelivered(t, got, err, want)
	if n := s.warnings.Load(); n == 0 {
		t.Errorf("no warning after FailNext: the failure was not reported to OnWarning")
	}

	// A failure during the watch, with changes that follow it.
	base := s.polls()
	w := s.start(t, ctx, stream.After(want[len(want)-1]))
	s.waitPolls(t, ctx, base+1)
	warned := s.warnings.Load()
	h.FailNext()
	more := appendN(t, h, suitePageSize+2)
	got, err = w.next(t, last(more))
	checkDelivered(t, got, err, more)
	w.stop(t)
	if s.warnings.Load() == warned {
		t.Errorf("no warning after FailNext during the watch")
	}
}

func testCancel[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	want := appendN(t, h, 3*suitePageSize+1)
	s := newSpy(h)

	// Within a page: the next value after cancel is ctx.Err().
	cctx, cancel := context.WithCancel(ctx)
	var got []stream.Revision
	var end error
	for it, err := range stream.Watch(cctx, s, s.options(stream.FromStart())...) {
		if err != nil {
			end = err
			break
		}
		got = append(got, s.revision(t, it))
		if len(got) == suitePageSize+2 {
			cancel()
		}
	}
	cancel()
	if !errors.Is(end, context.Canceled) || !slices.Equal(got, want[:suitePageSize+2]) {
		t.Errorf("cancelled after %d changes: got %v, then %v; want %d changes, then context.Canceled", suitePageSize+2, got, end, suitePageSize+2)
	}
	s.checkIdle(t)

	// While idle, caught up.
	w := s.start(t, ctx, stream.FromStart())
	got, err := w.next(t, last(want))
	checkDelivered(t, got, err, want)
	s.waitPolls(t, ctx, s.polls()+1) // caught up: polling an idle feed
	w.cancel()
	if _, err := w.next(t, last(want)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while idle: the stream ended with %v, want context.Canceled", err)
	}
	w.stop(t)
}

func testBreak[E any](t *testing.T, h Harness[E]) {
	ctx := caseContext(t)
	want := appendN(t, h, 6*suitePageSize)
	s := newSpy(h)
	for _, at := range []int{1, suitePageSize, suitePageSize + 1, 3*suitePageSize + 2} {
		got, err := s.take(ctx, want[at-1], stream.FromStart())
		checkDelivered(t, got, err, want[:at])
		s.checkIdle(t)
	}
}

func last(revs []stream.Revision) stream.Revision { return revs[len(revs)-1] }

// appendN calls h.Append and checks what it returns.
func appendN[E any](t *testing.T, h Harness[E], n int) []stream.Revision {
	t.Helper()
	revs := h.Append(n)
	if len(revs) != n {
		t.Fatalf("Harness.Append(%d) returned %d revisions", n, len(revs))
	}
	for i, r := range revs {
		if r.IsZero() || i > 0 && !revs[i-1].Less(r) {
			t.Fatalf("Harness.Append(%d) returned %v: not ascending", n, revs)
		}
	}
	return revs
}

// caseContext bounds a case, so that a hung source fails instead of
// blocking the test binary.
func caseContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), suiteTimeout)
	t.Cleanup(cancel)
	return ctx
}

// checkDelivered checks that a stream delivered exactly want: no error,
// ordered, unique, reliable.
func checkDelivered(t *testing.T, got []stream.Revision, err error, want []stream.Revision) {
	t.Helper()
	if err != nil {
		t.Errorf("the stream ended after %d of %d changes: %v", len(got), len(want), err)
		return
	}
	for i := 1; i < len(got); i++ {
		switch got[i].Compare(got[i-1]) {
		case 0:
			t.Errorf("not unique: revision %s delivered twice (changes %d and %d)", got[i], i-1, i)
			return
		case -1:
			t.Errorf("not ordered: revision %s delivered after %s (change %d)", got[i], got[i-1], i)
			return
		}
	}
	if !slices.Equal(got, want) {
		missing := slices.DeleteFunc(slices.Clone(want), func(r stream.Revision) bool { return slices.Contains(got, r) })
		t.Errorf("not reliable: delivered %v, want %v (missing %v)", got, want, missing)
	}
}

// spy wraps the Source under test: it counts the polls, those in flight
// and the warnings of the watches over it, and lets a case wait for polls.
type spy[E any] struct {
	stream.Source[E]
	warnings atomic.Int64
	extra    []stream.Option // TestSource's opts

	mu       sync.Mutex
	inflight int
	ok       int           // polls that returned without an error
	changed  chan struct{} // closed and replaced when a poll returns
}

func newSpy[E any](h Harness[E]) *spy[E] {
	s := &spy[E]{Source: h.Source(), changed: make(chan struct{})}
	if w, ok := h.(withOptions[E]); ok {
		s.extra = w.opts
	}
	return s
}

// withOptions is a Harness whose watches take the extra options given to
// TestSource.
type withOptions[E any] struct {
	Harness[E]
	opts []stream.Option
}

// harnessWith wraps h so that the suite's watches take opts too.
func harnessWith[E any](h Harness[E], opts []stream.Option) Harness[E] {
	if len(opts) == 0 {
		return h
	}
	return withOptions[E]{h, opts}
}

func (s *spy[E]) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[E], error) {
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
	p, err := s.Source.Poll(ctx, after, limit)
	s.mu.Lock()
	s.inflight--
	if err == nil {
		s.ok++
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return p, err
}

func (s *spy[E]) polls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok
}

// waitPolls waits until n polls in all have succeeded.
func (s *spy[E]) waitPolls(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for {
		s.mu.Lock()
		ok, changed := s.ok, s.changed
		s.mu.Unlock()
		if ok >= n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %d successful polls, %d so far: %v", n, ok, ctx.Err())
		}
	}
}

// checkIdle checks that no poll is running: called once a watch has
// returned, it shows that the watch left none behind.
func (s *spy[E]) checkIdle(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != 0 {
		t.Errorf("%d polls still running after the watch returned", s.inflight)
	}
}

func (s *spy[E]) options(start stream.Option) []stream.Option {
	return append([]stream.Option{
		start,
		stream.PageSize(suitePageSize),
		stream.PollInterval(suitePollInterval),
		stream.Backoff(time.Millisecond, suitePollInterval),
		stream.OnWarning(func(error) { s.warnings.Add(1) }),
		stream.Logger(slog.New(slog.DiscardHandler)),
	}, s.extra...)
}

func (s *spy[E]) revision(t *testing.T, item E) stream.Revision {
	t.Helper()
	r, err := s.Revision(item)
	if err != nil {
		t.Fatalf("Revision of a delivered item: %v", err)
	}
	return r
}

// take watches from start until it has delivered until or a newer
// revision, then breaks.
func (s *spy[E]) take(ctx context.Context, until stream.Revision, start stream.Option) ([]stream.Revision, error) {
	var got []stream.Revision
	for it, err := range stream.Watch(ctx, s, s.options(start)...) {
		if err != nil {
			return got, err
		}
		r, err := s.Revision(it)
		if err != nil {
			return got, fmt.Errorf("Revision of a delivered item: %w", err)
		}
		if got = append(got, r); !r.Less(until) {
			break
		}
	}
	return got, nil
}

// watcher runs a watch in a goroutine that hands each value to the case.
type watcher[E any] struct {
	s      *spy[E]
	guard  context.Context // the case's context, not cancelled by the case
	cancel context.CancelFunc
	values chan value[E]
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
}

type value[E any] struct {
	item E
	err  error
}

// start starts a watch over ctx; stop (or the end of the case) ends it.
func (s *spy[E]) start(t *testing.T, ctx context.Context, start stream.Option) *watcher[E] {
	wctx, cancel := context.WithCancel(ctx)
	w := &watcher[E]{s: s, guard: ctx, cancel: cancel, values: make(chan value[E]),
		quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for it, err := range stream.Watch(wctx, s, s.options(start)...) {
			select {
			case w.values <- value[E]{it, err}:
			case <-w.quit:
				return
			}
		}
	}()
	t.Cleanup(w.end)
	return w
}

func (w *watcher[E]) end() {
	w.once.Do(func() {
		w.cancel()
		close(w.quit)
	})
	<-w.done
}

// next receives changes up to until or a newer revision, or the error
// that ended the stream.
func (w *watcher[E]) next(t *testing.T, until stream.Revision) ([]stream.Revision, error) {
	t.Helper()
	var got []stream.Revision
	for len(got) == 0 || got[len(got)-1].Less(until) {
		select {
		case v := <-w.values:
			if v.err != nil {
				return got, v.err
			}
			got = append(got, w.s.revision(t, v.item))
		case <-w.done:
			return got, errors.New("the stream ended without an error")
		case <-w.guard.Done():
			t.Fatalf("waiting for revision %s, after %v: %v", until, got, w.guard.Err())
		}
	}
	return got, nil
}

// checkNothing checks that the watch has delivered nothing yet.
func (w *watcher[E]) checkNothing(t *testing.T) {
	t.Helper()
	select {
	case v := <-w.values:
		if v.err != nil {
			t.Fatalf("the stream ended: %v", v.err)
		}
		t.Fatalf("delivered %s, want nothing yet", w.s.revision(t, v.item))
	default:
	}
}

// stop ends the watch and checks that it left no poll running.
func (w *watcher[E]) stop(t *testing.T) {
	t.Helper()
	w.end()
	w.s.checkIdle(t)
}
