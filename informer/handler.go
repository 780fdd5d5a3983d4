package informer

import (
	"context"
	"sync"
)

// Handler receives an informer's notifications. Each handler runs on its
// own goroutine and is called for one notification at a time, after the
// store reflects it. Objects are shared with the store: do not modify them.
type Handler[V any] interface {
	// OnAdd reports an object new to the handler. initial is true for the
	// objects of the first sync, and for every object already stored when
	// the handler was added after it.
	OnAdd(obj V, initial bool)
	// OnUpdate reports a change of an object the handler knows: old is
	// the state last given to the handler, new the state now stored.
	OnUpdate(old, new V)
	// OnDelete reports the removal of an object the handler knows; obj is
	// the last state the informer held. finalStateUnknown is true when the
	// informer did not see the deletion itself but found the object gone
	// by re-listing (after a compaction, a gap or a resync): the object's
	// state between obj and its deletion is unknown. It is the typed
	// equivalent of client-go's DeletedFinalStateUnknown tombstone.
	OnDelete(obj V, finalStateUnknown bool)
}

// HandlerFuncs is a Handler made of optional functions; a nil one ignores
// its notification.
type HandlerFuncs[V any] struct {
	AddFunc    func(obj V, initial bool)
	UpdateFunc func(old, new V)
	DeleteFunc func(obj V, finalStateUnknown bool)
}

// OnAdd calls AddFunc if it is set.
func (h HandlerFuncs[V]) OnAdd(obj V, initial bool) {
	if h.AddFunc != nil {
		h.AddFunc(obj, initial)
	}
}

// OnUpdate calls UpdateFunc if it is set.
func (h HandlerFuncs[V]) OnUpdate(old, new V) {
	if h.UpdateFunc != nil {
		h.UpdateFunc(old, new)
	}
}

// OnDelete calls DeleteFunc if it is set.
func (h HandlerFuncs[V]) OnDelete(obj V, finalStateUnknown bool) {
	if h.DeleteFunc != nil {
		h.DeleteFunc(obj, finalStateUnknown)
	}
}

type kind uint8

const (
	kindAdd kind = iota + 1
	kindUpdate
	kindDelete
)

// note is one pending notification, a node of the queue's list.
type note[K comparable, V any] struct {
	kind       kind
	key        K
	old, obj   V // old: for updates; obj: the new or deleted state
	initial    bool
	unknown    bool
	prev, next *note[K, V]
}

// Registration is a handler added to an informer. Remove it to stop its
// notifications.
type Registration[K comparable, V any] struct {
	inf *Informer[K, V]
	h   Handler[V]

	mu          sync.Mutex
	pending     map[K]*note[K, V] // at most one per key
	head, tail  *note[K, V]
	initialLeft int  // initial Adds queued and not yet delivered
	primed      bool // the initial Adds have been queued
	removed     bool
	started     bool
	ready       chan struct{} // buffered 1: something was queued
	stop        chan struct{} // closed by Remove
}

func newRegistration[K comparable, V any](inf *Informer[K, V], h Handler[V]) *Registration[K, V] {
	return &Registration[K, V]{inf: inf, h: h, pending: map[K]*note[K, V]{},
		ready: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Remove stops the handler's notifications: once it returns, none is
// started (one in progress may still be running), and the pending ones
// are dropped. It may be called from within the handler, and more than
// once.
func (r *Registration[K, V]) Remove() {
	r.inf.removeHandler(r)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.removed {
		r.removed = true
		close(r.stop)
		r.pending, r.head, r.tail = map[K]*note[K, V]{}, nil, nil
	}
}

// HasSynced reports whether the handler has been given, and has returned
// from, the Add of every object of its initial set: those of the
// informer's first sync, or those stored when it was added after it.
func (r *Registration[K, V]) HasSynced() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.primed && r.initialLeft == 0
}

// Pending returns the number of notifications queued for the handler and
// not yet started: at most one per key (see the package documentation on
// coalescing).
func (r *Registration[K, V]) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// push queues a notification, merging it with the key's pending one.
func (r *Registration[K, V]) push(n note[K, V]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return
	}
	if n.initial {
		r.initialLeft++
	}
	if p := r.pending[n.key]; p != nil {
		r.merge(p, n)
	} else {
		nn := n
		nn.prev, nn.next = r.tail, nil
		if r.tail != nil {
			r.tail.next = &nn
		} else {
			r.head = &nn
		}
		r.tail = &nn
		r.pending[n.key] = &nn
	}
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// merge folds n into the key's pending notification p, so that the
// handler sees the net effect from the state it last saw.
func (r *Registration[K, V]) merge(p *note[K, V], n note[K, V]) {
	if n.initial {
		if p.initial {
			r.initialLeft-- // the pending one still counts
		} else {
			p.initial = true
		}
	}
	switch {
	case p.kind == kindAdd && n.kind == kindDelete:
		// The handler never saw the object: nothing to tell.
		if p.initial {
			r.initialLeft--
		}
		r.unlink(p)
	case p.kind == kindAdd: // + update (or add): still new to the handler
		p.obj = n.obj
	case p.kind == kindUpdate && n.kind == kindDelete:
		p.kind, p.obj, p.unknown, p.old = kindDelete, n.obj, n.unknown, *new(V)
	case p.kind == kindUpdate: // + update
		p.obj = n.obj
	case p.kind == kindDelete && n.kind == kindDelete:
		p.unknown = p.unknown || n.unknown
	default: // delete + add (or update): the object the handler knew became n.obj
		p.kind, p.old, p.obj, p.unknown = kindUpdate, p.obj, n.obj, false
		if p.initial { // an initial Add folded into a change of a known object
			p.initial = false
			r.initialLeft--
		}
	}
}

func (r *Registration[K, V]) unlink(p *note[K, V]) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		r.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		r.tail = p.prev
	}
	p.prev, p.next = nil, nil
	delete(r.pending, p.key)
}

// pop takes the oldest pending notification.
func (r *Registration[K, V]) pop() (note[K, V], bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed || r.head == nil {
		return note[K, V]{}, false
	}
	p := r.head
	r.unlink(p)
	return *p, true
}

// run delivers notifications until ctx is done or the handler is removed.
func (r *Registration[K, V]) run(ctx context.Context) error {
	for {
		n, ok := r.pop()
		if !ok {
			select {
			case <-r.ready:
				continue
			case <-r.stop:
				return nil
			case <-ctx.Done():
				return nil
			}
		}
		switch n.kind {
		case kindAdd:
			r.h.OnAdd(n.obj, n.initial)
		case kindUpdate:
			r.h.OnUpdate(n.old, n.obj)
		case kindDelete:
			r.h.OnDelete(n.obj, n.unknown)
		}
		if n.initial {
			r.mu.Lock()
			r.initialLeft--
			r.mu.Unlock()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}
