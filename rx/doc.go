// Package rx adapts change streams to and from RxGo
// (github.com/reactivex/rxgo/v2) observables.
//
// FromSeq, FromSeqFunc and FromSource turn an iter.Seq2[T, error] (such as
// stream.Watch's) into an rxgo.Observable whose items carry the typed
// values (rxgo.Item.V holds a T) and errors as error items. ToSeq turns an
// observable back into an iter.Seq2[T, error], reporting an item of another
// type as an error wrapping ErrItemType instead of panicking.
//
// Options follow the one rule of towerwatch: each function's variadic
// options configure what it builds. FromSource takes stream.Watch's options
// (FromSource(ctx, src, stream.FromStart()) watches like stream.Watch(ctx,
// src, stream.FromStart())); FromSeq and FromSeqFunc take rxgo options for
// the observable; rxgo options also go to Observe and ToSeq, where the
// observable is observed. A bad argument is an error wrapping
// stream.ErrInvalidOption.
//
// # Observables here are cold and lazy
//
// The observables this package returns start nothing when built: each
// Observe (and so each rxgo operator chain being observed, ForEach, or
// ToSeq) runs its own pass over the sequence in one goroutine, which closes
// the item channel when the pass ends. Built with rxgo.Defer, they ignore
// rxgo.WithPublishStrategy; to share one stream among several consumers,
// use operators.Broadcast and one observable per subscriber.
//
// # Stopping, and goroutines
//
// A pass stops, and its goroutine returns, when the sequence ends, when the
// context given to From* is done, or when the context given to Observe
// (rxgo.WithContext, which rxgo propagates through operator chains) is
// done. FromSeqFunc and FromSource build the sequence with a context that
// is cancelled in all these cases, so the upstream poll is interrupted at
// once. FromSeq cannot reach into a sequence built elsewhere: its goroutine
// stops at the sequence's next value, or when the sequence's own context
// ends; give it a sequence built with the same context, or prefer
// FromSeqFunc.
//
// ToSeq observes with a context of its own, cancelled when the range loop
// ends, so that breaking out stops every stage of the chain that honours
// its context (every rxgo operator does, as does every observable of this
// package). Avoid rxgo's BackOffRetry (it panics on cancel) and Retry (it
// leaks goroutines); use operators.Resume before converting instead.
package rx
