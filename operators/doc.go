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
// Filter, Map, Checkpoint and Resume run entirely on the goroutine of the
// range loop: no goroutine, no channel, no buffering. The loop body runs on
// that goroutine for every operator.
//
// Batch and CoalesceByKey need to act while the upstream is silent (a
// partial batch whose wait has passed), so each pass reads its upstream in
// one extra goroutine. Batch's goroutine fills the next batch while the
// consumer handles the current one and hands over whole batches: it reads
// ahead of the consumer by at most one batch. CoalesceByKey's goroutine
// coalesces the open window itself and hands the whole window over when it
// closes; while the consumer handles a window, it waits, with at most one
// value read ahead. Broadcast reads its upstream in one goroutine per pass, shared by all subscribers, ahead
// of each subscriber by at most that subscriber's buffer.
//
// Every goroutine an operator starts is stopped when the consumer breaks,
// when its context is done and when the upstream ends. One limit applies to
// any operator over a plain iter.Seq2: a sequence cannot be interrupted
// while it is blocked before its next value (a caught-up Watch waiting for
// a change), except through its own context. An operator's goroutine
// blocked there stops the upstream at its next value, or when the upstream
// ends. So build the upstream with the same context, and cancel that
// context when the loop is done (defer cancel()): then nothing outlives the
// loop. Broadcaster owns its upstream (it opens it with a context of its
// own), so it stops it itself.
//
// # Ordering
//
// Operators keep the upstream's order. CoalesceByKey drops superseded
// values and emits the survivors in the order of their newest occurrence,
// which for a stream is revision order.
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
// ErrInvalidArgument) is the only value of the sequence, and a checkpoint
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
