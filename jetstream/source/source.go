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
// own, with a lag: a Poll after revision r acknowledges every change up to
// the revision of the Poll before it, the last position the engine had
// certainly handed over and seen handled (with or without prefetch). At
// most about two pages are then delivered again after a crash.
//
// Acknowledgements need a durable; an ordered consumer has none.
//
// # Polls
//
// Poll waits for the first message up to Config.MaxWait (a long poll), then
// takes what follows while the server says more is pending (each within
// Config.Linger), up to the page limit. A short page therefore means the
// consumer has caught up. Watch sets stream.PollInterval to
// DefaultPollInterval (10 ms), so that a change is delivered within
// milliseconds; with plain stream.Watch, pass a short PollInterval too.
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

// Defaults of Config and Watch.
const (
	DefaultMaxWait       = 5 * time.Second
	DefaultLinger        = 50 * time.Millisecond
	DefaultBuffer        = 1000
	DefaultMaxAckPending = 20000
	DefaultPollInterval  = 10 * time.Millisecond
)

// ErrClosed is returned (marked stream.Fatal) by Poll after Close.
var ErrClosed = errors.New("source: closed")

// Config says which stream to read and how. The zero value reads the
// default stream with an ordered consumer.
type Config struct {
	// Stream is the stream's name; default wire.DefaultStream.
	Stream string
	// Subjects filters the messages, such as "cloudtower.changes.VM.>";
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
	lastAfter  stream.Revision
	closed     bool

	ackMu   sync.Mutex
	unacked []delivered // in revision order
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
		return nil, errors.New("source: nil JetStream or codec")
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
		return fmt.Errorf("source: durable %s on %s is a push consumer; want a pull consumer", s.cfg.Durable, s.cfg.Stream)
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

// Close stops reading and flushes the acknowledgements sent so far to
// the server (within a second). Changes delivered but not acknowledged
// come again to the next reader of a durable. Poll fails after Close.
func (s *Source[E]) Close() error {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	s.closeReader()
	s.closed = true
	if s.cons != nil {
		if err := s.js.Conn().FlushTimeout(time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("source: flushing acknowledgements: %w", err)
		}
	}
	return nil
}

// Watch watches the Source with stream.Watch and acknowledges each change
// after the loop body that handled it returns (see Acked). It puts
// stream.PollInterval(DefaultPollInterval) before opts, so opts may
// override it. When the loop ends, the Source stops reading until the next
// Poll.
func (s *Source[E]) Watch(ctx context.Context, opts ...stream.Option) iter.Seq2[E, error] {
	opts = append([]stream.Option{stream.PollInterval(DefaultPollInterval)}, opts...)
	return s.Acked(stream.Watch[E](ctx, s, opts...))
}

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

// Poll implements stream.Poller: it returns the changes after the
// revision after, at most limit of them; see the package documentation.
func (s *Source[E]) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[E], error) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.closed {
		return stream.Page[E]{}, stream.Fatal(ErrClosed)
	}
	if prev := s.lastAfter; !prev.IsZero() {
		s.ackThrough(prev)
	}
	s.lastAfter = after
	if after.IsZero() {
		return s.pollHead(ctx)
	}
	if !s.positioned || after != s.cur.rev {
		compact, err := s.seek(ctx, after)
		if err != nil || !compact.IsZero() {
			return stream.Page[E]{Compact: compact}, err
		}
	}
	return s.fill(ctx, limit)
}

// pollHead positions the Source at its start: the stream's last message,
// or the durable's acknowledgement floor.
func (s *Source[E]) pollHead(ctx context.Context) (stream.Page[E], error) {
	s.closeReader()
	s.positioned = false
	var seq uint64
	if s.cons != nil {
		info, err := s.cons.Info(ctx)
		if err != nil {
			return stream.Page[E]{}, s.consumerErr(err)
		}
		s.dropUnacked() // open resets the durable to its floor
		seq = info.AckFloor.Stream
	} else {
		info, err := s.str.Info(ctx)
		if err != nil {
			return stream.Page[E]{}, fmt.Errorf("source: stream %s: %w", s.cfg.Stream, err)
		}
		seq = info.State.LastSeq
	}
	rev, err := s.revisionAt(ctx, seq)
	if err != nil {
		return stream.Page[E]{}, err
	}
	s.cur = cursor{rev: rev, seq: seq}
	if rev.IsZero() {
		// The engine starts after "0" when the head is unknown.
		s.cur.rev, s.cur.anchored = stream.RevisionFromUint64(0), true
	}
	s.positioned = true
	return stream.Page[E]{Head: rev}, nil
}

func (s *Source[E]) consumerErr(err error) error {
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return stream.Fatal(fmt.Errorf("source: durable %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err))
	}
	return fmt.Errorf("source: durable %s on %s: %w", s.cfg.Durable, s.cfg.Stream, err)
}

// revisionAt returns the revision of the message at seq, or zero if there
// is none.
func (s *Source[E]) revisionAt(ctx context.Context, seq uint64) (stream.Revision, error) {
	if seq == 0 {
		return stream.Revision{}, nil
	}
	m, err := s.str.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return stream.Revision{}, nil
	}
	if err != nil {
		return stream.Revision{}, fmt.Errorf("source: reading message %d of %s: %w", seq, s.cfg.Stream, err)
	}
	rev, err := wire.RevisionHeader(m.Header)
	if err != nil {
		return stream.Revision{}, stream.Fatal(fmt.Errorf("source: message %d of %s: %w", seq, s.cfg.Stream, err))
	}
	return rev, nil
}

// nextFrom returns the first message at or after seq, with its revision
// and previous revision, or nil if there is none.
func (s *Source[E]) nextFrom(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, stream.Revision, stream.Revision, error) {
	m, err := s.str.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, stream.Revision{}, stream.Revision{}, nil
	}
	if err != nil {
		return nil, stream.Revision{}, stream.Revision{}, fmt.Errorf("source: reading %s from sequence %d: %w", s.cfg.Stream, seq, err)
	}
	rev, err := wire.RevisionHeader(m.Header)
	if err == nil {
		var prev stream.Revision
		prev, err = wire.PrevRevisionHeader(m.Header)
		if err == nil {
			return m, rev, prev, nil
		}
	}
	return nil, stream.Revision{}, stream.Revision{}, stream.Fatal(fmt.Errorf("source: message %d of %s: %w", m.Sequence, s.cfg.Stream, err))
}

// seek positions the Source after the revision after: at the first
// message whose revision is above it. It returns a non-zero compact
// revision when changes after after are missing from the stream.
func (s *Source[E]) seek(ctx context.Context, after stream.Revision) (stream.Revision, error) {
	s.closeReader()
	s.positioned = false
	info, err := s.str.Info(ctx)
	if err != nil {
		return stream.Revision{}, fmt.Errorf("source: stream %s: %w", s.cfg.Stream, err)
	}
	// Binary search for the first sequence in [first, last+1] whose message
	// (or the next existing one) has a revision above after.
	lo, hi := max(info.State.FirstSeq, 1), info.State.LastSeq+1
	var first *jetstream.RawStreamMsg // the message at lo, once found
	var firstPrev stream.Revision
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, rev, prev, err := s.nextFrom(ctx, mid)
		if err != nil {
			return stream.Revision{}, err
		}
		switch {
		case m == nil:
			hi = mid
		case after.Less(rev):
			hi = mid
			if m.Sequence == mid || first == nil || m.Sequence < first.Sequence {
				first, firstPrev = m, prev
			}
		default:
			lo = m.Sequence + 1
		}
	}
	if first == nil || first.Sequence < lo {
		m, _, prev, err := s.nextFrom(ctx, lo)
		if err != nil {
			return stream.Revision{}, err
		}
		first, firstPrev = m, prev
	}
	if first != nil && after.Less(firstPrev) {
		return firstPrev, nil // changes in (after, firstPrev] are not on the stream
	}
	start := lo
	if first != nil {
		start = first.Sequence
	}
	s.dropUnacked() // open resets a durable to start
	s.cur = cursor{rev: after, seq: start - 1}
	s.positioned = true
	return stream.Revision{}, nil
}

// open starts reading at the sequence after the cursor.
func (s *Source[E]) open(ctx context.Context) error {
	var cons jetstream.Consumer
	if s.cons != nil {
		// Deliver again from the oldest message returned but not yet
		// acknowledged (their acknowledgements then go to the new
		// deliveries), or else from the cursor on: whatever the previous
		// reader had received but not returned is pending on the server
		// and would otherwise come only after the ack wait.
		seq := s.cur.seq + 1
		s.ackMu.Lock()
		if len(s.unacked) > 0 {
			seq = s.unacked[0].seq
		}
		s.ackMu.Unlock()
		if _, err := s.js.ResetConsumerToSequence(ctx, s.cfg.Stream, s.cfg.Durable, seq); err != nil {
			err = s.consumerErr(err)
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.Code == 400 {
				err = stream.Fatal(err) // such as below the durable's start: retrying cannot help
			}
			return err
		}
		cons = s.cons
	} else {
		var err error
		cons, err = s.js.OrderedConsumer(ctx, s.cfg.Stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: s.cfg.Subjects,
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    s.cur.seq + 1,
		})
		if err != nil {
			return fmt.Errorf("source: consumer on %s: %w", s.cfg.Stream, err)
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.Buffer))
	if err != nil {
		if s.cons != nil {
			return s.consumerErr(err)
		}
		return fmt.Errorf("source: reading %s: %w", s.cfg.Stream, err)
	}
	s.it = it
	return nil
}

var errTimeout = errors.New("timeout")

func (s *Source[E]) next(ctx context.Context, wait time.Duration) (jetstream.Msg, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := s.it.Next(jetstream.NextContext(wctx))
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return nil, errTimeout
	}
	return m, err
}

// fill reads the next page from the cursor on.
func (s *Source[E]) fill(ctx context.Context, limit int) (stream.Page[E], error) {
	if s.it == nil {
		if err := s.open(ctx); err != nil {
			return stream.Page[E]{}, err
		}
	}
	if s.cons != nil && s.maxAckPending > 0 {
		// Up to about three pages are delivered and unacknowledged at a
		// time (one handled, one being handled, one prefetched).
		limit = min(limit, max(1, s.maxAckPending/4))
	}
	cur := s.cur
	var (
		items   []E
		acks    []delivered
		pending uint64
		gap     bool
	)
	for len(items) < limit {
		wait := s.cfg.MaxWait
		if len(items) > 0 {
			if pending == 0 {
				break
			}
			wait = s.cfg.Linger
		}
		m, err := s.next(ctx, wait)
		if errors.Is(err, errTimeout) {
			break
		}
		if err != nil {
			s.closeReader()
			if ctx.Err() != nil {
				return stream.Page[E]{}, ctx.Err()
			}
			return stream.Page[E]{}, fmt.Errorf("source: reading %s: %w", s.cfg.Stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			s.closeReader()
			return stream.Page[E]{}, fmt.Errorf("source: reading %s: %w", s.cfg.Stream, err)
		}
		if md.Sequence.Stream <= cur.seq {
			// A message returned before, delivered again after a reset:
			// its acknowledgement goes to this delivery.
			s.redelivered(md.Sequence.Stream, m)
			continue
		}
		h := m.Headers()
		rev, err := wire.RevisionHeader(h)
		if err == nil && !s.filtered && !cur.anchored {
			var prev stream.Revision
			prev, err = wire.PrevRevisionHeader(h)
			if err == nil && cur.rev.Less(prev) {
				// Changes between cur.rev and prev are missing. Return what
				// came before; the next Poll (after cur.rev) reports the gap.
				s.closeReader()
				if len(items) == 0 {
					return stream.Page[E]{Compact: prev}, nil
				}
				gap = true
				break
			}
		}
		var item E
		if err == nil {
			item, err = s.codec.Decode(wire.Message{Subject: m.Subject(), Header: h, Data: m.Data()})
		}
		if err != nil {
			s.closeReader()
			return stream.Page[E]{}, stream.Fatal(fmt.Errorf("source: message %d of %s: %w", md.Sequence.Stream, s.cfg.Stream, err))
		}
		items = append(items, item)
		cur = cursor{rev: rev, seq: md.Sequence.Stream}
		if s.cons != nil {
			acks = append(acks, delivered{rev: rev, seq: md.Sequence.Stream, msg: m})
		}
		pending = md.NumPending
	}
	s.cur = cur
	if len(acks) > 0 {
		s.ackMu.Lock()
		s.unacked = append(s.unacked, acks...)
		s.ackMu.Unlock()
	}
	page := stream.Page[E]{Items: items}
	switch {
	case len(items) == 0:
		if !cur.anchored {
			page.Head = cur.rev // waited MaxWait: nothing new
		}
	case pending == 0 && !gap:
		page.Head = cur.rev
	default:
		if m, err := s.str.GetLastMsgForSubject(ctx, ">"); err == nil {
			page.Head, _ = wire.RevisionHeader(m.Header)
		}
	}
	return page, nil
}
