// Package source reads a change feed back from NATS JetStream as a
// stream.Source, so that stream.Watch, the operators, the rx adapter and
// ctwatch work on the far side of a bridge exactly as they do on
// CloudTower itself: same ordering, same uniqueness, same resume by
// revision, and a *stream.CompactedError when history is gone.
//
//	src, err := source.NewCloudTower(ctx, js, source.Config{Durable: "billing"})
//	if err != nil { ... }
//	defer src.Close()
//	for ev, err := range src.Watch(ctx) {
//		if err != nil {
//			return err // the stream has ended
//		}
//		handle(ev) // acknowledged when this body returns
//	}
//
// # Two ways to keep a position
//
// Without Config.Durable, the Source reads with an ordered consumer (an
// ephemeral JetStream consumer without acknowledgements) and the position
// is the caller's: start after a revision with stream.After(rev) (the
// Source finds its stream sequence with a binary search over the stream,
// about log2(n) direct reads), or from the stream's last message (the
// default, stream.FromNow). Resume after the last handled revision, kept
// for instance with operators.Checkpoint.
//
// With Config.Durable, the position is a durable JetStream consumer's,
// kept by the server: starting without stream.After resumes after the
// consumer's acknowledgement floor (a new durable starts at the beginning
// of the stream), and stream.After(rev) moves the consumer to rev. The
// Source resets the consumer to the position it starts from, so that
// messages delivered to an earlier process but never acknowledged come
// again, in order, at once. One process at a time may read a durable: a
// durable is a cursor, not a work queue.
//
// # Acknowledgements
//
// A change is acknowledged after the loop body that handled it returns:
// Watch (and Acked, around any sequence from this Source) acknowledges each
// change when the consumer's yield returns, that is when the body of the
// for loop ends normally or with continue. The change whose body breaks
// out of the loop is not acknowledged: it comes again next time
// (at-least-once); call Ack before breaking to acknowledge it. With
// operators between the Source and the loop, the acknowledgement follows
// the operator's yield: after the body for Filter and Map, after the batch
// was handed on for Batch.
//
// Used with plain stream.Watch instead, the Source acknowledges on its
// own, with a lag, relying only on what package stream's documentation
// ("When a Source is polled") guarantees: a Poll after revision r that
// continues the same watch acknowledges every change up to the after
// revision of the previous successful Poll, which the engine has
// delivered and seen handled, with or without prefetch. A Poll that starts
// a watch, or moves it (another start position), acknowledges nothing. At
// most about two pages are then delivered again after a crash. With
// stream.ParallelCatchUp, whose polls may be after estimated revisions
// that imply nothing about delivery, use Watch or Acked: the Source reads
// one position at a time, and acknowledges through them only.
//
// Acknowledgements need a durable; an ordered consumer has none.
//
// # Polls
//
// Poll waits for the first message up to Config.MaxWait (a long poll), then
// takes what follows, up to the page limit: each further message within
// Config.Linger while the server says more is pending, else within a
// millisecond and for at most 10 ms after the first. (The server's
// pending count leaves out what it has already delivered to the client: a
// consumer tailing a growing stream sees 0 on every message, and stopping
// there would return pages of one change, each followed by the
// PollInterval wait.) A page's Head is the stream's last revision (one
// direct read per page that has changes), so the engine polls again at
// once while a publisher adds changes, and waits its PollInterval only
// when the page reached the end of the stream.
//
// Watch has stream.Watch's defaults, PollInterval 1 s included. A change
// that comes after an idle spell is delivered at once, since the waiting
// Poll receives it; one that comes within the poll interval after a page
// that reached the end of the stream waits up to that interval (1 s, as
// on CloudTower). For lower latency pass a short stream.PollInterval
// (ctwatch --from-nats uses 10 ms): Poll long-polls, so a short interval
// costs no busy polling; an idle Source still makes one request per
// MaxWait.
//
// # Gaps
//
// Every message carries the revision published before it
// (wire.HeaderPrevRevision). A message whose previous revision is above
// the position means changes were lost between: the stream's limits
// discarded them, or the bridge skipped them after CloudTower compacted.
// Poll reports that as Page.Compact, so the stream ends with a
// *stream.CompactedError whose Compact is that previous revision: re-list,
// then watch after it. Starting after a revision older than the stream's
// first message is detected the same way.
//
// With Config.Subjects (a subject filter), the check is done when the
// Source positions itself (start, resume), on the unfiltered stream; while
// it runs, messages the stream's limits discard before a lagging filtered
// consumer reads them are skipped without an error, as by any JetStream
// consumer. Read unfiltered and filter with operators.Filter when that
// matters.
package source

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of Config.
const (
	DefaultMaxWait       = 5 * time.Second
	DefaultLinger        = 50 * time.Millisecond
	DefaultBuffer        = 1000
	DefaultMaxAckPending = 20000
)

// ErrClosed is returned (marked stream.Fatal) by Poll after Close.
var ErrClosed = errors.New("source: closed")

// Validate checks the configuration without contacting the server: no
// negative durations or sizes. Its errors wrap stream.ErrInvalidOption.
func (c Config) Validate() error {
	if c.MaxWait < 0 || c.Linger < 0 || c.Buffer < 0 {
		return fmt.Errorf("source: %w: negative MaxWait %v, Linger %v or Buffer %d", stream.ErrInvalidOption, c.MaxWait, c.Linger, c.Buffer)
	}
	return nil
}

// Config says which stream to read and how. The zero value reads the
// default stream with an ordered consumer.
type Config struct {
	// Stream is the stream's name; default wire.DefaultStream.
	Stream string
	// Subjects filters the messages, such as "cloudtower.changes.Vm.>";
	// default: all of them. With an existing durable, the durable's own
	// filter applies and Subjects must be empty or equal to it.
	Subjects []string
	// Durable names a durable pull consumer to read with, created if it
	// does not exist (acknowledge-all, delivering the whole stream,
	// DefaultMaxAckPending); empty for an ordered consumer.
	Durable string
	// MaxWait is how long a Poll waits for the first message (default
	// DefaultMaxWait). It must stay below stream.PollTimeout.
	MaxWait time.Duration
	// Linger is how long a Poll waits for each further message the server
	// says is pending (default DefaultLinger).
	Linger time.Duration
	// Buffer is how many messages the client library fetches ahead
	// (default DefaultBuffer).
	Buffer int
}

// Source is a stream.Source over a JetStream stream in the wire format.
// Poll and Watch are meant for one watch at a time; Ack, Revision and
// Close may be called from any goroutine.
type Source[E any] struct {
	js       jetstream.JetStream
	str      jetstream.Stream
	codec    wire.Codec[E]
	cfg      Config
	filtered bool

	// durable consumer, if any
	cons          jetstream.Consumer
	ackPolicy     jetstream.AckPolicy
	maxAckPending int

	pollMu     sync.Mutex
	it         jetstream.MessagesContext // the open reader, nil if none
	cur        cursor
	positioned bool
	// handled is the after revision of the last successful Poll of the
	// current watch (zero after positioning): once the watch polls again,
	// everything up to it was handled.
	handled stream.Revision
	closed  bool

	ackMu    sync.Mutex
	unacked  []delivered   // in revision order
	lastAck  jetstream.Msg // the last message acknowledged, nil if none
	ackedSeq uint64        // its stream sequence
}

// cursor is the Source's position: the last message it returned (or the
// place it was asked to start after).
type cursor struct {
	rev      stream.Revision
	seq      uint64 // stream sequence of rev's message, or of the start
	anchored bool   // rev is only a stand-in ("0"): no gap check
}

type delivered struct {
	rev stream.Revision
	seq uint64
	msg jetstream.Msg
}

// New returns a Source of codec's items over cfg's stream. It checks that
// the stream exists and, with Config.Durable, creates or opens the
// durable.
func New[E any](ctx context.Context, js jetstream.JetStream, codec wire.Codec[E], cfg Config) (*Source[E], error) {
	if js == nil || codec == nil {
		return nil, fmt.Errorf("source: %w: nil JetStream or codec", stream.ErrInvalidOption)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Stream == "" {
		cfg.Stream = wire.DefaultStream
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	str, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("source: stream %s: %w", cfg.Stream, err)
	}
	s := &Source[E]{js: js, str: str, codec: codec, cfg: cfg}
	subjects := cfg.Subjects
	if cfg.Durable != "" {
		if err := s.openDurable(ctx); err != nil {
			return nil, err
		}
		subjects = s.cons.CachedInfo().Config.FilterSubjects
		if f := s.cons.CachedInfo().Config.FilterSubject; f != "" {
			subjects = append(subjects, f)
		}
	}
	s.filtered = isFilter(subjects, str.CachedInfo().Config.Subjects)
	return s, nil
}

// isFilter reports whether subjects select fewer messages than the
// stream's own subjects.
func isFilter(subjects, streamSubjects []string) bool {
	for _, f := range subjects {
		if f != ">" && !slices.Contains(streamSubjects, f) {
			return true
		}
	}
	return false
}

func (s *Source[E]) openDurable(ctx context.Context) error {
	cons, err := s.js.Consumer(ctx, s.cfg.Stream, s.cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = s.js.CreateConsumer(ctx, s.cfg.Stream, jetstream.ConsumerConfig{
			Durable:        s.cfg.Durable,
			Description:    "towerwatch source",
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			AckPolicy:      jetstream.AckAllPolicy,
			MaxAckPending:  DefaultMaxAckPending,
			FilterSubjects: s.cfg.Subjects,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = s.js.Consumer(ctx, s.cfg.Stream, s.cfg.Durable)
		}
	}
	if err != nil {
		return fmt.Errorf("source: durable %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err)
	}
	info := cons.CachedInfo()
	if info.Config.DeliverSubject != "" {
		return fmt.Errorf("source: durable %s on %s is a push consumer", s.cfg.Durable, s.cfg.Stream)
	}
	if len(s.cfg.Subjects) > 0 {
		have := info.Config.FilterSubjects
		if info.Config.FilterSubject != "" {
			have = []string{info.Config.FilterSubject}
		}
		if !slices.Equal(slices.Sorted(slices.Values(have)), slices.Sorted(slices.Values(s.cfg.Subjects))) {
			return fmt.Errorf("source: durable %s on %s filters %q, not %q", s.cfg.Durable, s.cfg.Stream, have, s.cfg.Subjects)
		}
	}
	s.cons, s.ackPolicy, s.maxAckPending = cons, info.Config.AckPolicy, info.Config.MaxAckPending
	return nil
}

// NewCloudTower returns a Source of CloudTower change events published by
// a bridge in the wire.CloudTower format.
func NewCloudTower(ctx context.Context, js jetstream.JetStream, cfg Config) (*Source[*models.ResourceChangeEvent], error) {
	return New[*models.ResourceChangeEvent](ctx, js, wire.CloudTower{}, cfg)
}

// Revision returns the item's revision.
func (s *Source[E]) Revision(item E) (stream.Revision, error) { return s.codec.Revision(item) }

// Close stops reading and waits (up to a second) until the server has
// handled the acknowledgements sent so far. Changes delivered but not acknowledged
// come again to the next reader of a durable. Poll fails after Close.
func (s *Source[E]) Close() error {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	s.closeReader()
	s.closed = true
	s.ackMu.Lock()
	last := s.lastAck
	s.ackMu.Unlock()
	if last != nil {
		// Acknowledge the last message again, waiting for the server's
		// answer: the server handles a connection's acknowledgements in
		// order, so every earlier one has then moved the durable's floor,
		// and the next reader starts after it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := s.js.Conn().RequestWithContext(ctx, last.Reply(), []byte("+ACK")); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("source: confirming acknowledgements: %w", err)
		}
	}
	return nil
}

// Watch watches the Source with stream.Watch, with the same defaults, and
// acknowledges each change after the loop body that handled it returns
// (see Acked). For the latency of a change once caught up, see the
// package documentation (Polls). When the loop ends, the Source stops
// reading until the next Poll.
func (s *Source[E]) Watch(ctx context.Context, opts ...stream.Option) iter.Seq2[E, error] {
	return s.Acked(stream.Watch[E](ctx, s, opts...))
}

// After is stream.After: start after rev (exclusive); with a durable,
// move the durable there.
func After(rev stream.Revision) stream.Option { return stream.After(rev) }

// FromStart is stream.FromStart: start from the oldest message the
// stream keeps.
func FromStart() stream.Option { return stream.FromStart() }

// FromNow is stream.FromNow, the default: start at the stream's last
// message, or, with a durable, after its acknowledgement floor.
func FromNow() stream.Option { return stream.FromNow() }

// Acked passes seq through and acknowledges each item, up to its
// revision, when the consumer's yield for it returns true: after the loop
// body handled it. An item whose yield returns false (the loop broke) is
// not acknowledged. seq must come from this Source (through operators that
// keep the items' revisions). When the loop ends, the Source stops reading
// until the next Poll.
func (s *Source[E]) Acked(seq iter.Seq2[E, error]) iter.Seq2[E, error] {
	return func(yield func(E, error) bool) {
		defer func() {
			s.pollMu.Lock()
			s.closeReader()
			s.handled = stream.Revision{} // a prefetch of this watch proves nothing
			s.pollMu.Unlock()
		}()
		for item, err := range seq {
			if err != nil {
				yield(item, err)
				return
			}
			if !yield(item, nil) {
				return
			}
			if s.cons == nil {
				continue // nothing to acknowledge
			}
			if rev, err := s.codec.Revision(item); err == nil {
				s.ackThrough(rev)
			}
		}
	}
}

// Ack acknowledges every change delivered by this Source up to item's
// revision. It is for a loop body that breaks after handling an item, and
// for consumers that do not use Watch or Acked.
func (s *Source[E]) Ack(item E) error {
	rev, err := s.codec.Revision(item)
	if err != nil {
		return err
	}
	s.ackThrough(rev)
	return nil
}

// ackThrough acknowledges the delivered messages up to rev.
func (s *Source[E]) ackThrough(rev stream.Revision) {
	if s.cons == nil {
		return
	}
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	n := 0
	for n < len(s.unacked) && !rev.Less(s.unacked[n].rev) {
		n++
	}
	if n == 0 {
		return
	}
	s.lastAck, s.ackedSeq = s.unacked[n-1].msg, s.unacked[n-1].seq
	switch s.ackPolicy {
	case jetstream.AckAllPolicy:
		_ = s.unacked[n-1].msg.Ack() // fire and forget: a lost ack means a redelivery
	case jetstream.AckExplicitPolicy:
		for _, d := range s.unacked[:n] {
			_ = d.msg.Ack()
		}
	}
	clear(s.unacked[:n])
	s.unacked = s.unacked[n:]
}

// redelivered replaces the delivery of the unacknowledged message at seq.
func (s *Source[E]) redelivered(seq uint64, m jetstream.Msg) {
	if s.cons == nil {
		return
	}
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if i, ok := slices.BinarySearchFunc(s.unacked, seq, func(d delivered, seq uint64) int {
		return cmp.Compare(d.seq, seq)
	}); ok {
		s.unacked[i].msg = m
	}
}

func (s *Source[E]) dropUnacked() {
	s.ackMu.Lock()
	s.unacked = nil
	s.ackMu.Unlock()
}

func (s *Source[E]) closeReader() {
	if s.it != nil {
		s.it.Stop()
		s.it = nil
	}
}
