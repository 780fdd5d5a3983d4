package promwatch_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/stream"
)

// A watch with metrics: the hooks go in as stream options, Events wraps
// the sequence, and Handler serves /metrics, /healthz and /readyz (here
// it would be http.ListenAndServe(":9464", promwatch.Handler(reg, m))).
func Example() {
	reg := prometheus.NewRegistry()
	m, err := promwatch.New(reg, promwatch.ConstLabels(prometheus.Labels{"tower": "dc1"}))
	if err != nil {
		fmt.Println(err)
		return
	}

	// A toy feed of three changes.
	type change struct {
		rev  uint64
		kind string
	}
	log := []change{{1, "Vm"}, {2, "Host"}, {3, "Vm"}}
	src := stream.NewSource(func(_ context.Context, after stream.Revision, limit int) (stream.Page[change], error) {
		n, _ := after.Uint64()
		return stream.Page[change]{Items: log[min(n, 3):], Head: stream.RevisionFromUint64(3)}, nil
	}, func(c change) (stream.Revision, error) { return stream.RevisionFromUint64(c.rev), nil })
	labels := func(c change) (resourceType, action string) { return c.kind, "INSERT" }

	opts := append([]stream.Option{stream.FromStart()}, m.Options()...)
	seen := 0
	for _, err := range promwatch.Events(m, stream.Watch(context.Background(), src, opts...), labels) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if seen++; seen == len(log) {
			break
		}
	}
	fmt.Println("ready:", m.Ready())

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "towerwatch_events_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range s.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			fmt.Printf("%s{resource_type=%q,action=%q,tower=%q} %g\n", mf.GetName(), l["resource_type"], l["action"], l["tower"], s.GetCounter().GetValue())
		}
	}
	// Output:
	// ready: <nil>
	// towerwatch_events_total{resource_type="Host",action="INSERT",tower="dc1"} 1
	// towerwatch_events_total{resource_type="Vm",action="INSERT",tower="dc1"} 2
}
