package operators

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
)

// ErrSlowSubscriber is wrapped by the final error of a subscriber that the
// DropSlow policy removed because its buffer was full: it missed the values
// that followed.
var ErrSlowSubscriber = errors.New("slow subscriber dropped")

// SlowPolicy says what a Broadcaster does when a subscriber's buffer is
// full.
type SlowPolicy int

const (
	// BlockOthers waits until the subscriber makes room: the upstream, and
	// so every other subscriber, waits for the slowest one. No value is
	// lost. It is the default.
	BlockOthers SlowPolicy = iota
	// DropSlow removes the subscriber: it receives what its buffer holds,
	// then an error wrapping ErrSlowSubscriber as its final value, while
	// the others go on. An error from the upstream never causes a drop: it
	// waits for room, or is delivered as the final value if the upstream
	// ends first.
	DropSlow
)

// DefaultSubscriberBuffer is the default buffer of a subscriber, in values.
const DefaultSubscriberBuffer = 64

// BroadcastOption configures a Broadcaster's subscribers: given to
// Broadcast, it sets the default for every subscriber; given to Subscribe,
// it applies to that subscriber. Each constructor checks its argument: a
// bad one is recorded as an error wrapping stream.ErrInvalidOption, which
// Err returns at once and Subscribe yields as the only value.
type BroadcastOption func(*subConfig)

// Err returns the error o records for a bad argument (wrapping
// stream.ErrInvalidOption), or nil, so that a caller can check an option
// where its value is given.
func (o BroadcastOption) Err() error {
	if o == nil {
		return nil
	}
	var c subConfig
	o(&c)
	return c.err
}

type subConfig struct {
	buffer int
	policy SlowPolicy
	err    error
}

// Buffer sets how many values a subscriber's buffer holds (default 64).
// n must not be negative; with 0, every value is handed over directly.
func Buffer(n int) BroadcastOption {
	return func(c *subConfig) {
		if n < 0 && c.err == nil {
			c.err = invalid("Broadcast: Buffer(%d): must not be negative", n)
		}
		c.buffer = n
	}
}

// WhenSlow sets the policy for a subscriber whose buffer is full (default
// BlockOthers).
func WhenSlow(p SlowPolicy) BroadcastOption {
	return func(c *subConfig) {
		if p != BlockOthers && p != DropSlow && c.err == nil {
			c.err = invalid("Broadcast: WhenSlow(%d): unknown policy", int(p))
		}
		c.policy = p
	}
}

// A Broadcaster shares one upstream pass among many subscribers that join
// and leave at any time.
//
// The upstream is opened, with open(ctx'), when the first subscriber
// joins, where ctx' is a child of the Broadcaster's context. It is stopped
// (ctx' cancelled, and its goroutine waited for) when the last subscriber
// leaves; a subscriber that joins later starts a fresh upstream pass. open
// must return a sequence that honours its context, such as
// stream.Watch(ctx', src, ...); to have later passes resume where earlier
// ones stopped, let open read a checkpoint, or use Resume.
//
// Each subscriber receives, in order, the upstream's values from the
// moment it joined (no replay), through a buffer of its own (Buffer), with
// a policy for when that buffer is full (WhenSlow). Errors from the
// upstream reach every subscriber in order; when the upstream ends, each
// subscriber's sequence ends too, after the upstream's final error.
//
// A Broadcaster reads its upstream in one goroutine per pass. A subscriber
// that leaves (break, or its own context done) frees everything it holds
// before its range statement returns; when the Broadcaster's context is
// done, the upstream stops and every subscriber ends with the error the
// upstream ended with (ctx.Err() for a stream).
type Broadcaster[T any] struct {
	ctx  context.Context
	open func(context.Context) iter.Seq2[T, error]
	def  []BroadcastOption

	mu      sync.Mutex
	cur     *bcRun[T]     // the pass new subscribers join, nil if none
	changed chan struct{} // closed (and cleared) when a subscriber joins or leaves
}

// bcRun is one upstream pass.
type bcRun[T any] struct {
	cancel context.CancelFunc
	done   chan struct{}                    // closed when the pump has returned
	subs   atomic.Pointer[[]*subscriber[T]] // receiving values; copy-on-write under Broadcaster.mu
	refs   int                              // joined and not yet left; under Broadcaster.mu
}

type subscriber[T any] struct {
	ch   chan msg[T]
	gone chan struct{} // closed when the subscriber leaves
	cfg  subConfig
	// Owned by the pump:
	final   error // the value after the last one; written before close(ch)
	held    error // an upstream error waiting to be delivered
	dropped bool
}

// Broadcast returns a Broadcaster of the sequences open returns. opts set
// the defaults of every subscriber. Nothing starts until the first
// subscriber joins.
func Broadcast[T any](ctx context.Context, open func(ctx context.Context) iter.Seq2[T, error], opts ...BroadcastOption) *Broadcaster[T] {
	return &Broadcaster[T]{ctx: ctx, open: open, def: opts}
}

// Subscribers returns how many subscribers are joined now.
func (b *Broadcaster[T]) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == nil {
		return 0
	}
	return b.cur.refs
}

// WaitSubscribers blocks until at least n subscribers are joined, or until
// ctx is done (it then returns ctx.Err()). Use it to hold back work, such
// as the upstream's first value, until every subscriber that must see it
// has joined.
func (b *Broadcaster[T]) WaitSubscribers(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		if n <= 0 || b.cur != nil && b.cur.refs >= n {
			b.mu.Unlock()
			return nil
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notify wakes WaitSubscribers. b.mu must be held.
func (b *Broadcaster[T]) notify() {
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// Subscribe returns a sequence that joins the Broadcaster when a range
// loop starts over it, receives the upstream's values from then on, and
// leaves when the loop ends. Each range is a new subscription.
//
// The sequence ends when the upstream ends (after its final error), with
// ctx.Err() when ctx is done, or, under DropSlow, with an error wrapping
// ErrSlowSubscriber. Bad options, or a nil open function, are an error
// wrapping stream.ErrInvalidOption, yielded as the only value.
func (b *Broadcaster[T]) Subscribe(ctx context.Context, opts ...BroadcastOption) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		cfg := subConfig{buffer: DefaultSubscriberBuffer, policy: BlockOthers}
		for _, o := range b.def {
			if o != nil {
				o(&cfg)
			}
		}
		for _, o := range opts {
			if o != nil {
				o(&cfg)
			}
		}
		switch {
		case cfg.err != nil:
			yield(zero, cfg.err)
			return
		case b.open == nil:
			yield(zero, invalid("Broadcast: nil open function"))
			return
		}
		if err := b.ctx.Err(); err != nil {
			yield(zero, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(zero, err)
			return
		}
		s := &subscriber[T]{ch: make(chan msg[T], cfg.buffer), gone: make(chan struct{}), cfg: cfg}
		r := b.join(s)
		defer b.leave(r, s)
		for {
			select {
			case m, ok := <-s.ch:
				if !ok {
					if s.final != nil {
						yield(zero, s.final)
					}
					return
				}
				if !yield(m.v, m.err) {
					return
				}
			case <-ctx.Done():
				yield(zero, ctx.Err())
				return
			}
		}
	}
}

func (b *Broadcaster[T]) join(s *subscriber[T]) *bcRun[T] {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.cur
	if r == nil {
		ctx, cancel := context.WithCancel(b.ctx)
		r = &bcRun[T]{cancel: cancel, done: make(chan struct{})}
		r.subs.Store(&[]*subscriber[T]{})
		b.cur = r
		defer func() { go b.pump(ctx, r) }() // once s is in
	}
	r.refs++
	b.notify()
	subs := append(slices.Clip(*r.subs.Load()), s)
	r.subs.Store(&subs)
	return r
}

func (b *Broadcaster[T]) leave(r *bcRun[T], s *subscriber[T]) {
	b.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		// Cancel before removing s: a pump that no longer sees s then
		// finds its pass cancelled at once, instead of running on with
		// no one to hold it back.
		r.cancel()
		if b.cur == r {
			b.cur = nil
		}
	}
	b.remove(r, s)
	b.notify()
	b.mu.Unlock()
	close(s.gone) // a pump blocked on s gives up on it
	if last {
		<-r.done
	}
}

// remove takes s out of r's receivers. b.mu must be held.
func (b *Broadcaster[T]) remove(r *bcRun[T], s *subscriber[T]) {
	old := *r.subs.Load()
	if i := slices.Index(old, s); i >= 0 {
		subs := slices.Delete(slices.Clone(old), i, i+1)
		r.subs.Store(&subs)
	}
}

// pump reads one upstream pass and delivers it. Once ctx is done it stops
// the upstream at its next value, even one that ignores ctx.
func (b *Broadcaster[T]) pump(ctx context.Context, r *bcRun[T]) {
	defer close(r.done)
	defer r.cancel()
	cut := false // the upstream was stopped before it ended with an error
	var (
		lastErr error            // the upstream's last value, if it was an error
		lastTo  []*subscriber[T] // who it was delivered to
	)
	for v, err := range b.open(ctx) {
		m := msg[T]{v, err}
		subs := *r.subs.Load()
		for _, s := range subs {
			b.deliver(ctx, r, s, m)
		}
		lastErr, lastTo = err, subs
		if ctx.Err() != nil {
			cut = err == nil
			break
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == r {
		b.cur = nil
	}
	for _, s := range *r.subs.Load() {
		s.final = s.held
		if s.final == nil && cut {
			s.final = ctx.Err()
		}
		if s.final == nil && lastErr != nil && !slices.Contains(lastTo, s) {
			// Joined after the upstream's final error went out: it
			// ends with that error too, not as if the upstream had
			// completed.
			s.final = lastErr
		}
		close(s.ch)
	}
	r.subs.Store(&[]*subscriber[T]{})
}

func (b *Broadcaster[T]) deliver(ctx context.Context, r *bcRun[T], s *subscriber[T], m msg[T]) {
	if s.dropped {
		return
	}
	if s.held != nil {
		if s.cfg.policy == BlockOthers {
			// Only set once the pass is ending: keep the newest error as
			// the final value, skip the rest.
			if m.err != nil {
				s.held = m.err
			}
			return
		}
		select {
		case s.ch <- msg[T]{err: s.held}:
			s.held = nil
		default:
			b.drop(r, s)
			return
		}
	}
	if s.cfg.policy == DropSlow {
		select {
		case s.ch <- m:
		default:
			if m.err != nil {
				s.held = m.err
				return
			}
			b.drop(r, s)
		}
		return
	}
	select {
	case s.ch <- m:
	case <-s.gone:
	case <-ctx.Done():
		// The pass is ending (the Broadcaster's context is done, or every
		// subscriber left): deliver the error at the end instead.
		if m.err != nil {
			s.held = m.err
		} else {
			s.held = ctx.Err()
		}
	}
}

// drop removes s for being slow: it reads what its buffer holds, then the
// ErrSlowSubscriber error.
func (b *Broadcaster[T]) drop(r *bcRun[T], s *subscriber[T]) {
	s.dropped = true
	s.final = fmt.Errorf("operators: %w: its buffer of %d values was full", ErrSlowSubscriber, cap(s.ch))
	close(s.ch)
	b.mu.Lock()
	b.remove(r, s)
	b.mu.Unlock()
}
