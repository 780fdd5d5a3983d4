package operators

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// TestCheckpointModesAgree: with SaveWhenIdle (a grace that never passes
// here), Checkpoint keeps every guarantee of the plain mode: the same
// values, errors and saves on the end, a break, an upstream error, a
// failed save and a failed revision.
func TestCheckpointModesAgree(t *testing.T) {
	badRev := func(e event) (stream.Revision, error) {
		if e.Rev == 3 {
			return stream.Revision{}, errBoom
		}
		return rev(e.Rev), nil
	}
	cases := []struct {
		name    string
		seq     func() func(yield func(event, error) bool)
		store   func() *memStore
		rev     func(event) (stream.Revision, error)
		breakAt uint64
	}{
		{"end", func() func(func(event, error) bool) { return events(nil, 1, 10) }, func() *memStore { return &memStore{} }, eventRev, 0},
		{"break", func() func(func(event, error) bool) { return events(nil, 1, 10) }, func() *memStore { return &memStore{} }, eventRev, 5},
		{"upstream error", func() func(func(event, error) bool) { return events(errBoom, 1, 4) }, func() *memStore { return &memStore{} }, eventRev, 0},
		{"save fails", func() func(func(event, error) bool) { return events(nil, 1, 10) }, func() *memStore { return &memStore{failAt: 2} }, eventRev, 0},
		{"revision fails", func() func(func(event, error) bool) { return events(nil, 1, 5) }, func() *memStore { return &memStore{} }, badRev, 0},
	}
	for _, tc := range cases {
		var results []string
		for _, idle := range []bool{false, true} {
			opts := []CheckpointOption{SaveEvery(3), SaveInterval(0)}
			if idle {
				opts = append(opts, SaveWhenIdle(time.Hour))
			}
			st := tc.store()
			var seen []any
			for ev, err := range Checkpoint(context.Background(), tc.seq(), st, tc.rev, opts...) {
				if err != nil {
					seen = append(seen, err.Error())
					continue
				}
				if ev.Rev == tc.breakAt {
					break
				}
				seen = append(seen, ev.Rev)
			}
			results = append(results, fmt.Sprint(seen, st.saved()))
		}
		if results[0] != results[1] {
			t.Errorf("%s: plain %s, with SaveWhenIdle %s", tc.name, results[0], results[1])
		}
	}
}

// recorder is a CheckpointStore and a BeforeSave hook that log, in order,
// what happens, and check that neither runs while the loop body does.
type recorder struct {
	t      *testing.T
	mu     sync.Mutex
	log    []string
	inBody bool
	failAt int // BeforeSave fails on its failAt-th call (1-based), if set
	calls  int
	st     memStore
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, s)
}

func (r *recorder) body(ev event, f func()) {
	r.mu.Lock()
	r.inBody = true
	r.log = append(r.log, fmt.Sprint("body ", ev.Rev))
	r.mu.Unlock()
	f()
	r.mu.Lock()
	r.inBody = false
	r.mu.Unlock()
}

func (r *recorder) beforeSave(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inBody {
		r.t.Error("BeforeSave runs while the loop body runs")
	}
	r.calls++
	if r.calls == r.failAt {
		r.log = append(r.log, "flush fails")
		return errBoom
	}
	r.log = append(r.log, "flush")
	return nil
}

func (r *recorder) Load(ctx context.Context) (stream.Revision, error) { return r.st.Load(ctx) }

func (r *recorder) Save(ctx context.Context, rv stream.Revision) error {
	r.mu.Lock()
	inBody := r.inBody
	r.mu.Unlock()
	if inBody {
		r.t.Error("Save runs while the loop body runs")
	}
	if err := r.st.Save(ctx, rv); err != nil {
		return err
	}
	r.add("save " + rv.String())
	return nil
}

func (r *recorder) entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// TestCheckpointSaveWhenIdle: once the upstream is silent for the grace
// after the last finished value, BeforeSave runs, then the save, then
// OnIdle; a value
// arriving within the grace puts the save off; a body that takes longer
// than the grace is never raced: the grace counts from when it returns.
func TestCheckpointSaveWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		const grace = 20 * time.Millisecond
		f := newFeed[event]()
		r := &recorder{t: t}
		var at []time.Duration
		start := time.Now()
		go func() {
			f.ch <- event{Rev: 1}
			f.ch <- event{Rev: 2}
			time.Sleep(grace / 2) // within the grace: no save yet
			f.ch <- event{Rev: 3}
			time.Sleep(5 * grace) // idle: save 3
			f.ch <- event{Rev: 4} // its body takes 3 graces
			time.Sleep(10 * grace)
			close(f.ch) // the end: nothing new to save
		}()
		seq := Checkpoint(ctx, f.seq(ctx), r, eventRev, SaveWhenIdle(grace), BeforeSave(r.beforeSave), SaveInterval(0),
			OnIdle(func() { r.add("idle") }))
		for ev, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			r.body(ev, func() {
				if ev.Rev == 4 {
					time.Sleep(3 * grace) // upstream silent, body busy: no save
				}
			})
			at = append(at, time.Since(start))
		}
		wantEqual(t, "log", r.entries(), []string{
			"body 1", "body 2", "body 3", "flush", "save 3", "idle", "body 4", "flush", "save 4", "idle"})
		wantEqual(t, "saves", r.st.saved(), []uint64{3, 4})
		// Value 4 arrives at 5.5 graces and its body returns at 8.5.
		wantEqual(t, "body done at", at, []time.Duration{0, 0, grace / 2, 8*grace + grace/2})
	})
}

// TestCheckpointBeforeSaveFailureEnds: an error from BeforeSave ends the
// sequence like a failed save, and nothing is saved; after a break, it
// goes to OnSaveError.
func TestCheckpointBeforeSaveFailureEnds(t *testing.T) {
	r := &recorder{t: t, failAt: 1}
	g := collect(Checkpoint(context.Background(), events(nil, 1, 10), r, eventRev, SaveEvery(2), BeforeSave(r.beforeSave)))
	wantEqual(t, "revisions", revs(g.vals), []uint64{1, 2})
	if len(g.errs) != 1 || !errors.Is(g.errs[0], errBoom) {
		t.Fatalf("errors %v, want the hook's failure", g.errs)
	}
	wantEqual(t, "log", r.entries(), []string{"flush fails"})

	r = &recorder{t: t, failAt: 1}
	var hooked error
	for ev := range Checkpoint(context.Background(), events(nil, 1, 10), r, eventRev,
		BeforeSave(r.beforeSave), OnSaveError(func(err error) { hooked = err })) {
		if ev.Rev == 3 {
			break
		}
	}
	wantErrIs(t, hooked, errBoom)
	if len(r.st.saved()) != 0 {
		t.Fatalf("saves %v, want none", r.st.saved())
	}
}

// TestCheckpointBeforeSaveOnFinalSaves: the final saves (break, upstream
// error, cancelled ctx) run BeforeSave first, with a live context.
func TestCheckpointBeforeSaveOnFinalSaves(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &recorder{t: t}
	hook := func(hctx context.Context) error {
		if hctx.Err() != nil {
			t.Error("BeforeSave got a done context on a final save")
		}
		return r.beforeSave(hctx)
	}
	for ev := range Checkpoint(ctx, events(nil, 1, 10), r, eventRev, BeforeSave(hook)) {
		if ev.Rev == 3 {
			break
		}
	}
	for range Checkpoint(ctx, events(errEnd, 4, 5), r, eventRev, BeforeSave(hook)) {
	}
	wantEqual(t, "log", r.entries(), []string{"flush", "save 2", "flush", "save 5"})
}

// TestCheckpointIdleCancelWithSilentUpstream: with SaveWhenIdle,
// Checkpoint watches ctx: when it is done, the sequence saves and ends
// with ctx.Err() even though the upstream has not noticed.
func TestCheckpointIdleCancelWithSilentUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		ignoring := make(chan event)
		seq := func(yield func(event, error) bool) { // ignores ctx
			for ev := range ignoring {
				if !yield(ev, nil) {
					return
				}
			}
		}
		st := &memStore{}
		go func() {
			ignoring <- event{Rev: 1}
			ignoring <- event{Rev: 2}
			time.Sleep(time.Second)
			cancel()
		}()
		var errs []error
		for _, err := range Checkpoint(ctx, seq, st, eventRev, SaveWhenIdle(time.Hour)) {
			if err != nil {
				errs = append(errs, err)
			}
		}
		wantEqual(t, "errors", errs, []error{context.Canceled})
		wantEqual(t, "saves", st.saved(), []uint64{2})
		ignoring <- event{Rev: 3} // releases the reading goroutine, which drops it
		close(ignoring)
	})
}

// TestCheckpointIdleUpstreamCtxErrOnce: an upstream that ends with
// ctx.Err() itself gives one ctx error, not two.
func TestCheckpointIdleUpstreamCtxErrOnce(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			f := newFeed[event]()
			go func() { f.ch <- event{Rev: 1} }()
			st := &memStore{}
			var errs []error
			for ev, err := range Checkpoint(ctx, f.seq(ctx), st, eventRev, SaveWhenIdle(time.Hour)) {
				if err != nil {
					errs = append(errs, err)
				} else if ev.Rev == 1 {
					cancel() // the upstream ends with ctx.Err(), and ctx.Done fires
				}
			}
			wantEqual(t, "errors", errs, []error{context.Canceled})
			wantEqual(t, "saves", st.saved(), []uint64{1})
		})
	}
}

func TestCheckpointOptionErr(t *testing.T) {
	for _, o := range []CheckpointOption{SaveEvery(0), SaveInterval(-1), SaveWhenIdle(0), SaveWhenIdle(-time.Second)} {
		wantErrIs(t, o.Err(), stream.ErrInvalidOption)
	}
	for _, o := range []CheckpointOption{nil, SaveEvery(1), SaveInterval(0), SaveWhenIdle(time.Millisecond), BeforeSave(nil), OnSaveError(nil)} {
		if err := o.Err(); err != nil {
			t.Errorf("valid option: %v", err)
		}
	}
	g := collect(Checkpoint(context.Background(), events(nil, 1, 2), &memStore{}, eventRev, SaveWhenIdle(0)))
	if len(g.vals) != 0 || len(g.errs) != 1 {
		t.Fatalf("got %v, want one error", g)
	}
	wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
}
