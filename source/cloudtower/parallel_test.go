package cloudtower

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// The guarantee matrix of TestEndToEndKnobs and TestEndToEndFaults, with
// stream.ParallelCatchUp(4): through Dial, the SDK and loopback HTTP, for
// every combination of the server's unknown semantics and under every
// fault, the delivered sequence is exactly the server's.
func TestEndToEndKnobsParallel(t *testing.T) {
	repeats := []struct {
		name  string
		every int
		rate  float64
	}{{"no repeats", 0, 0}, {"repeat every 3", 3, 0}, {"repeat 30%", 0, 0.3}}
	for _, inclusive := range []bool{false, true} {
		for _, oldest := range []bool{false, true} {
			for _, shuffle := range []bool{false, true} {
				for _, rep := range repeats {
					knobs := fakeserver.Knobs{InclusiveStart: inclusive, OldestWhenNoStart: oldest, Shuffle: shuffle,
						RepeatEvery: rep.every, RepeatRate: rep.rate}
					name := fmt.Sprintf("inclusive=%t/oldest=%t/shuffle=%t/%s", inclusive, oldest, shuffle, rep.name)
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						for _, st := range []struct {
							name  string
							after uint64
							now   bool
						}{{"after 0", 0, false}, {"after mid", 1234, false}, {"from now", 0, true}} {
							t.Run(st.name, func(t *testing.T) {
								s, c := startFake(t, fakeserver.Config{Seed: 7, Knobs: knobs})
								s.Generate(2000)
								checkConcurrentParallel(t, s, New(c), st.now, st.after)
							})
						}
					})
				}
			}
		}
	}
}

// checkConcurrentParallel is checkConcurrent with ParallelCatchUp(4): it
// watches s while a goroutine appends batches as the consumer progresses.
func checkConcurrentParallel(t *testing.T, s *fakeserver.Server, src *Source, fromNow bool, after uint64) {
	t.Helper()
	const batches, batch = 8, 60
	head0 := s.Head()
	final := head0 + batches*batch
	progress := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for range batches {
			select {
			case <-progress:
			case <-ctx.Done():
				return
			}
			s.Generate(batch)
		}
	})
	defer func() { cancel(); wg.Wait() }()
	opts := e2eOptions(stream.ParallelCatchUp(4), stream.OnPoll(func(stream.PollInfo) {
		select {
		case progress <- struct{}{}:
		default:
		}
	}))
	if !fromNow {
		opts = append(opts, stream.After(stream.RevisionFromUint64(after)))
	}
	got, err := drain(t, src, final, opts...)
	if err != nil {
		t.Fatalf("after %d events: %v", len(got), err)
	}
	if fromNow {
		if len(got) == 0 {
			t.Fatal("nothing delivered")
		}
		first, _ := strconv.ParseUint(*got[0].Revision, 10, 64)
		after = first - 1
		if after < head0 {
			t.Fatalf("FromNow started after %d, below the head %d at the start", after, head0)
		}
	}
	checkSame(t, got, s.Events(after))
}

func TestEndToEndFaultsParallel(t *testing.T) {
	fatal := map[fakeserver.FaultKind]error{
		fakeserver.Fault401:     ErrUnauthorized,
		fakeserver.Fault404:     ErrUnsupported,
		fakeserver.Fault404Text: ErrUnsupported,
	}
	for _, kind := range fakeserver.AllFaultKinds() {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			s, c := startFake(t, fakeserver.Config{Seed: int64(kind), FaultDelay: time.Millisecond})
			s.Generate(1500)
			opts := e2eOptions(stream.FromStart(), stream.PageSize(50), stream.ParallelCatchUp(4),
				stream.PollTimeout(100*time.Millisecond))
			if want, ok := fatal[kind]; ok {
				s.InjectFaults(fakeserver.FaultNone, fakeserver.FaultNone, fakeserver.FaultNone, kind)
				got, err := drain(t, New(c), s.Head(), opts...)
				if !errors.Is(err, want) || !stream.IsFatal(err) {
					t.Fatalf("the stream ended with %v, want %v", err, want)
				}
				checkSame(t, got, s.Events(0)[:len(got)]) // a prefix, however many polls ran ahead
				return
			}
			rate := 0.3
			if kind == fakeserver.FaultHang {
				rate = 0.1
			}
			s.SetRandomFaults(int64(kind), rate, kind)
			got, err := drain(t, New(c), s.Head(), opts...)
			if err != nil {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			checkSame(t, got, s.Events(0))
			if s.Stats().FaultsByKind[kind] == 0 {
				t.Fatalf("no %v fault was served", kind)
			}
		})
	}
}
