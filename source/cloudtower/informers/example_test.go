package informers_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/informers"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// A local copy of the VMs, indexed by host, with a handler.
func ExampleVMs() {
	// The stand-in for CloudTower, in memory, with some history.
	srv := fakeserver.New(fakeserver.Config{Seed: 1})
	defer srv.Close()
	srv.Generate(1000)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := cloudtower.Dial(ctx, cloudtower.Config{
		Host: "http://" + fakeserver.MemoryHost, Transport: srv.Transport(),
		Username: srv.Username(), Password: srv.Password(), // the login token: lists
		APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword(), // HTTP Basic: the change feed
	})
	if err != nil {
		panic(err)
	}

	byHost := func(vm *models.VM) []string {
		if vm.Host == nil || vm.Host.ID == nil {
			return nil
		}
		return []string{*vm.Host.ID}
	}
	vms, err := informers.VMs(c, informers.InformerOptions(
		informer.Index("host", byHost),
		informer.WatchOptions(stream.PollInterval(10*time.Millisecond))))
	if err != nil {
		panic(err)
	}
	stopped := make(chan string, 1)
	vms.AddHandler(informer.HandlerFuncs[*models.VM]{
		UpdateFunc: func(old, vm *models.VM) {
			if *old.Status != *vm.Status && *vm.Status == models.VMStatusSTOPPED {
				stopped <- *vm.Name
			}
		},
		DeleteFunc: func(vm *models.VM, finalStateUnknown bool) {
			// finalStateUnknown: found gone by a re-list after a compaction.
		},
	})

	done := make(chan error, 1)
	go func() { done <- vms.Run(ctx) }()
	if err := vms.WaitForSync(ctx); err != nil {
		panic(err)
	}
	fmt.Println("VMs:", vms.Store().Len())

	// The VMs on the host of the first VM, from the index.
	first := srv.Resources(fakeserver.TypeVM)[0]
	vm, _ := vms.Store().Get(first.ID)
	onHost, _ := vms.Store().ByIndex("host", *vm.Host.ID)
	fmt.Println("on its host:", len(onHost))

	// CloudTower stops it.
	srv.Append(fakeserver.Event{Action: fakeserver.ActionUpdate, ResourceType: fakeserver.TypeVM,
		ResourceID: first.ID, NewValue: strings.Replace(first.JSON, `"status":"RUNNING"`, `"status":"STOPPED"`, 1)})
	fmt.Println("stopped:", <-stopped)

	cancel()
	fmt.Println(<-done)
	// Output:
	// VMs: 74
	// on its host: 7
	// stopped: vm-k8s-node-000006
	// context canceled
}
