// Package streamtest helps test stream Sources and the code built on them.
//
// Feed is an in-memory change feed that implements stream.Source[Item]:
// append, compact, scripted faults (fail, hang, fail every n-th poll),
// the server behaviours a feed's API may leave open (inclusive start,
// shuffled or repeated pages, oldest or newest page on an absent start),
// and a record of every poll. It replaces the private test feeds of the
// packages above stream.
//
// TestSource is a conformance suite for Sources, in the spirit of
// testing/fstest.TestFS: it drives a Source over its real backend through
// a backlog, an empty feed, FromNow, a resume after a revision, a
// compaction, a transient failure, cancellation and break, and checks that
// what a watch delivers is ordered, unique and reliable, that it ends with
// the documented errors, and that no poll outlives it.
//
// # Running the suite on your Source
//
// Implement Harness over a fresh backend per case, and call TestSource
// from a test of your package:
//
//	type harness struct {
//		t       *testing.T
//		backend *mybackend.Server // started empty for this case
//	}
//
//	func (h harness) Source() stream.Source[mybackend.Event] { return mysource.New(h.backend.Client()) }
//	func (h harness) Append(n int) []stream.Revision     { return h.backend.AppendChanges(n) }
//	func (h harness) Compact(upTo stream.Revision)       { h.backend.DiscardUpTo(upTo) }
//	func (h harness) FailNext()                          { h.backend.FailNextRequest(503) }
//
//	func TestSourceConformance(t *testing.T) {
//		streamtest.TestSource(t, func(t *testing.T) streamtest.Harness[mybackend.Event] {
//			s := mybackend.Start() // e.g. an httptest server on loopback
//			t.Cleanup(s.Close)
//			return harness{t, s}
//		})
//	}
//
// then run go test -race -run TestSourceConformance ./yourpkg. Options
// given after the harness reach every watch of the suite, for example
// streamtest.TestSource(t, newHarness, stream.ParallelCatchUp(4)). A method
// the backend cannot support may call h.t.Skip(): the t given to
// newHarness belongs to the case. Keep go.uber.org/goleak's
// VerifyTestMain in the package's TestMain: the suite checks that no poll
// is left running, goleak that no goroutine is. For a backend that lives
// in memory, TestSourceInBubble runs each case in a testing/synctest
// bubble, on fake time.
package streamtest
