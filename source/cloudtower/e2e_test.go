package cloudtower

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// startFake serves a fake CloudTower on loopback HTTP and returns it with a
// client logged in through Dial (the real SDK, over the network stack).
func startFake(t *testing.T, cfg fakeserver.Config) (*fakeserver.Server, *client.Cloudtower) {
	t.Helper()
	s := fakeserver.New(cfg)
	t.Cleanup(s.Close)
	s.StartHTTP()
	c, err := Dial(context.Background(), Config{
		Host: s.URL(), Username: s.Username(), Password: s.Password(), APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { CloseIdleConnections(c) }) // runs before s.Close
	return s, c
}

// e2eOptions are fast stream options with small pages, so that a few
// thousand events take many pages.
func e2eOptions(extra ...stream.Option) []stream.Option {
	return append([]stream.Option{
		stream.PageSize(37),
		stream.PollInterval(time.Millisecond),
		stream.Backoff(time.Millisecond, 4*time.Millisecond),
		stream.Logger(slog.New(slog.DiscardHandler)),
	}, extra...)
}

// drain watches src until the event with revision last was delivered and
// returns what was delivered, or what was delivered before the stream
// ended and the error it ended with.
func drain(t *testing.T, src *Source, last uint64, opts ...stream.Option) ([]*models.ResourceChangeEvent, error) {
	t.Helper()
	// A bound for a broken test, not a wait: a correct run ends long before.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var got []*models.ResourceChangeEvent
	for ev, err := range src.Watch(ctx, opts...) {
		if err != nil {
			return got, err
		}
		got = append(got, ev)
		if r, _ := RevisionOf(ev); r == stream.RevisionFromUint64(last) {
			return got, nil
		}
	}
	return got, errors.New("the stream ended without an error")
}

// checkSame fails unless got is exactly want: same events, same order,
// every field as the server holds it.
func checkSame(t *testing.T, got []*models.ResourceChangeEvent, want []fakeserver.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("delivered %d events, the server has %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if d := diffEvent(got[i], want[i]); d != "" {
			t.Fatalf("event %d: %s", i, d)
		}
	}
}

func diffEvent(g *models.ResourceChangeEvent, w fakeserver.Event) string {
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	opt := func(s string) string {
		if s == "" {
			return "<nil>"
		}
		return s
	}
	prev := "<nil>" // absent for a resource's first change
	if w.PrevRevision != 0 {
		prev = strconv.FormatUint(w.PrevRevision, 10)
	}
	for _, f := range []struct{ name, got, want string }{
		{"revision", str(g.Revision), strconv.FormatUint(w.Revision, 10)},
		{"prev_revision", str(g.PrevRevision), prev},
		{"action", str(g.Action), w.Action},
		{"resource_type", str(g.ResourceType), w.ResourceType},
		{"resource_id", str(g.ResourceID), w.ResourceID},
		{"new_value", str(g.NewValue), opt(w.NewValue)},
		{"old_value", str(g.OldValue), opt(w.OldValue)},
		{"created_at", str(g.CreatedAt), w.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")},
	} {
		if f.got != f.want {
			return fmt.Sprintf("%s = %q, the server has %q", f.name, shorten(f.got), shorten(f.want))
		}
	}
	return ""
}

// TestEndToEndKnobs drains thousands of events through Dial, the SDK and
// the engine, for every combination of the server's unknown semantics:
// the delivered sequence is exactly the server's.
func TestEndToEndKnobs(t *testing.T) { testEndToEndKnobs(t) }

// testEndToEndKnobs is TestEndToEndKnobs with extra stream options on
// every watch (TestEndToEndKnobsParallel adds ParallelCatchUp).
func testEndToEndKnobs(t *testing.T, extra ...stream.Option) {
	const initial = 2000
	type start struct {
		name  string
		after uint64 // with fromNow false
		now   bool   // FromNow
	}
	starts := []start{
		{name: "after 0", after: 0},
		{name: "after mid", after: 1234},
		{name: "from now", now: true},
	}
	repeats := []struct {
		name  string
		every int
		rate  float64
	}{{"no repeats", 0, 0}, {"repeat every 3", 3, 0}, {"repeat 30%", 0, 0.3}}
	for _, inclusive := range []bool{false, true} {
		for _, oldest := range []bool{false, true} {
			for _, shuffle := range []bool{false, true} {
				for _, rep := range repeats {
					knobs := fakeserver.Knobs{InclusiveStart: inclusive, OldestWhenNoStart: oldest, Shuffle: shuffle,
						RepeatEvery: rep.every, RepeatRate: rep.rate}
					name := fmt.Sprintf("inclusive=%t/oldest=%t/shuffle=%t/%s", inclusive, oldest, shuffle, rep.name)
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						for _, st := range starts {
							t.Run(st.name, func(t *testing.T) {
								s, c := startFake(t, fakeserver.Config{Seed: 7, Knobs: knobs})
								s.Generate(initial)
								checkConcurrent(t, s, New(c), st.now, st.after, extra...)
							})
						}
					})
				}
			}
		}
	}
}

// checkConcurrent watches s from after (or from now) while a goroutine
// appends more events in batches, each batch once the consumer made
// progress, and checks that the delivered sequence is exactly the
// server's from the start position to the last appended event.
func checkConcurrent(t *testing.T, s *fakeserver.Server, src *Source, fromNow bool, after uint64, extra ...stream.Option) {
	t.Helper()
	const batches, batch = 8, 60
	head0 := s.Head()
	final := head0 + batches*batch

	progress := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for range batches {
			select {
			case <-progress:
			case <-ctx.Done():
				return
			}
			s.Generate(batch)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	opts := e2eOptions(append(extra[:len(extra):len(extra)], stream.OnPoll(func(stream.PollInfo) {
		select {
		case progress <- struct{}{}:
		default:
		}
	}))...)
	if !fromNow {
		opts = append(opts, stream.After(stream.RevisionFromUint64(after)))
	}
	got, err := drain(t, src, final, opts...)
	if err != nil {
		t.Fatalf("after %d events: %v", len(got), err)
	}
	if fromNow {
		// The start is wherever the head was when the stream asked: at
		// least head0 (appends may have raced with that first request).
		if len(got) == 0 {
			t.Fatal("nothing delivered")
		}
		first, _ := strconv.ParseUint(*got[0].Revision, 10, 64) // the fake's revisions have no gaps
		after = first - 1
		if after < head0 {
			t.Fatalf("FromNow started after %d, below the head %d at the start", after, head0)
		}
	}
	checkSame(t, got, s.Events(after))
}

// TestEndToEndFaults runs a watch under each fault the fake server can
// produce: transient faults are retried and the delivered sequence is
// exactly the server's; fatal ones end the stream at once with the
// documented error, after delivering exactly a prefix of the sequence.
func TestEndToEndFaults(t *testing.T) { testEndToEndFaults(t, false) }

// testEndToEndFaults is TestEndToEndFaults, with ParallelCatchUp(4) when
// parallel is set; then polls run ahead of the fault, so the exact request
// and warning counts are not checked.
func testEndToEndFaults(t *testing.T, parallel bool) {
	fatal := map[fakeserver.FaultKind]error{
		fakeserver.Fault401:     ErrUnauthorized,
		fakeserver.Fault404:     ErrUnsupported,
		fakeserver.Fault404Text: ErrUnsupported,
	}
	for _, kind := range fakeserver.AllFaultKinds() {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			s, c := startFake(t, fakeserver.Config{Seed: int64(kind), FaultDelay: time.Millisecond})
			s.Generate(1500)
			var warnings atomic.Int32
			opts := e2eOptions(
				stream.FromStart(),
				stream.PageSize(50),
				stream.PollTimeout(100*time.Millisecond), // ends each FaultHang
				stream.OnWarning(func(error) { warnings.Add(1) }),
			)
			if parallel {
				opts = append(opts, stream.ParallelCatchUp(4))
			}
			if want, ok := fatal[kind]; ok {
				// Three good pages, then the fault.
				s.InjectFaults(fakeserver.FaultNone, fakeserver.FaultNone, fakeserver.FaultNone, kind)
				got, err := drain(t, New(c), s.Head(), opts...)
				if !errors.Is(err, want) || !stream.IsFatal(err) {
					t.Fatalf("the stream ended with %v, want %v", err, want)
				}
				checkSame(t, got, s.Events(0)[:len(got)]) // a prefix, however many polls ran ahead
				if parallel {
					return
				}
				if len(got) != 150 {
					t.Errorf("delivered %d events before the fault, want 150", len(got))
				}
				if n := s.Stats().ResourceChanges; n != 4 {
					t.Errorf("%d requests, want 4: the fatal fault was retried", n)
				}
				return
			}
			rate := 0.3
			if kind == fakeserver.FaultHang {
				rate = 0.1 // each costs a PollTimeout
			}
			s.SetRandomFaults(int64(kind), rate, kind)
			got, err := drain(t, New(c), s.Head(), opts...)
			if err != nil {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			checkSame(t, got, s.Events(0))
			st := s.Stats()
			if st.FaultsByKind[kind] == 0 {
				t.Fatalf("no %v fault was served", kind)
			}
			// A fault served to a poll started ahead on a hint (see
			// stream.HintNext) goes unseen when that poll is abandoned:
			// after a failed page (itself a warning), or once caught up.
			if !parallel && kind != fakeserver.FaultDelay && 2*int(warnings.Load())+1 < st.FaultsByKind[kind] {
				t.Errorf("%d warnings for %d faults", warnings.Load(), st.FaultsByKind[kind])
			}
		})
	}
}

// TestEndToEndFilters checks that the filters reach the server and that a
// filtered stream delivers exactly the matching events.
func TestEndToEndFilters(t *testing.T) {
	s, c := startFake(t, fakeserver.Config{Seed: 3})
	s.Generate(1500)
	var want []fakeserver.Event
	for _, e := range s.Events(0) {
		if (e.ResourceType == fakeserver.TypeVM || e.ResourceType == fakeserver.TypeHost) && e.Action == fakeserver.ActionUpdate {
			want = append(want, e)
		}
	}
	if len(want) < 50 {
		t.Fatalf("only %d matching events generated", len(want))
	}
	src := New(c, ResourceTypes(fakeserver.TypeVM, fakeserver.TypeHost), Action(fakeserver.ActionUpdate))
	got, err := drain(t, src, want[len(want)-1].Revision, e2eOptions(stream.FromStart())...)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, want)
	last := s.Requests()[len(s.Requests())-1]
	if last.ResourceType != "Vm,Host" || last.Action != fakeserver.ActionUpdate {
		t.Errorf("the server saw resource_type %q, action %q", last.ResourceType, last.Action)
	}

	// One resource.
	id := want[0].ResourceID
	var one []fakeserver.Event
	for _, e := range s.Events(0) {
		if e.ResourceID == id {
			one = append(one, e)
		}
	}
	got, err = drain(t, New(c, ResourceID(id)), one[len(one)-1].Revision, e2eOptions(stream.FromStart())...)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, one)
}

// TestEndToEndResume stops a watch midway and resumes after the last
// handled revision: the two halves are exactly the server's sequence.
func TestEndToEndResume(t *testing.T) {
	s, c := startFake(t, fakeserver.Config{Seed: 5, Knobs: fakeserver.Knobs{InclusiveStart: true, Shuffle: true}})
	s.Generate(1000)
	src := New(c)
	first, err := drain(t, src, 400, e2eOptions(stream.FromStart())...)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := RevisionOf(first[len(first)-1])
	if err != nil {
		t.Fatal(err)
	}
	second, err := drain(t, src, s.Head(), e2eOptions(stream.After(rev))...)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, append(first, second...), s.Events(0))
}

// TestEndToEndCompacted starts below the compact revision over loopback.
func TestEndToEndCompacted(t *testing.T) {
	s, c := startFake(t, fakeserver.Config{Seed: 9, Retention: 500})
	s.Generate(1200)
	_, err := drain(t, New(c), s.Head(), e2eOptions(stream.After(stream.RevisionFromUint64(10)))...)
	var ce *stream.CompactedError
	if !errors.As(err, &ce) || ce.Compact != stream.RevisionFromUint64(s.CompactRevision()) ||
		ce.Position != stream.RevisionFromUint64(10) {
		t.Fatalf("err = %v, want a CompactedError at %d", err, s.CompactRevision())
	}
}
