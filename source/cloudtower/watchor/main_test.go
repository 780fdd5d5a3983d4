package watchor_test

import (
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	sdkwatchor "github.com/smartxworks/cloudtower-go-sdk/v2/watchor"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/watchor"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

func TestMain(m *testing.M) {
	// The engine logs every retry at Warn level; the tests cause many.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// This file runs one test body against two implementations of the
// three-channel client: towerwatch's (this package) and the SDK's original,
// each inside a testing/synctest bubble over the fake server's in-memory
// transport, so that hours of polling intervals and backoffs pass in no
// real time, and a body can give up after a fake-time deadline where the
// original would hang forever.

// params are the client parameters a test sets; both implementations get
// the same.
type params struct {
	maxRetries int
	interval   time.Duration
	types      []string
}

// errInfo is an ErrorEvent of either implementation.
type errInfo struct {
	Type    string
	Err     error
	Compact *string
}

func (e errInfo) String() string {
	c := "<nil>"
	if e.Compact != nil {
		c = *e.Compact
	}
	return fmt.Sprintf("{Type:%s CompactRevision:%s Err:%v}", e.Type, c, e.Err)
}

// watchClient is the API both implementations share; W, E and P are their
// *WarningEvent, *ErrorEvent and *ResourceChangeWatchStartParams types.
type watchClient[W, E, P any] interface {
	Start(P) error
	Stop() error
	Channel() <-chan *models.ResourceChangeEvent
	WarningChannel() <-chan W
	ErrorChannel() <-chan E
}

// adapter drives one client of either implementation.
type adapter[W, E, P any] struct {
	c       watchClient[W, E, P]
	params  func(rev *string) P // &ResourceChangeWatchStartParams{StartRevision: rev}
	warnErr func(W) error
	info    func(E) errInfo
}

// start calls Start(&{StartRevision: rev}); a panic is returned as an error.
func (a *adapter[W, E, P]) start(rev *string) (err error) {
	defer recoverInto(&err)
	return a.c.Start(a.params(rev))
}

// startNilParams calls Start(nil); a panic is returned as an error.
func (a *adapter[W, E, P]) startNilParams() (err error) {
	defer recoverInto(&err)
	var nilParams P
	return a.c.Start(nilParams)
}

func recoverInto(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("panic: %v", p)
	}
}

func (a *adapter[W, E, P]) stop() error                                { return a.c.Stop() }
func (a *adapter[W, E, P]) events() <-chan *models.ResourceChangeEvent { return a.c.Channel() }

// chans returns the three channels, for identity comparisons.
func (a *adapter[W, E, P]) chans() [3]any {
	return [3]any{a.c.Channel(), a.c.WarningChannel(), a.c.ErrorChannel()}
}

// pendingWarning returns the warning waiting in WarningChannel, if any,
// without waiting.
func (a *adapter[W, E, P]) pendingWarning() (error, bool) {
	select {
	case w, ok := <-a.c.WarningChannel():
		if ok {
			return a.warnErr(w), true
		}
	default:
	}
	return nil, false
}

// pendingError returns the error waiting in ErrorChannel, if any, without
// waiting.
func (a *adapter[W, E, P]) pendingError() (errInfo, bool) {
	select {
	case e, ok := <-a.c.ErrorChannel():
		if ok {
			return a.info(e), true
		}
	default:
	}
	return errInfo{}, false
}

// recvEvents reads n events from Channel, and nothing else, within d.
func (a *adapter[W, E, P]) recvEvents(n int, d time.Duration) ([]*models.ResourceChangeEvent, error) {
	deadline := time.After(d)
	var got []*models.ResourceChangeEvent
	for len(got) < n {
		select {
		case ev, ok := <-a.c.Channel():
			if !ok {
				return got, fmt.Errorf("Channel closed after %d of %d events", len(got), n)
			}
			got = append(got, ev)
		case <-deadline:
			return got, fmt.Errorf("only %d of %d events within %v", len(got), n, d)
		}
	}
	return got, nil
}

// collect reads Channel and WarningChannel for d and returns the events.
func (a *adapter[W, E, P]) collect(d time.Duration) []*models.ResourceChangeEvent {
	deadline := time.After(d)
	var got []*models.ResourceChangeEvent
	for {
		select {
		case ev, ok := <-a.c.Channel():
			if !ok {
				return got
			}
			got = append(got, ev)
		case <-a.c.WarningChannel():
		case <-deadline:
			return got
		}
	}
}

// nextError waits up to d for the fatal error, reading Channel and
// WarningChannel meanwhile like the SDK's usage example; it fails if a
// channel is closed first. It returns the events and the number of
// warnings read before the error.
func (a *adapter[W, E, P]) nextError(d time.Duration) (errInfo, []*models.ResourceChangeEvent, int, error) {
	deadline := time.After(d)
	var evs []*models.ResourceChangeEvent
	warnings := 0
	for {
		select {
		case ev, ok := <-a.c.Channel():
			if !ok {
				return errInfo{}, evs, warnings, fmt.Errorf("Channel closed before an error arrived (%d events)", len(evs))
			}
			evs = append(evs, ev)
		case _, ok := <-a.c.WarningChannel():
			if !ok {
				return errInfo{}, evs, warnings, fmt.Errorf("WarningChannel closed before an error arrived")
			}
			warnings++
		case e, ok := <-a.c.ErrorChannel():
			if !ok {
				return errInfo{}, evs, warnings, fmt.Errorf("ErrorChannel closed without an error")
			}
			return a.info(e), evs, warnings, nil
		case <-deadline:
			return errInfo{}, evs, warnings, fmt.Errorf("no error within %v (%d events, %d warnings)", d, len(evs), warnings)
		}
	}
}

// closedWithin reads Channel, and nothing else, until it is closed, within d.
func (a *adapter[W, E, P]) closedWithin(d time.Duration) error {
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-a.c.Channel():
			if !ok {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("Channel not closed within %v", d)
		}
	}
}

// drainNow reads the events buffered in Channel without waiting and
// reports how many there were, and whether all three channels are closed.
func (a *adapter[W, E, P]) drainNow() (n int, closed bool) {
	ch := a.c.Channel()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return n, closedNow(a.c.WarningChannel()) && closedNow(a.c.ErrorChannel())
			}
			n++
		default:
			return n, false
		}
	}
}

// closedNow reports whether ch is closed, reading at most one buffered
// value first, without waiting.
func closedNow[T any](ch <-chan T) bool {
	for range 2 {
		select {
		case _, ok := <-ch:
			if !ok {
				return true
			}
		default:
			return false
		}
	}
	return false
}

// drain reads all three channels until all are closed.
func (a *adapter[W, E, P]) drain() {
	ev, w, e := a.c.Channel(), a.c.WarningChannel(), a.c.ErrorChannel()
	for ev != nil || w != nil || e != nil {
		select {
		case _, ok := <-ev:
			if !ok {
				ev = nil
			}
		case _, ok := <-w:
			if !ok {
				w = nil
			}
		case _, ok := <-e:
			if !ok {
				e = nil
			}
		}
	}
}

// watcher is what a test body sees of either implementation.
type watcher interface {
	start(rev *string) error
	startNilParams() error
	stop() error
	events() <-chan *models.ResourceChangeEvent
	chans() [3]any
	pendingWarning() (error, bool)
	pendingError() (errInfo, bool)
	recvEvents(n int, d time.Duration) ([]*models.ResourceChangeEvent, error)
	collect(d time.Duration) []*models.ResourceChangeEvent
	nextError(d time.Duration) (errInfo, []*models.ResourceChangeEvent, int, error)
	closedWithin(d time.Duration) error
	drainNow() (n int, closed bool)
	drain()
}

// impl opens clients of one implementation.
type impl struct {
	name string
	open func(c *client.Cloudtower, p params) (watcher, error)
}

var (
	towerwatch = impl{"towerwatch", openTowerwatch}
	original   = impl{"sdk", openSDK}
)

func openTowerwatch(c *client.Cloudtower, p params) (watcher, error) {
	w, err := watchor.NewResourceChangeWatchClient(&watchor.NewResourceChangeWatchClientParams{
		Client: c, MaxRetries: p.maxRetries, ResourceTypes: p.types, PollingInterval: p.interval,
	})
	if err != nil {
		return nil, err
	}
	return adapt(w), nil
}

// adapt wraps a towerwatch client.
func adapt(w *watchor.ResourceChangeWatchClient) watcher {
	return &adapter[*watchor.WarningEvent, *watchor.ErrorEvent, *watchor.ResourceChangeWatchStartParams]{
		c: w,
		params: func(rev *string) *watchor.ResourceChangeWatchStartParams {
			return &watchor.ResourceChangeWatchStartParams{StartRevision: rev}
		},
		warnErr: func(e *watchor.WarningEvent) error { return e.Err },
		info: func(e *watchor.ErrorEvent) errInfo {
			return errInfo{Type: string(e.Type), Err: e.Err, Compact: e.CompactRevision}
		},
	}
}

func openSDK(c *client.Cloudtower, p params) (watcher, error) {
	w, err := sdkwatchor.NewResourceChangeWatchClient(&sdkwatchor.NewResourceChangeWatchClientParams{
		Client: c, ClientOptions: func(*runtime.ClientOperation) {}, // it refuses nil
		MaxRetries: p.maxRetries, ResourceTypes: p.types, PollingInterval: p.interval,
	})
	if err != nil {
		return nil, err
	}
	return &adapter[*sdkwatchor.WarningEvent, *sdkwatchor.ErrorEvent, *sdkwatchor.ResourceChangeWatchStartParams]{
		c: w,
		params: func(rev *string) *sdkwatchor.ResourceChangeWatchStartParams {
			return &sdkwatchor.ResourceChangeWatchStartParams{StartRevision: rev}
		},
		warnErr: func(e *sdkwatchor.WarningEvent) error { return e.Err },
		info: func(e *sdkwatchor.ErrorEvent) errInfo {
			return errInfo{Type: string(e.Type), Err: e.Err, Compact: e.CompactRevision}
		},
	}, nil
}

// env is what a test body gets: a fake server inside a synctest bubble, and
// clients of the implementation under test.
type env struct {
	t      *testing.T
	s      *fakeserver.Server
	impl   impl
	opened []watcher
}

// open returns a client of the implementation under test over the fake
// server's in-memory transport; the bubble stops and drains it at the end.
func (e *env) open(p params) watcher {
	return e.openWith(memoryClient(e.t, e.s, ""), p)
}

// openWith is open with another SDK client.
func (e *env) openWith(c *client.Cloudtower, p params) watcher {
	e.t.Helper()
	w, err := e.impl.open(c, p)
	if err != nil {
		e.t.Fatalf("%s: NewResourceChangeWatchClient: %v", e.impl.name, err)
	}
	e.opened = append(e.opened, w)
	return w
}

// memoryClient is an SDK client of s over its in-memory transport, with a
// token (no login request); basePath "" is the right one.
func memoryClient(t *testing.T, s *fakeserver.Server, basePath string) *client.Cloudtower {
	t.Helper()
	c, err := cloudtower.Dial(t.Context(), cloudtower.Config{
		Host: "http://" + fakeserver.MemoryHost, BasePath: basePath, Token: s.Token(), APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
		Transport: s.Transport(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// inBubble runs body in a synctest bubble with a new fake server and im.
// Afterwards it stops every client, closes the server (which ends hung
// requests) and drains every channel until closed, so that even the SDK's
// poller, stuck where the body left it, returns before the bubble ends.
func inBubble(t *testing.T, cfg fakeserver.Config, im impl, body func(*env) error) (err error) {
	synctest.Test(t, func(t *testing.T) {
		e := &env{t: t, s: fakeserver.New(cfg), impl: im}
		defer func() {
			for _, w := range e.opened {
				_ = w.stop()
			}
			e.s.Close()
			for _, w := range e.opened {
				w.drain()
			}
		}()
		err = body(e)
	})
	return err
}

// defect runs body against towerwatch's client, where it must pass, and
// against the SDK's original, where it must fail: why says how the
// original goes wrong.
func defect(t *testing.T, cfg fakeserver.Config, why string, body func(*env) error) {
	t.Helper()
	t.Run(towerwatch.name, func(t *testing.T) {
		if err := inBubble(t, cfg, towerwatch, body); err != nil {
			t.Fatal(err)
		}
	})
	t.Run(original.name, func(t *testing.T) {
		err := inBubble(t, cfg, original, body)
		if err == nil {
			t.Fatalf("the SDK's watchor passed; it was expected to fail because %s", why)
		}
		t.Logf("the SDK's watchor fails, as expected (%s): %v", why, err)
	})
}

// compat runs body against both implementations; both must pass.
func compat(t *testing.T, cfg fakeserver.Config, body func(*env) error) {
	t.Helper()
	for _, im := range []impl{towerwatch, original} {
		t.Run(im.name, func(t *testing.T) {
			if err := inBubble(t, cfg, im, body); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
