package promwatch_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/stream"
)

func TestOptionErrors(t *testing.T) {
	bad := map[string]promwatch.Option{
		"Namespace digit":      promwatch.Namespace("1tower"),
		"Namespace dash":       promwatch.Namespace("tower-watch"),
		"Namespace empty":      promwatch.Namespace(""),
		"ConstLabels reserved": promwatch.ConstLabels(prometheus.Labels{"action": "x"}),
		"ConstLabels internal": promwatch.ConstLabels(prometheus.Labels{"__name": "x"}),
		"ConstLabels bad name": promwatch.ConstLabels(prometheus.Labels{"tower-id": "x"}),
		"ConstLabels empty":    promwatch.ConstLabels(prometheus.Labels{"tower": ""}),
		"PollBuckets none":     promwatch.PollBuckets(),
		"PollBuckets unsorted": promwatch.PollBuckets(1, 0.5),
		"PollBuckets negative": promwatch.PollBuckets(-1),
		"MaxSeries zero":       promwatch.MaxSeries(0),
		"ReadyWithin zero":     promwatch.ReadyWithin(0),
		"ReadyWithin negative": promwatch.ReadyWithin(-time.Second),
	}
	for name, o := range bad {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, o.Err(), stream.ErrInvalidOption)
			reg := prometheus.NewRegistry()
			_, err := promwatch.New(reg, o)
			require.ErrorIs(t, err, stream.ErrInvalidOption)
			_, err = promwatch.NewBridge(reg, o)
			require.ErrorIs(t, err, stream.ErrInvalidOption)
			_, err = promwatch.NewInformer(reg, o)
			require.ErrorIs(t, err, stream.ErrInvalidOption)
			n, err := testutil.GatherAndCount(reg)
			require.NoError(t, err)
			require.Zero(t, n, "nothing registered after an error")
		})
	}
	good := []promwatch.Option{nil, promwatch.Namespace("dc1_tower"), promwatch.ConstLabels(prometheus.Labels{"tower": "dc1"}),
		promwatch.PollBuckets(0.1, 1), promwatch.MaxSeries(1), promwatch.ReadyWithin(time.Second)}
	for _, o := range good {
		require.NoError(t, o.Err())
	}
	require.NoError(t, promwatch.Validate(good...))
	err := promwatch.Validate(promwatch.MaxSeries(0), promwatch.ReadyWithin(0))
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	require.EqualError(t, err, "invalid option: promwatch: MaxSeries(0): must be at least 1\ninvalid option: promwatch: ReadyWithin(0s): must be positive")
}

func TestNilRegisterer(t *testing.T) {
	_, err := promwatch.New(nil)
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	_, err = promwatch.NewBridge(nil)
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	_, err = promwatch.NewInformer(nil)
	require.ErrorIs(t, err, stream.ErrInvalidOption)
}

// TestSeveralWatches: const labels or a namespace tell watches apart on
// one registry; without them the second registration fails.
func TestSeveralWatches(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := promwatch.New(reg, promwatch.ConstLabels(prometheus.Labels{"tower": "a"}))
	require.NoError(t, err)
	b, err := promwatch.New(reg, promwatch.ConstLabels(prometheus.Labels{"tower": "b"}))
	require.NoError(t, err)
	_, err = promwatch.New(reg, promwatch.Namespace("other"))
	require.NoError(t, err)
	_, err = promwatch.New(reg, promwatch.ConstLabels(prometheus.Labels{"tower": "a"}))
	var are prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &are)

	a.Event("Vm", "INSERT")
	b.Event("Vm", "INSERT")
	b.Event("Vm", "INSERT")
	want := `
# HELP towerwatch_events_total Changes delivered, by resource type and action.
# TYPE towerwatch_events_total counter
towerwatch_events_total{action="INSERT",resource_type="Vm",tower="a"} 1
towerwatch_events_total{action="INSERT",resource_type="Vm",tower="b"} 2
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "towerwatch_events_total"))
}

func TestNilReceivers(t *testing.T) {
	var (
		m *promwatch.Metrics
		b *promwatch.Bridge
		i *promwatch.Informer
	)
	m.OnPoll(stream.PollInfo{CaughtUp: true})
	m.OnWarning(errors.New("x"))
	m.ObserveError(&stream.CompactedError{})
	m.Event("Vm", "INSERT")
	require.Nil(t, m.Options())
	require.ErrorIs(t, m.Ready(), promwatch.ErrNotReady)
	seq := iter.Seq2[int, error](func(yield func(int, error) bool) { yield(1, nil) })
	for v := range promwatch.Events(m, seq, nil) {
		require.Equal(t, 1, v)
	}
	b.OnPublished(3)
	b.OnPublishError(errors.New("x"))
	b.OnLeader(true)
	i.OnRelist()
	i.Objects(func() int { return 1 })
	require.NoError(t, i.QueueDepth("h", func() int { return 1 }))
}

// TestLint lints the exposition of every collector.
func TestLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := promwatch.New(reg, promwatch.ConstLabels(prometheus.Labels{"tower": "dc1"}))
	require.NoError(t, err)
	b, err := promwatch.NewBridge(reg)
	require.NoError(t, err)
	inf, err := promwatch.NewInformer(reg)
	require.NoError(t, err)

	m.OnPoll(stream.PollInfo{Head: stream.RevisionFromUint64(10), Position: stream.RevisionFromUint64(2), New: 3, Duration: 20 * time.Millisecond})
	m.OnWarning(errors.New("503"))
	m.Event("Vm", "INSERT")
	m.ObserveError(&operators.GapError{})
	b.OnPublished(5)
	b.OnLeader(true)
	b.OnPublishError(errors.New("nats"))
	inf.Objects(func() int { return 42 })
	require.NoError(t, inf.QueueDepth("audit", func() int { return 3 }))
	inf.OnRelist()

	for _, c := range []prometheus.Collector{m, b, inf} {
		problems, err := testutil.CollectAndLint(c)
		require.NoError(t, err)
		require.Empty(t, problems)
	}
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)

	names := []string{
		"towerwatch_events_total", "towerwatch_polls_total", "towerwatch_poll_duration_seconds",
		"towerwatch_retries_total", "towerwatch_compactions_total", "towerwatch_gaps_total",
		"towerwatch_lag_revisions", "towerwatch_caught_up", "towerwatch_last_event_timestamp_seconds",
		"towerwatch_bridge_published_total", "towerwatch_bridge_leader", "towerwatch_bridge_publish_errors_total",
		"towerwatch_informer_objects", "towerwatch_informer_relists_total", "towerwatch_informer_queue_depth",
	}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	require.ElementsMatch(t, names, got)
	require.Equal(t, 42.0, gaugeValue(t, inf, "towerwatch_informer_objects"))
}

// TestCardinality counts changes of many resources: the series stay one
// per (type, action), and a label function that (wrongly) returns ids is
// capped at MaxSeries plus "other".
func TestCardinality(t *testing.T) {
	type change struct{ typ, action, id string }
	const n = 20_000
	types, actions := []string{"Vm", "Host", "Cluster"}, []string{"INSERT", "UPDATE", "DELETE"}
	changes := func(yield func(change, error) bool) {
		for i := range n {
			c := change{types[i%3], actions[(i/3)%3], "cuid" + strconv.Itoa(i)}
			if !yield(c, nil) {
				return
			}
		}
	}
	byType := func(c change) (string, string) { return c.typ, c.action }
	byID := func(c change) (string, string) { return c.typ, c.id }

	reg := prometheus.NewRegistry()
	m, err := promwatch.New(reg, promwatch.MaxSeries(50))
	require.NoError(t, err)
	for range promwatch.Events(m, changes, byType) {
	}
	require.Equal(t, 9, testutil.CollectAndCount(m, "towerwatch_events_total"))

	reg = prometheus.NewRegistry()
	m, err = promwatch.New(reg, promwatch.MaxSeries(50))
	require.NoError(t, err)
	for range promwatch.Events(m, changes, byID) {
	}
	require.Equal(t, 51, testutil.CollectAndCount(m, "towerwatch_events_total"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	total, other := 0.0, 0.0
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			total += mt.GetCounter().GetValue()
			if len(mt.GetLabel()) == 2 && mt.GetLabel()[0].GetValue() == promwatch.Other && mt.GetLabel()[1].GetValue() == promwatch.Other {
				other = mt.GetCounter().GetValue()
			}
		}
	}
	require.Equal(t, float64(n), total, "every change counted")
	require.Equal(t, float64(n-50), other)

	// Non-UTF-8 label values are made valid rather than panicking.
	m.Event("\xff", "INSERT")
}

func TestLagAndCaughtUp(t *testing.T) {
	m, err := promwatch.New(prometheus.NewRegistry())
	require.NoError(t, err)
	rev := stream.RevisionFromUint64
	lag := func() float64 { return gaugeValue(t, m, "towerwatch_lag_revisions") }
	caught := func() float64 { return gaugeValue(t, m, "towerwatch_caught_up") }

	m.OnPoll(stream.PollInfo{Position: rev(10), Last: rev(50), Head: rev(100), New: 40})
	require.Equal(t, 50.0, lag())
	require.Equal(t, 0.0, caught())
	m.OnPoll(stream.PollInfo{Position: rev(60), Head: rev(100)}) // empty page below the head: filtered, not full
	require.Equal(t, 40.0, lag())
	m.OnPoll(stream.PollInfo{Position: rev(60), Last: rev(80)}) // head unknown: unchanged
	require.Equal(t, 40.0, lag())
	m.OnPoll(stream.PollInfo{Position: rev(60), Last: rev(100), Head: rev(100), CaughtUp: true})
	require.Equal(t, 0.0, lag())
	require.Equal(t, 1.0, caught())
	big, err := stream.ParseRevision("100000000000000000000000")
	require.NoError(t, err)
	m.OnPoll(stream.PollInfo{Position: rev(0), Head: big})
	require.InEpsilon(t, 1e23, lag(), 1e-9)
}

func gaugeValue(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	var v float64
	found := false
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	for mt := range ch {
		if strings.Contains(mt.Desc().String(), `"`+name+`"`) {
			v, found = testutil.ToFloat64(constCollector{mt}), true
		}
	}
	require.True(t, found, "no %s", name)
	return v
}

type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

func TestObserveError(t *testing.T) {
	m, err := promwatch.New(prometheus.NewRegistry())
	require.NoError(t, err)
	m.ObserveError(fmt.Errorf("watch: %w", &stream.CompactedError{}))
	m.ObserveError(&operators.GapError{})
	m.ObserveError(context.Canceled)
	m.ObserveError(&stream.RetryError{Err: errors.New("x")})
	require.Equal(t, 2.0, gaugeValue(t, m, "towerwatch_compactions_total"))
	require.Equal(t, 1.0, gaugeValue(t, m, "towerwatch_gaps_total"))
}

// TestReady walks through the reasons, in fake time.
func TestReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := promwatch.New(prometheus.NewRegistry(), promwatch.ReadyWithin(3*time.Second))
		require.NoError(t, err)
		h := promwatch.Readyz(m)
		code, body := serve(h, "/readyz")
		require.Equal(t, 503, code)
		require.Equal(t, "not ready: no successful poll yet\n", body)

		m.OnPoll(stream.PollInfo{Position: stream.RevisionFromUint64(1), Head: stream.RevisionFromUint64(9)})
		code, body = serve(h, "/readyz")
		require.Equal(t, 503, code)
		require.Equal(t, "not ready: catching up\n", body)

		m.OnPoll(stream.PollInfo{CaughtUp: true, Duration: 200 * time.Millisecond})
		code, body = serve(h, "/readyz")
		require.Equal(t, 200, code, body)
		require.Equal(t, "ok\n", body)

		time.Sleep(3200 * time.Millisecond)
		require.NoError(t, m.Ready(), "within the limit plus the poll's duration")
		time.Sleep(100 * time.Millisecond)
		code, body = serve(h, "/readyz")
		require.Equal(t, 503, code)
		require.Equal(t, "not ready: last successful poll 3.3s ago (limit 3.2s)\n", body)

		// A later poll that is not caught up keeps it ready: readiness
		// latches the first catch-up.
		m.OnPoll(stream.PollInfo{Position: stream.RevisionFromUint64(9), Head: stream.RevisionFromUint64(20)})
		require.NoError(t, m.Ready())
	})
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := promwatch.New(reg)
	require.NoError(t, err)
	h := promwatch.Handler(reg, m, nil, promwatch.CheckerFunc(func() error { return nil }))

	code, body := serve(h, "/healthz")
	require.Equal(t, 200, code)
	require.Equal(t, "ok\n", body)
	code, _ = serve(h, "/readyz")
	require.Equal(t, 503, code)
	m.OnPoll(stream.PollInfo{CaughtUp: true})
	code, _ = serve(h, "/readyz")
	require.Equal(t, 200, code)
	code, body = serve(h, "/metrics")
	require.Equal(t, 200, code)
	require.Contains(t, body, "towerwatch_polls_total{result=\"ok\"} 1\n")
	code, _ = serve(h, "/nothing")
	require.Equal(t, 404, code)

	two := promwatch.Readyz(m, promwatch.CheckerFunc(func() error { return errors.New("bridge: standing by\nmore") }))
	code, body = serve(two, "/readyz")
	require.Equal(t, 503, code)
	require.Equal(t, "bridge: standing by\n", body)
}

func TestInformerQueueDepth(t *testing.T) {
	inf, err := promwatch.NewInformer(prometheus.NewRegistry(), promwatch.MaxSeries(2))
	require.NoError(t, err)
	require.ErrorIs(t, inf.QueueDepth("", func() int { return 0 }), stream.ErrInvalidOption)
	require.NoError(t, inf.QueueDepth("a", func() int { return 1 }))
	require.NoError(t, inf.QueueDepth("b", func() int { return 2 }))
	require.ErrorIs(t, inf.QueueDepth("c", func() int { return 3 }), stream.ErrInvalidOption)
	require.NoError(t, inf.QueueDepth("a", func() int { return 5 })) // replaces
	require.NoError(t, inf.QueueDepth("b", nil))                     // removes
	require.NoError(t, inf.QueueDepth("c", func() int { return 3 }))
	want := `
# HELP towerwatch_informer_queue_depth Changes queued for a handler, not yet handled.
# TYPE towerwatch_informer_queue_depth gauge
towerwatch_informer_queue_depth{handler="a"} 5
towerwatch_informer_queue_depth{handler="c"} 3
`
	require.NoError(t, testutil.CollectAndCompare(inf, strings.NewReader(want), "towerwatch_informer_queue_depth"))
}
