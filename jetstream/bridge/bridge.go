// Package bridge publishes a change feed into NATS JetStream from one
// active process at a time, without losing or duplicating a change across
// crashes, restarts and failovers.
//
//	js, _ := jetstream.New(nc)
//	b, err := bridge.NewCloudTower(js, cloudtower.New(client), bridge.Config{})
//	if err != nil { ... }
//	err = b.Run(ctx) // until ctx is done or a fatal error
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
//     starts after Config.Start, or at the source's head.
//
// A publish that fails, or a lost lease, ends the watch; while it holds the
// lease the bridge starts again at step 2 (after a backoff), so a change
// whose acknowledgement was lost is neither republished nor skipped.
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
package bridge

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/internal/ctxtime"
	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of Config.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Config configures a Bridge. The zero value is usable.
type Config struct {
	// Sink names the stream and its limits (created or checked when the
	// bridge starts leading) and tunes the publisher.
	Sink sink.Config
	// Lock configures the leader lock.
	Lock LockConfig
	// Start is the revision to start after when the stream is empty. The
	// zero Revision means the source's head: changes from now on.
	Start stream.Revision
	// ContinueAfterCompaction makes the bridge go on after the source's
	// compact revision when the source has lost changes the stream has not
	// got, instead of returning the *stream.CompactedError. See the
	// package documentation.
	ContinueAfterCompaction bool
	// Watch holds options for stream.Watch over the source (PollInterval,
	// PageSize, OnPoll, ...). The start position options (After, FromNow)
	// are overridden by the bridge. The engine logs to Logger unless a
	// stream.Logger option says otherwise.
	Watch []stream.Option
	// MinBackoff and MaxBackoff bound the wait before the bridge starts
	// leading again after a failure; defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the bridge's and the lock's events (default
	// slog.Default()).
	Logger *slog.Logger
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
		return nil, errors.New("bridge: nil JetStream, source or codec")
	}
	if err := wire.ValidPrefix(sinkDefaults(cfg.Sink).Prefix); err != nil {
		return nil, err
	}
	if _, err := cfg.Lock.withDefaults(cfg.Sink.StreamName()); err != nil {
		return nil, err
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Lock.Logger == nil {
		cfg.Lock.Logger = cfg.Logger
	}
	return &Bridge[E]{js: js, src: src, codec: codec, cfg: cfg}, nil
}

func sinkDefaults(c sink.Config) sink.Config {
	if c.Prefix == "" {
		c.Prefix = wire.DefaultPrefix
	}
	return c
}

// NewCloudTower returns a bridge of CloudTower change events (a
// *cloudtower.Source, or any Source of them) in the wire.CloudTower format.
func NewCloudTower(js jetstream.JetStream, src stream.Source[*models.ResourceChangeEvent], cfg Config) (*Bridge[*models.ResourceChangeEvent], error) {
	return New[*models.ResourceChangeEvent](js, src, wire.CloudTower{}, cfg)
}

// Run takes part in the leader election and, while it leads, publishes
// the source's changes. It returns when ctx is done (with ctx.Err(),
// having released the lock) or with a fatal error: an error marked
// stream.Fatal by the source, a *stream.CompactedError (see
// Config.ContinueAfterCompaction), a *stream.RetryError (when
// stream.MaxRetries is among the Watch options), or a stream that does
// not match the configuration. Other failures are logged and retried.
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
		err = b.lead(lease.Context(), yield)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if rerr := lease.Release(rctx); rerr != nil {
			b.cfg.Logger.Warn("towerwatch bridge: releasing the leader lock failed; it expires by itself", "error", rerr)
		}
		cancel()
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
	bo := b.backoff()
	for {
		lock, err := NewLock(ctx, b.js, b.cfg.Sink.StreamName(), b.cfg.Lock)
		if err == nil {
			return lock, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b.cfg.Logger.Warn("towerwatch bridge: opening the lock bucket failed, retrying", "error", err)
		if err := ctxtime.Sleep(ctx, bo()); err != nil {
			return nil, err
		}
	}
}

// lead publishes while ctx (the lease's) lasts. It returns nil when ctx is
// done, errStop when the consumer broke, or a fatal error.
func (b *Bridge[E]) lead(ctx context.Context, yield func(E, error) bool) error {
	pub := sink.NewPublisher(b.js, b.codec, b.cfg.Sink)
	bo := b.backoff()
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
		if fatal(err) {
			return err
		}
		if seq := pub.Acked().Sequence; seq > published {
			published = seq
			bo = b.backoff() // the session made progress: start the backoff over
		}
		wait := bo()
		b.cfg.Logger.Warn("towerwatch bridge: publishing stopped, resuming from the stream's last message", "error", err, "retry_in", wait)
		if err := ctxtime.Sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

// flush waits, at most AckTimeout and even though ctx is done, for the
// acknowledgements of the messages in flight when the bridge stops, so
// that what Published yielded is stored unless the server refused it.
func (b *Bridge[E]) flush(ctx context.Context, pub *sink.Publisher[E]) {
	if pub.Pending() == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pub.Config().AckTimeout)
	defer cancel()
	if err := pub.Flush(fctx); err != nil {
		b.cfg.Logger.Warn("towerwatch bridge: waiting for the last acknowledgements on stop", "error", err)
	}
}

func fatal(err error) bool {
	return stream.IsFatal(err) || errors.Is(err, stream.ErrCompacted) || errors.Is(err, stream.ErrRetriesExhausted) ||
		errors.Is(err, stream.ErrInvalidOption) || errors.Is(err, sink.ErrStreamMismatch) || errors.Is(err, wire.ErrMessage)
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
	if after.IsZero() {
		after = b.cfg.Start
		if after.IsZero() {
			after, err = b.head(ctx)
			if err != nil {
				return err
			}
		}
		if err := pub.Restart(after); err != nil {
			return err
		}
	}
	b.cfg.Logger.Info("towerwatch bridge: publishing", "stream", pub.Config().Stream, "after", after.String(), "sequence", pos.Sequence)
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

func (b *Bridge[E]) publish(ctx context.Context, pub *sink.Publisher[E], after stream.Revision, yield func(E, error) bool) error {
	opts := append(append([]stream.Option{stream.Logger(b.cfg.Logger)}, b.cfg.Watch...), stream.After(after))
	for item, err := range stream.Watch(ctx, b.src, opts...) {
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
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

// head asks the source for its head revision, retrying like the engine.
func (b *Bridge[E]) head(ctx context.Context) (stream.Revision, error) {
	bo := b.backoff()
	for {
		page, err := b.src.Poll(ctx, stream.Revision{}, 1)
		if err == nil {
			if page.Head.IsZero() {
				return stream.RevisionFromUint64(0), nil
			}
			return page.Head, nil
		}
		if ctx.Err() != nil {
			return stream.Revision{}, ctx.Err()
		}
		if stream.IsFatal(err) {
			return stream.Revision{}, err
		}
		wait := bo()
		b.cfg.Logger.Warn("towerwatch bridge: reading the source's head failed, retrying", "error", err, "retry_in", wait)
		if err := ctxtime.Sleep(ctx, wait); err != nil {
			return stream.Revision{}, err
		}
	}
}

// backoff returns a function that returns growing waits, doubling from
// MinBackoff to MaxBackoff.
func (b *Bridge[E]) backoff() func() time.Duration {
	next := b.cfg.MinBackoff
	return func() time.Duration {
		d := next
		next = min(next*2, b.cfg.MaxBackoff)
		return d
	}
}
