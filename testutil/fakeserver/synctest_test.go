package fakeserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The in-memory transport under fake time: delays take exactly their
// duration, hangs last until the client gives up, and nothing is left
// running.

func TestSynctestDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{})
		defer s.Close()
		appendN(s, 10)
		c := memClient(t, s)

		s.InjectDelay(5 * time.Second)
		start := time.Now()
		if p := c.page("start_revision", "0"); len(p.Data) != 10 {
			t.Errorf("%d events", len(p.Data))
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("InjectDelay(5s) took %v", d)
		}

		s.SetFaultDelay(3 * time.Second)
		s.InjectFaults(FaultDelay)
		start = time.Now()
		var wg sync.WaitGroup
		wg.Go(func() { c.page("start_revision", "0") })
		synctest.Wait() // delayed: recorded, not completed
		if r := s.Requests(); len(r) != 2 || r[1].Fault != FaultDelay || r[1].Status != 0 || s.Stats().Pages != 1 {
			t.Errorf("while delayed: %+v", r)
		}
		wg.Wait()
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("SetFaultDelay(3s) took %v", d)
		}
		if r := s.Requests(); r[1].Status != 200 || r[1].Events != 10 || s.Stats().Pages != 2 {
			t.Errorf("after the delay: %+v", r)
		}

		// A delay longer than the client waits.
		s.InjectFaults(FaultDelay)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		r := c.changesCtx(ctx, "start_revision", "0")
		if !errors.Is(r.err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("cut short: %v after %v", r.err, time.Since(start))
		}
		reqs := s.Requests()
		if last := reqs[len(reqs)-1]; last.Status != 0 || last.Fault != FaultDelay {
			t.Errorf("recorded %+v", last)
		}
	})
}

func TestSynctestHang(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{})
		defer s.Close()
		hc := &http.Client{Transport: s.Transport(), Timeout: 30 * time.Second}
		req, _ := http.NewRequest("GET", "http://"+MemoryHost+ResourceChangesPath, nil)
		req.SetBasicAuth(s.APIUsername(), s.APIPassword())

		s.InjectFaults(FaultHang)
		start := time.Now()
		_, err := hc.Do(req)
		var ue *url.Error
		if !errors.As(err, &ue) || !ue.Timeout() || time.Since(start) != 30*time.Second {
			t.Errorf("hang: %v after %v, want a timeout after 30s", err, time.Since(start))
		}

		// A hang ended by Close.
		s.InjectFaults(FaultHang)
		var wg sync.WaitGroup
		wg.Go(func() { _, err = s.Transport().RoundTrip(req) })
		synctest.Wait() // the request is hanging
		if r := s.Requests(); len(r) != 2 || r[1].Fault != FaultHang || r[1].Status != 0 {
			t.Errorf("while hanging: %+v", r)
		}
		start = time.Now()
		s.Close()
		wg.Wait()
		if !errors.Is(err, ErrClosed) || time.Since(start) != 0 {
			t.Errorf("hang ended by Close: %v", err)
		}
		if st := s.Stats(); st.FaultsByKind[FaultHang] != 2 || len(st.StatusCodes) != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestSynctestRunGenerator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{})
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var err error
		wg.Go(func() { err = s.RunGenerator(ctx, time.Second, 10) })
		time.Sleep(5*time.Second + time.Millisecond) // fake time: five ticks
		synctest.Wait()
		if h := s.Head(); h != 50 {
			t.Errorf("head %d after 5 ticks of 10", h)
		}
		cancel()
		wg.Wait()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("RunGenerator returned %v", err)
		}

		wg.Go(func() { err = s.RunGenerator(context.Background(), time.Minute, 1) })
		synctest.Wait()
		s.Close()
		wg.Wait()
		if !errors.Is(err, ErrClosed) {
			t.Errorf("RunGenerator after Close returned %v", err)
		}
		if s.RunGenerator(context.Background(), 0, 1) == nil || s.RunGenerator(context.Background(), time.Second, 0) == nil {
			t.Error("bad arguments accepted")
		}
	})
}

// TestSynctestWatchLoop is the shape of a client test: a poller in a
// goroutine drains the feed while the generator runs, under fake time and
// random faults, and everything stops when ctx is cancelled.
func TestSynctestWatchLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Seed: 4, Knobs: Knobs{Shuffle: true, RepeatEvery: 3}})
		defer s.Close()
		s.SetRandomFaults(4, 0.2, Fault503, FaultTruncate, FaultDelay, FaultMalformedJSON)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = s.RunGenerator(ctx, 100*time.Millisecond, 7) })
		hc := s.Client()
		var pos uint64
		seen := map[uint64]bool{}
		for s.Head() < 2000 || pos < s.Head() {
			req, _ := http.NewRequestWithContext(ctx, "GET",
				"http://"+MemoryHost+ResourceChangesPath+"?limit=50&start_revision="+itoa(pos), nil)
			req.SetBasicAuth(s.APIUsername(), s.APIPassword())
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p wirePage
			ok := resp.StatusCode == 200 && decodeBody(resp, &p) == nil
			resp.Body.Close()
			if !ok {
				time.Sleep(time.Second) // back off, in fake time
				continue
			}
			maxRev := pos
			for _, e := range p.Data {
				r := parseU(*e.Revision)
				if r > pos {
					seen[r] = true
				}
				maxRev = max(maxRev, r)
			}
			if len(p.Data) == 0 {
				time.Sleep(time.Second)
			}
			pos = maxRev
		}
		cancel()
		wg.Wait()
		// Pages are the first events above the position, so taking the
		// largest revision of each clean page skips nothing.
		if uint64(len(seen)) != pos || pos < 2000 {
			t.Errorf("saw %d distinct events up to %d", len(seen), pos)
		}
		if st := s.Stats(); st.Faults == 0 || st.Repeats == 0 {
			t.Errorf("no faults or repeats: %+v", st)
		}
	})
}

// TestSynctestLatency checks that the latency is added, exactly, to
// resource-change and list requests only, on top of a FaultDelay, and that
// it ends with the request's context or Close.
func TestSynctestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Latency: 200 * time.Millisecond})
		defer s.Close()
		appendN(s, 10)
		c := memClient(t, s)
		timed := func(f func()) time.Duration {
			start := time.Now()
			f()
			return time.Since(start)
		}
		if d := timed(func() { c.page("start_revision", "0") }); d != 200*time.Millisecond {
			t.Errorf("page took %v", d)
		}
		if d := timed(func() {
			r := c.do(context.Background(), "POST", ListPath(TypeVM), "", map[string]string{"Authorization": s.Token()})
			if r.err != nil || r.resp.StatusCode != 200 {
				t.Errorf("list: %v", r.err)
			}
		}); d != 200*time.Millisecond {
			t.Errorf("list took %v", d)
		}
		if d := timed(func() { c.do(context.Background(), "POST", LoginPath, `{"username":"admin","password":"admin"}`, nil) }); d != 0 {
			t.Errorf("login took %v", d)
		}
		s.InjectDelay(time.Second)
		if d := timed(func() { c.page("start_revision", "0") }); d != 1200*time.Millisecond {
			t.Errorf("latency and a FaultDelay took %v", d)
		}
		s.SetLatency(-time.Second)
		if d := timed(func() { c.page("start_revision", "0") }); d != 0 || s.Latency() != 0 {
			t.Errorf("no latency: %v, %v", d, s.Latency())
		}

		s.SetLatency(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if r := c.changesCtx(ctx, "start_revision", "0"); !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("cut short: %v", r.err)
		}
		if reqs := s.Requests(); reqs[len(reqs)-1].Status != 0 {
			t.Errorf("recorded %+v", reqs[len(reqs)-1])
		}
		var wg sync.WaitGroup
		var r result
		wg.Go(func() { r = c.changes() })
		synctest.Wait()
		s.Close()
		wg.Wait()
		if !errors.Is(r.err, ErrClosed) {
			t.Errorf("ended by Close: %v", r.err)
		}
		if st := s.Stats(); st.ResourceChanges != 5 || st.Lists != 1 || st.StatusCodes[200] != 5 {
			t.Errorf("stats %+v", st)
		}
	})
}
