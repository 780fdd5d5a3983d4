package operators

import (
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// ctSource is a CloudTower source over s's in-memory transport (fake time
// inside a synctest bubble).
func ctSource(t *testing.T, s *fakeserver.Server) *cloudtower.Source {
	t.Helper()
	c, err := cloudtower.Dial(t.Context(), cloudtower.Config{
		Host: "http://" + fakeserver.MemoryHost, Username: s.Username(), Password: s.Password(), APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
		Transport: s.Transport(), Logger: discardLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cloudtower.New(c)
}

func ctResumeOpts(extra ...ResumeOption) []ResumeOption {
	return append([]ResumeOption{
		WithStreamOptions(stream.MaxRetries(1), stream.Backoff(time.Millisecond, time.Millisecond),
			stream.PageSize(25), stream.PollInterval(10*time.Millisecond), stream.Logger(slog.New(slog.DiscardHandler))),
		ReopenBackoff(constantWait(50 * time.Millisecond)),
	}, extra...)
}

func ctRev(t *testing.T, ev *models.ResourceChangeEvent) uint64 {
	t.Helper()
	r, err := cloudtower.RevisionOf(ev)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := r.Uint64()
	return n
}

// TestResumeCloudTowerFaults: over the fake CloudTower failing a third of
// its requests (errors the stream retries once, then gives up on), Resume
// delivers exactly the server's sequence: ordered, nothing twice, no gap.
func TestResumeCloudTowerFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 3})
		defer s.Close()
		s.Generate(400)
		s.SetRandomFaults(7, 0.35, fakeserver.Fault500, fakeserver.Fault503, fakeserver.FaultReset,
			fakeserver.FaultTruncate, fakeserver.FaultMalformedJSON)
		reopens := 0
		var got []uint64
		for ev, err := range Resume(t.Context(), ctSource(t, s), ctResumeOpts(
			fromTheStart, OnReopen(func(error) { reopens++ }))...) {
			if err != nil {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			if got = append(got, ctRev(t, ev)); len(got) == 400 {
				break
			}
		}
		wantEqual(t, "revisions", got, seqRange(1, 400))
		if reopens == 0 {
			t.Fatal("no reopen: the faults did not exhaust the stream's retries")
		}
		t.Logf("%d reopens", reopens)
	})
}

// TestResumeCloudTowerCompacted: the server compacts past the consumer's
// position; under Restart, Resume yields a gap notice from the last
// delivered revision to the compact revision, then goes on after it.
func TestResumeCloudTowerCompacted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 3})
		defer s.Close()
		s.Generate(100)
		var got []uint64
		var gaps []*GapError
		var lastBeforeGap uint64
		for ev, err := range Resume(t.Context(), ctSource(t, s), ctResumeOpts(
			fromTheStart, OnCompaction(Restart))...) {
			var gap *GapError
			if errors.As(err, &gap) {
				wantErrIs(t, err, ErrGap)
				gaps = append(gaps, gap)
				lastBeforeGap = got[len(got)-1]
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ctRev(t, ev))
			if len(got) == 30 {
				s.Generate(100)
				s.Compact(150) // what the stream has not fetched yet of 31..150 is gone
			}
			if got[len(got)-1] == 200 {
				break
			}
		}
		// The stream may have fetched a page or two beyond 30 before the
		// compaction: those are delivered, and the gap starts after them.
		if len(gaps) != 1 || gaps[0].From != rev(lastBeforeGap) || gaps[0].To != rev(150) || lastBeforeGap < 30 {
			t.Fatalf("gap notices %v after %d, want one from the last delivered (30 or more) to 150", gaps, lastBeforeGap)
		}
		wantEqual(t, "revisions", got, append(seqRange(1, lastBeforeGap), seqRange(151, 200)...))
		t.Logf("gap from %d", lastBeforeGap)

		// Under the default policy, the same situation ends the sequence.
		var end error
		for _, err := range Resume(t.Context(), ctSource(t, s), ctResumeOpts(StartAfter(rev(30)))...) {
			end = err
			if err != nil {
				break
			}
		}
		wantErrIs(t, end, stream.ErrCompacted)
	})
}
