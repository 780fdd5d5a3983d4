// Package operators transforms change streams: iter.Seq2[T, error]
// sequences such as the ones stream.Watch returns. Every operator takes and
// returns such a sequence (or a stream.Source), so operators compose with
// each other and with a plain range loop:
//
//	ctx, cancel := context.WithCancel(ctx)
//	defer cancel() // frees every goroutine, also after a break
//	events := stream.Watch(ctx, src, stream.After(rev))
//	vms := operators.Filter(events, isVM)
//	for batch, err := range operators.Batch(ctx, vms, 100, time.Second) {
//		if err != nil {
//			return err
//		}
//		apply(batch)
//	}
//
// The contract below holds for every operator in this package.
//
// # Laziness
//
// Building a pipeline starts nothing. Work starts when a range loop starts
// over the last sequence, and each range over a returned sequence is a new,
// independent pass that ranges over its upstream again (for stream.Watch, a
// new watch).
//
// # Blocking and goroutines
//
// Filter, Map, Resume and Checkpoint (without SaveWhenIdle) run entirely
// on the goroutine of the range loop: no goroutine, no channel, no
// buffering. The loop body runs on that goroutine for every operator.
//
// Batch, CoalesceByKey and Checkpoint with SaveWhenIdle need to act while
// the upstream is silent (a partial batch whose wait has passed, a window
// that closes, an idle save), so each pass reads its upstream in one extra
// goroutine. Batch's goroutine fills the next batch while the consumer
// handles the current one and hands over whole batches: it reads ahead of
// the consumer by at most one batch. CoalesceByKey's goroutine coalesces
// the open window itself and hands the whole window over when it closes;
// while the consumer handles a window, it waits, with at most one value
// read ahead. Checkpoint's hands values over one at a time. Broadcast reads
// its upstream in one goroutine per pass, shared by all subscribers, ahead
// of each subscriber by at most that subscriber's buffer.
//
// HandleByKey runs n worker goroutines (which call the handler), plus one
// dispatching and one reading goroutine per pass; the dispatcher and the
// workers have returned when the range statement ends, and the reader
// follows the rule below. The loop body runs on the range goroutine while
// the workers go on, so it gets coalesced watermarks: the newest one
// reached since the last it got. Across keys, handling does not keep the
// upstream's order; within a key it does (see Ordering).
//
// # Who stops the reading goroutine: cancel the context
//
// The rule, for every operator that reads a plain iter.Seq2 in a
// goroutine: build the upstream with the same context you give the
// operator, and cancel that context when the loop is done:
//
//	ctx, cancel := context.WithCancel(ctx)
//	defer cancel() // frees the reading goroutines, whatever ends the loop
//
// Why: an operator's goroutine blocked inside its upstream, waiting for
// the next value (a caught-up stream.Watch waiting for a change), cannot
// be interrupted from outside: an iter.Seq2 has no way to be stopped but
// its own context. When the loop ends (break, return, panic, ctx), the
// operator tells its goroutine at once, and the goroutine returns as soon
// as it gets control back: at the upstream's next value (which it drops),
// when the upstream ends, or, with the cancel, right away. Without the
// cancel, the goroutine and whatever the upstream holds (for a stream, its
// poll loop and connections) outlive the loop until the next change
// arrives; TestReaderGoroutineOwnership shows both cases. The operator's
// own ctx being done ends the sequence (flushing what it holds, then
// ctx.Err()) even if the upstream ignores ctx.
//
// Why not join the goroutine instead: joining means waiting, inside the
// range statement, for a goroutine that is blocked in the upstream until
// the upstream's context is cancelled, which a deferred cancel only does
// after the range statement returns: every break over a caught-up stream
// would hang. Taking the upstream as func(ctx) iter.Seq2 (as Broadcast,
// which owns and reopens its upstream, does) would let the operator cancel
// and join, but every stage of a pipeline would then be a closure around
// the previous one, and Batch over CoalesceByKey over Filter would no
// longer compose as plain function calls over one type. The one context
// of the pipeline already is the handle that stops it; the rule keeps the
// operators composable and costs one deferred call per pipeline.
//
// Broadcaster owns its upstream (it opens it with a context of its own),
// so it stops it itself, and joins its goroutine when the last subscriber
// leaves.
//
// # Ordering
//
// Operators keep the upstream's order. CoalesceByKey drops superseded
// values and emits the survivors in the order of their newest occurrence,
// which for a stream is revision order. HandleByKey is the exception: it
// calls its handler in the upstream's order within a key only, and yields
// watermarks, which increase strictly.
//
// # Options
//
// Operators follow towerwatch's one option style: functional options
// (ResumeOption, CheckpointOption, BroadcastOption, KeyedOption) whose
// constructors check their argument and record a bad one as an error
// wrapping stream.ErrInvalidOption; each option type has an Err method that
// returns it at once, so a caller can check a value where it is given (a
// flag, a config file). Required arguments are positional and checked when the
// sequence starts. Either way, the error is the only value of the
// sequence.
//
// # Errors
//
// Errors from the upstream pass through unchanged, in order, and do not by
// themselves end the sequence: an operator keeps reading until its upstream
// ends, so the upstream decides whether an error is final (a stream from
// stream.Watch ends right after its one error). Operators that buffer
// (Batch, CoalesceByKey) first flush what they hold, then pass the error.
//
// An operator's own errors are final: a bad argument (wrapping
// stream.ErrInvalidOption) is the only value of the sequence, and a checkpoint
// that cannot be saved ends the sequence. When an operator's own context
// is done, it flushes what it holds and ends with ctx.Err().
//
// The one non-final error this package produces is Resume's gap notice, a
// *GapError (errors.Is(err, ErrGap)): history was compacted away, the
// stream goes on after the gap, and the consumer should re-list the state
// it mirrors before handling the next value. A consumer that may see it
// checks for it first:
//
//	for ev, err := range operators.Resume(ctx, src, operators.OnCompaction(operators.Restart)) {
//		if errors.Is(err, operators.ErrGap) {
//			relist()
//			continue
//		}
//		if err != nil {
//			return err // final
//		}
//		handle(ev)
//	}
//
// A value paired with a non-nil error is meaningless (usually the zero
// value). Ranging with one variable (for v := range seq) compiles but hides
// every error; use the two-value form.
//
// # Panics
//
// A panic in the loop body or in a callback (a predicate, a key function)
// running on the range goroutine propagates to the range statement as
// usual, and deferred cleanup still runs. A panic in an upstream that runs
// on an operator's goroutine (Batch, CoalesceByKey, Broadcast) crashes the
// program, as a panic in any goroutine does.
package operators
