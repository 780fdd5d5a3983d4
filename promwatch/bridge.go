package promwatch

import "github.com/prometheus/client_golang/prometheus"

// Bridge are the collectors of a JetStream bridge (package
// jetstream/bridge): changes published, failed publishes, and whether this
// process leads. Make one with NewBridge and give its methods to the
// bridge's hooks. A *Bridge is a prometheus.Collector, registered by
// NewBridge; its methods are safe for concurrent use and do nothing on a
// nil receiver.
type Bridge struct {
	published prometheus.Counter
	errors    prometheus.Counter
	leader    prometheus.Gauge
	collectors
}

// NewBridge makes the bridge collectors and registers them on reg. Of the
// options, Namespace and ConstLabels apply. Errors are as for New.
func NewBridge(reg prometheus.Registerer, opts ...Option) (*Bridge, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		published: prometheus.NewCounter(prometheus.CounterOpts(cfg.opts("bridge_published_total",
			"Changes the bridge published and JetStream acknowledged."))),
		errors: prometheus.NewCounter(prometheus.CounterOpts(cfg.opts("bridge_publish_errors_total",
			"Publishes that failed (the bridge then stops leading and starts again)."))),
		leader: prometheus.NewGauge(prometheus.GaugeOpts(cfg.opts("bridge_leader",
			"1 while this bridge holds the leader lock and publishes, else 0."))),
	}
	b.collectors = collectors{b.published, b.errors, b.leader}
	if err := register(reg, "NewBridge", b); err != nil {
		return nil, err
	}
	return b, nil
}

// OnPublished counts n changes published and acknowledged.
func (b *Bridge) OnPublished(n int) {
	if b != nil && n > 0 {
		b.published.Add(float64(n))
	}
}

// OnPublishError counts one failed publish.
func (b *Bridge) OnPublishError(error) {
	if b != nil {
		b.errors.Inc()
	}
}

// OnLeader records whether this bridge leads: true when it has taken the
// leader lock, false when it has let it go or lost it.
func (b *Bridge) OnLeader(leading bool) {
	if b == nil {
		return
	}
	if leading {
		b.leader.Set(1)
	} else {
		b.leader.Set(0)
	}
}
