package promwatch

import (
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/towerwatch/towerwatch/operators"
	"github.com/towerwatch/towerwatch/stream"
)

// ErrNotReady is wrapped by the errors Metrics.Ready returns.
var ErrNotReady = errors.New("not ready")

// Metrics are the collectors of one watch (see the package documentation
// for the metrics). Make one with New, give its hooks to the watch
// (Options, or OnPoll and OnWarning from your own hooks) and wrap the
// sequence with Events:
//
//	m, err := promwatch.New(reg, promwatch.ConstLabels(prometheus.Labels{"tower": "dc1"}))
//	...
//	seq := stream.Watch(ctx, src, append(opts, m.Options()...)...)
//	for ev, err := range promwatch.Events(m, seq, labels) { ... }
//
// A *Metrics is a prometheus.Collector, registered by New; it is also a
// Checker for Readyz. Its methods are safe for concurrent use, and a nil
// *Metrics ignores every call (Ready then reports ErrNotReady).
type Metrics struct {
	cfg *config

	eventsVec    *prometheus.CounterVec
	pollsVec     *prometheus.CounterVec
	pollsOK      prometheus.Counter
	pollsErr     prometheus.Counter
	pollDuration prometheus.Histogram
	retries      prometheus.Counter
	compactions  prometheus.Counter
	gaps         prometheus.Counter
	lag          prometheus.Gauge
	caughtUp     prometheus.Gauge
	lastEvent    prometheus.Gauge
	collectors

	events bounded[prometheus.Counter]

	start     time.Time    // origin of the monotonic times below
	lastOK    atomic.Int64 // time.Since(start) of the last successful poll, +1; 0: none yet
	lastDur   atomic.Int64 // the duration of that poll
	hasCaught atomic.Bool  // a poll has said caught up
}

// New makes the collectors of one watch and registers them on reg (never
// on the global registry unless reg is it). It returns an error wrapping
// stream.ErrInvalidOption for a nil reg or a bad option, or the
// registration's error (such as a prometheus.AlreadyRegisteredError when
// two watches share a registry without distinct ConstLabels).
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	m := &Metrics{cfg: cfg, start: time.Now()}
	m.eventsVec = prometheus.NewCounterVec(prometheus.CounterOpts(cfg.opts("events_total",
		"Changes delivered, by resource type and action.")), []string{"resource_type", "action"})
	m.pollsVec = prometheus.NewCounterVec(prometheus.CounterOpts(cfg.opts("polls_total",
		`Polls of the source: result="ok" succeeded, result="error" failed and will be retried.`)), []string{"result"})
	m.pollsOK, m.pollsErr = m.pollsVec.WithLabelValues("ok"), m.pollsVec.WithLabelValues("error")
	ho := cfg.opts("poll_duration_seconds", "How long successful polls took.")
	m.pollDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ho.Namespace, Name: ho.Name,
		Help: ho.Help, ConstLabels: ho.ConstLabels, Buckets: cfg.buckets})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts(cfg.opts("retries_total",
		"Retries after a failed poll.")))
	m.compactions = prometheus.NewCounter(prometheus.CounterOpts(cfg.opts("compactions_total",
		"Times the server had discarded history the watch still needed (its position fell below the compact revision).")))
	m.gaps = prometheus.NewCounter(prometheus.CounterOpts(cfg.opts("gaps_total",
		"Compactions stepped over by restarting after the compact revision: changes may have been lost.")))
	m.lag = prometheus.NewGauge(prometheus.GaugeOpts(cfg.opts("lag_revisions",
		"Server head revision minus the newest revision fetched, as of the last successful poll; 0 once caught up.")))
	m.caughtUp = prometheus.NewGauge(prometheus.GaugeOpts(cfg.opts("caught_up",
		"1 if the last successful poll found nothing more waiting, else 0.")))
	m.lastEvent = prometheus.NewGauge(prometheus.GaugeOpts(cfg.opts("last_event_timestamp_seconds",
		"Unix time of the last successful poll that brought new changes; 0 if none has.")))
	m.collectors = collectors{m.eventsVec, m.pollsVec, m.pollDuration, m.retries,
		m.compactions, m.gaps, m.lag, m.caughtUp, m.lastEvent}
	m.events = newBounded(cfg.maxSeries, func(k [2]string) prometheus.Counter {
		return m.eventsVec.WithLabelValues(k[0], k[1])
	})
	if err := register(reg, "New", m); err != nil {
		return nil, err
	}
	return m, nil
}

// Options returns the stream options that feed m: stream.OnPoll(m.OnPoll)
// and stream.OnWarning(m.OnWarning). They replace OnPoll and OnWarning
// hooks given before them; to keep hooks of your own, call m.OnPoll and
// m.OnWarning from them instead. A nil m returns no option.
func (m *Metrics) Options() []stream.Option {
	if m == nil {
		return nil
	}
	return []stream.Option{stream.OnPoll(m.OnPoll), stream.OnWarning(m.OnWarning)}
}

// OnPoll records one successful poll: the stream.OnPoll hook. It counts
// the poll, observes its duration, sets the lag, caught-up and last-event
// gauges, and marks the time for Ready.
func (m *Metrics) OnPoll(info stream.PollInfo) {
	if m == nil {
		return
	}
	m.pollsOK.Inc()
	m.pollDuration.Observe(info.Duration.Seconds())
	m.lastDur.Store(int64(info.Duration))
	m.lastOK.Store(int64(time.Since(m.start)) + 1)
	if info.New > 0 {
		m.lastEvent.SetToCurrentTime()
	}
	if info.CaughtUp {
		m.caughtUp.Set(1)
		m.lag.Set(0)
		m.hasCaught.Store(true)
		return
	}
	m.caughtUp.Set(0)
	if !info.Head.IsZero() {
		newest := info.Position
		if newest.Less(info.Last) {
			newest = info.Last
		}
		m.lag.Set(max(revFloat(info.Head)-revFloat(newest), 0))
	}
}

// OnWarning records one failed poll that will be retried: the
// stream.OnWarning hook. It counts a failed poll and a retry.
func (m *Metrics) OnWarning(error) {
	if m == nil {
		return
	}
	m.pollsErr.Inc()
	m.retries.Inc()
}

// ObserveError records an error a watch's sequence yielded: a
// *stream.CompactedError counts a compaction, an *operators.GapError a
// compaction and a gap; anything else is ignored. Events calls it for
// every error; call it yourself when you do not use Events.
func (m *Metrics) ObserveError(err error) {
	if m == nil || err == nil {
		return
	}
	switch {
	case errors.Is(err, operators.ErrGap):
		m.compactions.Inc()
		m.gaps.Inc()
	case errors.Is(err, stream.ErrCompacted):
		m.compactions.Inc()
	}
}

// Event counts one change delivered, of the given resource type and
// action. Events calls it; label values past MaxSeries distinct pairs are
// counted as ("other", "other").
func (m *Metrics) Event(resourceType, action string) {
	if m == nil {
		return
	}
	m.events.with([2]string{resourceType, action}).Inc()
}

// Ready reports whether the watch is ready: nil once a poll has said
// caught up and the last successful poll is recent (within ReadyWithin
// plus that poll's duration), else an error wrapping ErrNotReady that
// says why in one line.
func (m *Metrics) Ready() error {
	if m == nil {
		return fmt.Errorf("%w: no metrics", ErrNotReady)
	}
	last := m.lastOK.Load()
	switch {
	case last == 0:
		return fmt.Errorf("%w: no successful poll yet", ErrNotReady)
	case !m.hasCaught.Load():
		return fmt.Errorf("%w: catching up", ErrNotReady)
	}
	age := time.Since(m.start) - time.Duration(last-1)
	if limit := m.cfg.readyWithin + time.Duration(m.lastDur.Load()); age > limit {
		return fmt.Errorf("%w: last successful poll %v ago (limit %v)", ErrNotReady, age.Round(time.Millisecond), limit)
	}
	return nil
}

// Events returns seq with every value counted on m: each change under
// towerwatch_events_total with the resource type and action that labels
// returns for it (values must be bounded: never ids), each error through
// m.ObserveError. labels nil counts every change under ("", ""). A nil m
// returns seq itself. Events adds no goroutine and no buffering.
func Events[E any](m *Metrics, seq iter.Seq2[E, error], labels func(E) (resourceType, action string)) iter.Seq2[E, error] {
	if m == nil {
		return seq
	}
	return func(yield func(E, error) bool) {
		// A cache of the counters, without the lock, bounded like the
		// label sets themselves.
		local := make(map[[2]string]prometheus.Counter)
		for ev, err := range seq {
			if err != nil {
				m.ObserveError(err)
			} else {
				var k [2]string
				if labels != nil {
					k[0], k[1] = labels(ev)
				}
				c, ok := local[k]
				if !ok {
					c = m.events.with(k)
					if len(local) <= m.cfg.maxSeries {
						local[k] = c
					}
				}
				c.Inc()
			}
			if !yield(ev, err) {
				return
			}
		}
	}
}

// bounded hands out the metric of a label set, creating at most max of
// them: past that, every new set gets the one of (Other, Other).
type bounded[M any] struct {
	mu     sync.Mutex
	max    int
	seen   map[[2]string]M
	create func(k [2]string) M
}

func newBounded[M any](limit int, create func([2]string) M) bounded[M] {
	return bounded[M]{max: limit, seen: map[[2]string]M{}, create: create}
}

func (b *bounded[M]) with(k [2]string) M {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.seen[k]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		k = [2]string{Other, Other}
		if v, ok := b.seen[k]; ok {
			return v
		}
	}
	v := b.create([2]string{labelValue(k[0]), labelValue(k[1])})
	b.seen[k] = v
	return v
}

// labelValue makes s a valid label value: Prometheus wants UTF-8.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// revFloat is r as a float64 (rounded beyond 2^53).
func revFloat(r stream.Revision) float64 {
	if n, ok := r.Uint64(); ok {
		return float64(n)
	}
	f, _ := strconv.ParseFloat(r.String(), 64)
	return f
}
