package informer_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/stream"
)

// VM is the example's object type.
type VM struct {
	ID, Host, Status string
}

// vmChange is one item of the example's change feed.
type vmChange struct {
	Rev uint64
	Op  informer.Op
	VM  VM
}

// memServer is a tiny in-memory server for the example: a list and a
// change feed.
type memServer struct {
	mu  sync.Mutex
	vms map[string]VM
	log []vmChange
}

func (s *memServer) apply(op informer.Op, vm VM) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op == informer.Delete {
		delete(s.vms, vm.ID)
	} else {
		s.vms[vm.ID] = vm
	}
	s.log = append(s.log, vmChange{Rev: uint64(len(s.log) + 1), Op: op, VM: vm})
}

func (s *memServer) list(_ context.Context, yield func([]VM) error) error {
	s.mu.Lock()
	page := make([]VM, 0, len(s.vms))
	for _, vm := range s.vms {
		page = append(page, vm)
	}
	s.mu.Unlock()
	return yield(page)
}

func (s *memServer) poll(_ context.Context, after stream.Revision, limit int) (stream.Page[vmChange], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	page := stream.Page[vmChange]{Head: stream.RevisionFromUint64(uint64(len(s.log)))}
	a, ok := after.Uint64()
	if !ok {
		return page, nil // no start: only the head is wanted
	}
	for _, c := range s.log[min(a, uint64(len(s.log))):] {
		if len(page.Items) == limit {
			break
		}
		page.Items = append(page.Items, c)
	}
	return page, nil
}

func Example() {
	srv := &memServer{vms: map[string]VM{}}
	srv.apply(informer.Insert, VM{ID: "vm1", Host: "h1", Status: "RUNNING"})
	srv.apply(informer.Insert, VM{ID: "vm2", Host: "h1", Status: "STOPPED"})
	srv.apply(informer.Insert, VM{ID: "vm3", Host: "h2", Status: "RUNNING"})

	changes := stream.NewSource(srv.poll, func(c vmChange) (stream.Revision, error) {
		return stream.RevisionFromUint64(c.Rev), nil
	})
	decode := func(_ context.Context, c vmChange) (informer.Change[VM], error) {
		return informer.Change[VM]{Op: c.Op, Object: c.VM}, nil
	}
	inf, err := informer.New(informer.ListFunc[VM](srv.list), changes, decode,
		func(vm VM) string { return vm.ID },
		informer.Index("host", func(vm VM) []string { return []string{vm.Host} }),
		informer.WatchOptions(stream.PollInterval(10*time.Millisecond)))
	if err != nil {
		panic(err)
	}

	updated := make(chan struct{})
	inf.AddHandler(informer.HandlerFuncs[VM]{
		AddFunc: func(vm VM, initial bool) {
			if !initial {
				fmt.Println("added", vm.ID)
			}
		},
		UpdateFunc: func(old, vm VM) {
			fmt.Printf("%s: %s -> %s\n", vm.ID, old.Status, vm.Status)
			close(updated)
		},
		DeleteFunc: func(vm VM, finalStateUnknown bool) {
			fmt.Println("deleted", vm.ID, finalStateUnknown)
		},
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	if err := inf.WaitForSync(ctx); err != nil {
		panic(err)
	}
	fmt.Println("synced:", inf.Store().Len(), "VMs")

	srv.apply(informer.Update, VM{ID: "vm2", Host: "h2", Status: "RUNNING"})
	<-updated

	onH2, _ := inf.Store().ByIndex("host", "h2")
	var ids []string
	for _, vm := range onH2 {
		ids = append(ids, vm.ID)
	}
	slices.Sort(ids)
	fmt.Println("on h2:", ids)

	cancel()
	fmt.Println(<-done)
	// Output:
	// synced: 3 VMs
	// vm2: STOPPED -> RUNNING
	// on h2: [vm2 vm3]
	// context canceled
}
