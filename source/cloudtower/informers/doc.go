// Package informers builds informer.Informer instances for CloudTower
// resources: a local, indexed copy of the VMs (or hosts, clusters, volumes,
// labels, or any other type) that stays right, with handlers that run on
// every change.
//
//	c, err := cloudtower.Dial(ctx, cloudtower.Config{Host: host,
//		Username: user, Password: password, // login token: the lists
//		APIUsername: apiUser, APIPassword: apiPassword, // HTTP Basic: the change feed
//	})
//	vms, err := informers.VMs(c, informers.InformerOptions(
//		informer.Index("host", func(vm *models.VM) []string { ... })))
//	vms.AddHandler(informer.HandlerFuncs[*models.VM]{...})
//	go vms.Run(ctx)
//
// Each informer lists its type through the SDK's get-* operation (VMKind():
// POST /get-vms, ...) in pages ordered by id (first/skip; see
// informer.OffsetLister for why no object is missed when others are deleted
// meanwhile), with the client's login token, and watches the resource-change
// feed filtered to the type (cloudtower.ResourceTypes), with the API
// credentials the client was dialled with, as CloudTower requires. Objects
// are the SDK's models (*models.VM, ...), decoded from the change's
// new_value (INSERT, UPDATE) or old_value (DELETE), and keyed by id.
// RefetchByID fetches each changed object instead of trusting new_value.
//
// New takes a Kind for any other type: its type name, a list function over
// the SDK, and an id accessor. Everything else (start protocol, re-list on
// compaction with finalStateUnknown deletes, handler queues, errors) is the
// informer package's contract.
package informers
