package source

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

// Poll implements stream.Poller: it returns the changes after the
// revision after, at most limit of them; see the package documentation.
func (s *Source[E]) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[E], error) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	if s.closed {
		return stream.Page[E]{}, stream.Fatal(ErrClosed)
	}
	if after.IsZero() {
		s.handled = stream.Revision{}
		return s.pollHead(ctx)
	}
	// A poll after the last revision returned continues the watch (the
	// next page, or a retry): everything up to the after revision of the
	// previous successful poll was handled (see package stream, "When a
	// Source is polled"). Any other revision starts a watch there.
	continuing := s.positioned && after == s.cur.rev
	if continuing {
		if !s.handled.IsZero() {
			s.ackThrough(s.handled)
		}
	} else {
		s.handled = stream.Revision{}
		compact, err := s.seek(ctx, after)
		if err != nil || !compact.IsZero() {
			return stream.Page[E]{Compact: compact}, err
		}
	}
	page, err := s.fill(ctx, limit)
	if err == nil && continuing {
		s.handled = after
	}
	return page, err
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
		// This Source's own acknowledgements may not have reached the
		// floor yet: they count (one reader at a time per durable).
		s.ackMu.Lock()
		seq = max(info.AckFloor.Stream, s.ackedSeq)
		s.ackMu.Unlock()
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

// At the tail of the stream (the last message said nothing was pending on
// the server), a Poll waits up to drainWait for each further message: long
// enough to take what the client library already holds and what a
// publisher sends in a burst, short enough not to delay a change
// noticeably. It stops taking them tailBudget after its first message, so
// that a steady trickle does not hold a page back until it is full; the
// page then reports the stream's head, so the engine polls again at once.
const (
	drainWait  = time.Millisecond
	tailBudget = 10 * time.Millisecond
)

// pageWait bounds the waits of one fill for its messages with one context
// and one timer, re-armed for each message, instead of a context and a
// timer per message.
type pageWait struct {
	parent  context.Context
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	opt     jetstream.NextOpt
	expired bool // the timer fired: ctx is done
}

func newPageWait(parent context.Context) *pageWait {
	w := &pageWait{parent: parent}
	w.ctx, w.cancel = context.WithCancelCause(parent)
	w.timer = time.AfterFunc(time.Hour, func() { w.cancel(errTimeout) })
	w.timer.Stop()
	w.opt = jetstream.NextContext(w.ctx)
	return w
}

func (w *pageWait) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

func (s *Source[E]) next(w *pageWait, wait time.Duration) (jetstream.Msg, error) {
	if w.expired {
		return nil, errTimeout
	}
	w.timer.Reset(wait)
	m, err := s.it.Next(w.opt)
	if !w.timer.Stop() {
		w.expired = true // fired meanwhile: the next call times out
	}
	if err != nil && w.parent.Err() == nil && context.Cause(w.ctx) == errTimeout {
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
		cut     bool      // stopped by tailBudget
		first   time.Time // when the first message came
	)
	w := newPageWait(ctx)
	defer w.stop()
	for len(items) < limit {
		wait := s.cfg.MaxWait
		if len(items) > 0 {
			// NumPending counts only what the server has not delivered
			// yet: a consumer at the tail of a growing stream sees 0 on
			// every message although the client may hold many more.
			wait = s.cfg.Linger
			if pending == 0 {
				if cut = time.Since(first) >= tailBudget; cut {
					break
				}
				wait = drainWait
			}
		}
		m, err := s.next(w, wait)
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
		seq, numPending, err := ackFields(m)
		if err != nil {
			s.closeReader()
			return stream.Page[E]{}, fmt.Errorf("source: reading %s: %w", s.cfg.Stream, err)
		}
		if seq <= cur.seq {
			// A message returned before, delivered again after a reset:
			// its acknowledgement goes to this delivery.
			s.redelivered(seq, m)
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
				break
			}
		}
		var item E
		if err == nil {
			item, err = s.codec.Decode(wire.Message{Subject: m.Subject(), Header: h, Data: m.Data()})
		}
		if err != nil {
			s.closeReader()
			return stream.Page[E]{}, stream.Fatal(fmt.Errorf("source: message %d of %s: %w", seq, s.cfg.Stream, err))
		}
		if len(items) == 0 {
			first = time.Now()
		}
		items = append(items, item)
		cur = cursor{rev: rev, seq: seq}
		if s.cons != nil {
			acks = append(acks, delivered{rev: rev, seq: seq, msg: m})
		}
		pending = numPending
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
	default:
		// The stream's last revision: above the page's last while more
		// is coming (a publisher at work), so that the engine polls again
		// at once instead of waiting the poll interval; the next Poll
		// long-polls if the page was the last.
		page.Head = cur.rev
		if m, err := s.str.GetLastMsgForSubject(ctx, ">"); err == nil {
			if h, err := wire.RevisionHeader(m.Header); err == nil && cur.rev.Less(h) {
				page.Head = h
			}
		}
	}
	return page, nil
}

// ackFields returns the stream sequence and the pending count of a
// JetStream message from its reply subject, as m.Metadata does but
// without allocating:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
//	$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>...]
//
// Other subjects go through m.Metadata.
func ackFields(m jetstream.Msg) (seq, pending uint64, err error) {
	const prefix = "$JS.ACK."
	reply := m.Reply()
	if !strings.HasPrefix(reply, prefix) {
		return metadataFields(m)
	}
	var toks [12]string
	n := 0
	rest := reply[len(prefix):]
	for n < len(toks) {
		var tok string
		var more bool
		tok, rest, more = strings.Cut(rest, ".")
		toks[n] = tok
		n++
		if !more {
			break
		}
	}
	// Token positions after "$JS.ACK.": v1 (7 tokens) has the stream
	// sequence at 3 and the pending count at 6; v2 (at least 9) at 5 and 8.
	var sseq, pend string
	switch {
	case n == 7:
		sseq, pend = toks[3], toks[6]
	case n >= 9:
		sseq, pend = toks[5], toks[8]
	default:
		return metadataFields(m)
	}
	seq, err1 := strconv.ParseUint(sseq, 10, 64)
	pending, err2 := strconv.ParseUint(pend, 10, 64)
	if err1 != nil || err2 != nil {
		return metadataFields(m)
	}
	return seq, pending, nil
}

func metadataFields(m jetstream.Msg) (seq, pending uint64, err error) {
	md, err := m.Metadata()
	if err != nil {
		return 0, 0, err
	}
	return md.Sequence.Stream, md.NumPending, nil
}
