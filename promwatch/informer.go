package promwatch

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/towerwatch/towerwatch/stream"
)

// Informer are the collectors of an informer (package informer): objects
// in its store, re-lists, and the changes queued for each handler. The
// gauges are read at scrape time from functions the caller supplies, such
// as the store's Len and a registration's Pending:
//
//	im, err := promwatch.NewInformer(reg)
//	im.Objects(inf.Store().Len)
//	im.QueueDepth("audit", registration.Pending)
//	... informer.OnRelist(func(informer.RelistInfo) { im.OnRelist() })
//
// An *Informer is a prometheus.Collector, registered by NewInformer; its
// methods are safe for concurrent use and do nothing on a nil receiver.
// The functions are called on the scraping goroutine: they must be safe
// for concurrent use and fast.
type Informer struct {
	objectsDesc *prometheus.Desc
	depthDesc   *prometheus.Desc
	relists     prometheus.Counter
	max         int

	mu       sync.Mutex
	objects  func() int
	handlers []namedFunc
}

type namedFunc struct {
	name string
	f    func() int
}

// NewInformer makes the informer collectors and registers them on reg. Of
// the options, Namespace, ConstLabels and MaxSeries (the most handler
// names) apply. Errors are as for New.
func NewInformer(reg prometheus.Registerer, opts ...Option) (*Informer, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	name := func(n string) string { return prometheus.BuildFQName(cfg.namespace, "", n) }
	i := &Informer{
		objectsDesc: prometheus.NewDesc(name("informer_objects"),
			"Objects in the informer's store.", nil, cfg.constLabels),
		depthDesc: prometheus.NewDesc(name("informer_queue_depth"),
			"Changes queued for a handler, not yet handled.", []string{"handler"}, cfg.constLabels),
		relists: prometheus.NewCounter(prometheus.CounterOpts(cfg.opts("informer_relists_total",
			"Full re-lists after the first sync (compaction, gap, resync)."))),
		max: cfg.maxSeries,
	}
	if err := register(reg, "NewInformer", i); err != nil {
		return nil, err
	}
	return i, nil
}

// Objects sets the function that counts the objects in the store (such as
// the store's Len). Until it is set, towerwatch_informer_objects is not
// exposed.
func (i *Informer) Objects(count func() int) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.objects = count
	i.mu.Unlock()
}

// QueueDepth sets the function that returns the changes queued for the
// handler named name (such as its registration's Pending), exposed as
// towerwatch_informer_queue_depth{handler=name}; a nil pending removes it.
// Names are the caller's choice and must be few: it is an error to add
// more than MaxSeries, or an empty or non-UTF-8 name.
func (i *Informer) QueueDepth(name string, pending func() int) error {
	if i == nil {
		return nil
	}
	if name == "" || labelValue(name) != name {
		return fmt.Errorf("%w: promwatch: Informer.QueueDepth(%q): want a non-empty UTF-8 name", stream.ErrInvalidOption, name)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for k, h := range i.handlers {
		if h.name == name {
			if pending == nil {
				i.handlers = append(i.handlers[:k], i.handlers[k+1:]...)
			} else {
				i.handlers[k].f = pending
			}
			return nil
		}
	}
	if pending == nil {
		return nil
	}
	if len(i.handlers) >= i.max {
		return fmt.Errorf("%w: promwatch: Informer.QueueDepth(%q): more than MaxSeries (%d) handler names", stream.ErrInvalidOption, name, i.max)
	}
	i.handlers = append(i.handlers, namedFunc{name, pending})
	return nil
}

// OnRelist counts one re-list: call it from the informer's OnRelist hook.
func (i *Informer) OnRelist() {
	if i != nil {
		i.relists.Inc()
	}
}

// Describe implements prometheus.Collector.
func (i *Informer) Describe(ch chan<- *prometheus.Desc) {
	ch <- i.objectsDesc
	ch <- i.depthDesc
	i.relists.Describe(ch)
}

// Collect implements prometheus.Collector.
func (i *Informer) Collect(ch chan<- prometheus.Metric) {
	i.mu.Lock()
	objects, handlers := i.objects, append([]namedFunc(nil), i.handlers...)
	i.mu.Unlock()
	if objects != nil {
		ch <- prometheus.MustNewConstMetric(i.objectsDesc, prometheus.GaugeValue, float64(objects()))
	}
	for _, h := range handlers {
		ch <- prometheus.MustNewConstMetric(i.depthDesc, prometheus.GaugeValue, float64(h.f()), h.name)
	}
	i.relists.Collect(ch)
}
