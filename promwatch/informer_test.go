package promwatch_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

type vm struct{ ID, Status string }

// listVMs lists the state the feed's changes lead to: the last value
// (the status) of each key (the VM's id).
func listVMs(feed *streamtest.Feed) informer.ListFunc[vm] {
	return func(_ context.Context, yield func([]vm) error) error {
		last := map[string]string{}
		for _, it := range feed.Items(0) {
			last[it.Key] = it.Value
		}
		var page []vm
		for id, status := range last {
			page = append(page, vm{ID: id, Status: status})
		}
		return yield(page)
	}
}

// TestInformerWiring wires promwatch to a real informer: objects from
// its store, queue depth from a registration, re-lists from its hook,
// and the watch metrics of its change stream (through WatchOptions).
func TestInformerWiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		feed := &streamtest.Feed{}
		for _, id := range []string{"vm1", "vm2", "vm3"} {
			feed.Add(streamtest.Item{Key: id, Value: "RUNNING"})
		}
		reg := prometheus.NewRegistry()
		m, err := promwatch.New(reg)
		require.NoError(t, err)
		im, err := promwatch.NewInformer(reg)
		require.NoError(t, err)

		decode := func(_ context.Context, it streamtest.Item) (informer.Change[vm], error) {
			return informer.Change[vm]{Op: informer.Update, Object: vm{ID: it.Key, Status: it.Value}}, nil
		}
		inf, err := informer.New(listVMs(feed), feed, decode, func(v vm) string { return v.ID },
			informer.Resync(time.Minute),
			informer.OnRelist(func(informer.RelistInfo) { im.OnRelist() }),
			informer.WatchOptions(stream.PollInterval(time.Second)), informer.WatchOptions(m.Options()...),
			informer.Logger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		handled := make(chan struct{}, 10)
		r := inf.AddHandler(informer.HandlerFuncs[vm]{UpdateFunc: func(_, _ vm) { handled <- struct{}{} }})
		im.Objects(inf.Store().Len)
		require.NoError(t, im.QueueDepth("audit", r.Pending))

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- inf.Run(ctx) }()
		require.NoError(t, inf.WaitForSync(ctx))
		feed.Add(streamtest.Item{Key: "vm2", Value: "STOPPED"}, streamtest.Item{Key: "vm4", Value: "RUNNING"})
		<-handled
		synctest.Wait()

		require.Equal(t, 4.0, gaugeValue(t, im, "towerwatch_informer_objects"))
		require.Equal(t, 0.0, gaugeValue(t, im, "towerwatch_informer_queue_depth"))
		require.Equal(t, 0.0, gaugeValue(t, im, "towerwatch_informer_relists_total"))
		require.Equal(t, 1.0, gaugeValue(t, m, "towerwatch_caught_up"))
		require.Equal(t, 0.0, gaugeValue(t, m, "towerwatch_lag_revisions"))
		require.NoError(t, m.Ready())

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
