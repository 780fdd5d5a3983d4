package fakeserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkFault checks what a client sees for each fault kind (the test
// cancels the request of a FaultHang).
func checkFault(t *testing.T, k FaultKind, r result) {
	t.Helper()
	jsonErr := func(status int) {
		t.Helper()
		checkError(t, r, status, ResourceChangesPath)
	}
	text := func(status int, body string) {
		t.Helper()
		if r.err != nil || r.bodyErr != nil || r.resp.StatusCode != status || string(r.body) != body {
			t.Fatalf("got %v %v %v %q, want %d %q", r.err, r.bodyErr, r.resp, r.body, status, body)
		}
		checkHeaders(t, r, contentText)
	}
	page := func() wirePage {
		t.Helper()
		if r.err != nil || r.bodyErr != nil || r.resp.StatusCode != 200 {
			t.Fatalf("got %v %v %v", r.err, r.bodyErr, r.resp)
		}
		checkHeaders(t, r, contentJSON)
		var p wirePage
		decodeStrict(t, r.body, &p)
		return p
	}
	switch k {
	case Fault500, Fault502, Fault503, Fault401, Fault404:
		jsonErr(k.status())
	case Fault429:
		jsonErr(429)
		if got := r.resp.Header.Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q", got)
		}
	case Fault502Text:
		text(502, "502 Bad Gateway")
	case Fault404Text:
		text(404, "Cannot GET "+ResourceChangesPath)
	case Fault503Empty:
		if r.err != nil || r.resp.StatusCode != 503 || len(r.body) != 0 ||
			r.resp.Header.Get("Content-Length") != "0" || r.resp.ContentLength != 0 {
			t.Fatalf("got %v %v %q, want an empty 503", r.err, r.resp, r.body)
		}
	case FaultDelay:
		if p := page(); len(p.Data) != 5 {
			t.Errorf("delay: %d events", len(p.Data))
		}
	case FaultHang:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("hang: err = %v, want context.Canceled", r.err)
		}
	case FaultReset:
		if r.err == nil {
			t.Fatalf("reset: no error, status %v", r.resp.Status)
		}
		var op *net.OpError
		if strings.HasSuffix(t.Name(), "/memory") && (!errors.Is(r.err, ErrReset) || !errors.As(r.err, &op)) {
			t.Errorf("reset: err = %v, want a *net.OpError wrapping ErrReset", r.err)
		}
	case FaultTruncate:
		if r.err != nil || r.resp.StatusCode != 200 || !errors.Is(r.bodyErr, io.ErrUnexpectedEOF) ||
			int64(len(r.body)) >= r.resp.ContentLength || len(r.body) == 0 {
			t.Fatalf("truncate: %v %v, %d of %d bytes", r.err, r.bodyErr, len(r.body), r.resp.ContentLength)
		}
	case FaultMalformedJSON:
		if r.err != nil || r.bodyErr != nil || r.resp.StatusCode != 200 || json.Valid(r.body) {
			t.Fatalf("malformed: %v %v %q", r.err, r.bodyErr, r.body)
		}
		checkHeaders(t, r, contentJSON)
	case FaultMissingRevision, FaultInvalidRevision:
		p := page()
		if len(p.Data) != 5 {
			t.Fatalf("%d events", len(p.Data))
		}
		for i, e := range p.Data {
			switch {
			case i != 2 && e.Revision == nil:
				t.Errorf("event %d lost its revision", i)
			case i == 2 && k == FaultMissingRevision && e.Revision != nil:
				t.Errorf("event 2 has revision %s", *e.Revision)
			case i == 2 && k == FaultInvalidRevision && (e.Revision == nil || !strings.HasSuffix(*e.Revision, "a")):
				t.Errorf("event 2 has revision %s", str(e.Revision))
			}
		}
	default:
		t.Fatalf("no check for %v", k)
	}
}

func TestFaults(t *testing.T) {
	for _, k := range AllFaultKinds() {
		t.Run(k.String(), func(t *testing.T) {
			var cancel atomic.Pointer[context.CancelFunc]
			cfg := Config{FaultDelay: time.Millisecond, OnFault: func(got FaultKind) {
				if got != k {
					t.Errorf("OnFault(%v), want %v", got, k)
				}
				if got == FaultHang {
					(*cancel.Load())()
				}
			}}
			forEachTransport(t, cfg, func(t *testing.T, s *Server, c *client) {
				appendN(s, 20)
				c.page("start_revision", "0", "limit", "5") // warm up a kept-alive connection
				s.InjectFaults(k)
				if s.PendingFaults() != 1 {
					t.Fatal("fault not pending")
				}
				ctx, cf := context.WithCancel(context.Background())
				defer cf()
				cancel.Store(&cf)
				r := c.changesCtx(ctx, "start_revision", "5", "limit", "5")
				checkFault(t, k, r)
				if got := revs(c.page("start_revision", "5", "limit", "5")); !slices.Equal(got, []string{"6", "7", "8", "9", "10"}) {
					t.Errorf("after the fault: %v", got)
				}
				st := s.Stats()
				// Exactly three requests: the client's transport must not
				// have retried anything behind our back.
				if st.ResourceChanges != 3 || st.Faults != 1 || st.FaultsByKind[k] != 1 || s.PendingFaults() != 0 {
					t.Errorf("stats %+v", st)
				}
				reqs := s.Requests()
				if len(reqs) != 3 || reqs[1].Fault != k || reqs[1].StartRevision != "5" || reqs[2].Fault != FaultNone {
					t.Errorf("requests %+v", reqs)
				}
				if want := k.status(); reqs[1].Status != want && k != FaultDelay && k != FaultTruncate &&
					k != FaultMalformedJSON && k != FaultMissingRevision && k != FaultInvalidRevision {
					t.Errorf("recorded status %d, want %d", reqs[1].Status, want)
				}
			})
		})
	}
}

func TestRevisionFaultOnEmptyPage(t *testing.T) {
	for _, k := range []FaultKind{FaultMissingRevision, FaultInvalidRevision} {
		forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
			s.InjectFaults(k)
			p := c.page("start_revision", "0")
			if len(p.Data) != 1 || (k == FaultMissingRevision) != (p.Data[0].Revision == nil) || str(p.CurrentRevision) != "0" {
				t.Errorf("%v on empty log: %+v", k, p)
			}
		})
	}
}

func TestFaultScript(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	appendN(s, 3)
	c := memClient(t, s)
	s.InjectFaults(Fault500)
	// Refused requests do not take a fault.
	checkError(t, c.changes("limit", "0"), 400, ResourceChangesPath)
	checkError(t, c.do(context.Background(), "GET", ResourceChangesPath, "", nil), 401, ResourceChangesPath)
	c.do(context.Background(), "POST", LoginPath, `{"username":"admin","password":"admin"}`, nil)
	if s.PendingFaults() != 1 {
		t.Fatalf("pending %d", s.PendingFaults())
	}
	checkError(t, c.changes(), 500, ResourceChangesPath)

	s.SetRandomFaults(1, 1, Fault502)
	s.InjectFaults(FaultNone, Fault429)
	var got []int
	for range 4 {
		got = append(got, c.changes().resp.StatusCode)
	}
	if want := []int{200, 429, 502, 502}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	s.InjectFaults(Fault500, Fault500)
	s.ClearFaults()
	if r := c.changes(); r.resp.StatusCode != 200 || s.PendingFaults() != 0 {
		t.Errorf("after ClearFaults: %d", r.resp.StatusCode)
	}
	s.SetRandomFaults(1, 0)
	if r := c.changes(); r.resp.StatusCode != 200 {
		t.Errorf("rate 0: %d", r.resp.StatusCode)
	}
}

func TestRandomFaults(t *testing.T) {
	run := func(seed int64) []FaultKind {
		s := New(Config{})
		defer s.Close()
		appendN(s, 3)
		s.SetRandomFaults(seed, 0.3, Fault500, Fault503Empty, FaultMalformedJSON)
		c := memClient(t, s)
		for range 1000 {
			c.changes()
		}
		var kinds []FaultKind
		for _, r := range s.Requests() {
			kinds = append(kinds, r.Fault)
		}
		st := s.Stats()
		if st.Faults < 240 || st.Faults > 360 || len(st.FaultsByKind) != 3 {
			t.Errorf("seed %d: %d faults %v at rate 0.3", seed, st.Faults, st.FaultsByKind)
		}
		return kinds
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Error("same seed, different faults")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same faults")
	}
	// Without kinds: all of them (except a hang, to keep the test short).
	s := New(Config{})
	defer s.Close()
	s.SetRandomFaults(1, 1)
	if got := len(s.random.kinds); got != len(AllFaultKinds()) {
		t.Errorf("%d kinds", got)
	}
}

// TestCloseUnblocksHTTP checks that Close ends requests hanging or
// delayed in a loopback handler, and waits for them.
func TestCloseUnblocksHTTP(t *testing.T) {
	for _, k := range []FaultKind{FaultHang, FaultDelay} {
		t.Run(k.String(), func(t *testing.T) {
			started := make(chan struct{})
			s := New(Config{FaultDelay: time.Hour, OnFault: func(FaultKind) { close(started) }})
			tr := transports[0]
			hc, base := tr.start(t, s)
			c := newClient(t, s, hc, base)
			s.InjectFaults(k)
			var wg sync.WaitGroup
			var r result
			wg.Go(func() { r = c.changes() })
			<-started
			s.Close()
			wg.Wait()
			if r.err == nil {
				t.Errorf("got %v, want an error", r.resp.Status)
			}
			if st := s.Stats(); st.ResourceChanges != 1 || len(st.StatusCodes) != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	s := New(Config{})
	s.Close()
	s.Close()
	_, err := s.Client().Get("http://" + MemoryHost + ResourceChangesPath)
	if !errors.Is(err, ErrClosed) {
		t.Errorf("in memory after Close: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("StartHTTP after Close did not panic")
		}
	}()
	s.StartHTTP()
}

func TestParseFaultKind(t *testing.T) {
	for _, k := range append(AllFaultKinds(), FaultNone) {
		got, err := ParseFaultKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseFaultKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := ParseFaultKind("nope"); err == nil {
		t.Error("no error for an unknown name")
	}
	if got := FaultKind(99).String(); got != "FaultKind(99)" {
		t.Errorf("String = %q", got)
	}
}
