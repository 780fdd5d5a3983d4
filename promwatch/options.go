package promwatch

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/towerwatch/towerwatch/stream"
)

// Defaults of the options.
const (
	// DefaultNamespace is the prefix of every metric name.
	DefaultNamespace = "towerwatch"
	// DefaultMaxSeries bounds the distinct label values of one labelled
	// metric (resource type and action pairs, handler names).
	DefaultMaxSeries = 500
	// DefaultReadyWithin is how recent the last successful poll must be
	// for Ready: three of the stream's default poll intervals.
	DefaultReadyWithin = 3 * stream.DefaultPollInterval
	// Other is the label value counted under once a metric has MaxSeries
	// distinct values.
	Other = "other"
)

// DefaultPollBuckets are the buckets of towerwatch_poll_duration_seconds,
// from 5 ms (a poll on a LAN) to 60 s (the default poll timeout).
var DefaultPollBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Option configures New, NewBridge and NewInformer. Options that do not
// apply to a collector (PollBuckets for a bridge, say) are ignored by it.
type Option func(*config)

// Err returns the error o records, if any: an error wrapping
// stream.ErrInvalidOption for a bad argument. New, NewBridge and
// NewInformer return the same error.
func (o Option) Err() error {
	if o == nil {
		return nil
	}
	c := newConfig()
	o(c)
	return c.err
}

// Validate returns the errors of opts, joined (nil if every option is
// valid): the error New, NewBridge and NewInformer would return for them.
func Validate(opts ...Option) error { return stream.ValidateOptions(opts...) }

type config struct {
	namespace   string
	constLabels prometheus.Labels
	buckets     []float64
	maxSeries   int
	readyWithin time.Duration
	err         error
}

func newConfig() *config {
	return &config{
		namespace:   DefaultNamespace,
		buckets:     DefaultPollBuckets,
		maxSeries:   DefaultMaxSeries,
		readyWithin: DefaultReadyWithin,
	}
}

func buildConfig(opts []Option) (*config, error) {
	c := newConfig()
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c, c.err
}

func (c *config) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: promwatch: "+format, append([]any{stream.ErrInvalidOption}, args...)...)
	}
}

var nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reserved are the variable label names of this package's metrics.
var reserved = []string{"resource_type", "action", "result", "handler", "le"}

// Namespace replaces the "towerwatch" prefix of every metric name, so that
// towerwatch_events_total becomes NS_events_total. ns must be a valid
// metric name prefix (letters, digits and underscores, not starting with a
// digit). Prefer ConstLabels to tell watches apart: dashboards and alerts
// then work for all of them.
func Namespace(ns string) Option {
	return func(c *config) {
		if !nameRE.MatchString(ns) {
			c.fail("Namespace(%q): want letters, digits and underscores, not starting with a digit", ns)
		}
		c.namespace = ns
	}
}

// ConstLabels adds labels with fixed values to every metric, such as
// {"tower": "dc1"}, so that one process can expose several watches on one
// registry. Names must be valid label names, not starting with "__", and
// not one of the labels the metrics use (resource_type, action, result,
// handler, le); values must not be empty. Given more than once, the label
// sets merge.
func ConstLabels(labels prometheus.Labels) Option {
	return func(c *config) {
		for _, name := range slices.Sorted(maps.Keys(labels)) {
			switch {
			case !nameRE.MatchString(name) || len(name) >= 2 && name[:2] == "__":
				c.fail("ConstLabels: %q is not a valid label name", name)
			case slices.Contains(reserved, name):
				c.fail("ConstLabels: %q is a label of the metrics themselves", name)
			case labels[name] == "":
				c.fail("ConstLabels: label %q has an empty value", name)
			}
		}
		merged := maps.Clone(c.constLabels)
		if merged == nil {
			merged = prometheus.Labels{}
		}
		maps.Copy(merged, labels)
		c.constLabels = merged
	}
}

// PollBuckets sets the buckets of towerwatch_poll_duration_seconds
// (default DefaultPollBuckets): upper bounds in seconds, at least one,
// positive and strictly increasing.
func PollBuckets(upper ...float64) Option {
	return func(c *config) {
		if len(upper) == 0 {
			c.fail("PollBuckets(): want at least one bucket")
		}
		for i, b := range upper {
			if !(b > 0) || i > 0 && !(b > upper[i-1]) {
				c.fail("PollBuckets(%v): want positive, strictly increasing bounds", upper)
				break
			}
		}
		c.buckets = slices.Clone(upper)
	}
}

// MaxSeries bounds the distinct label values of each labelled metric
// (default DefaultMaxSeries): once towerwatch_events_total has counted n
// distinct (resource_type, action) pairs, changes of any new pair count
// under ("other", "other"); Informer.QueueDepth refuses a handler name past
// the n-th. n must be at least 1.
func MaxSeries(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("MaxSeries(%d): must be at least 1", n)
		}
		c.maxSeries = n
	}
}

// ReadyWithin sets how recent the last successful poll must be for the
// watch to be ready (default DefaultReadyWithin); the duration of that
// poll is added to it. Use three poll intervals of the watch. It must be
// positive.
func ReadyWithin(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("ReadyWithin(%v): must be positive", d)
		}
		c.readyWithin = d
	}
}

func (c *config) opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: c.namespace, Name: name, Help: help, ConstLabels: c.constLabels}
}

// register registers col on reg, wrapping the error.
func register(reg prometheus.Registerer, what string, col prometheus.Collector) error {
	if reg == nil {
		return fmt.Errorf("%w: promwatch: %s: nil Registerer", stream.ErrInvalidOption, what)
	}
	if err := reg.Register(col); err != nil {
		return fmt.Errorf("promwatch: %s: registering the collectors: %w", what, err)
	}
	return nil
}

// collectors is a group of collectors that describes and collects as one;
// the package's types embed it to implement prometheus.Collector.
type collectors []prometheus.Collector

// Describe implements prometheus.Collector.
func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
