package informer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/towerwatch/towerwatch/internal/ctxtime"
	"github.com/towerwatch/towerwatch/stream"
)

// Op says what a change did to its object.
type Op uint8

// The operations of a Change. The zero Op, Ignore, makes the informer skip
// the change (a change of another kind of object in a shared feed).
const (
	Ignore Op = iota
	Insert
	Update
	Delete
)

func (o Op) String() string {
	switch o {
	case Ignore:
		return "IGNORE"
	case Insert:
		return "INSERT"
	case Update:
		return "UPDATE"
	case Delete:
		return "DELETE"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Change is one decoded item of the change feed.
type Change[V any] struct {
	Op Op
	// Object is the object's new state for Insert and Update, and for
	// Delete its last state, or at least enough of it for the key function.
	Object V
}

// DecodeFunc turns an item of the change feed into a Change. It runs on
// the informer's goroutine, in revision order, with Run's context (it may
// fetch the object, for example). An error makes the informer re-list, so
// that the store stays right without that change; it is logged.
type DecodeFunc[E, V any] func(ctx context.Context, item E) (Change[V], error)

// RelistInfo describes a re-list after the first sync, for OnRelist.
type RelistInfo struct {
	// Cause is why: a *stream.CompactedError, ErrResync, or the error of a
	// change that could not be decoded (*DecodeError).
	Cause    error
	Objects  int           // objects listed
	Added    int           // objects new to the store
	Updated  int           // objects that changed
	Deleted  int           // objects gone, notified with finalStateUnknown
	Duration time.Duration // from the start of the list to the diff applied
}

// ErrResync is the Cause of a periodic re-list (see Resync).
var ErrResync = errors.New("informer: periodic resync")

// ErrRunning is returned by Run when the informer is already running, or
// has run: an informer runs once.
var ErrRunning = errors.New("informer: Run called twice")

// DecodeError reports a change the DecodeFunc could not decode.
type DecodeError struct {
	Revision stream.Revision
	Err      error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("informer: change %s: %v", e.Revision, e.Err)
}

// Unwrap returns the decoder's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Informer keeps a Store in step with a list of objects and their change
// feed, and notifies handlers. See the package documentation.
type Informer[K comparable, V any] struct {
	cfg       *config
	lister    Lister[V]
	feed      feed[V]
	key       func(V) K
	transform func(V) V
	equal     func(a, b V) bool
	store     *Store[K, V]

	// mu guards the handler list and the run state; it is held while a
	// change is applied and queued, so that a handler added meanwhile gets
	// a consistent snapshot and every later change.
	mu       sync.Mutex
	handlers []*Registration[K, V]
	synced   bool
	running  bool
	stopped  bool
	group    *errgroup.Group
	gctx     context.Context

	syncedCh chan struct{}
	relists  atomic.Int64
}

// feed hides the item type of the change stream.
type feed[V any] interface {
	head(ctx context.Context) (stream.Revision, error)
	// watch watches after after; onPage, if not nil, is called with each
	// page the source returns, on the goroutine that polled (the engine's
	// prefetch may poll while earlier items are still being handled).
	watch(ctx context.Context, after stream.Revision, opts []stream.Option, onPage func(pageInfo)) iter.Seq2[decoded[V], error]
}

// pageInfo is what the informer needs to know of a page, computed as the
// engine does.
type pageInfo struct {
	head stream.Revision
	// caughtUp: the engine will deliver this page's new items, if any, and
	// then believe nothing more is waiting.
	caughtUp bool
	// last is the revision after which nothing is waiting once the page
	// is delivered: its newest new item, or the revision it was after.
	last stream.Revision
}

type decoded[V any] struct {
	rev    stream.Revision
	change Change[V]
	err    error // from the decoder
}

// New returns an informer over the objects that lister lists and the
// changes that src yields, decoded by decode and keyed by key. Nothing
// runs until Run. A bad argument or option is an error wrapping
// stream.ErrInvalidOption.
func New[K comparable, V, E any](lister Lister[V], src stream.Source[E], decode DecodeFunc[E, V], key func(V) K, opts ...Option) (*Informer[K, V], error) {
	cfg := newConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	switch {
	case lister == nil:
		cfg.fail("New: nil Lister")
	case src == nil:
		cfg.fail("New: nil Source")
	case decode == nil:
		cfg.fail("New: nil DecodeFunc")
	case key == nil:
		cfg.fail("New: nil key func")
	}
	inf := &Informer[K, V]{cfg: cfg, lister: lister, key: key, syncedCh: make(chan struct{}),
		feed: &srcFeed[E, V]{src: src, decode: decode, cfg: cfg}}
	indexes := map[string]IndexFunc[V]{}
	for _, ix := range cfg.indexes {
		f, ok := ix.f.(func(V) []string)
		if !ok {
			cfg.fail("Index(%q): func type %T, want func(%T) []string", ix.name, ix.f, *new(V))
		}
		indexes[ix.name] = f
	}
	if cfg.transform != nil {
		f, ok := cfg.transform.(func(V) V)
		if !ok {
			cfg.fail("Transform: func type %T does not match the informer's object type %T", cfg.transform, *new(V))
		}
		inf.transform = f
	}
	inf.equal = jsonEqual[V]
	if cfg.equal != nil {
		f, ok := cfg.equal.(func(a, b V) bool)
		if !ok {
			cfg.fail("Equal: func type %T does not match the informer's object type %T", cfg.equal, *new(V))
		}
		inf.equal = f
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	inf.store = newStore[K](indexes)
	return inf, nil
}

func jsonEqual[V any](a, b V) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// Store returns the informer's store. It is empty until the first sync,
// then holds every object; it keeps its last state after Run returns.
func (inf *Informer[K, V]) Store() *Store[K, V] { return inf.store }

// HasSynced reports whether the first sync is done: the store holds every
// object, as of a revision at or after the start of Run.
func (inf *Informer[K, V]) HasSynced() bool {
	select {
	case <-inf.syncedCh:
		return true
	default:
		return false
	}
}

// WaitForSync waits until the first sync is done (nil) or ctx is done
// (ctx.Err()). It does not wait for the handlers; see
// Registration.HasSynced.
func (inf *Informer[K, V]) WaitForSync(ctx context.Context) error {
	select {
	case <-inf.syncedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Relists returns the number of re-lists after the first sync so far.
func (inf *Informer[K, V]) Relists() int { return int(inf.relists.Load()) }

// AddHandler adds a handler and returns its registration. Added before the
// first sync, the handler gets an Add (initial true) per object at the
// sync; added after it, an Add (initial true) for every object stored now,
// then every later change. It may be called at any time, also from a
// handler.
func (inf *Informer[K, V]) AddHandler(h Handler[V]) *Registration[K, V] {
	r := newRegistration(inf, h)
	inf.mu.Lock()
	defer inf.mu.Unlock()
	if h == nil {
		r.removed = true
		close(r.stop)
		return r
	}
	inf.handlers = append(inf.handlers, r)
	if inf.synced {
		for k, v := range inf.store.snapshot() {
			r.push(note[K, V]{kind: kindAdd, key: k, obj: v, initial: true})
		}
		r.mu.Lock()
		r.primed = true
		r.mu.Unlock()
	}
	if inf.running && !inf.stopped {
		inf.start(r)
	}
	return r
}

// start runs r's goroutine in the group; inf.mu is held.
func (inf *Informer[K, V]) start(r *Registration[K, V]) {
	if !r.started {
		r.started = true
		ctx := inf.gctx
		inf.group.Go(func() error { return r.run(ctx) })
	}
}

func (inf *Informer[K, V]) removeHandler(r *Registration[K, V]) {
	inf.mu.Lock()
	defer inf.mu.Unlock()
	for i, h := range inf.handlers {
		if h == r {
			inf.handlers = append(inf.handlers[:i:i], inf.handlers[i+1:]...)
			return
		}
	}
}

// Run lists, watches and notifies until ctx is done, then returns
// ctx.Err(); or until an error is final for the stream (stream.Fatal, an
// invalid option), which it returns, wrapped as the source gave it.
// Compaction, a gap or an undecodable change make it re-list; a
// *stream.RetryError makes it reopen the watch; neither ends it. Every
// goroutine it starts (one per handler) has stopped when it returns. An
// informer runs once; a second call returns ErrRunning.
func (inf *Informer[K, V]) Run(ctx context.Context) error {
	inf.mu.Lock()
	if inf.running {
		inf.mu.Unlock()
		return ErrRunning
	}
	g, gctx := errgroup.WithContext(ctx)
	inf.running, inf.group, inf.gctx = true, g, gctx
	for _, r := range inf.handlers {
		inf.start(r)
	}
	g.Go(func() error {
		err := inf.loop(gctx)
		inf.mu.Lock()
		inf.stopped = true
		inf.mu.Unlock()
		if err == nil {
			err = gctx.Err()
		}
		return err
	})
	inf.mu.Unlock()
	err := g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// loop runs sessions: each lists (diffing against the store) and watches,
// until it needs a re-list.
func (inf *Informer[K, V]) loop(ctx context.Context) error {
	var cause error // nil for the first sync
	bo := inf.cfg.retry.Start()
	for {
		next, err := inf.session(ctx, cause, bo)
		if err != nil {
			return err
		}
		cause = next
	}
}

// session runs one start: head, list, replay, commit (diff), then the
// watch, until the watch needs a re-list (the cause is returned) or an
// error is final.
func (inf *Informer[K, V]) session(ctx context.Context, cause error, bo *stream.Retrier) (next error, err error) {
	log := inf.cfg.logger
	for {
		start := time.Now()
		h, err := inf.feed.head(ctx)
		var (
			scratch map[K]V
			h2      stream.Revision
		)
		if err == nil {
			scratch, err = inf.list(ctx)
		}
		if err == nil {
			h2, err = inf.feed.head(ctx)
		}
		if err == nil {
			bo.Reset()
			return inf.watch(ctx, cause, h, h2, scratch, start, bo)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if stream.IsFinal(err) {
			return nil, err
		}
		wait, ok := bo.Next(err)
		if !ok {
			return nil, &stream.RetryError{Attempts: bo.Failures(), Err: err}
		}
		log.Warn("towerwatch: informer: list failed, retrying", "error", err, "retry_in", wait)
		if err := ctxtime.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// list reads every object into a new map.
func (inf *Informer[K, V]) list(ctx context.Context) (map[K]V, error) {
	m := map[K]V{}
	err := inf.lister.List(ctx, func(page []V) error {
		for _, v := range page {
			v = inf.prepare(v)
			m[inf.key(v)] = v
		}
		return ctx.Err()
	})
	return m, err
}

func (inf *Informer[K, V]) prepare(v V) V {
	if inf.transform != nil {
		return inf.transform(v)
	}
	return v
}

// watch replays the changes after h onto scratch until it reaches h2, the
// head after the list (or catches up to a head at or above it), then
// commits scratch to the store and applies every later change with
// notifications.
//
// h2 is the larger of the head requested after the list and the head of
// the watch's first page: a server that answers one of the two with a
// stale page (an earlier response again) cannot make the informer sync
// before it has replayed the changes made during the list.
func (inf *Informer[K, V]) watch(ctx context.Context, cause error, h, h2 stream.Revision, scratch map[K]V, start time.Time, bo *stream.Retrier) (next error, err error) {
	if h.IsZero() { // a server that reports no head: from the start
		h = stream.RevisionFromUint64(0)
	}
	var (
		pos       = h // last revision applied
		firstPage = true
		committed bool
	)
	var (
		resync     atomic.Bool
		stopResync = func() bool { return false }
	)
	wctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		stopResync()
	}()
	commit := func() {
		inf.commit(cause, scratch, start)
		scratch, committed = nil, true
		if inf.cfg.resync > 0 {
			stopResync = time.AfterFunc(inf.cfg.resync, func() { resync.Store(true); cancel() }).Stop
		}
	}
	// mu orders the page observer (which may run on the engine's prefetch
	// goroutine) with the handling of items.
	var (
		mu        sync.Mutex
		processed = h // the newest revision handled
		commitAt  stream.Revision
	)
	onPage := func(p pageInfo) {
		mu.Lock()
		defer mu.Unlock()
		if committed {
			return
		}
		if firstPage {
			firstPage = false
			if h2.Less(p.head) {
				h2 = p.head
			}
		}
		// A caught-up page whose head is below h2 is stale: it says
		// nothing of the changes up to h2. (Zero: the head is unknown.)
		if !p.caughtUp || (!p.head.IsZero() && p.head.Less(h2)) {
			return
		}
		if !processed.Less(p.last) {
			commit() // everything up to p.last is handled
		} else if commitAt.IsZero() || p.last.Less(commitAt) {
			commitAt = p.last
		}
	}
	for {
		opts := append(append([]stream.Option{}, inf.cfg.watchOpts...), stream.After(pos))
		var werr error
		for d, err := range inf.feed.watch(wctx, pos, opts, onPage) {
			if err != nil {
				werr = err
				break
			}
			if d.err != nil {
				inf.cfg.logger.Warn("towerwatch: informer: undecodable change, re-listing", "revision", d.rev.String(), "error", d.err)
				return &DecodeError{Revision: d.rev, Err: d.err}, nil
			}
			mu.Lock()
			if !committed && !h2.IsZero() && h2.Less(d.rev) {
				commit()
			}
			if committed {
				inf.apply(d.change)
			} else {
				inf.replay(scratch, d.change)
			}
			pos, processed = d.rev, d.rev
			if !committed && (d.rev == h2 || (!commitAt.IsZero() && !d.rev.Less(commitAt))) {
				commit()
			}
			mu.Unlock()
			bo.Reset()
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case resync.Load():
			return ErrResync, nil
		case errors.Is(werr, stream.ErrCompacted):
			inf.cfg.logger.Info("towerwatch: informer: history compacted, re-listing", "error", werr)
			return werr, nil
		case stream.IsFinal(werr):
			return nil, werr
		}
		// A *stream.RetryError: reopen after pos.
		wait, ok := bo.Next(werr)
		if !ok {
			return nil, &stream.RetryError{Attempts: bo.Failures(), Err: werr, Position: pos}
		}
		inf.cfg.logger.Warn("towerwatch: informer: watch ended, reopening", "error", werr, "after", pos.String(), "retry_in", wait)
		if err := ctxtime.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// replay applies a change to the scratch map, silently.
func (inf *Informer[K, V]) replay(m map[K]V, c Change[V]) {
	switch c.Op {
	case Insert, Update:
		v := inf.prepare(c.Object)
		m[inf.key(v)] = v
	case Delete:
		delete(m, inf.key(inf.prepare(c.Object)))
	}
}

// apply applies a change to the store and queues its notification.
func (inf *Informer[K, V]) apply(c Change[V]) {
	switch c.Op {
	case Insert, Update:
		v := inf.prepare(c.Object)
		k := inf.key(v)
		inf.mu.Lock()
		old, existed := inf.store.set(k, v)
		if existed {
			inf.notify(note[K, V]{kind: kindUpdate, key: k, old: old, obj: v})
		} else {
			inf.notify(note[K, V]{kind: kindAdd, key: k, obj: v})
		}
		inf.mu.Unlock()
	case Delete:
		k := inf.key(inf.prepare(c.Object))
		inf.mu.Lock()
		if old, existed := inf.store.remove(k); existed {
			inf.notify(note[K, V]{kind: kindDelete, key: k, obj: old})
		}
		inf.mu.Unlock()
	}
}

// notify queues n to every handler; inf.mu is held.
func (inf *Informer[K, V]) notify(n note[K, V]) {
	for _, r := range inf.handlers {
		r.push(n)
	}
}

// commit makes the store equal to m, notifying the differences: at the
// first sync an Add (initial) per object, later Add, Update and Delete
// (finalStateUnknown) for what changed.
func (inf *Informer[K, V]) commit(cause error, m map[K]V, start time.Time) {
	first := !inf.HasSynced()
	info := RelistInfo{Cause: cause, Objects: len(m)}
	inf.mu.Lock()
	old := inf.store.snapshot()
	for k, v := range m {
		o, ok := old[k]
		switch {
		case !ok:
			inf.store.set(k, v)
			inf.notify(note[K, V]{kind: kindAdd, key: k, obj: v, initial: first})
			info.Added++
		case !inf.equal(o, v):
			inf.store.set(k, v)
			inf.notify(note[K, V]{kind: kindUpdate, key: k, old: o, obj: v})
			info.Updated++
		}
	}
	for k, o := range old {
		if _, ok := m[k]; !ok {
			inf.store.remove(k)
			inf.notify(note[K, V]{kind: kindDelete, key: k, obj: o, unknown: true})
			info.Deleted++
		}
	}
	if first {
		inf.synced = true
		for _, r := range inf.handlers {
			r.mu.Lock()
			r.primed = true
			r.mu.Unlock()
		}
	}
	inf.mu.Unlock()
	info.Duration = time.Since(start)
	if first {
		close(inf.syncedCh)
		inf.cfg.logger.Debug("towerwatch: informer: synced", "objects", len(m), "took", info.Duration)
		return
	}
	inf.relists.Add(1)
	inf.cfg.logger.Info("towerwatch: informer: re-listed", "cause", cause, "objects", info.Objects,
		"added", info.Added, "updated", info.Updated, "deleted", info.Deleted, "took", info.Duration)
	if inf.cfg.onRelist != nil {
		inf.cfg.onRelist(info)
	}
}

// srcFeed is the feed over a stream.Source.
type srcFeed[E, V any] struct {
	src    stream.Source[E]
	decode DecodeFunc[E, V]
	cfg    *config
}

// head asks for the newest revision, with one poll of one item, as
// stream.FromNow does: the server's head, or its compact revision if that
// is higher, or zero if it reports neither.
func (f *srcFeed[E, V]) head(ctx context.Context) (stream.Revision, error) {
	pctx, cancel := context.WithTimeout(ctx, stream.DefaultPollTimeout)
	defer cancel()
	page, err := f.src.Poll(pctx, stream.Revision{}, 1)
	if err != nil {
		return stream.Revision{}, fmt.Errorf("informer: head revision: %w", err)
	}
	h := page.Head
	if h.Less(page.Compact) {
		h = page.Compact
	}
	return h, nil
}

func (f *srcFeed[E, V]) watch(ctx context.Context, after stream.Revision, opts []stream.Option, onPage func(pageInfo)) iter.Seq2[decoded[V], error] {
	var src stream.Source[E] = f.src
	if onPage != nil {
		src = observed[E]{Source: f.src, onPage: onPage}
	}
	return func(yield func(decoded[V], error) bool) {
		for it, err := range stream.Watch(ctx, src, opts...) {
			if err != nil {
				yield(decoded[V]{}, err)
				return
			}
			rev, _ := f.src.Revision(it) // the engine has checked it
			c, derr := f.decode(ctx, it)
			if !yield(decoded[V]{rev: rev, change: c, err: derr}, nil) {
				return
			}
		}
	}
}

// observed is a Source that tells onPage about each page the engine will
// accept, judged by the engine's rules: a page it rejects (an item without
// a valid revision, a full page with nothing new, a position below the
// compact revision) is not told.
type observed[E any] struct {
	stream.Source[E]
	onPage func(pageInfo)
}

func (o observed[E]) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[E], error) {
	p, err := o.Source.Poll(ctx, after, limit)
	if err != nil || after.IsZero() || (!p.Compact.IsZero() && after.Less(p.Compact)) {
		return p, err
	}
	last, fresh := after, 0
	for _, it := range p.Items {
		r, rerr := o.Source.Revision(it)
		if rerr != nil || r.IsZero() {
			return p, err
		}
		if after.Less(r) {
			fresh++
			if last.Less(r) {
				last = r
			}
		}
	}
	full := len(p.Items) >= limit
	if full && fresh == 0 {
		return p, err
	}
	caughtUp := !full && (fresh == 0 || p.Head.IsZero() || !last.Less(p.Head))
	o.onPage(pageInfo{head: p.Head, caughtUp: caughtUp, last: last})
	return p, err
}
