package promwatch_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/stream"
)

type vm struct{ ID, Status string }

type vmChange struct {
	rev uint64
	op  informer.Op
	vm  vm
}

// vmServer is a list and a change feed in memory.
type vmServer struct {
	mu  sync.Mutex
	vms map[string]vm
	log []vmChange
}

func (s *vmServer) apply(op informer.Op, v vm) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == informer.Delete {
		delete(s.vms, v.ID)
	} else {
		s.vms[v.ID] = v
	}
	s.log = append(s.log, vmChange{rev: uint64(len(s.log) + 1), op: op, vm: v})
}

func (s *vmServer) list(_ context.Context, yield func([]vm) error) error {
	s.mu.Lock()
	page := make([]vm, 0, len(s.vms))
	for _, v := range s.vms {
		page = append(page, v)
	}
	s.mu.Unlock()
	return yield(page)
}

func (s *vmServer) poll(_ context.Context, after stream.Revision, limit int) (stream.Page[vmChange], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	page := stream.Page[vmChange]{Head: stream.RevisionFromUint64(uint64(len(s.log)))}
	a, ok := after.Uint64()
	if !ok {
		return page, nil
	}
	for _, c := range s.log[min(a, uint64(len(s.log))):] {
		if len(page.Items) == limit {
			break
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

// TestInformerWiring wires promwatch to a real informer: objects from
// its store, queue depth from a registration, re-lists from its hook,
// (The informer sets its own stream.OnPoll hook, which replaces one given
// through informer.WatchOptions: watch metrics need an informer hook.)
func TestInformerWiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &vmServer{vms: map[string]vm{}}
		for _, id := range []string{"vm1", "vm2", "vm3"} {
			srv.apply(informer.Insert, vm{ID: id, Status: "RUNNING"})
		}
		reg := prometheus.NewRegistry()
		im, err := promwatch.NewInformer(reg)
		require.NoError(t, err)

		src := stream.NewSource(srv.poll, func(c vmChange) (stream.Revision, error) { return stream.RevisionFromUint64(c.rev), nil })
		decode := func(_ context.Context, c vmChange) (informer.Change[vm], error) {
			return informer.Change[vm]{Op: c.op, Object: c.vm}, nil
		}
		inf, err := informer.New(informer.ListFunc[vm](srv.list), src, decode, func(v vm) string { return v.ID },
			informer.Resync(time.Minute),
			informer.OnRelist(func(informer.RelistInfo) { im.OnRelist() }),
			informer.WatchOptions(stream.PollInterval(time.Second)), informer.Logger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		handled := make(chan struct{}, 10)
		r := inf.AddHandler(informer.HandlerFuncs[vm]{UpdateFunc: func(_, _ vm) { handled <- struct{}{} }})
		im.Objects(inf.Store().Len)
		require.NoError(t, im.QueueDepth("audit", r.Pending))

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- inf.Run(ctx) }()
		require.NoError(t, inf.WaitForSync(ctx))
		srv.apply(informer.Update, vm{ID: "vm2", Status: "STOPPED"})
		srv.apply(informer.Insert, vm{ID: "vm4", Status: "RUNNING"})
		<-handled
		synctest.Wait()

		require.Equal(t, 4.0, gaugeValue(t, im, "towerwatch_informer_objects"))
		require.Equal(t, 0.0, gaugeValue(t, im, "towerwatch_informer_queue_depth"))
		require.Equal(t, 0.0, gaugeValue(t, im, "towerwatch_informer_relists_total"))

		time.Sleep(61 * time.Second) // past the resync period, in fake time
		synctest.Wait()
		require.Equal(t, 1.0, gaugeValue(t, im, "towerwatch_informer_relists_total"))
		problems, err := testutil.GatherAndLint(reg)
		require.NoError(t, err)
		require.Empty(t, problems)

		cancel()
		<-done
	})
}
