package promwatch_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"github.com/stretchr/testify/require"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/promwatch/cloudtowerprom"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// TestLoopback watches the fake server over loopback HTTP with metrics,
// under two faults, and scrapes /metrics, /healthz and /readyz over
// loopback HTTP in the middle of the watch and once it has caught up.
func TestLoopback(t *testing.T) {
	srv := fakeserver.New(fakeserver.Config{Seed: 11})
	defer srv.Close()
	srv.StartHTTP()
	const backlog, pageSize = 2345, 500 // the last page is short: it says caught up
	srv.Generate(backlog)
	src := cloudtower.New(dial(t, srv, false))

	reg := prometheus.NewRegistry()
	m, err := promwatch.New(reg, promwatch.ReadyWithin(time.Minute))
	require.NoError(t, err)
	hs := httptest.NewServer(promwatch.Handler(reg, m))
	defer hs.Close()

	resp, body := get(t, hs.URL+"/healthz")
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "ok\n", body)
	resp, body = get(t, hs.URL+"/readyz")
	require.Equal(t, 503, resp.StatusCode)
	require.Equal(t, "not ready: no successful poll yet\n", body)

	// What the counts must be: the server's log, by type and action.
	want := map[[2]string]int{}
	ids := map[string]bool{}
	for _, ev := range srv.Events(0) {
		want[[2]string{ev.ResourceType, ev.Action}]++
		ids[ev.ResourceID] = true
	}
	require.Greater(t, len(ids), 10*len(want), "many resources, few label pairs")

	srv.InjectFaults(fakeserver.Fault503, fakeserver.Fault500)
	opts := append([]stream.Option{stream.FromStart(), stream.PageSize(pageSize),
		stream.Backoff(time.Millisecond, time.Millisecond), stream.PollInterval(time.Hour)}, m.Options()...)
	got := 0
	for _, err := range cloudtowerprom.Events(m, stream.Watch[*models.ResourceChangeEvent](t.Context(), src, opts...)) {
		require.NoError(t, err)
		got++
		if got == pageSize+1 { // mid-catch-up
			f := scrape(t, hs.URL+"/metrics")
			require.Equal(t, float64(pageSize+1), sum(f, "towerwatch_events_total"))
			require.Equal(t, 0.0, f.must(t, "towerwatch_caught_up"))
			require.Greater(t, f.must(t, "towerwatch_lag_revisions"), 0.0)
			resp, body := get(t, hs.URL+"/readyz")
			require.Equal(t, 503, resp.StatusCode)
			require.Equal(t, "not ready: catching up\n", body)
		}
		if got == backlog {
			break
		}
	}

	f := scrape(t, hs.URL+"/metrics")
	for k, n := range want {
		require.Equal(t, float64(n), f.must(t, "towerwatch_events_total", "resource_type", k[0], "action", k[1]), "%v", k)
	}
	require.Len(t, f["towerwatch_events_total"].GetMetric(), len(want), "one series per (type, action), none per id")
	require.Equal(t, 2.0, f.must(t, "towerwatch_retries_total"))
	require.Equal(t, 2.0, f.must(t, "towerwatch_polls_total", "result", "error"))
	pages := float64((backlog + pageSize - 1) / pageSize)
	require.Equal(t, pages, f.must(t, "towerwatch_polls_total", "result", "ok"))
	require.Equal(t, pages, f.must(t, "towerwatch_poll_duration_seconds"), "one observation per successful poll")
	require.Equal(t, 0.0, f.must(t, "towerwatch_lag_revisions"))
	require.Equal(t, 1.0, f.must(t, "towerwatch_caught_up"))
	require.InDelta(t, float64(time.Now().Unix()), f.must(t, "towerwatch_last_event_timestamp_seconds"), 60)
	require.Equal(t, 0.0, f.must(t, "towerwatch_compactions_total"))
	resp, body = get(t, hs.URL+"/readyz")
	require.Equal(t, 200, resp.StatusCode, body)

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

func sum(f families, name string) float64 {
	total := 0.0
	for _, m := range f[name].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	return total
}

// TestReadyzFlips runs a watch in fake time over the in-memory transport:
// /readyz is 503 before the first poll, 200 once caught up, 503 once the
// server has failed for longer than ReadyWithin, and 200 again after it
// recovers.
func TestReadyzFlips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := fakeserver.New(fakeserver.Config{Seed: 12})
		defer srv.Close()
		srv.Generate(250)
		src := cloudtower.New(dial(t, srv, true))
		reg := prometheus.NewRegistry()
		m, err := promwatch.New(reg, promwatch.ReadyWithin(3*time.Second))
		require.NoError(t, err)
		h := promwatch.Handler(reg, m)
		code, _ := serve(h, "/readyz")
		require.Equal(t, 503, code)

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			opts := append([]stream.Option{stream.FromStart(), stream.PollInterval(time.Second),
				stream.Backoff(100*time.Millisecond, 400*time.Millisecond)}, m.Options()...)
			for _, err := range cloudtowerprom.Events(m, stream.Watch[*models.ResourceChangeEvent](ctx, src, opts...)) {
				if err != nil {
					done <- err
					return
				}
			}
		}()
		synctest.Wait() // caught up, waiting for the next poll
		code, body := serve(h, "/readyz")
		require.Equal(t, 200, code, body)
		require.Equal(t, 250.0, sumCounter(t, reg, "towerwatch_events_total"))

		srv.SetRandomFaults(1, 1, fakeserver.Fault503) // every poll fails
		time.Sleep(2 * time.Second)
		synctest.Wait()
		code, body = serve(h, "/readyz")
		require.Equal(t, 200, code, "failing for less than the limit: %s", body)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		code, body = serve(h, "/readyz")
		require.Equal(t, 503, code)
		require.Contains(t, body, "not ready: last successful poll")
		require.Greater(t, sumCounter(t, reg, "towerwatch_retries_total"), 2.0)

		srv.SetRandomFaults(0, 0)
		time.Sleep(time.Second)
		synctest.Wait()
		code, body = serve(h, "/readyz")
		require.Equal(t, 200, code, body)

		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

// TestCompactionsAndGaps: a stream that ends compacted counts a
// compaction; Resume stepping over one counts a compaction and a gap.
func TestCompactionsAndGaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := fakeserver.New(fakeserver.Config{Seed: 13})
		defer srv.Close()
		srv.Generate(300)
		srv.Compact(120)
		src := cloudtower.New(dial(t, srv, true))
		reg := prometheus.NewRegistry()
		m, err := promwatch.New(reg)
		require.NoError(t, err)

		var last error
		for _, err := range cloudtowerprom.Events(m, stream.Watch[*models.ResourceChangeEvent](t.Context(), src,
			append([]stream.Option{stream.After(stream.RevisionFromUint64(50))}, m.Options()...)...)) {
			last = err
		}
		require.ErrorIs(t, last, stream.ErrCompacted)
		require.Equal(t, 1.0, sumCounter(t, reg, "towerwatch_compactions_total"))
		require.Equal(t, 0.0, sumCounter(t, reg, "towerwatch_gaps_total"))

		got := 0
		seq := operators.Resume[*models.ResourceChangeEvent](t.Context(), src, operators.StartAfter(stream.RevisionFromUint64(50)),
			operators.OnCompaction(operators.Restart), operators.WithStreamOptions(m.Options()...))
		for ev, err := range cloudtowerprom.Events(m, seq) {
			if err != nil {
				require.ErrorIs(t, err, operators.ErrGap)
				continue
			}
			if got++; *ev.Revision == "300" {
				break
			}
		}
		require.Equal(t, 180, got)
		require.Equal(t, 2.0, sumCounter(t, reg, "towerwatch_compactions_total"))
		require.Equal(t, 1.0, sumCounter(t, reg, "towerwatch_gaps_total"))
		require.Equal(t, 180.0, sumCounter(t, reg, "towerwatch_events_total"))
	})
}

// sumCounter sums the values of the metric name in reg.
func sumCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}
