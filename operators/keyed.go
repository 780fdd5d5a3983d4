package operators

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of HandleByKey.
const (
	// DefaultMaxPending is the default bound on the changes HandleByKey
	// holds (see MaxPending).
	DefaultMaxPending = 1024
	// DefaultHandlerRetries is the MaxRetries of HandleByKey's default
	// retry policy: stream.DefaultRetryPolicy() with MaxRetries set to it
	// (500 ms, 1 s, 2 s, 4 s, 8 s, jittered, then the poison policy).
	DefaultHandlerRetries = 5
)

// KeyedOption configures HandleByKey. Each option checks its argument; a
// bad one makes HandleByKey yield an error wrapping
// stream.ErrInvalidOption as its only value, and Err reports it at once.
type KeyedOption func(*keyedConfig)

type keyedConfig struct {
	retry      stream.RetryPolicy
	maxPending int
	newestOnly bool
	skip       func(v any, err error) // nil: stop on a poison change
	skipType   reflect.Type           // the value type skip takes
	err        error
}

func newKeyedConfig(opts []KeyedOption) *keyedConfig {
	retry := stream.DefaultRetryPolicy()
	retry.MaxRetries = DefaultHandlerRetries
	c := &keyedConfig{retry: retry, maxPending: DefaultMaxPending}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

func (c *keyedConfig) fail(format string, args ...any) {
	if c.err == nil {
		c.err = keyedInvalid(format, args...)
	}
}

func keyedInvalid(format string, args ...any) error {
	return invalid("HandleByKey: "+format, args...)
}

// Err returns the error the option records for a bad argument, or nil.
func (o KeyedOption) Err() error {
	if o == nil {
		return nil
	}
	c := &keyedConfig{}
	o(c)
	return c.err
}

// RetryHandler sets the policy a failed handler call is retried with, per
// key (default: stream.DefaultRetryPolicy() with MaxRetries
// DefaultHandlerRetries). After p.MaxRetries failed retries in a row the
// change is poison: HandleByKey stops, or skips it with SkipPoison. With
// stream.NoRetryLimit a change is retried until it succeeds, and its key
// waits for it. p must pass p.Validate().
func RetryHandler(p stream.RetryPolicy) KeyedOption {
	return func(c *keyedConfig) {
		if err := p.Validate(); err != nil {
			c.fail("RetryHandler: %v", err)
		}
		c.retry = p
	}
}

// MaxPending bounds the changes HandleByKey holds to n (default
// DefaultMaxPending): the changes read from the upstream whose revision is
// above the watermark, whether waiting, being handled, backing off, or
// handled but behind an earlier change that is not. While it holds n, it
// does not read the upstream further. At most min(n, workers) changes are
// handled at a time. n must be at least 1.
func MaxPending(n int) KeyedOption {
	return func(c *keyedConfig) {
		if n < 1 {
			c.fail("MaxPending(%d): must be at least 1", n)
		}
		c.maxPending = n
	}
}

// NewestOnly de-duplicates the pending work of each key, for handlers
// that only need the newest state of a key: while a change of a key waits
// (it has not been handed to the handler yet), a newer change of the same
// key replaces it, and the replaced change counts as handled. The change
// being handled, or backing off after a failure, is not replaced: the
// newer one waits behind it. The watermark stays correct: a replaced
// change is below its replacement, which is above the watermark until it
// is handled, so a restart after the watermark still delivers the newest
// state.
func NewestOnly() KeyedOption {
	return func(c *keyedConfig) { c.newestOnly = true }
}

// SkipPoison makes HandleByKey skip a poison change instead of stopping:
// a change whose handler failed for good (its retries used up, or an error
// for which stream.IsFinal holds). report is called with the change and a
// *KeyedError holding its last error, on HandleByKey's dispatching
// goroutine, one call at a time (possibly while the loop body runs); then
// the change counts as handled, and its key goes on with its next change.
// A panic in the handler is never skipped. report must not be nil, and T
// must be the type of the stream's values.
func SkipPoison[T any](report func(v T, err error)) KeyedOption {
	return func(c *keyedConfig) {
		if report == nil {
			c.fail("SkipPoison: nil report function")
			return
		}
		c.skipType = reflect.TypeFor[T]()
		c.skip = func(v any, err error) {
			t, _ := v.(T) // nil for a nil interface value
			report(t, err)
		}
	}
}

// KeyedError reports a change that HandleByKey could not handle: its
// handler failed for good, or panicked. It is the error HandleByKey ends
// with (unless SkipPoison is set, then it is what report gets), and it
// unwraps to the handler's last error, or to a *PanicError.
type KeyedError struct {
	Key      any             // the change's key
	Revision stream.Revision // the change's revision
	Attempts int             // handler calls for the change, the first included
	Err      error           // the last call's error, or a *PanicError
}

func (e *KeyedError) Error() string {
	var p *PanicError
	if errors.As(e.Err, &p) {
		return fmt.Sprintf("operators: HandleByKey: handler panicked at revision %s (key %v): %v", e.Revision, e.Key, p.Value)
	}
	return fmt.Sprintf("operators: HandleByKey: handler failed at revision %s (key %v) after %d attempts: %v", e.Revision, e.Key, e.Attempts, e.Err)
}

// Unwrap returns the handler's last error.
func (e *KeyedError) Unwrap() error { return e.Err }

// PanicError is a panic in a handler, recovered by HandleByKey.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// WatermarkRevision returns rev. It is the revision function for a
// sequence of watermarks, such as HandleByKey's, so that Checkpoint can
// save them:
//
//	operators.Checkpoint(ctx, operators.HandleByKey(...), store, operators.WatermarkRevision)
func WatermarkRevision(rev stream.Revision) (stream.Revision, error) { return rev, nil }

// HandleByKey handles the changes of seq with handle, on n workers: changes
// with the same key (for CloudTower, the resource id) are handled one at a
// time, in revision order; changes with different keys are handled in
// parallel. It yields the low watermark each time it advances: the highest
// revision R such that every change at or below R has been handled
// (handle returned nil, or the change was skipped by SkipPoison or
// replaced by NewestOnly).
//
// Save the watermark with Checkpoint, and start the stream after it on the
// next run (LoadAfter): nothing at or below it is lost after a crash, and
// changes above it may be handled again (at-least-once, per key in order):
//
//	ctx, cancel := context.WithCancel(ctx)
//	defer cancel() // stops the reading goroutine, whatever ends the loop
//	events := stream.Watch(ctx, src, after)
//	marks := operators.HandleByKey(ctx, events, 32, resourceID, src.Revision, apply)
//	for _, err := range operators.Checkpoint(ctx, marks, store, operators.WatermarkRevision) {
//		if err != nil {
//			return err
//		}
//	}
//
// # Blocking and goroutines
//
// Ranging over the returned sequence blocks until the upstream ends (and
// every change read from it is handled), an error stops it, or the loop
// breaks. Each pass starts n worker goroutines, which call handle, one
// goroutine that reads seq, and one that dispatches changes to the
// workers and calls key, revision and SkipPoison's report, one call at a
// time. The loop body runs on the range goroutine, at the same time as
// the handling: a slow body (a checkpoint save) does not hold the workers
// up, and the watermarks that pass meanwhile are coalesced: the body gets
// the newest one next. An error from seq is the exception: nothing after
// it is dispatched until the body is done with it (so a consumer can
// re-list on Resume's gap notice before a later change is handled). See
// the package documentation for how the reading goroutine is stopped;
// the dispatcher and every worker have returned when the range statement
// ends.
//
// # Ordering
//
// The calls for one key never overlap, and happen in revision order: a
// change waits for the earlier changes of its key, including their
// retries. Changes of different keys have no order among each other. The
// watermark increases strictly.
//
// # Bounds
//
// At most n calls of handle run at a time, and at most MaxPending changes
// (default DefaultMaxPending) are held: read from seq but above the
// watermark. While that many are held, seq is not read further; so one
// key stuck behind a failing change holds the others back once the
// changes after it fill the bound. Handled changes that wait for the
// watermark keep only their revision.
//
// # Retries and poison changes
//
// A handler error is retried with the RetryHandler policy, per key: the
// failed change and the later changes of its key wait (on no worker)
// while the other keys go on. An error for which stream.IsFinal holds is
// not retried, except a context error from a call whose context is live,
// taken as the call's own timeout. A change that failed for good is
// poison: by default HandleByKey stops and ends with a *KeyedError; with
// SkipPoison it reports and skips it.
//
// # Errors and cancellation
//
// An error from seq is passed on once every change read before it has
// been handled (so a checkpoint saved on it is exact), and HandleByKey
// goes on reading seq after it, as the other operators do. When ctx is
// done, the consumer breaks, a handler panics, a change is poison (without
// SkipPoison), or revision fails or goes backwards, HandleByKey cancels
// the context the handlers get and waits for the calls in progress; on
// the non-break paths it then yields the watermark they reached and ends
// with the error (ctx.Err() for a done ctx). The changes still waiting are
// not handled; they are above the watermark.
//
// A panic in handle is recovered and ends the sequence with a *KeyedError
// wrapping a *PanicError (with the key and the revision); it is never
// retried or skipped. A panic in key, revision or SkipPoison's report is
// raised again on the range goroutine, after the workers have returned.
//
// n < 1, a nil function or a bad option is an error wrapping
// stream.ErrInvalidOption, yielded as the only value.
func HandleByKey[T any, K comparable](ctx context.Context, seq iter.Seq2[T, error], n int, key func(T) K, revision func(T) (stream.Revision, error), handle func(ctx context.Context, v T) error, opts ...KeyedOption) iter.Seq2[stream.Revision, error] {
	cfg := newKeyedConfig(opts)
	return func(yield func(stream.Revision, error) bool) {
		var noRev stream.Revision
		switch {
		case cfg.err != nil:
			yield(noRev, cfg.err)
			return
		case n < 1:
			yield(noRev, keyedInvalid("%d workers, must be at least 1", n))
			return
		case seq == nil:
			yield(noRev, keyedInvalid("nil sequence"))
			return
		case key == nil:
			yield(noRev, keyedInvalid("nil key function"))
			return
		case revision == nil:
			yield(noRev, keyedInvalid("nil revision function"))
			return
		case handle == nil:
			yield(noRev, keyedInvalid("nil handler"))
			return
		case cfg.skip != nil && cfg.skipType != reflect.TypeFor[T]():
			yield(noRev, keyedInvalid("SkipPoison reports %v values, the stream's are %v", cfg.skipType, reflect.TypeFor[T]()))
			return
		}
		r := newKeyedRun(cfg, n, key, revision, handle)
		r.run(ctx, seq, yield)
	}
}

// keyedRun is one pass of HandleByKey. Its state belongs to the
// dispatching goroutine, except the channels, sem, and the fields under
// markMu.
//
// The held changes live in a ring of cfg.maxPending slots, in the order
// they were read (revision order); change number s (counting from 0 in
// the pass) is in slot s % len(ring), and the held ones are base..next-1.
// The watermark is the revision of the last change that left the ring
// through base; a change leaves once it and every change before it is
// done. sem holds one permit per free slot: the reader takes one before it
// reads a value, the dispatcher gives it back when the change leaves.
type keyedRun[T any, K comparable] struct {
	cfg      *keyedConfig
	n        int
	key      func(T) K
	revision func(T) (stream.Revision, error)
	handle   func(context.Context, T) error

	ring       []keyedSlot[T, K]
	base, next uint64
	keys       map[K]*keyedKeyState[K]
	ready      keyedReadyHeap[K] // keys whose first change can start, oldest change first
	backoff    keyedRetryHeap[K] // keys waiting to retry
	timer      *time.Timer       // fires at backoff's earliest due time
	running    int               // calls in progress (jobs sent, results not received)
	watermark  stream.Revision
	last       stream.Revision // revision of the last change read

	in      chan msg[T]
	jobs    chan keyedJob[T]
	results chan keyedResult
	sem     *semaphore.Weighted

	// Between the dispatcher and the consumer.
	markMu  sync.Mutex
	mark    stream.Revision  // the newest watermark published
	marked  chan struct{}    // cap 1: mark has moved
	notices chan keyedNotice // errors from seq
	quit    chan struct{}    // closed when the consumer has left
}

type keyedSlot[T any, K comparable] struct {
	v    T
	k    K
	rev  stream.Revision
	done bool
}

// keyedKeyState is a key with held changes that are not done. queue holds
// their numbers, oldest first; queue[0] has been started (is running or
// backing off) when attempts > 0.
type keyedKeyState[K comparable] struct {
	k        K
	queue    []uint64
	attempts int // calls for queue[0] so far
	index    int // position in ready, while there
	retrier  *stream.Retrier
}

type keyedJob[T any] struct {
	seq uint64
	v   T
}

type keyedResult struct {
	seq      uint64
	err      error
	panicked bool
}

func newKeyedRun[T any, K comparable](cfg *keyedConfig, n int, key func(T) K, revision func(T) (stream.Revision, error), handle func(context.Context, T) error) *keyedRun[T, K] {
	return &keyedRun[T, K]{
		cfg: cfg, n: n, key: key, revision: revision, handle: handle,
		ring:    make([]keyedSlot[T, K], cfg.maxPending),
		keys:    make(map[K]*keyedKeyState[K]),
		in:      make(chan msg[T]),
		jobs:    make(chan keyedJob[T]),
		results: make(chan keyedResult, n), // at most n running: sends never block
		sem:     semaphore.NewWeighted(int64(cfg.maxPending)),
		marked:  make(chan struct{}, 1),
		notices: make(chan keyedNotice),
		quit:    make(chan struct{}),
	}
}

// run is one pass, on the goroutine of the range loop: it starts the
// dispatcher and yields what it publishes, until it ends. Whatever ends
// the pass (a break or a panic in the loop body included), run returns
// only once the dispatcher has stopped, and the dispatcher only once every
// worker has returned.
func (r *keyedRun[T, K]) run(ctx context.Context, seq iter.Seq2[T, error], yield func(stream.Revision, error) bool) {
	out := make(chan keyedOutcome, 1)
	go func() { out <- r.dispatch(ctx, seq) }()
	over := false // the dispatcher's outcome is in
	defer func() {
		if !over {
			close(r.quit)
			<-out
		}
	}()
	var (
		noRev   stream.Revision
		yielded stream.Revision
	)
	// mark yields the newest watermark, if it moved.
	mark := func() bool {
		r.markMu.Lock()
		m := r.mark
		r.markMu.Unlock()
		if m == yielded {
			return true
		}
		yielded = m
		return yield(m, nil)
	}
	for {
		select {
		case <-r.marked:
			if !mark() {
				return
			}
		case nt := <-r.notices:
			if nt.mark != yielded {
				yielded = nt.mark
				if !yield(nt.mark, nil) {
					return
				}
			}
			if !yield(noRev, nt.err) {
				return
			}
			close(nt.ack)
		case o := <-out:
			over = true
			if !mark() {
				return
			}
			if o.panicked {
				panic(o.panic)
			}
			if o.err != nil {
				yield(noRev, o.err)
			}
			return
		}
	}
}

// keyedNotice hands an error from seq to the consumer, with the watermark
// of everything read before it; the dispatcher waits until ack is closed
// (the loop body is done with the error) before it goes on.
type keyedNotice struct {
	mark stream.Revision
	err  error
	ack  chan struct{}
}

// keyedOutcome is how the dispatcher ended: with an error to yield last,
// or with the value of a panic in key, revision or SkipPoison's report.
type keyedOutcome struct {
	err      error
	panic    any
	panicked bool
}

// publish makes the watermark the newest one for the consumer to yield.
func (r *keyedRun[T, K]) publish() {
	r.markMu.Lock()
	r.mark = r.watermark
	r.markMu.Unlock()
	select {
	case r.marked <- struct{}{}:
	default: // the consumer has not taken the last notice yet
	}
}

// dispatch is the dispatching goroutine. It owns the workers and the
// reading goroutine, and returns once every worker has returned: when seq
// has ended and every change read is handled, on an error that ends the
// pass, and when the consumer has left (quit).
func (r *keyedRun[T, K]) dispatch(ctx context.Context, seq iter.Seq2[T, error]) (o keyedOutcome) {
	workCtx, cancel := context.WithCancel(ctx)
	readCtx, stopReading := context.WithCancel(context.Background())
	var workers errgroup.Group
	for range r.n {
		workers.Go(func() error {
			r.work(workCtx)
			return nil
		})
	}
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	defer func() {
		if p := recover(); p != nil {
			o = keyedOutcome{panic: p, panicked: true}
		}
		// Stop the handlers, and wait until every worker has returned.
		r.timer.Stop()
		stopReading()
		cancel()
		close(r.jobs)
		_ = workers.Wait()
	}()
	go r.read(readCtx, seq)

	var (
		in       = r.in // nil while draining or once seq has ended
		upstream error  // an error from seq, passed on once drained
		ended    bool   // seq has ended
	)
	for {
		if err := ctx.Err(); err != nil {
			return r.stop(err, cancel) // start nothing new
		}
		if in == nil && r.running == 0 && r.base == r.next {
			// Everything read is handled: end, or pass on the error and
			// wait until the consumer is done with it.
			if ended {
				return keyedOutcome{err: ctx.Err()} // seq may end silently on cancel
			}
			ack := make(chan struct{})
			select {
			case r.notices <- keyedNotice{mark: r.watermark, err: upstream, ack: ack}:
			case <-r.quit:
				return keyedOutcome{}
			}
			select {
			case <-ack:
			case <-r.quit:
				return keyedOutcome{}
			}
			upstream, in = nil, r.in
		}
		var (
			jobs chan<- keyedJob[T]
			job  keyedJob[T]
		)
		if ks, ok := r.ready.peek(); ok {
			jobs = r.jobs
			job = keyedJob[T]{seq: ks.queue[0], v: r.slot(ks.queue[0]).v}
		}
		select {
		case jobs <- job:
			ks := heap.Pop(&r.ready).(*keyedKeyState[K])
			ks.attempts++
			r.running++
		case m, ok := <-in:
			if !ok {
				in, ended = nil, true
				continue
			}
			if m.err != nil {
				if cerr := ctx.Err(); cerr != nil && errors.Is(m.err, cerr) {
					return r.stop(cerr, cancel)
				}
				in, upstream = nil, m.err
				continue
			}
			if err := r.add(m.v); err != nil {
				return r.stop(err, cancel)
			}
		case res := <-r.results:
			r.running--
			if err := r.finish(ctx, res); err != nil {
				return r.stop(err, cancel)
			}
		case <-r.timer.C:
			r.retryDue()
		case <-ctx.Done():
			return r.stop(ctx.Err(), cancel)
		case <-r.quit:
			return keyedOutcome{}
		}
		if r.advance() {
			r.publish()
		}
	}
}

// read is the reading goroutine: it takes a permit for a free slot, reads
// the next value and hands it to the dispatcher, until seq ends or
// readCtx is cancelled (when the pass ends). An error takes no slot.
func (r *keyedRun[T, K]) read(readCtx context.Context, seq iter.Seq2[T, error]) {
	defer close(r.in)
	if r.sem.Acquire(readCtx, 1) != nil {
		return
	}
	for v, err := range seq {
		select {
		case r.in <- msg[T]{v: v, err: err}:
		case <-readCtx.Done():
			return
		}
		if err == nil && r.sem.Acquire(readCtx, 1) != nil {
			return
		}
	}
}

// work is a worker: it handles the jobs it gets until jobs is closed.
func (r *keyedRun[T, K]) work(ctx context.Context) {
	for j := range r.jobs {
		r.results <- r.call(ctx, j)
	}
}

// call runs the handler for one job, recovering a panic. A handler that
// calls runtime.Goexit (t.FailNow) ends its worker; its result is sent
// from here, so the pass does not wait for it forever.
func (r *keyedRun[T, K]) call(ctx context.Context, j keyedJob[T]) (res keyedResult) {
	res.seq = j.seq
	if err := ctx.Err(); err != nil {
		res.err = err // the pass is ending: no new call
		return res
	}
	returned := false
	defer func() {
		if returned {
			return
		}
		p := recover()
		res.err, res.panicked = &PanicError{Value: p, Stack: debug.Stack()}, true
		if p == nil {
			res.err = &PanicError{Value: "runtime.Goexit called", Stack: debug.Stack()}
			r.results <- res
		}
	}()
	res.err = r.handle(ctx, j.v)
	returned = true
	return res
}

func (r *keyedRun[T, K]) slot(seq uint64) *keyedSlot[T, K] {
	return &r.ring[seq%uint64(len(r.ring))]
}

// add holds a value read from seq; the reader has taken its slot.
func (r *keyedRun[T, K]) add(v T) error {
	rev, err := r.revision(v)
	if err != nil {
		return fmt.Errorf("operators: HandleByKey: revision of a value: %w", err)
	}
	if !r.last.IsZero() && rev.Compare(r.last) <= 0 {
		return fmt.Errorf("operators: HandleByKey: %w: revision %s after %s", stream.ErrProtocol, rev, r.last)
	}
	r.last = rev
	k := r.key(v)
	s := r.next
	r.next++
	*r.slot(s) = keyedSlot[T, K]{v: v, k: k, rev: rev}
	ks := r.keys[k]
	if ks == nil {
		ks = &keyedKeyState[K]{k: k}
		r.keys[k] = ks
	}
	if q := ks.queue; r.cfg.newestOnly && len(q) > 0 && (len(q) > 1 || ks.attempts == 0) {
		// The newest queued change has not started: replace it.
		r.markDone(q[len(q)-1])
		q[len(q)-1] = s
		if len(q) == 1 {
			heap.Fix(&r.ready, ks.index) // its first change is newer now
		}
		return nil
	}
	ks.queue = append(ks.queue, s)
	if len(ks.queue) == 1 {
		heap.Push(&r.ready, ks)
	}
	return nil
}

// markDone marks a held change done and drops its value.
func (r *keyedRun[T, K]) markDone(seq uint64) {
	sl := r.slot(seq)
	var zero T
	sl.v, sl.done = zero, true
}

// finish applies the result of a call. It returns the error to stop with:
// a panic, or a poison change without SkipPoison.
func (r *keyedRun[T, K]) finish(ctx context.Context, res keyedResult) error {
	sl := r.slot(res.seq)
	ks := r.keys[sl.k]
	if res.err == nil {
		r.next0(ks)
		return nil
	}
	kerr := &KeyedError{Key: sl.k, Revision: sl.rev, Attempts: ks.attempts, Err: res.err}
	if res.panicked {
		return kerr
	}
	if ctx.Err() != nil {
		return ctx.Err() // the call was interrupted
	}
	if ks.retrier == nil {
		ks.retrier = r.cfg.retry.Start()
	}
	final := stream.IsFinal(res.err) && !errors.Is(res.err, context.Canceled) && !errors.Is(res.err, context.DeadlineExceeded)
	if !final {
		if wait, ok := ks.retrier.Next(res.err); ok {
			r.backoff.add(ks, time.Now().Add(wait))
			r.resetTimer()
			return nil
		}
	}
	if r.cfg.skip == nil {
		return kerr
	}
	r.cfg.skip(sl.v, kerr)
	r.next0(ks)
	return nil
}

// next0 marks the first change of ks done and readies its next one.
func (r *keyedRun[T, K]) next0(ks *keyedKeyState[K]) {
	r.markDone(ks.queue[0])
	ks.queue = ks.queue[1:]
	ks.attempts = 0
	if ks.retrier != nil {
		ks.retrier.Reset()
	}
	if len(ks.queue) == 0 {
		delete(r.keys, ks.k)
		return
	}
	heap.Push(&r.ready, ks)
}

// retryDue readies the keys whose backoff has passed.
func (r *keyedRun[T, K]) retryDue() {
	now := time.Now()
	for r.backoff.Len() > 0 && !r.backoff.items[0].due.After(now) {
		ks := heap.Pop(&r.backoff).(keyedRetryItem[K]).ks
		heap.Push(&r.ready, ks)
	}
	r.resetTimer()
}

func (r *keyedRun[T, K]) resetTimer() {
	r.timer.Stop()
	if r.backoff.Len() > 0 {
		r.timer.Reset(time.Until(r.backoff.items[0].due))
	}
}

// advance moves the watermark past the done changes at the base of the
// ring, freeing their slots. It reports whether the watermark moved.
func (r *keyedRun[T, K]) advance() bool {
	freed := 0
	for r.base < r.next {
		sl := r.slot(r.base)
		if !sl.done {
			break
		}
		r.watermark = sl.rev
		*sl = keyedSlot[T, K]{}
		r.base++
		freed++
	}
	if freed > 0 {
		r.sem.Release(int64(freed))
	}
	return freed > 0
}

// stop ends a pass on err: it cancels the handlers' context, waits for
// the calls in progress, and publishes the watermark they reached.
func (r *keyedRun[T, K]) stop(err error, cancel context.CancelFunc) keyedOutcome {
	cancel()
	for ; r.running > 0; r.running-- {
		if res := <-r.results; res.err == nil {
			r.markDone(res.seq)
		}
	}
	if r.advance() {
		r.publish()
	}
	return keyedOutcome{err: err}
}

// keyedReadyHeap holds the keys whose first change can start, the one with
// the oldest change first: dispatching oldest first keeps the watermark
// close behind the changes handled.
type keyedReadyHeap[K comparable] []*keyedKeyState[K]

func (h keyedReadyHeap[K]) peek() (*keyedKeyState[K], bool) {
	if len(h) == 0 {
		return nil, false
	}
	return h[0], true
}

func (h keyedReadyHeap[K]) Len() int           { return len(h) }
func (h keyedReadyHeap[K]) Less(i, j int) bool { return h[i].queue[0] < h[j].queue[0] }
func (h keyedReadyHeap[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *keyedReadyHeap[K]) Push(x any) {
	ks := x.(*keyedKeyState[K])
	ks.index = len(*h)
	*h = append(*h, ks)
}
func (h *keyedReadyHeap[K]) Pop() any {
	old := *h
	ks := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return ks
}

// keyedRetryHeap holds the keys backing off, earliest due first.
type keyedRetryHeap[K comparable] struct{ items []keyedRetryItem[K] }

type keyedRetryItem[K comparable] struct {
	ks  *keyedKeyState[K]
	due time.Time
}

func (h *keyedRetryHeap[K]) add(ks *keyedKeyState[K], due time.Time) {
	heap.Push(h, keyedRetryItem[K]{ks: ks, due: due})
}

func (h keyedRetryHeap[K]) Len() int           { return len(h.items) }
func (h keyedRetryHeap[K]) Less(i, j int) bool { return h.items[i].due.Before(h.items[j].due) }
func (h keyedRetryHeap[K]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *keyedRetryHeap[K]) Push(x any)        { h.items = append(h.items, x.(keyedRetryItem[K])) }
func (h *keyedRetryHeap[K]) Pop() any {
	it := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = keyedRetryItem[K]{}
	h.items = h.items[:len(h.items)-1]
	return it
}
