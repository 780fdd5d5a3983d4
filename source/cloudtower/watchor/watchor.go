package watchor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	resource_change_client "github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of NewResourceChangeWatchClientParams, as in the SDK.
const (
	DefaultMaxRetries      = 3
	DefaultPollingInterval = time.Second
)

// Channel buffer sizes.
const (
	// EventBufferSize is the capacity of Channel, as in the SDK.
	EventBufferSize = 500
	// closeDelay is how long the channels stay open after a fatal error, so
	// that a consumer selecting over all three receives the error first.
	closeDelay = time.Second
)

var (
	// ErrAlreadyStarted is returned by Start while the client is started.
	// Call Stop first.
	ErrAlreadyStarted = errors.New("watch client already started")
	// ErrNotStarted is returned by Stop when the client is not started:
	// never started, stopped already, or stopped itself after a fatal error
	// (see ErrorChannel).
	ErrNotStarted = errors.New("watch client not started")
	// ErrInvalidParams is wrapped by the errors NewResourceChangeWatchClient
	// and Start return for invalid parameters; the message says which. It
	// wraps stream.ErrInvalidOption.
	ErrInvalidParams error = &wrapSentinel{msg: "invalid watch client parameters", err: stream.ErrInvalidOption}
)

// wrapSentinel is a sentinel error that wraps another one.
type wrapSentinel struct {
	msg string
	err error
}

func (e *wrapSentinel) Error() string { return e.msg }
func (e *wrapSentinel) Unwrap() error { return e.err }

// WarningEvent is a non-fatal failure: a poll failed and will be retried.
type WarningEvent struct {
	Err error
}

// ErrorEventType says why the client stopped.
type ErrorEventType string

const (
	// ErrorEventTypeCompacted: the position is below the server's compact
	// revision (ErrorEvent.CompactRevision); changes were lost.
	ErrorEventTypeCompacted ErrorEventType = "compacted"
	// ErrorEventTypeRequest: the retries were exhausted, or the server
	// refused the request or the credentials.
	ErrorEventTypeRequest ErrorEventType = "request"
	// ErrorEventTypeUnsupported: the server has no resource-change API
	// (HTTP 404).
	ErrorEventTypeUnsupported ErrorEventType = "unsupported"
)

// ErrorEvent is the fatal error that stopped the client.
type ErrorEvent struct {
	Type ErrorEventType
	// Err is the cause; never nil (unlike the SDK's, also not for
	// compaction, where it is a *stream.CompactedError).
	Err error
	// CompactRevision is the server's compact revision for
	// ErrorEventTypeCompacted, nil otherwise.
	CompactRevision *string
}

// NewResourceChangeWatchClientParams configures a ResourceChangeWatchClient.
type NewResourceChangeWatchClientParams struct {
	// Client is the CloudTower client (required), for example from
	// cloudtower.Dial.
	Client *client.Cloudtower
	// ClientOptions is applied to every request (may be nil), after the
	// API credentials and headers below: an AuthInfo it sets wins.
	ClientOptions resource_change_client.ClientOption
	// MaxRetries is how many retries in a row may fail before the client
	// stops with ErrorEventTypeRequest: 0 means DefaultMaxRetries (3), a
	// negative value is an error.
	MaxRetries int

	// ResourceID restricts the feed to one resource (nil or "" for all).
	ResourceID *string
	// ResourceTypes restricts the feed to these resource types (none for
	// all).
	ResourceTypes []string
	// PollingInterval is the wait between polls once caught up, and the
	// first backoff after a failure: 0 means DefaultPollingInterval (1 s),
	// a negative value is an error.
	PollingInterval time.Duration
}

// ResourceChangeWatchStartParams says where Start begins.
type ResourceChangeWatchStartParams struct {
	// StartRevision: deliver the changes after this revision. nil or ""
	// means from now (after the server's current head revision).
	StartRevision *string
}

// ResourceChangeWatchClient watches CloudTower's resource changes and
// delivers them on three channels; see the package documentation.
type ResourceChangeWatchClient struct {
	src        *cloudtower.Source
	maxRetries int
	interval   time.Duration

	mu  sync.Mutex          // serialises Start and Stop
	cur atomic.Pointer[run] // the latest run, or the next one before the first Start
}

// run is one Start: its channels and its poller.
type run struct {
	events   chan *models.ResourceChangeEvent
	warnings chan *WarningEvent
	errors   chan *ErrorEvent
	done     chan struct{} // closed when the poller has returned

	// guarded by the client's mu
	started bool
	stopped bool // Stop or a later Start ended it
	cancel  context.CancelFunc

	failed atomic.Bool // the poller stopped itself with a fatal error
}

func newRun() *run {
	return &run{
		events:   make(chan *models.ResourceChangeEvent, EventBufferSize),
		warnings: make(chan *WarningEvent, 1),
		errors:   make(chan *ErrorEvent, 1),
		done:     make(chan struct{}),
	}
}

// running reports whether r is started and has not stopped. Call with the
// client's mu held.
func (r *run) running() bool { return r.started && !r.stopped && !r.failed.Load() }

// end cancels r's poller and waits for it to return and close r's channels.
// Call with the client's mu held.
func (r *run) end() {
	if !r.started {
		return
	}
	r.stopped = true
	r.cancel()
	<-r.done
}

// NewResourceChangeWatchClient returns a client that is not started yet.
// It checks params (nil params, a nil Client, a negative MaxRetries or
// PollingInterval are errors wrapping ErrInvalidParams) and fills in the
// defaults; params itself is not modified.
//
// The source options extra, towerwatch's addition (the SDK's function has
// params only), configure the polls further, for example with the API
// credentials and headers that CloudTower's resource-change endpoint
// wants, so that nobody has to write a ClientOption by hand:
//
//	w, err := watchor.NewResourceChangeWatchClient(params,
//		cloudtower.APICredentials(apiUser, apiPassword), // HTTP Basic on GET /resource-changes
//		cloudtower.BypassWhitelist())                   // x-bypass-whitelist: true
//
// They apply before params.ClientOptions, so an AuthInfo that a caller's
// own ClientOptions sets wins. A client from cloudtower.Dial with
// Config.APIUsername and Config.Headers needs none of them.
func NewResourceChangeWatchClient(params *NewResourceChangeWatchClientParams, extra ...cloudtower.Option) (*ResourceChangeWatchClient, error) {
	if params == nil {
		return nil, fmt.Errorf("%w: params is nil", ErrInvalidParams)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidParams}, args...)...))
	}
	if params.Client == nil {
		bad("Client is nil")
	}
	if params.MaxRetries < 0 {
		bad("MaxRetries %d is negative", params.MaxRetries)
	}
	if params.PollingInterval < 0 {
		bad("PollingInterval %v is negative", params.PollingInterval)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	opts := append([]cloudtower.Option{cloudtower.ResourceTypes(params.ResourceTypes...)}, extra...)
	opts = append(opts, cloudtower.ClientOptions(params.ClientOptions))
	if params.ResourceID != nil {
		opts = append(opts, cloudtower.ResourceID(*params.ResourceID))
	}
	c := &ResourceChangeWatchClient{
		src:        cloudtower.New(params.Client, opts...),
		maxRetries: params.MaxRetries,
		interval:   params.PollingInterval,
	}
	if c.maxRetries == 0 {
		c.maxRetries = DefaultMaxRetries
	}
	if c.interval == 0 {
		c.interval = DefaultPollingInterval
	}
	c.cur.Store(newRun())
	return c, nil
}

// Start starts polling in a new goroutine, from params.StartRevision
// (exclusive), or from now when params, or its StartRevision, is nil or
// empty. It returns ErrAlreadyStarted while the client is started, and an
// error wrapping ErrInvalidParams (and stream.ErrInvalidRevision) for a
// StartRevision that is not a decimal number; the client then stays as it
// was.
//
// If the client ran before, Start first ends that run (closing its
// channels if they were still open after a fatal error) and makes new
// channels: call Channel, WarningChannel and ErrorChannel again.
func (c *ResourceChangeWatchClient) Start(params *ResourceChangeWatchStartParams) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.cur.Load()
	if r.running() {
		return ErrAlreadyStarted
	}
	from := stream.FromNow()
	if params != nil && params.StartRevision != nil && *params.StartRevision != "" {
		rev, err := stream.ParseRevision(*params.StartRevision)
		if err != nil {
			return fmt.Errorf("%w: StartRevision: %w", ErrInvalidParams, err)
		}
		from = stream.After(rev)
	}
	if r.started {
		r.end()
		r = newRun()
		c.cur.Store(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.started, r.cancel = true, cancel
	go c.poll(ctx, r, from)
	return nil
}

// Stop stops the client: it interrupts the poller wherever it is (request,
// backoff, interval, a send to a full Channel), waits for it to return and
// closes the channels, then returns nil. Changes still buffered in Channel
// can be read afterwards.
//
// It returns ErrNotStarted if the client is not started; if the client
// stopped itself after a fatal error and its channels are still open, Stop
// also closes them before returning ErrNotStarted.
func (c *ResourceChangeWatchClient) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.cur.Load()
	wasRunning := r.running()
	r.end()
	if !wasRunning {
		return ErrNotStarted
	}
	return nil
}

// Channel returns the change events of the latest Start (before the first
// Start, those the first Start will use). It is closed when that run ends;
// the next Start makes a new one. Its buffer holds 500 events.
func (c *ResourceChangeWatchClient) Channel() <-chan *models.ResourceChangeEvent {
	return c.cur.Load().events
}

// WarningChannel returns the warnings of the latest Start (see Channel).
// It holds only the newest warning; an older unread one is dropped.
func (c *ResourceChangeWatchClient) WarningChannel() <-chan *WarningEvent {
	return c.cur.Load().warnings
}

// ErrorChannel returns the fatal error of the latest Start (see Channel):
// at most one value, then it is closed.
func (c *ResourceChangeWatchClient) ErrorChannel() <-chan *ErrorEvent {
	return c.cur.Load().errors
}

// poll is the goroutine of run r: it feeds r's channels, and only r's, from
// the stream engine until ctx is cancelled or a fatal error happens, then
// closes them.
func (c *ResourceChangeWatchClient) poll(ctx context.Context, r *run, from stream.Option) {
	defer close(r.done)
	defer close(r.events)
	defer close(r.warnings)
	defer close(r.errors)

	var fatal error
	for ev, err := range c.src.Watch(ctx, from,
		stream.PollInterval(c.interval),
		stream.MaxRetries(c.maxRetries),
		stream.Backoff(c.interval, max(stream.DefaultMaxBackoff, c.interval)),
		stream.OnWarning(r.warn),
	) {
		if err != nil {
			fatal = err
			break
		}
		select {
		case r.events <- ev:
		case <-ctx.Done():
			return
		}
	}
	if fatal == nil || ctx.Err() != nil {
		return // stopped by Stop or Start
	}
	r.failed.Store(true) // before the error is visible: its reader may Start again at once
	r.errors <- errorEvent(fatal)
	t := time.NewTimer(closeDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// warn replaces the pending warning, if any, with err. It never waits. It
// runs on the poller goroutine only, the warnings channel's sole sender.
func (r *run) warn(err error) {
	w := &WarningEvent{Err: err}
	for {
		select {
		case r.warnings <- w:
			return
		default:
		}
		select {
		case <-r.warnings: // drop the older warning nobody read
		default:
		}
	}
}

// errorEvent classifies the error that ended the stream.
func errorEvent(err error) *ErrorEvent {
	var ce *stream.CompactedError
	switch {
	case errors.As(err, &ce):
		rev := ce.Compact.String()
		return &ErrorEvent{Type: ErrorEventTypeCompacted, Err: err, CompactRevision: &rev}
	case errors.Is(err, cloudtower.ErrUnsupported):
		return &ErrorEvent{Type: ErrorEventTypeUnsupported, Err: err}
	default:
		return &ErrorEvent{Type: ErrorEventTypeRequest, Err: err}
	}
}
