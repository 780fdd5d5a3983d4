package operators

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// memStore is an in-memory CheckpointStore that records every save.
type memStore struct {
	mu     sync.Mutex
	rev    stream.Revision
	saves  []uint64
	failAt int // fail the failAt-th save (1-based), if set
}

func (s *memStore) Load(ctx context.Context) (stream.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev, nil
}

func (s *memStore) Save(ctx context.Context, rev stream.Revision) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 && len(s.saves)+1 == s.failAt {
		s.failAt = 0
		return errBoom
	}
	n, _ := rev.Uint64()
	s.saves = append(s.saves, n)
	s.rev = rev
	return nil
}

func (s *memStore) saved() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.saves...)
}

func events(err error, from, to uint64) func(yield func(event, error) bool) {
	var evs []event
	for r := from; r <= to; r++ {
		evs = append(evs, event{Rev: r})
	}
	return seqOf(err, evs...)
}

func TestCheckpoint(t *testing.T) {
	st := &memStore{}
	g := collect(Checkpoint(context.Background(), events(nil, 1, 10), st, eventRev, SaveEvery(3), SaveInterval(0)))
	wantEqual(t, "revisions", revs(g.vals), seqRange(1, 10))
	wantEqual(t, "saves", st.saved(), []uint64{3, 6, 9, 10}) // and the last one at the end
}

func TestCheckpointEmpty(t *testing.T) {
	st := &memStore{}
	g := collect(Checkpoint(context.Background(), events(nil, 1, 0), st, eventRev))
	if len(g.vals)+len(g.errs) != 0 || len(st.saved()) != 0 {
		t.Fatalf("got %v, saves %v: want nothing", g, st.saved())
	}
}

func TestCheckpointRecordsOnlyFinishedValues(t *testing.T) {
	st := &memStore{}
	for ev, err := range Checkpoint(context.Background(), events(nil, 1, 10), st, eventRev, SaveEvery(1)) {
		if err != nil {
			t.Fatal(err)
		}
		// While the body runs for ev, ev is not recorded yet.
		if st.rev == rev(ev.Rev) {
			t.Fatalf("revision %d saved before its loop body returned", ev.Rev)
		}
		if ev.Rev == 5 {
			break // 5 was not finished
		}
	}
	wantEqual(t, "saves", st.saved(), []uint64{1, 2, 3, 4})
}

func TestCheckpointBreakFlushes(t *testing.T) {
	st := &memStore{}
	for ev := range Checkpoint(context.Background(), events(nil, 1, 10), st, eventRev) { // SaveEvery(100)
		if ev.Rev == 1 {
			continue
		}
		break // at 2: 1 is finished
	}
	wantEqual(t, "saves", st.saved(), []uint64{1})
}

func TestCheckpointBreakAfterFirst(t *testing.T) {
	st := &memStore{}
	var yielded int
	seq := Map(count(&yielded), func(n int) event { return event{Rev: uint64(n)} })
	for ev, err := range Checkpoint(context.Background(), seq, st, eventRev, SaveEvery(1)) {
		if err != nil || ev.Rev != 1 {
			t.Fatalf("first = %v, %v", ev, err)
		}
		break // 1 is not finished: nothing to save
	}
	wantEqual(t, "values pulled from upstream", yielded, 1)
	if len(st.saved()) != 0 {
		t.Fatalf("saves %v, want none", st.saved())
	}
}

func TestCheckpointUpstreamErrorFlushesFirst(t *testing.T) {
	st := &memStore{}
	var seen []any
	for ev, err := range Checkpoint(context.Background(), events(errBoom, 1, 4), st, eventRev) {
		if err != nil {
			// The consumer may stop here: its checkpoint is already saved.
			wantEqual(t, "saves at the error", st.saved(), []uint64{4})
			seen = append(seen, err)
			break
		}
		seen = append(seen, ev.Rev)
	}
	wantEqual(t, "sequence", seen, []any{uint64(1), uint64(2), uint64(3), uint64(4), errBoom})
	wantEqual(t, "saves", st.saved(), []uint64{4})
}

func TestCheckpointSaveFailureEnds(t *testing.T) {
	st := &memStore{failAt: 2}
	g := collect(Checkpoint(context.Background(), events(nil, 1, 10), st, eventRev, SaveEvery(2)))
	wantEqual(t, "revisions", revs(g.vals), []uint64{1, 2, 3, 4})
	if len(g.errs) != 1 || !errors.Is(g.errs[0], errBoom) {
		t.Fatalf("errors %v, want the save failure", g.errs)
	}
	wantEqual(t, "saves", st.saved(), []uint64{2})
}

func TestCheckpointSaveFailureWithUpstreamError(t *testing.T) {
	st := &memStore{failAt: 1}
	g := collect(Checkpoint(context.Background(), events(errEnd, 1, 2), st, eventRev))
	if len(g.errs) != 1 || !errors.Is(g.errs[0], errBoom) || !errors.Is(g.errs[0], errEnd) {
		t.Fatalf("errors %v, want one joining the save failure and the upstream's", g.errs)
	}
}

func TestCheckpointSaveFailureAfterBreakGoesToHook(t *testing.T) {
	st := &memStore{failAt: 1}
	var hooked error
	for ev := range Checkpoint(context.Background(), events(nil, 1, 5), st, eventRev, OnSaveError(func(err error) { hooked = err })) {
		if ev.Rev == 3 {
			break // 1 and 2 finished; saving 2 fails
		}
	}
	wantErrIs(t, hooked, errBoom)
	if len(st.saved()) != 0 {
		t.Fatalf("saves %v, want none", st.saved())
	}
}

func TestCheckpointRevisionFailureEnds(t *testing.T) {
	st := &memStore{}
	bad := func(e event) (stream.Revision, error) {
		if e.Rev == 3 {
			return stream.Revision{}, errBoom
		}
		return rev(e.Rev), nil
	}
	g := collect(Checkpoint(context.Background(), events(nil, 1, 5), st, bad))
	wantEqual(t, "revisions", revs(g.vals), []uint64{1, 2})
	wantErrIs(t, g.errs[0], errBoom)
	wantEqual(t, "saves", st.saved(), []uint64{2})
}

func TestCheckpointInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		f := newFeed[event]()
		st := &memStore{}
		go func() {
			for r := uint64(1); r <= 4; r++ {
				f.ch <- event{Rev: r}
				time.Sleep(700 * time.Millisecond)
			}
			close(f.ch)
		}()
		var savesAt [][]uint64
		for range Checkpoint(ctx, f.seq(ctx), st, eventRev, SaveEvery(100), SaveInterval(time.Second)) {
			savesAt = append(savesAt, st.saved())
		}
		// Values finish at 0, 0.7s, 1.4s (1s since the start: save 3) and
		// 2.1s (0.7s since that save: none); the end saves 4.
		wantEqual(t, "saves seen by the body", savesAt, [][]uint64{nil, nil, nil, {3}})
		wantEqual(t, "saves", st.saved(), []uint64{3, 4})
	})
}

func TestCheckpointCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		src := newMemSource(3, false)
		st := &memStore{}
		time.AfterFunc(time.Second, cancel)
		var end error
		for _, err := range Checkpoint(ctx, stream.Watch(ctx, src.source(), fastOpts(stream.FromStart())...), st, eventRev) {
			if err != nil {
				end = err
			}
		}
		if end != context.Canceled {
			t.Fatalf("ended with %v, want context.Canceled", end)
		}
		// Saved although ctx was cancelled (memStore fails on a done ctx).
		wantEqual(t, "saves", st.saved(), []uint64{3})
	})
}

func TestCheckpointPanicFlushes(t *testing.T) {
	st := &memStore{}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		for ev := range Checkpoint(context.Background(), events(nil, 1, 5), st, eventRev) {
			if ev.Rev == 3 {
				panic("handler failed")
			}
		}
	}()
	wantEqual(t, "saves", st.saved(), []uint64{2})
}

func TestCheckpointInvalid(t *testing.T) {
	for i, g := range []got[event]{
		collect(Checkpoint(context.Background(), events(nil, 1, 2), nil, eventRev)),
		collect(Checkpoint(context.Background(), events(nil, 1, 2), &memStore{}, nil)),
		collect(Checkpoint(context.Background(), events(nil, 1, 2), &memStore{}, eventRev, SaveEvery(0))),
		collect(Checkpoint(context.Background(), events(nil, 1, 2), &memStore{}, eventRev, SaveInterval(-1))),
	} {
		if len(g.vals) != 0 || len(g.errs) != 1 {
			t.Fatalf("case %d: got %v, want one error", i, g)
		}
		wantErrIs(t, g.errs[0], stream.ErrInvalidOption)
	}
}

func TestLoadAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{rev: rev(7)}
		after, err := LoadAfter(t.Context(), st, stream.FromStart())
		if err != nil {
			t.Fatal(err)
		}
		src := newMemSource(9, true)
		g := collect(stream.Watch(t.Context(), src.source(), append(fastOpts(), after)...))
		wantEqual(t, "revisions", revs(g.vals), []uint64{8, 9})

		// Nothing stored: the start given for that case, or from now.
		empty := &memStore{}
		after, err = LoadAfter(t.Context(), empty, stream.FromStart())
		if err != nil {
			t.Fatal(err)
		}
		g = collect(stream.Watch(t.Context(), src.source(), append(fastOpts(), after)...))
		wantEqual(t, "revisions from the start", revs(g.vals), seqRange(1, 9))
		after, err = LoadAfter(t.Context(), empty, nil)
		if err != nil {
			t.Fatal(err)
		}
		if after == nil || after.Err() != nil {
			t.Fatalf("LoadAfter(nil) with nothing stored = %v, want a valid option (from now)", after)
		}

		_, err = LoadAfter(t.Context(), &failingLoad{}, nil)
		wantErrIs(t, err, errBoom)
		_, err = LoadAfter(t.Context(), nil, nil)
		wantErrIs(t, err, stream.ErrInvalidOption)
	})
}

type failingLoad struct{ memStore }

func (*failingLoad) Load(context.Context) (stream.Revision, error) { return stream.Revision{}, errBoom }

// TestCheckpointCancelInBodyStillSaves: ctx is cancelled while the body
// handles the value that makes a save due. The save must not be lost to
// the cancelled ctx: the final save (without cancellation) records it, and
// the sequence ends with the upstream's ctx.Err(), not a save error.
func TestCheckpointCancelInBodyStillSaves(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seq := func(yield func(event, error) bool) {
		for r := uint64(1); r <= 5; r++ {
			if err := ctx.Err(); err != nil {
				yield(event{}, err)
				return
			}
			if !yield(event{Rev: r}, nil) {
				return
			}
		}
	}
	st := &memStore{}
	var vals []event
	var errs []error
	for ev, err := range Checkpoint(ctx, seq, st, eventRev, SaveEvery(2)) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vals = append(vals, ev)
		if ev.Rev == 2 {
			cancel()
		}
	}
	wantEqual(t, "revisions", revs(vals), []uint64{1, 2})
	wantEqual(t, "errors", errs, []error{context.Canceled})
	wantEqual(t, "saves", st.saved(), []uint64{2})
}
