// Package cloudtowerprom is promwatch for CloudTower changes: the label
// function that counts a *models.ResourceChangeEvent under its resource
// type and action, and Events over a CloudTower watch. It is a package of
// its own so that promwatch does not import the CloudTower SDK.
//
// The label values are the event's resource_type ("Vm", "Host", ...) and
// action ("INSERT", "UPDATE", "DELETE"), as the server sends them, or
// "unknown" when the event has none; never the resource id. CloudTower's
// resource types are a fixed set, and promwatch.MaxSeries bounds the pairs
// even against a misbehaving server.
package cloudtowerprom

import (
	"iter"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/promwatch"
)

// Unknown is the label value of a missing resource type or action.
const Unknown = "unknown"

// Labels returns the resource type and action of ev for
// towerwatch_events_total.
func Labels(ev *models.ResourceChangeEvent) (resourceType, action string) {
	resourceType, action = Unknown, Unknown
	if ev == nil {
		return
	}
	if ev.ResourceType != nil && *ev.ResourceType != "" {
		resourceType = *ev.ResourceType
	}
	if ev.Action != nil && *ev.Action != "" {
		action = *ev.Action
	}
	return
}

// Events is promwatch.Events with Labels: it counts every change of seq
// on m, and every compaction or gap it reports.
//
//	for ev, err := range cloudtowerprom.Events(m, src.Watch(ctx, m.Options()...)) { ... }
func Events(m *promwatch.Metrics, seq iter.Seq2[*models.ResourceChangeEvent, error]) iter.Seq2[*models.ResourceChangeEvent, error] {
	return promwatch.Events(m, seq, Labels)
}
