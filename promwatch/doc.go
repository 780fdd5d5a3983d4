// Package promwatch exposes towerwatch watches, JetStream bridges and
// informers to Prometheus, and answers health probes for them.
//
// The contract:
//
//   - Collectors are registered only on the prometheus.Registerer the
//     caller passes to New, NewBridge or NewInformer, never on the global
//     registry. Each of them is also a prometheus.Collector itself.
//   - A watch is wired through the hooks every Source benefits from:
//     Metrics.OnPoll and Metrics.OnWarning (or Metrics.Options, which
//     sets both), plus Events around the sequence to count the changes
//     delivered by resource type and action, and the compactions and gaps
//     it reports. Package stream and package operators know nothing of
//     Prometheus: the dependency is paid only by importers of this package.
//   - Label values are bounded: resource types and actions come from a
//     function the caller supplies (package promwatch/cloudtowerprom has
//     CloudTower's), handler names are chosen by the caller, and past
//     MaxSeries distinct values a metric counts under the value "other".
//     Resource ids never become label values.
//   - Several watches in one process are told apart by ConstLabels (say
//     {tower="dc1"}) or a Namespace other than "towerwatch".
//   - Every hook method is safe for concurrent use, never blocks, and does
//     nothing on a nil receiver, so optional metrics need no branches.
//
// # Metrics of a watch (New)
//
//	towerwatch_events_total{resource_type,action}  counter: changes delivered
//	towerwatch_polls_total{result="ok"|"error"}    counter: polls that succeeded, failed (and are retried)
//	towerwatch_poll_duration_seconds               histogram: how long successful polls took
//	towerwatch_retries_total                       counter: retries after a failed poll
//	towerwatch_compactions_total                   counter: times history was lost below the position
//	towerwatch_gaps_total                          counter: compactions that operators.Resume stepped over (a *operators.GapError)
//	towerwatch_lag_revisions                       gauge: head revision minus the newest revision fetched; 0 once caught up
//	towerwatch_caught_up                           gauge: 1 if the last poll found nothing more waiting, else 0
//	towerwatch_last_event_timestamp_seconds        gauge: Unix time of the last poll that brought new changes
//
// # Metrics of a bridge (NewBridge) and an informer (NewInformer)
//
//	towerwatch_bridge_published_total              counter: changes published (acknowledged)
//	towerwatch_bridge_publish_errors_total         counter: failed publishes
//	towerwatch_bridge_leader                       gauge: 1 while this bridge leads, else 0
//	towerwatch_informer_objects                    gauge: objects in the informer's store
//	towerwatch_informer_relists_total              counter: full re-lists
//	towerwatch_informer_queue_depth{handler}       gauge: changes queued for each handler
//
// # Health
//
// Handler serves /metrics, /healthz and /readyz on one http.Handler.
// /healthz answers 200 while the process runs. /readyz answers 200 once
// every Checker is ready, else 503 with a one-line reason; a *Metrics is
// ready once its watch has caught up (at least once) and its last
// successful poll is recent: within ReadyWithin (default 3 s, three of the
// stream's default poll intervals) plus that poll's own duration, so that
// a long poll (a JetStream source waits up to seconds) is not mistaken for
// a stall.
package promwatch
