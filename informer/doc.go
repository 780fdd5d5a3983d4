// Package informer keeps a local, indexed, always-fresh copy of a set of
// objects, and runs handlers when they change: client-go's
// SharedIndexInformer for any feed that stream can watch, typed with
// generics, with no lost deletes, bounded memory per handler, and
// compaction handled without a restart.
//
// An Informer[K, V] needs a Lister (every current object, page by page), a
// stream.Source of changes with a DecodeFunc that says, for each item,
// Insert, Update or Delete and gives the object, and a key function. The
// package knows nothing of CloudTower; source/cloudtower/informers builds
// informers for CloudTower's resources.
//
//	inf, err := informer.New(lister, src, decode, keyOf, informer.Index("cluster", clusterOf))
//	inf.AddHandler(informer.HandlerFuncs[*VM]{AddFunc: ..., UpdateFunc: ..., DeleteFunc: ...})
//	go inf.Run(ctx)
//	inf.WaitForSync(ctx)
//	vms, _ := inf.Store().ByIndex("cluster", id)
//
// # Start
//
// Run learns the feed's head revision H (one poll of one item, as
// stream.FromNow does), lists every object into a scratch copy, learns the
// head H2 again, then watches after H: the changes up to H2 (or up to the
// head of the watch's first page, if higher: a stale answer to one of the
// two cannot make it stop short) are applied to the scratch copy silently
// (the list may already include some of them; each change carries the
// whole object, so replaying them in order ends at the right state). Once
// it reaches H2, or the watch has caught up to a head at or above H2, the
// scratch copy becomes the store, and each
// handler gets one OnAdd(obj, initial=true) per object; HasSynced is true
// from then on. Every later change is applied to the store and notified,
// in revision order. A Delete of an object the store does not hold is
// ignored; an Update of one it does not hold is an Add.
//
// # Re-list
//
// When the watch cannot go on without a gap (its history was compacted:
// stream.ErrCompacted), when a change cannot be decoded, and every Resync
// period if that option is set, Run starts again with a new list, and
// applies the difference between the new list (plus the replayed changes)
// and the store: OnAdd for new objects, OnUpdate for changed ones (by the
// Equal option; by default, the objects' JSON), OnDelete with
// finalStateUnknown=true for vanished ones. Nothing is lost, the store
// ends equal to the server's state, and the process keeps running; the
// OnRelist hook and Relists tell the caller. While it re-lists, the store
// keeps its previous state, and memory holds both copies.
//
// # Handlers
//
// Each handler runs on its own goroutine, one notification at a time, so a
// slow handler delays only itself. Its queue never blocks the informer and
// is bounded by the number of keys: a notification for a key that already
// has one pending is merged into it (coalesced), so that the handler sees
// the net change from the state it last saw: Add then Update is an Add of
// the newest state, Update then Update one Update from the oldest to the
// newest, Update then Delete a Delete, Add then Delete nothing, Delete
// then Add an Update. A handler that keeps up sees every change, in
// revision order; one that falls behind sees, per key, the same states in
// the same order minus intermediate ones, and across keys the order of
// each key's oldest pending change. Its queue holds at most one entry per
// key stored or deleted since it fell behind (at most twice the largest
// store), each pointing at objects shared with the store.
//
// A handler added after the first sync first gets an OnAdd (initial=true)
// for every stored object. Registration.Remove stops it. A handler must
// not block forever: Run waits for the handler calls in progress before it
// returns.
//
// # Store
//
// Store.Get, List, Keys, Len, ByIndex and IndexValues are safe for any
// number of concurrent readers while the informer writes, and never see a
// change half applied. They return the stored objects themselves, shared
// with every reader and handler: do not modify them.
//
// # Errors and goroutines
//
// Run returns ctx.Err() when its context is done, or the first final error
// as the stream defines it: an error marked with stream.Fatal by the
// source or the lister (refused credentials, an unsupported server), or
// one wrapping stream.ErrInvalidOption. Every other failure (of the list,
// the head request or the watch, including a *stream.RetryError) is
// retried with backoff, forever. Run starts one goroutine per handler and
// none other (the stream engine's prefetch excepted), in an errgroup; all
// have stopped when Run returns.
//
// Options follow the project's style: each checks its arguments where it
// is built (Option.Err) and New returns the first error, wrapping
// stream.ErrInvalidOption.
package informer
