// Package bridge publishes a change feed into NATS JetStream from one
// active process at a time, without losing or duplicating a change across
// crashes, restarts and failovers.
//
//	js, _ := jetstream.New(nc)
//	b, err := bridge.NewCloudTower(js, cloudtower.New(client), bridge.Config{})
//	if err != nil { ... }
//	err = b.Run(ctx) // until ctx is done or a final error
//
// Run any number of bridges for the same stream, on different machines:
// one is the leader and publishes, the others stand by and take over when
// it stops.
//
// # How a bridge leads
//
//  1. It takes the leader lock (see Lock): a key in a JetStream key-value
//     bucket whose TTL is the lease time, created only if absent and then
//     renewed with a revision check every LockConfig.Renew.
//  2. It reads the last message of the stream back (sink.ReadLast): its
//     Towerwatch-Revision header is the last change published, by itself
//     or by a bridge before it.
//  3. It watches the source after that revision (stream.Watch with
//     stream.After) and publishes every change (sink.Publisher), each with
//     the stream sequence it must land on. When the stream is empty it
//     starts at Config.Start (by default at the source's head).
//
// A publish that fails, or a lost lease, ends the watch; while it holds the
// lease the bridge starts again at step 2 (after a wait under
// Config.Retry), so a change whose acknowledgement was lost is neither
// republished nor skipped. What ends Run instead follows stream.IsFinal:
// a *stream.RetryError of the watch is not final, the bridge reopens.
//
// # Why no change is lost or duplicated
//
// The position is read from JetStream itself, so whatever the previous
// leader managed to store is exactly what the next one continues after. The
// lock keeps a second bridge from publishing at the same time, but
// correctness does not rest on clocks: every message is published with the
// expected last stream sequence, so a message from a bridge that still
// believes it leads (a paused process whose lease expired) is refused by
// the server once another bridge has published, and a refused message
// stops the pipeline before anything after it is stored. The revision as
// Nats-Msg-Id makes the server also drop a copy republished within the
// stream's duplicate window.
//
// # Failover time
//
// A leader that stops gracefully (Run returns because its context was
// cancelled) deletes the key: a standby takes over at its next attempt,
// within LockConfig.Poll (1 s by default). A leader that crashes, or loses
// its connection, stops renewing: the server expires the key between
// TTL - Renew and TTL after the crash, and a standby takes over within Poll
// after that. With the defaults (TTL 10 s, Renew 2.5 s, Poll 1 s) that is
// at most about 11 s. A leader that cannot renew for a whole TTL stops
// publishing on its own (ErrLeaseExpired) and stands by.
//
// # Compaction
//
// If the source has discarded the history after the last published
// revision (a *stream.CompactedError: the bridge was down too long), Run
// returns that error, unless Config.ContinueAfterCompaction is set: then
// the bridge goes on after the source's compact revision, and the next
// message's Towerwatch-Prev-Revision header is that compact revision, so
// that consumers positioned before it get a *stream.CompactedError of
// their own and can re-list.
//
// # Hooks
//
// Config.OnPublished, OnLeader and OnPublishError report what the bridge
// does, for metrics (package promwatch wires them to Prometheus). They are
// called synchronously from the bridge's goroutines, one at a time, and
// must return quickly: a hook that blocks stalls publishing.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/internal/ctxtime"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

// DefaultRetryPolicy returns the policy of Config.Retry when it is zero:
// 100 ms growing twofold to 10 s, jitter 0.5, retrying forever.
func DefaultRetryPolicy() stream.RetryPolicy {
	p := stream.DefaultRetryPolicy()
	p.Min, p.Max = 100*time.Millisecond, 10*time.Second
	return p
}

// Config configures a Bridge. The zero value is usable.
type Config struct {
	// Sink names the stream and its limits (created or checked when the
	// bridge starts leading) and tunes the publisher.
	Sink sink.Config
	// Lock configures the leader lock.
	Lock LockConfig
	// Start is where to start when the stream is empty: stream.After(rev),
	// stream.FromStart() (the oldest change the source keeps) or
	// stream.FromNow() (the source's head: changes from now on), which
	// nil means.
	Start stream.Option
	// ContinueAfterCompaction makes the bridge go on after the source's
	// compact revision when the source has lost changes the stream has not
	// got, instead of returning the *stream.CompactedError. See the
	// package documentation.
	ContinueAfterCompaction bool
	// Watch holds options for stream.Watch over the source (PollInterval,
	// PageSize, OnPoll, Retry, ...). The start position options (After,
	// FromNow, FromStart) are overridden by the bridge. The engine logs to
	// Logger unless a stream.Logger option says otherwise.
	Watch []stream.Option
	// Retry is the policy of the waits before the bridge opens the lock
	// bucket again, or starts publishing again, after a failure; the zero
	// value means DefaultRetryPolicy(). Progress (a message acknowledged)
	// starts it over. With a MaxRetries limit, Run returns a
	// *stream.RetryError once that many reopenings in a row have failed.
	Retry stream.RetryPolicy
	// Logger receives the bridge's and the lock's events (default
	// slog.Default()).
	Logger *slog.Logger

	// OnPublished, if set, is called with n >= 1 each time the server has
	// acknowledged n more messages (in order; the batches follow the
	// acknowledgements as they arrive). It is called from the goroutine
	// that runs the bridge, or from the one goroutine per leadership that
	// collects acknowledgements while the source is quiet; never from two
	// at once. It must not block.
	OnPublished func(n int)
	// OnLeader, if set, is called with true when the bridge has taken the
	// leader lock, and with false when its lease has ended (lost, expired,
	// or released), from the goroutine that runs the bridge. It must not
	// block.
	OnLeader func(leader bool)
	// OnPublishError, if set, is called with each error that stops
	// publishing (a refused or unacknowledged message, a failed read-back,
	// an error of the watch), whether the bridge then tries again or Run
	// returns it; not with the end of a lease. It is called from the
	// goroutine that runs the bridge and must not block.
	OnPublishError func(error)
}

// Validate checks the configuration without contacting a server: the
// subject prefix, the lock's timings, the retry policy and the watch
// options. Its errors wrap stream.ErrInvalidOption.
func (c Config) Validate() error {
	if err := c.Sink.Validate(); err != nil {
		return err
	}
	if _, err := c.Lock.withDefaults(c.Sink.StreamName()); err != nil {
		return err
	}
	if c.Retry != (stream.RetryPolicy{}) {
		if err := c.Retry.Validate(); err != nil {
			return fmt.Errorf("bridge: Retry: %w", err)
		}
	}
	if err := stream.Validate(c.Watch...); err != nil {
		return fmt.Errorf("bridge: Watch: %w", err)
	}
	if err := c.Start.Err(); err != nil {
		return fmt.Errorf("bridge: Start: %w", err)
	}
	return nil
}

// Bridge publishes a stream.Source into JetStream; see the package
// documentation.
type Bridge[E any] struct {
	js    jetstream.JetStream
	src   stream.Source[E]
	codec wire.Codec[E]
	cfg   Config
}

// New returns a bridge from src into the JetStream js, encoding items with
// codec. It checks the configuration but does not contact the server.
func New[E any](js jetstream.JetStream, src stream.Source[E], codec wire.Codec[E], cfg Config) (*Bridge[E], error) {
	if js == nil || src == nil || codec == nil {
		return nil, fmt.Errorf("bridge: %w: nil JetStream, source or codec", stream.ErrInvalidOption)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Retry == (stream.RetryPolicy{}) {
		cfg.Retry = DefaultRetryPolicy()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Lock.Logger == nil {
		cfg.Lock.Logger = cfg.Logger
	}
	return &Bridge[E]{js: js, src: src, codec: codec, cfg: cfg}, nil
}

// NewCloudTower returns a bridge of CloudTower change events (a
// *cloudtower.Source, or any Source of them) in the wire.CloudTower format.
func NewCloudTower(js jetstream.JetStream, src stream.Source[*models.ResourceChangeEvent], cfg Config) (*Bridge[*models.ResourceChangeEvent], error) {
	return New[*models.ResourceChangeEvent](js, src, wire.CloudTower{}, cfg)
}

// Run takes part in the leader election and, while it leads, publishes
// the source's changes. It returns when ctx is done (with ctx.Err(),
// having released the lock) or with a final error (stream.IsFinal): an
// error marked stream.Fatal by the source, a *stream.CompactedError (see
// Config.ContinueAfterCompaction), an invalid option; or with a stream
// that does not match the configuration (sink.ErrStreamMismatch, a
// message that is not in the wire format), or a *stream.RetryError once
// Config.Retry's MaxRetries are used up. Other failures, a
// *stream.RetryError of the watch included, are logged and retried.
func (b *Bridge[E]) Run(ctx context.Context) error {
	for _, err := range b.Published(ctx) {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Published is Run as a sequence: it yields each change once the bridge
// has handed it to JetStream (its acknowledgement may still be in flight),
// and ends like Run, with Run's error as its last value. Breaking out of
// the loop, or cancelling ctx, stops the bridge: it waits (up to the
// sink's AckTimeout) for the acknowledgements in flight, then releases
// the lock. The changes yielded are then stored, unless the server
// refused them (see the log); changes the bridge had handed over but not
// yet yielded (at most one) may be stored too. A slow loop body slows the
// bridge down.
func (b *Bridge[E]) Published(ctx context.Context) iter.Seq2[E, error] {
	return func(yield func(E, error) bool) {
		var zero E
		if err := b.run(ctx, yield); err != nil {
			yield(zero, err)
		}
	}
}

// errStop is returned by lead when the consumer of Published broke.
var errStop = errors.New("stop")

func (b *Bridge[E]) run(ctx context.Context, yield func(E, error) bool) error {
	lock, err := b.newLock(ctx)
	if err != nil {
		return err
	}
	if _, err := sink.EnsureStream(ctx, b.js, b.cfg.Sink); err != nil {
		if errors.Is(err, sink.ErrStreamMismatch) {
			return err
		}
		b.cfg.Logger.Warn("towerwatch bridge: checking the stream failed, will retry when leading", "error", err)
	}
	for {
		lease, err := lock.Acquire(ctx)
		if err != nil {
			return ctx.Err()
		}
		if b.cfg.OnLeader != nil {
			b.cfg.OnLeader(true)
		}
		err = b.lead(lease.Context(), yield)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := lease.Release(rctx); rerr != nil {
			b.cfg.Logger.Warn("towerwatch bridge: releasing the leader lock failed; it expires by itself", "error", rerr)
		}
		cancel()
		if b.cfg.OnLeader != nil {
			b.cfg.OnLeader(false)
		}
		switch {
		case errors.Is(err, errStop):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		}
		// The lease was lost: stand by again.
	}
}

func (b *Bridge[E]) newLock(ctx context.Context) (*Lock, error) {
	retry := b.cfg.Retry.Start()
	for {
		lock, err := NewLock(ctx, b.js, b.cfg.Sink.StreamName(), b.cfg.Lock)
		if err == nil {
			return lock, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait, ok := retry.Next(err)
		if !ok {
			return nil, &stream.RetryError{Attempts: retry.Failures(), Err: err}
		}
		b.cfg.Logger.Warn("towerwatch bridge: opening the lock bucket failed, retrying", "error", err, "retry_in", wait)
		if err := ctxtime.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// lead publishes while ctx (the lease's) lasts. It returns nil when ctx is
// done, errStop when the consumer broke, or an error that ends Run.
func (b *Bridge[E]) lead(ctx context.Context, yield func(E, error) bool) error {
	pub := sink.NewPublisher(b.js, b.codec, b.cfg.Sink)
	if b.cfg.OnPublished != nil {
		pub.OnAcked(b.cfg.OnPublished)
	}
	retry := b.cfg.Retry.Start()
	var published uint64 // the stream's sequence after the last session
	for {
		err := b.session(ctx, pub, yield)
		if ctx.Err() != nil || errors.Is(err, errStop) {
			b.flush(ctx, pub)
			if errors.Is(err, errStop) {
				return err
			}
			return nil // the lease ended: whatever failed, failed because of it
		}
		if err != nil && b.cfg.OnPublishError != nil {
			b.cfg.OnPublishError(err)
		}
		if final(err) {
			return err
		}
		// The watch failed, not the publisher: let what is in flight land
		// before the next session reads the stream back.
		b.flush(ctx, pub)
		if seq := pub.Acked().Sequence; seq > published {
			published = seq
			retry.Reset() // the session made progress: start the waits over
		}
		wait, ok := retry.Next(err)
		if !ok {
			return &stream.RetryError{Attempts: retry.Failures(), Err: err, Position: pub.Acked().Revision}
		}
		b.cfg.Logger.Warn("towerwatch bridge: publishing stopped, resuming from the stream's last message", "error", err, "retry_in", wait)
		if err := ctxtime.Sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

// reapInterval is how often the reaper collects acknowledgements.
const reapInterval = 10 * time.Millisecond

// reaper starts the goroutine that collects the acknowledgements that
// arrive while no Publish does (the source is quiet, or the consumer of
// Published is slow), so that OnPublished does not lag and a refused
// message ends the session at once (with cancel) instead of at the next
// change. It returns the function that stops it and waits for it.
func (b *Bridge[E]) reaper(pub *sink.Publisher[E], cancel context.CancelCauseFunc) func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(reapInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := pub.Reap(); err != nil {
					cancel(err)
					return
				}
			}
		}
	}()
	return func() { close(stop); <-done }
}

// flush waits, at most AckTimeout and even though ctx is done, for the
// acknowledgements of the messages in flight when the bridge stops (so
// that what Published yielded is stored unless the server refused it) or
// is about to read the stream back. It does nothing after a publish
// failure.
func (b *Bridge[E]) flush(ctx context.Context, pub *sink.Publisher[E]) {
	if pub.Pending() == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pub.Config().AckTimeout)
	defer cancel()
	if err := pub.Flush(fctx); err != nil {
		b.cfg.Logger.Warn("towerwatch bridge: waiting for the acknowledgements in flight", "error", err)
	}
}

// final reports whether err, the error of a session whose lease is still
// held, ends Run: stream.IsFinal, except that a context error is then the
// timeout of one request, and a stream that does not fit.
func final(err error) bool {
	switch {
	case errors.Is(err, sink.ErrStreamMismatch), errors.Is(err, wire.ErrMessage):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return stream.IsFatal(err)
	}
	return stream.IsFinal(err)
}

// session is one read-back, watch and publish cycle.
func (b *Bridge[E]) session(ctx context.Context, pub *sink.Publisher[E], yield func(E, error) bool) error {
	if _, err := sink.EnsureStream(ctx, b.js, b.cfg.Sink); err != nil {
		return err
	}
	pos, err := pub.Sync(ctx)
	if err != nil {
		return err
	}
	after := pos.Revision
	b.cfg.Logger.Info("towerwatch bridge: publishing", "stream", pub.Config().Stream, "after", after.String(), "sequence", pos.Sequence)

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopReaper := b.reaper(pub, cancel)
	defer stopReaper()
	err = b.publishAll(sctx, pub, after, yield)
	if ctx.Err() == nil && sctx.Err() != nil {
		return context.Cause(sctx) // the reaper found a refused message
	}
	return err
}

// publishAll publishes after after, and on after the compact revision
// when the source lost changes and Config.ContinueAfterCompaction is set.
func (b *Bridge[E]) publishAll(ctx context.Context, pub *sink.Publisher[E], after stream.Revision, yield func(E, error) bool) error {
	for {
		err := b.publish(ctx, pub, after, yield)
		var ce *stream.CompactedError
		if !b.cfg.ContinueAfterCompaction || !errors.As(err, &ce) {
			return err
		}
		// Everything before the compaction is published (the watch ended
		// there); flush it, then go on after the compact revision.
		if err := pub.Flush(ctx); err != nil {
			return err
		}
		b.cfg.Logger.Warn("towerwatch bridge: the source lost changes; continuing after its compact revision",
			"position", ce.Position.String(), "compact", ce.Compact.String())
		if err := pub.Restart(ce.Compact); err != nil {
			return err
		}
		after = ce.Compact
	}
}

// publish watches the source after after (at Config.Start if after is
// zero: the stream is empty) and publishes each change.
func (b *Bridge[E]) publish(ctx context.Context, pub *sink.Publisher[E], after stream.Revision, yield func(E, error) bool) error {
	src, start := b.src, stream.After(after)
	var first *startSource[E]
	if after.IsZero() {
		// The engine finds the start (the head for FromNow); the first
		// message carries it as its previous revision.
		first = &startSource[E]{Source: b.src}
		src, start = first, b.cfg.Start
		if start == nil {
			start = stream.FromNow()
		}
	}
	opts := append(append([]stream.Option{stream.Logger(b.cfg.Logger)}, b.cfg.Watch...), start)
	for item, err := range stream.Watch(ctx, src, opts...) {
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if first != nil {
			if err := pub.Restart(first.start()); err != nil {
				return err
			}
			first = nil
		}
		if err := pub.Publish(ctx, item); err != nil {
			return err
		}
		if !yield(item, nil) {
			return errStop
		}
	}
	return nil
}

// startSource passes a Source through and notes where the watch over it
// starts, as the engine does: at the head the poll after the zero
// revision reports ("0" if none), or after the revision of the first
// poll after one, moved up to that page's compact revision (FromStart
// moves there; After ends with a *stream.CompactedError, before anything
// is published).
type startSource[E any] struct {
	stream.Source[E]
	mu    sync.Mutex
	pos   stream.Revision
	state int // 0: nothing polled, 1: head learned, 2: first page seen
}

func (s *startSource[E]) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[E], error) {
	page, err := s.Source.Poll(ctx, after, limit)
	if err != nil {
		return page, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state == 0 && after.IsZero():
		s.pos, s.state = page.Head, 1
		if s.pos.IsZero() {
			s.pos = stream.RevisionFromUint64(0)
		}
	case s.state < 2 && !after.IsZero():
		if s.state == 0 {
			s.pos = after
		}
		if s.pos.Less(page.Compact) {
			s.pos = page.Compact
		}
		s.state = 2
	}
	return page, nil
}

func (s *startSource[E]) start() stream.Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}
