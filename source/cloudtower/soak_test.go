package cloudtower

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// Soak parameters (issue 14 §3).
const (
	soakChanges   = 1_000_000
	soakFaultRate = 0.05
	soakRestarts  = 4 // the watch is cancelled and reopened from the checkpoint this often
	soakBatch     = 25_000
	soakAhead     = 200_000 // the generator stays at most this far ahead of the consumer
	soakRetention = 400_000 // the server keeps this many changes (memory), far behind the consumer
	soakPageSize  = 200
)

// TestSoak drains 1,000,000 changes from the fake server over loopback
// HTTP through the SDK while 5 % of the requests fail with a random
// transient fault of every kind (5xx, 429 with Retry-After, resets,
// truncated and malformed bodies, hangs cut by the poll timeout, events
// without or with invalid revisions, delays), consumed through
// operators.Resume and operators.Checkpoint (a file store), with the watch
// cancelled and reopened from the checkpoint a few times, every other run
// with stream.ParallelCatchUp(4). It checks the delivered sequence against
// the server's (every revision once, in order, with the server's resource,
// type and action) and prints one line:
//
//	soak: delivered N, lost L, duplicated D, faults F, restarts R, in S s
//
// It runs only with TOWERWATCH_SOAK=1:
//
//	TOWERWATCH_SOAK=1 go test -run Soak -count=1 -timeout 30m ./source/cloudtower
func TestSoak(t *testing.T) {
	if os.Getenv("TOWERWATCH_SOAK") != "1" {
		t.Skip("set TOWERWATCH_SOAK=1 to run the soak test")
	}
	start := time.Now()
	s, c := startFake(t, fakeserver.Config{Seed: 14, FaultDelay: 20 * time.Millisecond})
	s.SetRetention(soakRetention)
	var transient []fakeserver.FaultKind
	for _, k := range fakeserver.AllFaultKinds() {
		switch k {
		case fakeserver.Fault401, fakeserver.Fault404, fakeserver.Fault404Text: // fatal, not transient
		default:
			transient = append(transient, k)
		}
	}
	s.SetRandomFaults(14, soakFaultRate, transient...)

	// The server's sequence, as fingerprints of each change, by revision,
	// and how far the consumer is: both guarded by mu.
	var mu sync.Mutex
	want := make([]uint64, 0, soakChanges)
	delivered := 0
	advanced := make(chan struct{}, 1) // the consumer moved on
	genCtx, stopGen := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			mu.Lock()
			generated, behind := len(want), len(want)-delivered
			mu.Unlock()
			if generated == soakChanges {
				return
			}
			if behind >= soakAhead {
				select { // the consumer is far behind: let it catch up
				case <-advanced:
					continue
				case <-genCtx.Done():
					return
				}
			}
			// Under mu, so that the consumer never sees a change before its
			// fingerprint is recorded.
			mu.Lock()
			head := s.Head()
			s.Generate(min(soakBatch, soakChanges-generated))
			for _, ev := range s.Events(head) {
				if ev.Revision != uint64(len(want))+1 {
					panic(fmt.Sprintf("fake server revision %d, want %d", ev.Revision, len(want)+1))
				}
				want = append(want, fingerprint(ev.ResourceID, ev.ResourceType, ev.Action))
			}
			mu.Unlock()
		}
	})
	defer func() { stopGen(); wg.Wait() }()

	store := operators.NewFileStore(filepath.Join(t.TempDir(), "checkpoint"))
	src := New(c)
	logger := slog.New(slog.DiscardHandler)
	var last uint64 // the last revision delivered
	var lost, duplicated, mismatched, restarts, reopens int
	for run := 0; ; run++ {
		ctx, cancel := context.WithCancel(context.Background())
		after, err := operators.LoadAfter(ctx, store, stream.FromStart())
		if err != nil {
			t.Fatal(err)
		}
		streamOpts := []stream.Option{after, stream.PageSize(soakPageSize), stream.PollTimeout(250 * time.Millisecond),
			stream.Backoff(time.Millisecond, 20*time.Millisecond), stream.MaxRetries(1), stream.Logger(logger)}
		if run%2 == 1 {
			streamOpts = append(streamOpts, stream.ParallelCatchUp(4))
		}
		events := operators.Resume(ctx, src, operators.WithStreamOptions(streamOpts...),
			operators.ReopenBackoff(stream.RetryPolicy{Min: time.Millisecond, Max: 20 * time.Millisecond, MaxRetries: stream.NoRetryLimit}),
			operators.OnReopen(func(error) { reopens++ }))
		stopAt := (run + 1) * soakChanges / (soakRestarts + 1)
		var ended error
		for ev, err := range operators.Checkpoint(ctx, events, store, RevisionOf, operators.SaveEvery(5000)) {
			if err != nil {
				ended = err
				break
			}
			r, _ := RevisionOf(ev)
			n, _ := r.Uint64()
			switch {
			case n <= last:
				duplicated++
				continue
			case n > last+1:
				lost += int(n - last - 1)
			}
			last = n
			mu.Lock()
			if n > uint64(len(want)) || want[n-1] != eventFingerprint(ev) {
				if mismatched++; mismatched <= 3 {
					var server []fakeserver.Event
					if evs := s.Events(n - 1); len(evs) > 0 {
						server = evs[:1]
					}
					t.Logf("change %d: got %s %s %s, the server has %+v", n, str(ev.ResourceID), str(ev.ResourceType), str(ev.Action), server)
				}
			}
			delivered++
			d := delivered
			mu.Unlock()
			if d%1000 == 0 {
				select {
				case advanced <- struct{}{}:
				default:
				}
			}
			if d == soakChanges {
				cancel()
			} else if d == stopAt {
				cancel() // a restart: the next value is ctx's error, after the checkpoint is saved
			}
		}
		cancel()
		if !errors.Is(ended, context.Canceled) {
			t.Fatalf("run %d ended with %v after revision %d", run, ended, last)
		}
		if last >= soakChanges {
			break
		}
		restarts++
	}
	st := s.Stats()
	fmt.Printf("soak: delivered %d, lost %d, duplicated %d, faults %d, restarts %d, in %.0f s\n",
		delivered, lost, duplicated, st.Faults, restarts, time.Since(start).Seconds())
	t.Logf("%d requests, faults by kind %v, %d reopens by Resume after the stream's retries ran out",
		st.ResourceChanges, st.FaultsByKind, reopens)
	if lost != 0 || duplicated != 0 || mismatched != 0 {
		t.Errorf("lost %d, duplicated %d, %d changes differ from the server's", lost, duplicated, mismatched)
	}
	if st.Faults < soakChanges/soakPageSize*soakFaultRate/2 {
		t.Errorf("only %d faults served", st.Faults)
	}
}

func fingerprint(id, typ, action string) uint64 {
	h := fnv.New64a()
	for _, s := range []string{id, typ, action} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func eventFingerprint(ev *models.ResourceChangeEvent) uint64 {
	return fingerprint(str(ev.ResourceID), str(ev.ResourceType), str(ev.Action))
}
