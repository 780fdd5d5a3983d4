package watchor_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	sdkwatchor "github.com/smartxworks/cloudtower-go-sdk/v2/watchor"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/watchor"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// bubble runs f in a synctest bubble with a new fake server and a
// towerwatch client of it with params p (Client set here).
func bubble(t *testing.T, cfg fakeserver.Config, p watchor.NewResourceChangeWatchClientParams, f func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(cfg)
		defer s.Close()
		p.Client = memoryClient(t, s, "")
		w, err := watchor.NewResourceChangeWatchClient(&p)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = w.Stop() }()
		f(t, s, w)
	})
}

func TestNewParams(t *testing.T) {
	c := client.Default
	for _, tc := range []struct {
		name   string
		params *watchor.NewResourceChangeWatchClientParams
		want   int // number of problems, 0 for none
	}{
		{"nil params", nil, 1},
		{"no client", &watchor.NewResourceChangeWatchClientParams{}, 1},
		{"negative MaxRetries", &watchor.NewResourceChangeWatchClientParams{Client: c, MaxRetries: -1}, 1},
		{"negative PollingInterval", &watchor.NewResourceChangeWatchClientParams{Client: c, PollingInterval: -time.Second}, 1},
		{"all wrong", &watchor.NewResourceChangeWatchClientParams{MaxRetries: -1, PollingInterval: -1}, 3},
		{"defaults, no ClientOptions", &watchor.NewResourceChangeWatchClientParams{Client: c}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := watchor.NewResourceChangeWatchClient(tc.params)
			if tc.want == 0 {
				if err != nil || w == nil {
					t.Fatalf("got %v, %v; want a client", w, err)
				}
				if tc.params.MaxRetries != 0 || tc.params.PollingInterval != 0 {
					t.Errorf("the defaults were written into the caller's params: %+v", tc.params)
				}
				return
			}
			if w != nil || !errors.Is(err, watchor.ErrInvalidParams) || !errors.Is(err, stream.ErrInvalidOption) {
				t.Fatalf("got %v, %v; want an error wrapping ErrInvalidParams and stream.ErrInvalidOption", w, err)
			}
			if n := countWrapped(err, watchor.ErrInvalidParams); n != tc.want {
				t.Errorf("%v: %d problems reported, want %d", err, n, tc.want)
			}
		})
	}
}

// countWrapped counts the errors joined in err that wrap target.
func countWrapped(err, target error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += countWrapped(e, target)
		}
		return n
	}
	if errors.Is(err, target) {
		return 1
	}
	return 0
}

func TestDefaultPollingInterval(t *testing.T) {
	bubble(t, fakeserver.Config{}, watchor.NewResourceChangeWatchClientParams{}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
		if err := w.Start(nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		// One request for the head, then one per second plus up to 10% jitter.
		if n := len(s.Requests()); n < 10 || n > 11 {
			t.Errorf("%d requests in 10 s, want 10 or 11 (a 1 s interval)", n)
		}
	})
}

func TestStartErrors(t *testing.T) {
	bubble(t, fakeserver.Config{}, watchor.NewResourceChangeWatchClientParams{}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
		ch := w.Channel()
		err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: ptr("12a")})
		if !errors.Is(err, watchor.ErrInvalidParams) || !errors.Is(err, stream.ErrInvalidRevision) {
			t.Fatalf("Start(12a) = %v, want ErrInvalidParams and stream.ErrInvalidRevision", err)
		}
		if err := w.Stop(); !errors.Is(err, watchor.ErrNotStarted) {
			t.Errorf("Stop after a failed Start = %v, want ErrNotStarted", err)
		}
		if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: ptr("")}); err != nil {
			t.Fatalf("Start(\"\") = %v, want from now", err)
		}
		if w.Channel() != ch {
			t.Error("a failed Start replaced the channels")
		}
		if err := w.Start(nil); !errors.Is(err, watchor.ErrAlreadyStarted) {
			t.Errorf("second Start = %v, want ErrAlreadyStarted", err)
		}
	})
}

func TestStopTwice(t *testing.T) {
	bubble(t, fakeserver.Config{}, watchor.NewResourceChangeWatchClientParams{}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
		if err := w.Stop(); !errors.Is(err, watchor.ErrNotStarted) {
			t.Errorf("Stop before Start = %v, want ErrNotStarted", err)
		}
		if err := w.Start(nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Stop(); err != nil {
			t.Errorf("Stop = %v", err)
		}
		if err := w.Stop(); !errors.Is(err, watchor.ErrNotStarted) {
			t.Errorf("second Stop = %v, want ErrNotStarted", err)
		}
	})
}

// TestRestart: Start after Stop makes new channels and resumes where asked;
// the old ones stay closed and get nothing.
func TestRestart(t *testing.T) {
	bubble(t, fakeserver.Config{Seed: 11}, watchor.NewResourceChangeWatchClientParams{}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
		s.Generate(2000)
		if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: ptr("0")}); err != nil {
			t.Fatal(err)
		}
		old := w.Channel()
		first := recvN(t, w, 5)
		synctest.Wait() // the poller refills the buffer
		if err := w.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: first[4].Revision}); err != nil {
			t.Fatal(err)
		}
		if w.Channel() == old {
			t.Fatal("Start after Stop kept the closed channel")
		}
		got := recvN(t, w, 1995)
		if err := checkRevisions(append(first, got...), 1, 2000); err != nil {
			t.Error(err)
		}
		n := 0
		for range old {
			n++
		}
		if n != watchorBuffer {
			t.Errorf("the old channel held %d more events, want the %d buffered before Stop", n, watchorBuffer)
		}
	})
}

// TestRestartAfterError: the reader of a compaction error can Start again
// at once from the compact revision.
func TestRestartAfterError(t *testing.T) {
	bubble(t, fakeserver.Config{Seed: 12}, watchor.NewResourceChangeWatchClientParams{}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
		head := s.Generate(300)
		s.Compact(200)
		if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: ptr("10")}); err != nil {
			t.Fatal(err)
		}
		old := w.Channel()
		e := <-w.ErrorChannel()
		if e.Type != watchor.ErrorEventTypeCompacted || e.CompactRevision == nil || *e.CompactRevision != "200" {
			t.Fatalf("got %+v, want compacted at 200", e)
		}
		if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: e.CompactRevision}); err != nil {
			t.Fatalf("Start right after the error = %v", err)
		}
		if _, ok := <-old; ok {
			t.Error("the old channel got an event")
		}
		got := recvN(t, w, 100)
		if err := checkRevisions(got, 201, head); err != nil {
			t.Error(err)
		}
	})
}

// TestUsageStyleConsumerGetsError: a consumer that selects over the three
// channels and returns at the first closed one, as the SDK's usage example
// does, gets the fatal error, even with events buffered.
func TestUsageStyleConsumerGetsError(t *testing.T) {
	bubble(t, fakeserver.Config{Seed: 13}, watchor.NewResourceChangeWatchClientParams{}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
		s.Generate(300)
		s.InjectFaults(fakeserver.FaultNone, fakeserver.Fault404)
		if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: ptr("0")}); err != nil {
			t.Fatal(err)
		}
		// Fake time: 300 events are buffered, the second poll (after the
		// 1 s interval) failed and the error is buffered too.
		time.Sleep(1500 * time.Millisecond)
		var got *watchor.ErrorEvent
		events := 0
	loop:
		for {
			select {
			case _, ok := <-w.Channel():
				if !ok {
					break loop
				}
				events++
			case _, ok := <-w.WarningChannel():
				if !ok {
					break loop
				}
			case e, ok := <-w.ErrorChannel():
				if !ok {
					break loop
				}
				got = e
				break loop
			}
		}
		if got == nil || got.Type != watchor.ErrorEventTypeUnsupported {
			t.Fatalf("the consumer saw a closed channel after %d events, not the error", events)
		}
		if err := w.Stop(); !errors.Is(err, watchor.ErrNotStarted) {
			t.Errorf("Stop after the fatal error = %v, want ErrNotStarted", err)
		}
		if n := len(w.Channel()); n != 300-events {
			t.Errorf("%d events left after Stop, want %d", n, 300-events)
		}
		if _, closed := drainClosed(w); !closed {
			t.Error("Stop after the fatal error did not close the channels at once")
		}
	})
}

func TestFatalErrorTypes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		max   int
		fault []fakeserver.FaultKind
		typ   watchor.ErrorEventType
		is    error
	}{
		{"retries exhausted", 1, []fakeserver.FaultKind{fakeserver.Fault502, fakeserver.Fault503}, watchor.ErrorEventTypeRequest, stream.ErrRetriesExhausted},
		{"unauthorized", 0, []fakeserver.FaultKind{fakeserver.Fault401}, watchor.ErrorEventTypeRequest, cloudtower.ErrUnauthorized},
		{"unsupported", 0, []fakeserver.FaultKind{fakeserver.Fault404Text}, watchor.ErrorEventTypeUnsupported, cloudtower.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, fakeserver.Config{}, watchor.NewResourceChangeWatchClientParams{MaxRetries: tc.max}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
				s.InjectFaults(tc.fault...)
				if err := w.Start(nil); err != nil {
					t.Fatal(err)
				}
				e := <-w.ErrorChannel()
				if e.Type != tc.typ || !errors.Is(e.Err, tc.is) || e.CompactRevision != nil {
					t.Errorf("got %+v, want type %s wrapping %v", e, tc.typ, tc.is)
				}
			})
		})
	}
}

// TestConcurrentStartStop runs Start, Stop and the accessors from several
// goroutines at once (for -race): no panic, every channel carries
// increasing revisions, and all ends closed.
func TestConcurrentStartStop(t *testing.T) {
	bubble(t, fakeserver.Config{Seed: 14}, watchor.NewResourceChangeWatchClientParams{PollingInterval: time.Millisecond}, func(t *testing.T, s *fakeserver.Server, w *watchor.ResourceChangeWatchClient) {
		s.Generate(300)
		var wg sync.WaitGroup
		var received atomic.Int64
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					_ = w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: ptr(strconv.Itoa(g*100 + i))})
					ch := w.Channel()
					prev := -1
					for range 3 {
						select {
						case ev, ok := <-ch:
							if !ok {
								break
							}
							r, _ := strconv.Atoi(*ev.Revision)
							if r <= prev {
								t.Errorf("revision %d after %d on one channel", r, prev)
							}
							prev = r
							received.Add(1)
						case <-w.WarningChannel():
						case <-w.ErrorChannel():
						case <-time.After(10 * time.Millisecond):
						}
					}
					_ = w.Stop()
				}
			})
		}
		wg.Wait()
		_ = w.Stop()
		if received.Load() == 0 {
			t.Error("no event was received: the test tested nothing")
		}
		if _, closed := drainClosed(w); !closed {
			t.Error("the channels are open after the last Stop")
		}
	})
}

// TestStopPromptOverHTTP: over real loopback HTTP, Stop interrupts a hung
// request within milliseconds.
func TestStopPromptOverHTTP(t *testing.T) {
	hung := make(chan struct{}, 1)
	s := fakeserver.New(fakeserver.Config{OnFault: func(k fakeserver.FaultKind) {
		if k == fakeserver.FaultHang {
			hung <- struct{}{}
		}
	}})
	defer s.Close()
	s.StartHTTP()
	c, err := cloudtower.Dial(context.Background(), cloudtower.Config{
		Host: s.URL(), Username: s.Username(), Password: s.Password(), APIUsername: s.APIUsername(), APIPassword: s.APIPassword(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cloudtower.CloseIdleConnections(c)
	w, err := watchor.NewResourceChangeWatchClient(&watchor.NewResourceChangeWatchClientParams{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	s.InjectFaults(fakeserver.FaultHang)
	if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: ptr("0")}); err != nil {
		t.Fatal(err)
	}
	<-hung
	t0 := time.Now()
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	// A bound that a correct Stop (a few ms) is far from; the request
	// itself would hang for the SDK's 30 s timeout.
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Stop took %v with a request in flight", d)
	}
	if _, closed := drainClosed(w); !closed {
		t.Error("the channels are open after Stop")
	}
}

// recvN reads n events from w's Channel within an hour (of fake time).
func recvN(t *testing.T, w *watchor.ResourceChangeWatchClient, n int) []*models.ResourceChangeEvent {
	t.Helper()
	got, err := adapt(w).recvEvents(n, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// drainClosed reads what is buffered in w's channels without waiting and
// reports the number of events and whether all three are closed.
func drainClosed(w *watchor.ResourceChangeWatchClient) (int, bool) { return adapt(w).drainNow() }

// The parameter and event types have exactly the SDK's fields: Go converts
// between two struct types only when their fields match in name, type and
// order. ErrorEvent's Type has a type of each package's own, so it is
// checked field by field.
var (
	_ = watchor.NewResourceChangeWatchClientParams(sdkwatchor.NewResourceChangeWatchClientParams{})
	_ = watchor.ResourceChangeWatchStartParams(sdkwatchor.ResourceChangeWatchStartParams{})
	_ = watchor.WarningEvent(sdkwatchor.WarningEvent{})
	_ = func(e sdkwatchor.ErrorEvent) watchor.ErrorEvent {
		return watchor.ErrorEvent{Type: watchor.ErrorEventType(e.Type), Err: e.Err, CompactRevision: e.CompactRevision}
	}
)

func TestSDKCompatibleValues(t *testing.T) {
	for _, pair := range [][2]string{
		{string(watchor.ErrorEventTypeCompacted), string(sdkwatchor.ErrorEventTypeCompacted)},
		{string(watchor.ErrorEventTypeRequest), string(sdkwatchor.ErrorEventTypeRequest)},
		{string(watchor.ErrorEventTypeUnsupported), string(sdkwatchor.ErrorEventTypeUnsupported)},
		{watchor.ErrAlreadyStarted.Error(), sdkwatchor.ErrAlreadyStarted.Error()},
		{watchor.ErrNotStarted.Error(), sdkwatchor.ErrNotStarted.Error()},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%q, the SDK has %q", pair[0], pair[1])
		}
	}
	w, err := watchor.NewResourceChangeWatchClient(&watchor.NewResourceChangeWatchClientParams{Client: client.Default})
	if err != nil {
		t.Fatal(err)
	}
	if c := cap(w.Channel()); c != 500 {
		t.Errorf("Channel has a buffer of %d, want 500", c)
	}
}
