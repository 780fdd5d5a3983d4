package watchor_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// Each test here shows one defect of the SDK's watchor that towerwatch's
// client does not have: it runs the same body against both (see defect),
// expecting towerwatch's to pass and the SDK's to fail. The original's
// hangs end at a fake-time deadline inside a synctest bubble.

const hour = time.Hour

// revisions returns the revisions of evs.
func revisions(evs []*models.ResourceChangeEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = *ev.Revision
	}
	return out
}

// checkRevisions fails unless evs are exactly the revisions from..to, in
// order, each once.
func checkRevisions(evs []*models.ResourceChangeEvent, from, to uint64) error {
	if want := int(to - from + 1); len(evs) != want {
		return fmt.Errorf("got %d events, want %d (revisions %d..%d)", len(evs), want, from, to)
	}
	for i, ev := range evs {
		if want := fmt.Sprint(from + uint64(i)); ev.Revision == nil || *ev.Revision != want {
			return fmt.Errorf("event %d has revision %v, want %s (a duplicate or a gap)", i, revisions(evs[i:min(i+3, len(evs))]), want)
		}
	}
	return nil
}

// 1. A warning nobody reads never blocks the poller, and the warning
// channel holds the newest warning.
func TestWarningNobodyReadsDoesNotBlock(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 1},
		"it sends each warning on an unbuffered channel and waits for a reader",
		func(e *env) error {
			e.s.Generate(10)
			e.s.InjectFaults(fakeserver.Fault500, fakeserver.Fault503)
			w := e.open(params{})
			if err := w.start(ptr("0")); err != nil {
				return err
			}
			evs, err := w.recvEvents(10, hour) // reads Channel only
			if err != nil {
				return err
			}
			if err := checkRevisions(evs, 1, 10); err != nil {
				return err
			}
			warn, ok := w.pendingWarning()
			var ae *cloudtower.APIError
			if !ok || !errors.As(warn, &ae) || ae.Status != http.StatusServiceUnavailable {
				return fmt.Errorf("WarningChannel holds %v (%t), want the newest warning, the 503", warn, ok)
			}
			if warn, ok := w.pendingWarning(); ok {
				return fmt.Errorf("WarningChannel holds a second warning %v, want only the newest", warn)
			}
			return nil
		})
}

// 1. A fatal error nobody reads never blocks either: the client stops,
// closes its channels, and the error stays readable.
func TestErrorNobodyReadsDoesNotBlock(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 1},
		"its warnings and its fatal error wait for a reader forever, so its channels are never closed",
		func(e *env) error {
			e.s.InjectFaults(fakeserver.Fault404)
			w := e.open(params{})
			if err := w.start(ptr("0")); err != nil {
				return err
			}
			if err := w.closedWithin(hour); err != nil { // reads Channel only
				return err
			}
			if info, ok := w.pendingError(); !ok || info.Type != "unsupported" {
				return fmt.Errorf("ErrorChannel holds %v (%t) once Channel is closed, want the unsupported error", info, ok)
			}
			if _, closed := w.drainNow(); !closed {
				return errors.New("the channels are not all closed after the fatal error")
			}
			return nil
		})
}

// 2. Stop returns at once and frees the poller wherever it is: in the poll
// interval, in a backoff, in a request, or blocked on a full Channel that
// nobody reads; the channels are then closed and no goroutine is left.
func TestStopInterruptsEverything(t *testing.T) {
	cases := []struct {
		name, why string
		setup     func(e *env)
		start     *string
		buffered  int
	}{
		{"interval", "Stop only sets a flag, which its poller reads after the interval's sleep", nil, nil, 0},
		{"backoff", "its poller sleeps through the whole backoff before it looks at the flag",
			func(e *env) { e.s.InjectFaults(fakeserver.Fault503) }, ptr("0"), 0},
		{"request", "its requests carry no context that Stop could cancel",
			func(e *env) { e.s.InjectFaults(fakeserver.FaultHang) }, ptr("0"), 0},
		{"full channel", "its poller blocks sending to a full Channel, and Stop does not free it",
			func(e *env) { e.s.Generate(2000) }, ptr("0"), watchorBuffer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defect(t, fakeserver.Config{Seed: 2}, tc.why, func(e *env) error {
				if tc.setup != nil {
					tc.setup(e)
				}
				ignore := goleak.IgnoreCurrent()
				w := e.open(params{interval: hour})
				if err := w.start(tc.start); err != nil {
					return err
				}
				time.Sleep(10 * time.Second) // fake time: the poller reaches its wait
				synctest.Wait()
				t0 := time.Now()
				if err := w.stop(); err != nil {
					return fmt.Errorf("Stop: %v", err)
				}
				if d := time.Since(t0); d > 0 {
					return fmt.Errorf("Stop took %v of fake time", d)
				}
				n, closed := w.drainNow()
				if !closed {
					return fmt.Errorf("the channels are still open after Stop returned (%d events were buffered)", n)
				}
				if n != tc.buffered {
					return fmt.Errorf("%d events were buffered, want %d", n, tc.buffered)
				}
				return goleak.Find(ignore)
			})
		})
	}
}

const watchorBuffer = 500

// 3. Start(nil), and a nil StartRevision, start from now.
func TestStartFromNow(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 3},
		"Start(nil) dereferences nil params, and a nil StartRevision delivers the newest page of the backlog",
		func(e *env) error {
			e.s.Generate(50)
			var errs []error
			for _, nilParams := range []bool{false, true} {
				w := e.open(params{})
				start := func() error { return w.start(nil) }
				if nilParams {
					start = w.startNilParams
				}
				if err := start(); err != nil {
					errs = append(errs, fmt.Errorf("Start (nil params: %t): %v", nilParams, err))
					continue
				}
				synctest.Wait()
				head := e.s.Generate(3)
				evs := w.collect(time.Minute)
				if err := checkRevisions(evs, head-2, head); err != nil {
					errs = append(errs, fmt.Errorf("nil params: %t: %v", nilParams, err))
				}
			}
			return errors.Join(errs...)
		})
}

// 4. A 404, whatever its body, is reported once as unsupported, without
// warnings, and the client stops.
func TestNotFoundIsUnsupported(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 4},
		"a 404 with a JSON body arrives as *GetResourceChangesNotFound, not *models.UnexpectedError, so it is retried and reported as a request error",
		func(e *env) error {
			cases := []struct {
				name  string
				fault fakeserver.FaultKind
				base  string
			}{
				{"JSON body", fakeserver.Fault404, ""},
				{"text body", fakeserver.Fault404Text, ""},
				{"no such path", fakeserver.FaultNone, "/v1/nothing"},
			}
			for _, tc := range cases {
				e.s.ClearFaults()
				e.s.InjectFaults(tc.fault)
				w := e.openWith(memoryClient(e.t, e.s, tc.base), params{})
				if err := w.start(ptr("0")); err != nil {
					return err
				}
				info, _, warnings, err := w.nextError(hour)
				if err != nil {
					return fmt.Errorf("%s: %v", tc.name, err)
				}
				if info.Type != "unsupported" || warnings != 0 {
					return fmt.Errorf("%s: got %v after %d warnings, want unsupported at once", tc.name, info, warnings)
				}
				if !errors.Is(info.Err, cloudtower.ErrUnsupported) {
					return fmt.Errorf("%s: %v does not wrap cloudtower.ErrUnsupported", tc.name, info.Err)
				}
				if err := w.closedWithin(time.Minute); err != nil {
					return fmt.Errorf("%s: %v", tc.name, err)
				}
				if info, ok := w.pendingError(); ok {
					return fmt.Errorf("%s: a second error %v", tc.name, info)
				}
				if err := w.stop(); err == nil {
					return fmt.Errorf("%s: Stop after the client stopped itself returned nil, want ErrNotStarted", tc.name)
				}
			}
			return nil
		})
}

// 5. A start revision below the compact revision is reported as compacted,
// with the compact revision, also while catching up a backlog.
func TestCompacted(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 5},
		"it checks compaction only once caught up, and by then its position has passed the compact revision: the gap goes unnoticed",
		func(e *env) error {
			e.s.Generate(300)
			e.s.Compact(120)
			w := e.open(params{})
			if err := w.start(ptr("50")); err != nil {
				return err
			}
			info, evs, _, err := w.nextError(hour)
			if err != nil {
				return fmt.Errorf("start below the compact revision: %v", err)
			}
			if info.Type != "compacted" || info.Compact == nil || *info.Compact != "120" || len(evs) != 0 {
				return fmt.Errorf("start below the compact revision: got %v after %d events, want compacted at 120 and no event", info, len(evs))
			}
			if !errors.Is(info.Err, stream.ErrCompacted) {
				return fmt.Errorf("start below the compact revision: Err %v does not wrap stream.ErrCompacted", info.Err)
			}

			// During catch-up: the server compacts past the position while
			// the client works through a backlog.
			e.s.Generate(4700) // head 5000
			w = e.open(params{})
			if err := w.start(ptr("120")); err != nil {
				return err
			}
			first, err := w.recvEvents(1, hour)
			if err != nil {
				return err
			}
			synctest.Wait() // Channel is full, the poller waits
			e.s.Compact(4500)
			info, evs, _, err = w.nextError(hour)
			if err != nil {
				return fmt.Errorf("compacted during catch-up: %v", err)
			}
			evs = append(first, evs...)
			if info.Type != "compacted" || info.Compact == nil || *info.Compact != "4500" {
				return fmt.Errorf("compacted during catch-up: got %v, want compacted at 4500", info)
			}
			if len(evs) == 0 {
				return errors.New("compacted during catch-up: no event before the error")
			}
			return checkRevisions(evs, 121, 120+uint64(len(evs)))
		})
}

// 6. A server that includes start_revision in its answer, and repeats a
// page now and then, causes no duplicate.
func TestInclusiveServerNoDuplicates(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 6, Knobs: fakeserver.Knobs{InclusiveStart: true, RepeatEvery: 2}},
		"it delivers every event of every page, so the start revision comes again at each poll",
		func(e *env) error {
			e.s.Generate(250)
			w := e.open(params{})
			if err := w.start(ptr("0")); err != nil {
				return err
			}
			evs := w.collect(30 * time.Second)
			head := e.s.Generate(5)
			evs = append(evs, w.collect(30*time.Second)...)
			return checkRevisions(evs, 1, head)
		})
}

// 7. A backlog is caught up without sleeping between full pages.
func TestCatchUpDoesNotSleep(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 7},
		"it sleeps PollingInterval after every page of 100",
		func(e *env) error {
			head := e.s.Generate(2500)
			w := e.open(params{interval: hour})
			t0 := time.Now()
			if err := w.start(ptr("0")); err != nil {
				return err
			}
			evs, err := w.recvEvents(int(head), 10*time.Minute)
			if err != nil {
				return err
			}
			if d := time.Since(t0); d > 0 {
				return fmt.Errorf("catching up %d events took %v of fake time, want none", head, d)
			}
			return checkRevisions(evs, 1, head)
		})
}

// 8. The channel accessors never return nil, and return the same channels
// before and after the first Start.
func TestChannelsBeforeStart(t *testing.T) {
	defect(t, fakeserver.Config{Seed: 8},
		"its accessors return nil channels before Start, which block a reader forever",
		func(e *env) error {
			w := e.open(params{})
			before := w.chans()
			for i, ch := range before {
				if ch == nil || fmt.Sprint(ch) == "<nil>" {
					return fmt.Errorf("accessor %d returns a nil channel before Start", i)
				}
			}
			if err := w.start(nil); err != nil {
				return err
			}
			if after := w.chans(); after != before {
				return errors.New("the first Start changed the channels")
			}
			return nil
		})
}

// The restart defect (3) is shown for towerwatch only, in TestRestart: on
// the SDK's watchor, Stop only clears a flag and Start sets it again, so
// the old poller, still sleeping, wakes up with the flag set and keeps
// polling next to the new one, writing to (and finally closing) the new
// channels; the race detector reports its unsynchronised reads of the
// channel fields, which would fail this package's -race run.

// The SDK's defaults and MaxRetries meaning are kept: with MaxRetries 0,
// three failed retries are warnings and the fourth failure in a row is a
// request error.
func TestDefaultMaxRetries(t *testing.T) {
	compat(t, fakeserver.Config{Seed: 9}, func(e *env) error {
		e.s.Generate(5)
		e.s.InjectFaults(fakeserver.Fault503, fakeserver.Fault503, fakeserver.Fault503, fakeserver.Fault503)
		w := e.open(params{})
		if err := w.start(ptr("0")); err != nil {
			return err
		}
		info, evs, warnings, err := w.nextError(hour)
		if err != nil {
			return err
		}
		if info.Type != "request" || warnings != 3 || len(evs) != 0 {
			return fmt.Errorf("got %v after %d warnings and %d events, want a request error after 3 warnings", info, warnings, len(evs))
		}
		return nil
	})
}

// Both deliver a filtered feed in order from a start revision.
func TestFilteredFeed(t *testing.T) {
	compat(t, fakeserver.Config{Seed: 10}, func(e *env) error {
		e.s.Append(
			fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: fakeserver.TypeVM, ResourceID: "vm-1"},
			fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: fakeserver.TypeVMVolume, ResourceID: "vol-1"},
			fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: fakeserver.TypeHost, ResourceID: "host-1"},
			fakeserver.Event{Action: fakeserver.ActionUpdate, ResourceType: fakeserver.TypeVM, ResourceID: "vm-1"},
		)
		w := e.open(params{types: []string{fakeserver.TypeVM, fakeserver.TypeHost}})
		if err := w.start(ptr("1")); err != nil {
			return err
		}
		evs := w.collect(10 * time.Second)
		if got := fmt.Sprint(revisions(evs)); got != "[3 4]" {
			return fmt.Errorf("got revisions %s, want [3 4]", got)
		}
		return nil
	})
}
