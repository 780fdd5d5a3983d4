package cloudtower

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// dialMemory logs in to s over its in-memory transport: no network, no
// goroutines, fake time inside a synctest bubble.
func dialMemory(t *testing.T, s *fakeserver.Server) *client.Cloudtower {
	t.Helper()
	c, err := Dial(t.Context(), Config{
		Host: "http://" + fakeserver.MemoryHost, Username: s.Username(), Password: s.Password(), APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
		Transport: s.Transport(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

func TestSynctestCompacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 2})
		defer s.Close()
		s.Generate(300)
		s.Compact(120)
		src := New(dialMemory(t, s))

		// Below the compact revision: history is gone.
		var last error
		n := 0
		for _, err := range src.Watch(t.Context(), stream.After(stream.RevisionFromUint64(50))) {
			if err == nil {
				n++
			}
			last = err
		}
		var ce *stream.CompactedError
		if !errors.Is(last, stream.ErrCompacted) || !errors.As(last, &ce) {
			t.Fatalf("the stream ended with %v, want ErrCompacted", last)
		}
		if ce.Compact != stream.RevisionFromUint64(120) || ce.Position != stream.RevisionFromUint64(50) || n != 0 {
			t.Errorf("CompactedError %+v after %d events, want compact 120, position 50, no event", ce, n)
		}

		// At the compact revision: nothing is lost.
		got, err := drain(t, src, s.Head(), stream.After(stream.RevisionFromUint64(120)), stream.PageSize(50))
		if err != nil {
			t.Fatal(err)
		}
		checkSame(t, got, s.Events(120))
	})
}

// TestSynctestCancelHung cancels the stream while a request hangs: the
// loop returns at once, in fake time, with the context's error.
func TestSynctestCancelHung(t *testing.T) {
	for _, prefetch := range []bool{true, false} {
		t.Run(map[bool]string{true: "prefetch", false: "no prefetch"}[prefetch], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hung := make(chan struct{}, 1)
				s := fakeserver.New(fakeserver.Config{Seed: 4, OnFault: func(k fakeserver.FaultKind) {
					if k == fakeserver.FaultHang {
						hung <- struct{}{}
					}
				}})
				defer s.Close()
				s.Generate(100)
				src := New(dialMemory(t, s))
				s.InjectFaults(fakeserver.FaultNone, fakeserver.FaultHang)

				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				type result struct {
					n   int
					err error
				}
				done := make(chan result)
				go func() {
					var r result
					for _, err := range src.Watch(ctx, stream.FromStart(),
						stream.PageSize(10), stream.Prefetch(prefetch)) {
						if err != nil {
							r.err = err
							break
						}
						r.n++
					}
					done <- r
				}()
				<-hung
				synctest.Wait() // the request is blocked in the hang
				start := time.Now()
				cancel()
				r := <-done
				if el := time.Since(start); el != 0 {
					t.Errorf("the loop returned %v after cancel, want at once", el)
				}
				if !errors.Is(r.err, context.Canceled) || r.n != 10 {
					t.Errorf("the loop ended with %v after %d events, want context.Canceled after 10", r.err, r.n)
				}
			})
		})
	}
}

// TestSynctestHangUntilPollTimeout lets a request hang: the engine gives
// up after PollTimeout, backs off, retries, and nothing is lost.
func TestSynctestHangUntilPollTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 6})
		defer s.Close()
		s.Generate(100)
		src := New(dialMemory(t, s))
		s.InjectFaults(fakeserver.FaultNone, fakeserver.FaultHang)

		var warnings []error
		start := time.Now()
		got, err := drain(t, src, s.Head(), stream.FromStart(), stream.PageSize(10),
			stream.PollTimeout(10*time.Second), stream.Backoff(time.Second, time.Second),
			stream.Logger(slog.New(slog.DiscardHandler)),
			stream.OnWarning(func(err error) { warnings = append(warnings, err) }))
		if err != nil {
			t.Fatal(err)
		}
		checkSame(t, got, s.Events(0))
		if el := time.Since(start); el != 11*time.Second {
			t.Errorf("took %v, want 11s: a 10 s poll timeout and a 1 s backoff", el)
		}
		if len(warnings) != 1 || !errors.Is(warnings[0], context.DeadlineExceeded) {
			t.Errorf("warnings = %v, want one poll timeout", warnings)
		}
	})
}

// TestSynctestFaultsInMemory runs every transient fault over the in-memory
// transport, in fake time: the delivered sequence is exactly the server's.
func TestSynctestFaultsInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 8, FaultDelay: 3 * time.Second})
		defer s.Close()
		s.Generate(2000)
		src := New(dialMemory(t, s))
		var kinds []fakeserver.FaultKind
		for _, k := range fakeserver.AllFaultKinds() {
			switch k {
			case fakeserver.Fault401, fakeserver.Fault404, fakeserver.Fault404Text:
			default:
				kinds = append(kinds, k)
			}
		}
		s.SetRandomFaults(8, 0.4, kinds...)
		got, err := drain(t, src, s.Head(), stream.FromStart(), stream.PageSize(40),
			stream.PollTimeout(5*time.Second), stream.Logger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		checkSame(t, got, s.Events(0))
		for _, k := range kinds {
			if s.Stats().FaultsByKind[k] == 0 {
				t.Errorf("no %v fault was served", k)
			}
		}
	})
}

// FuzzPollResponse feeds arbitrary 200 bodies through the SDK: Poll never
// panics, and a page it accepts has valid revisions.
func FuzzPollResponse(f *testing.F) {
	f.Add([]byte(okPage))
	f.Add([]byte(`{"data":[],"currentRevision":"0","compactRevision":"0","ec":"0","error":null}`))
	f.Add([]byte(`{"data":[{"revision":null}],"currentRevision":"9"}`))
	f.Add([]byte(`{"data":[{}],"currentRevision":"9x"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"data":[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := NewFromService(newMemoryService(body))
		page, err := s.Poll(context.Background(), stream.RevisionFromUint64(1), 10)
		if err != nil {
			if stream.IsFatal(err) {
				t.Fatalf("a 200 gave a fatal error: %v", err)
			}
			return
		}
		for _, ev := range page.Items {
			_, _ = s.Revision(ev) // may fail; must not panic
		}
		for _, r := range []stream.Revision{page.Head, page.Compact} {
			if !r.IsZero() && stream.MustParseRevision(r.String()) != r {
				t.Fatalf("accepted an invalid revision %q", r)
			}
		}
	})
}
