package operators

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// TestHandleByKeyCloudTower: HandleByKey keyed by resource, over Resume on
// the fake CloudTower failing a fifth of its requests, with a handler that
// takes a few milliseconds and fails now and then: every resource's
// changes are applied exactly in the server's order, none lost, none
// twice.
func TestHandleByKeyCloudTower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const total = 400
		s := fakeserver.New(fakeserver.Config{Seed: 5})
		defer s.Close()
		s.Generate(total)
		s.SetRandomFaults(11, 0.2, fakeserver.Fault500, fakeserver.FaultReset)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		events := Resume(ctx, ctSource(t, s), WithStreamOptions(stream.FromStart(), stream.MaxRetries(1),
			stream.Backoff(time.Millisecond, time.Millisecond), stream.PageSize(25),
			stream.PollInterval(10*time.Millisecond), stream.Logger(discardLogger)))

		deref := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		resource := func(ev *models.ResourceChangeEvent) string {
			return deref(ev.ResourceType) + "/" + deref(ev.ResourceID)
		}
		var (
			mu      sync.Mutex
			rng     = rand.New(rand.NewPCG(5, 6))
			applied = map[string][]uint64{}
			fails   int
		)
		apply := func(ctx context.Context, ev *models.ResourceChangeEvent) error {
			mu.Lock()
			fail, d := rng.IntN(10) == 0, time.Duration(rng.IntN(5))*time.Millisecond
			mu.Unlock()
			time.Sleep(d) // simulated I/O
			mu.Lock()
			defer mu.Unlock()
			if fail {
				fails++
				return errors.New("database timeout")
			}
			r, _ := strconv.ParseUint(deref(ev.Revision), 10, 64)
			applied[resource(ev)] = append(applied[resource(ev)], r)
			return nil
		}
		for w, err := range HandleByKey(ctx, events, 8, resource, cloudtower.RevisionOf, apply, keyedQuickRetry(10)) {
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := w.Uint64(); n == total {
				break
			}
		}
		want := map[string][]uint64{}
		for _, e := range s.Events(0) {
			k := e.ResourceType + "/" + e.ResourceID
			want[k] = append(want[k], e.Revision)
		}
		mu.Lock()
		defer mu.Unlock()
		wantEqual(t, "applied per resource", applied, want)
		if fails == 0 {
			t.Fatal("the handler never failed: retries untested")
		}
		t.Logf("%d resources, %d handler failures retried", len(want), fails)
	})
}
