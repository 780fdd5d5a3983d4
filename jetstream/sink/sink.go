// Package sink publishes a change feed into a NATS JetStream stream, in the
// format of package wire: one subject per item kind under a prefix, the
// revision as the message id (Nats-Msg-Id) and in the Towerwatch-Revision
// header, and the previous revision in Towerwatch-Prev-Revision.
//
// EnsureStream creates the stream, or checks and updates an existing one.
// A Publisher appends items to it:
//
//	pub := sink.NewPublisher(js, wire.CloudTower{}, sink.Config{})
//	pos, err := pub.Sync(ctx) // the last revision already on the stream
//	...
//	for ev, err := range src.Watch(ctx, stream.After(pos.Revision)) {
//		if err != nil { ... }
//		if err := pub.Publish(ctx, ev); err != nil { ... }
//	}
//	err = pub.Flush(ctx)
//
// # Guarantees
//
// A Publisher never leaves a gap and never stores a revision twice, even
// when several publishers race for the same stream or a publish fails in
// the middle of a pipeline:
//
//   - every message is published with the expected last sequence of the
//     stream (Nats-Expected-Last-Sequence): the publisher knows which
//     sequence the stream must be at, because Sync read it back and every
//     acknowledged message advanced it by one. If anything else was stored
//     in between (another publisher, a retried message), or an earlier
//     message of the pipeline was lost, the server refuses the message,
//     and every later one, instead of storing it out of place;
//   - every message carries its revision as Nats-Msg-Id, so that the
//     server drops a second copy published within the stream's duplicate
//     window;
//   - revisions must strictly increase: Publish refuses an item at or
//     below the last one.
//
// After any error the Publisher refuses further items: Sync again (which
// reads the stream's true state), then resume the feed after the revision
// Sync returned. This read-back, not the duplicate window (which is only
// time-based), is what makes a restart exact. Package bridge does all of
// this, plus a leader lock so that only one publisher is active.
//
// The stream must belong to the publisher: a message on the stream from
// anyone else makes the next publish fail its expected sequence.
//
// # Pipelining
//
// Publish does not wait for the server's acknowledgement: up to
// Config.MaxPending messages are in flight, which makes the throughput
// independent of the round-trip time. Publish returns the error of an
// earlier message once it has been found: by Reap (package bridge calls
// it every few milliseconds), by a Publish that finds the window full, or
// by Flush, which waits for every acknowledgement. A Publisher is not safe for concurrent use, except for
// Reap.
//
// To cost little per message, a Publisher reuses one nats.Msg (and, with a
// codec that implements wire.HeaderEncoder, its header map) for all its
// messages, and publishes without the client library's retries after a
// "no responders" answer (the message fails, the Publisher stops; Sync
// and go on). An asynchronous error or acknowledgement handler set on the
// JetStream context therefore sees the current message, not the one it
// is called for.
package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of Config.
const (
	DefaultMaxPending = 2048
	DefaultAckTimeout = 10 * time.Second
	DefaultDuplicates = 2 * time.Minute
)

// ErrStreamMismatch is wrapped by EnsureStream's error when the existing
// stream cannot be made to fit the configuration (another subject set, an
// other retention policy).
var ErrStreamMismatch = errors.New("sink: existing stream does not match")

// ErrOutOfOrder is wrapped by Publish's error for an item whose revision is
// not above the last one published.
var ErrOutOfOrder = errors.New("sink: revision not above the last published")

// ErrNotSynced is returned by Publish before a successful Sync, and after
// an error until the next Sync.
var ErrNotSynced = errors.New("sink: publisher not synced")

// Config names the stream and sets how it is created and how the
// Publisher pipelines. The zero value is usable.
type Config struct {
	// Stream is the JetStream stream's name; default wire.DefaultStream.
	Stream string
	// Prefix is the subject prefix; default wire.DefaultPrefix. The
	// stream's subject filter is Prefix + ".>".
	Prefix string

	// Stream limits, applied by EnsureStream (zero: unlimited, or the
	// server's default).
	Retention jetstream.RetentionPolicy // default LimitsPolicy
	MaxAge    time.Duration             // discard changes older than this
	MaxMsgs   int64                     // keep at most this many changes
	MaxBytes  int64                     // keep at most this many bytes
	Replicas  int                       // default 1
	Storage   jetstream.StorageType     // default FileStorage
	// Duplicates is the server's deduplication window for Nats-Msg-Id;
	// default DefaultDuplicates (2 minutes).
	Duplicates time.Duration

	// MaxPending is the most messages in flight (published, not yet
	// acknowledged); default DefaultMaxPending. Keep it below the
	// JetStream context's own limit (jetstream.WithPublishAsyncMaxPending,
	// 4000 by default): a publish that stalls there fails.
	MaxPending int
	// AckTimeout bounds the wait for one acknowledgement; default
	// DefaultAckTimeout.
	AckTimeout time.Duration
}

// Validate checks the configuration: the prefix must be a valid subject
// prefix (see wire.ValidPrefix), the limits and timings must not be
// negative. Its errors wrap stream.ErrInvalidOption. EnsureStream and
// NewPublisher's users get the same errors later, from the server.
func (c Config) Validate() error {
	if err := wire.ValidPrefix(c.withDefaults().Prefix); err != nil {
		return err
	}
	switch {
	case c.MaxAge < 0, c.Duplicates < 0, c.AckTimeout < 0:
		return fmt.Errorf("sink: %w: negative MaxAge %v, Duplicates %v or AckTimeout %v", stream.ErrInvalidOption, c.MaxAge, c.Duplicates, c.AckTimeout)
	case c.Replicas < 0, c.MaxPending < 0:
		return fmt.Errorf("sink: %w: negative Replicas %d or MaxPending %d", stream.ErrInvalidOption, c.Replicas, c.MaxPending)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = wire.DefaultStream
	}
	if c.Prefix == "" {
		c.Prefix = wire.DefaultPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	return c
}

// Subjects returns the stream's subject filter, Prefix + ".>".
func (c Config) Subjects() string { return c.withDefaults().Prefix + ".>" }

// StreamName returns Stream, or its default.
func (c Config) StreamName() string { return c.withDefaults().Stream }

// StreamConfig returns the JetStream stream configuration that EnsureStream
// creates.
func (c Config) StreamConfig() jetstream.StreamConfig {
	c = c.withDefaults()
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "towerwatch change feed (github.com/towerwatch/towerwatch/jetstream/wire)",
		Subjects:    []string{c.Prefix + ".>"},
		Retention:   c.Retention,
		MaxAge:      c.MaxAge,
		MaxMsgs:     orUnlimited(c.MaxMsgs),
		MaxBytes:    orUnlimited(c.MaxBytes),
		Replicas:    c.Replicas,
		Storage:     c.Storage,
		Duplicates:  min(c.Duplicates, durationOr(c.MaxAge, c.Duplicates)),
		Discard:     jetstream.DiscardOld,
	}
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func durationOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// EnsureStream creates the stream of cfg, or checks an existing one: its
// subjects must include cfg's subject filter and its retention policy must
// be cfg's. Limits that differ (max age, messages, bytes, replicas,
// duplicate window) are updated to cfg's.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	if err := wire.ValidPrefix(cfg.withDefaults().Prefix); err != nil {
		return nil, err
	}
	want := cfg.StreamConfig()
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile
			s, err = js.Stream(ctx, want.Name)
		} else if err == nil {
			return s, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sink: stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if !slices.Contains(have.Subjects, want.Subjects[0]) {
		return nil, fmt.Errorf("%w: stream %s has subjects %q, want %q", ErrStreamMismatch, want.Name, have.Subjects, want.Subjects[0])
	}
	if have.Retention != want.Retention {
		return nil, fmt.Errorf("%w: stream %s has retention %v, want %v", ErrStreamMismatch, want.Name, have.Retention, want.Retention)
	}
	if have.MaxAge == want.MaxAge && have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates {
		return s, nil
	}
	upd := have
	upd.MaxAge, upd.MaxMsgs, upd.MaxBytes = want.MaxAge, want.MaxMsgs, want.MaxBytes
	upd.Replicas, upd.Duplicates = want.Replicas, want.Duplicates
	s, err = js.UpdateStream(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("sink: updating stream %s: %w", want.Name, err)
	}
	return s, nil
}

// Position is a place on the stream: the revision of a message and its
// stream sequence.
type Position struct {
	// Revision is the message's revision; zero when the stream holds no
	// message (or its last one was discarded).
	Revision stream.Revision
	// Sequence is the stream's last sequence (0 for a new stream). It can be
	// above the sequence of the message whose revision is Revision when
	// messages were discarded.
	Sequence uint64
}

// ReadLast reads the last message of a stream published in the wire
// format: its revision, and the stream's last sequence. An empty stream
// gives the zero Revision. A last message without a valid revision header
// is an error wrapping wire.ErrMessage.
func ReadLast(ctx context.Context, js jetstream.JetStream, streamName, subjects string) (Position, error) {
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return Position{}, fmt.Errorf("sink: stream %s: %w", streamName, err)
	}
	info := s.CachedInfo()
	pos := Position{Sequence: info.State.LastSeq}
	if info.State.Msgs == 0 {
		return pos, nil
	}
	m, err := s.GetLastMsgForSubject(ctx, subjects)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return pos, nil
	}
	if err != nil {
		return Position{}, fmt.Errorf("sink: reading the last message of %s: %w", streamName, err)
	}
	pos.Revision, err = wire.RevisionHeader(m.Header)
	if err != nil {
		return Position{}, fmt.Errorf("sink: last message of %s (sequence %d): %w", streamName, m.Sequence, err)
	}
	pos.Sequence = max(pos.Sequence, m.Sequence)
	return pos, nil
}

// Publisher publishes items into a stream. Create it with NewPublisher,
// then Sync before the first Publish.
type Publisher[E any] struct {
	js    jetstream.JetStream
	codec wire.Codec[E]
	cfg   Config

	mu      sync.Mutex // held by every method; Reap only tries it
	onAcked func(n int)

	synced bool
	err    error           // sticky: first failure since Sync
	prev   stream.Revision // revision for the next Prev header
	sent   Position        // last message handed to the client
	acked  Position        // last message the server acknowledged
	queue  []inflight      // in flight, oldest first
	timer  *time.Timer

	subjects map[string]string // relative subject -> full subject
	msg      nats.Msg          // the message being published
	hdr      nats.Header       // its headers, for a wire.HeaderEncoder
	pubOpts  []jetstream.PublishOpt
}

type inflight struct {
	fut jetstream.PubAckFuture
	pos Position
}

// NewPublisher returns a Publisher of codec's items into cfg's stream. It
// does not contact the server.
func NewPublisher[E any](js jetstream.JetStream, codec wire.Codec[E], cfg Config) *Publisher[E] {
	return &Publisher[E]{js: js, codec: codec, cfg: cfg.withDefaults(),
		pubOpts: []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}}
}

// Config returns the configuration with defaults filled in.
func (p *Publisher[E]) Config() Config { return p.cfg }

// OnAcked sets a function called with the number of messages whose
// acknowledgements the Publisher has just consumed (n >= 1), in order, on
// the goroutine of the Publish, Flush or Reap call that consumed them,
// with the Publisher's lock held: it must not block, nor call the
// Publisher. Call OnAcked before the first Publish.
func (p *Publisher[E]) OnAcked(f func(n int)) {
	p.mu.Lock()
	p.onAcked = f
	p.mu.Unlock()
}

// Reap consumes the acknowledgements that have arrived, without waiting,
// and returns the error of a refused message (or the error that stopped
// the Publisher since the last Sync), nil before Sync. Unlike the
// other methods it may be called from another goroutine while they run:
// it then does nothing. Publish consumes acknowledgements as it goes;
// Reap is for when no Publish follows for a while (a caught-up feed), so
// that OnAcked and Acked do not lag behind the server.
func (p *Publisher[E]) Reap() error {
	if !p.mu.TryLock() {
		return nil
	}
	defer p.mu.Unlock()
	if p.err != nil || !p.synced || len(p.queue) == 0 {
		return p.err
	}
	return p.reap(context.Background(), false, true)
}

// Sync abandons anything in flight, reads the last message of the stream
// back (see ReadLast) and positions the publisher after it. The next item
// published must have a revision above the returned one; its
// Towerwatch-Prev-Revision header will be the returned revision, unless
// Restart changes it.
func (p *Publisher[E]) Sync(ctx context.Context) (Position, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queue = p.queue[:0]
	p.synced, p.err = false, nil
	pos, err := ReadLast(ctx, p.js, p.cfg.Stream, p.cfg.Subjects())
	if err != nil {
		return Position{}, err
	}
	p.sent, p.acked, p.prev = pos, pos, pos.Revision
	p.synced = true
	return pos, nil
}

// Restart sets the revision the next item's Towerwatch-Prev-Revision
// header carries: the position the feed starts after when the stream was
// empty, or the revision after which it resumed when changes were lost
// (a compaction). rev must not be below the last published revision.
func (p *Publisher[E]) Restart(rev stream.Revision) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rev.Less(p.sent.Revision) {
		return fmt.Errorf("%w: restart at %s, below %s", ErrOutOfOrder, rev, p.sent.Revision)
	}
	p.prev = rev
	return nil
}

// Publish hands item to the client library and returns without waiting
// for its acknowledgement, unless MaxPending messages are in flight. It
// returns the first error of an earlier message if one was found (see
// Pipelining); after an error, every Publish fails until the next Sync.
func (p *Publisher[E]) Publish(ctx context.Context, item E) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return err
	}
	rev, err := p.codec.Revision(item)
	if err != nil {
		return p.fail(fmt.Errorf("sink: item revision: %w", err))
	}
	last := p.sent.Revision
	if !last.Less(rev) {
		return p.fail(fmt.Errorf("%w: %s after %s", ErrOutOfOrder, rev, last))
	}
	if !p.prev.IsZero() && !p.prev.Less(rev) {
		return p.fail(fmt.Errorf("%w: %s after the restart position %s", ErrOutOfOrder, rev, p.prev))
	}
	// One message, its header map and the header values are reused from
	// message to message (the client library has serialized them when
	// PublishMsgAsync returns, and retries, which would send the message
	// again later, are off); a codec without EncodeHeader gets a map of
	// its own per message.
	var wm wire.Message
	if he, ok := p.codec.(wire.HeaderEncoder[E]); ok {
		if p.hdr == nil {
			p.hdr = make(nats.Header, 10)
		}
		wm, err = he.EncodeHeader(item, p.hdr)
	} else {
		wm, err = p.codec.Encode(item)
	}
	if err != nil {
		return p.fail(fmt.Errorf("sink: encoding revision %s: %w", rev, err))
	}
	h := wm.Header
	if h == nil {
		h = make(nats.Header, 6)
	}
	rs := rev.String()
	wire.SetHeader(h, wire.HeaderRevision, rs)
	wire.SetHeader(h, wire.HeaderMsgID, rs)
	wire.SetHeader(h, jetstream.ExpectedStreamHeader, p.cfg.Stream)
	wire.SetHeader(h, jetstream.ExpectedLastSeqHeader, strconv.FormatUint(p.sent.Sequence, 10))
	if !p.prev.IsZero() {
		wire.SetHeader(h, wire.HeaderPrevRevision, p.prev.String())
	} else {
		delete(h, wire.HeaderPrevRevision)
	}
	m := &p.msg
	*m = nats.Msg{Subject: p.subject(wm.Subject), Header: h, Data: wm.Data}
	fut, err := p.js.PublishMsgAsync(m, p.pubOpts...)
	if err != nil {
		return p.fail(fmt.Errorf("sink: publishing revision %s: %w", rs, err))
	}
	p.sent = Position{Revision: rev, Sequence: p.sent.Sequence + 1}
	p.prev = rev
	p.queue = append(p.queue, inflight{fut: fut, pos: p.sent})
	if err := p.reap(ctx, false, false); err != nil {
		return err
	}
	for len(p.queue) >= p.cfg.MaxPending {
		if err := p.reap(ctx, true, true); err != nil {
			return err
		}
	}
	return nil
}

// subject returns the full subject of the relative subject rel, from a
// cache: a feed has few distinct subjects (kinds of items), and the
// concatenation would cost an allocation per message.
func (p *Publisher[E]) subject(rel string) string {
	if s, ok := p.subjects[rel]; ok {
		return s
	}
	s := p.cfg.Prefix + "." + rel
	if len(p.subjects) < maxCachedSubjects {
		if p.subjects == nil {
			p.subjects = make(map[string]string)
		}
		p.subjects[rel] = s
	}
	return s
}

// maxCachedSubjects bounds the subject cache of a Publisher.
const maxCachedSubjects = 1024

// Flush waits until every message published so far is acknowledged, and
// returns the first error. It bounds each wait by Config.AckTimeout and
// by ctx.
func (p *Publisher[E]) Flush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return err
	}
	for len(p.queue) > 0 {
		if err := p.reap(ctx, true, true); err != nil {
			return err
		}
	}
	return nil
}

// Pending returns how many messages are in flight.
func (p *Publisher[E]) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Acked returns the position of the last acknowledged message (after Sync:
// the position read back).
func (p *Publisher[E]) Acked() Position {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

func (p *Publisher[E]) check() error {
	if p.err != nil {
		return p.err
	}
	if !p.synced {
		return ErrNotSynced
	}
	return nil
}

func (p *Publisher[E]) fail(err error) error {
	if p.err == nil {
		p.err = err
	}
	p.queue = p.queue[:0]
	return p.err
}

// reap consumes the acknowledgements that have arrived, oldest first; with
// block, it waits for the oldest one. It reports them to onAcked. Without
// block, it looks for the failure of the oldest message only with
// failures: a failed message holds the others back until then (Publish
// skips the look, which costs a channel per message; Reap, a blocking
// reap or the full window find it).
func (p *Publisher[E]) reap(ctx context.Context, block, failures bool) error {
	n := 0
	defer func() {
		if n > 0 && p.onAcked != nil {
			p.onAcked(n)
		}
	}()
	for len(p.queue) > 0 {
		f := p.queue[0]
		var (
			ack *jetstream.PubAck
			err error
		)
		if block {
			if p.timer == nil {
				p.timer = time.NewTimer(p.cfg.AckTimeout)
			} else {
				p.timer.Reset(p.cfg.AckTimeout)
			}
			select {
			case ack = <-f.fut.Ok():
			case err = <-f.fut.Err():
			case <-p.timer.C:
				err = fmt.Errorf("no acknowledgement within %v", p.cfg.AckTimeout)
			case <-ctx.Done():
				err = ctx.Err()
			}
			p.timer.Stop()
			block = false
		} else {
			select {
			case ack = <-f.fut.Ok():
			default:
				if !failures {
					return nil
				}
				select {
				case err = <-f.fut.Err():
				default:
					return nil
				}
			}
		}
		if err == nil {
			switch {
			case ack.Duplicate:
				err = fmt.Errorf("revision already stored (sequence %d)", ack.Sequence)
			case ack.Stream != p.cfg.Stream:
				err = fmt.Errorf("stored in stream %q", ack.Stream)
			case ack.Sequence != f.pos.Sequence:
				err = fmt.Errorf("stored at sequence %d, want %d", ack.Sequence, f.pos.Sequence)
			}
		}
		if err != nil {
			return p.fail(fmt.Errorf("sink: publishing revision %s to %s: %w", f.pos.Revision, p.cfg.Stream, err))
		}
		p.acked = f.pos
		p.queue[0] = inflight{}
		p.queue = p.queue[1:]
		n++
	}
	return nil
}
