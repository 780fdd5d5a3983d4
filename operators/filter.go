package operators

import "iter"

// Filter returns the values of seq for which keep returns true, in order.
// Errors pass through unchanged (keep is not called for them).
//
// Filter runs on the range goroutine and allocates nothing per value.
// A nil keep is an error wrapping stream.ErrInvalidOption, yielded as the
// only value.
func Filter[T any](seq iter.Seq2[T, error], keep func(T) bool) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		if keep == nil {
			var zero T
			yield(zero, invalid("Filter: nil predicate"))
			return
		}
		for v, err := range seq {
			if err != nil || keep(v) {
				if !yield(v, err) {
					return
				}
			}
		}
	}
}
