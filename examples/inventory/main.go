// Command inventory keeps a local copy of CloudTower's VMs with an
// informer (package informer, source/cloudtower/informers) and prints how
// many VMs are in each status every few seconds.
//
// Without -server it runs against the embedded fake server, with its change
// generator running, so that it needs no CloudTower:
//
//	go run ./examples/inventory                  # until Ctrl-C
//	go run ./examples/inventory -duration 10s    # then check the copy
//
// With -duration D it stops after D (and stops the generator), lists every
// VM once more, and compares the listing with the informer's store: it
// prints "in sync: N objects" and exits 0, or prints the differences and
// exits 1.
//
// Against a real CloudTower, give its address and credentials, as to
// ctwatch: the login user for the lists, the API credentials for the
// change feed (passwords also from CLOUDTOWER_PASSWORD and
// CLOUDTOWER_API_PASSWORD):
//
//	go run ./examples/inventory -server tower.example.com -username admin \
//		-api-username watcher -duration 1m
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/informers"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

type flags struct {
	server, username, password, token string
	apiUsername, apiPassword          string
	caFile                            string
	insecure                          bool
	duration, every, poll             time.Duration
}

func main() {
	var f flags
	flag.StringVar(&f.server, "server", "", "CloudTower `address` (host, host:port or URL); empty: the embedded fake server")
	flag.StringVar(&f.username, "username", "", "login user (lists)")
	flag.StringVar(&f.password, "password", os.Getenv("CLOUDTOWER_PASSWORD"), "login password (default $CLOUDTOWER_PASSWORD)")
	flag.StringVar(&f.token, "token", os.Getenv("CLOUDTOWER_TOKEN"), "login token instead of user and password (default $CLOUDTOWER_TOKEN)")
	flag.StringVar(&f.apiUsername, "api-username", "", "API user of the change feed (HTTP Basic)")
	flag.StringVar(&f.apiPassword, "api-password", os.Getenv("CLOUDTOWER_API_PASSWORD"), "API password (default $CLOUDTOWER_API_PASSWORD)")
	flag.StringVar(&f.caFile, "ca-file", "", "PEM `file` of CA certificates to trust")
	flag.BoolVar(&f.insecure, "insecure-skip-verify", false, "do not verify the server's certificate (tests only)")
	flag.DurationVar(&f.duration, "duration", 0, "stop after `D`, then compare the copy with a fresh listing (0: until Ctrl-C)")
	flag.DurationVar(&f.every, "every", 2*time.Second, "print the counts every `D`")
	flag.DurationVar(&f.poll, "poll", 0, "poll interval of the change feed (default 1s, 200ms for the fake server)")
	flag.Parse()
	if flag.NArg() > 0 || f.duration < 0 || f.every <= 0 || f.poll < 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code, err := run(ctx, f)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(ctx context.Context, f flags) (int, error) {
	cfg := cloudtower.Config{
		Host: f.server, Username: f.username, Password: f.password, Token: f.token,
		APIUsername: f.apiUsername, APIPassword: f.apiPassword,
		CAFile: f.caFile, InsecureSkipVerify: f.insecure,
	}
	stopGenerator := func() {}
	if f.server == "" {
		// The stand-in for CloudTower: a few thousand changes of history,
		// then 20 more every 100 ms.
		srv := fakeserver.New(fakeserver.Config{Seed: time.Now().UnixNano()})
		defer srv.Close()
		srv.Generate(5000)
		srv.StartHTTP()
		genCtx, cancel := context.WithCancel(ctx)
		genDone := make(chan error, 1)
		go func() { genDone <- srv.RunGenerator(genCtx, 100*time.Millisecond, 20) }()
		stopGenerator = func() {
			if cancel != nil {
				cancel()
				<-genDone
				cancel = nil
			}
		}
		defer stopGenerator()
		cfg = cloudtower.Config{Host: srv.Host(), Scheme: "http",
			Username: srv.Username(), Password: srv.Password(),
			APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword()}
		if f.poll == 0 {
			f.poll = 200 * time.Millisecond
		}
	}
	if f.poll == 0 {
		f.poll = time.Second
	}
	c, err := cloudtower.Dial(ctx, cfg)
	if err != nil {
		return 1, err
	}
	defer cloudtower.CloseIdleConnections(c)

	quiet := slog.New(slog.DiscardHandler)
	vms, err := informers.VMs(c, informers.InformerOptions(
		informer.Index("status", func(vm *models.VM) []string { return []string{status(vm)} }),
		informer.WatchOptions(stream.PollInterval(f.poll), stream.Logger(quiet)),
		informer.OnRelist(func(ri informer.RelistInfo) {
			fmt.Printf("re-listed (%v): +%d ~%d -%d\n", ri.Cause, ri.Added, ri.Updated, ri.Deleted)
		}),
	))
	if err != nil {
		return 1, err
	}
	runCtx, stopInformer := context.WithCancel(ctx)
	defer stopInformer()
	runDone := make(chan error, 1)
	go func() { runDone <- vms.Run(runCtx) }()
	fail := func(err error) (int, error) {
		stopInformer()
		if rerr := <-runDone; !errors.Is(rerr, context.Canceled) {
			err = rerr
		}
		return 1, err
	}

	start := time.Now()
	if err := waitForSync(ctx, vms, runDone); err != nil {
		return 1, err
	}
	fmt.Printf("synced: %d VMs in %v\n", vms.Store().Len(), time.Since(start).Round(time.Millisecond))

	var deadline <-chan time.Time
	if f.duration > 0 {
		deadline = time.After(f.duration)
	}
	tick := time.NewTicker(f.every)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
			printCounts(vms.Store())
		case <-deadline:
			done = true
		case err := <-runDone:
			return 1, err
		case <-ctx.Done(): // Ctrl-C
			stopInformer()
			<-runDone
			return 0, nil
		}
	}

	// Stop the changes (on the fake server), give the informer a few
	// polls to apply the last ones, then compare with a fresh listing.
	stopGenerator()
	var diffs []string
	for range 10 {
		time.Sleep(2 * f.poll)
		if diffs, err = compare(ctx, c, vms.Store()); err != nil {
			return fail(err)
		}
		if len(diffs) == 0 {
			break
		}
	}
	stopInformer()
	if err := <-runDone; !errors.Is(err, context.Canceled) {
		return 1, err
	}
	printCounts(vms.Store())
	if len(diffs) > 0 {
		fmt.Printf("out of sync: %d differences\n", len(diffs))
		for _, d := range diffs {
			fmt.Println(" ", d)
		}
		return 1, nil
	}
	fmt.Printf("in sync: %d objects\n", vms.Store().Len())
	return 0, nil
}

func waitForSync(ctx context.Context, vms *informer.Informer[string, *models.VM], runDone <-chan error) error {
	synced := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { synced <- vms.WaitForSync(wctx) }()
	select {
	case err := <-synced:
		return err
	case err := <-runDone:
		cancel()
		<-synced
		return err
	}
}

func status(vm *models.VM) string {
	if vm.Status == nil {
		return "-"
	}
	return string(*vm.Status)
}

func printCounts(s *informer.Store[string, *models.VM]) {
	statuses, _ := s.IndexValues("status")
	parts := make([]string, 0, len(statuses))
	for _, st := range statuses {
		vms, _ := s.ByIndex("status", st)
		parts = append(parts, fmt.Sprintf("%s %d", st, len(vms)))
	}
	fmt.Printf("%s  %d VMs: %s\n", time.Now().Format(time.TimeOnly), s.Len(), strings.Join(parts, ", "))
}

// compare lists every VM and returns how the store differs.
func compare(ctx context.Context, c *client.Cloudtower, s *informer.Store[string, *models.VM]) ([]string, error) {
	listed := map[string]*models.VM{}
	kind := informers.VMKind()
	lister := informer.OffsetLister(kind.ID, 500, func(ctx context.Context, skip, limit int) ([]*models.VM, error) {
		return kind.List(ctx, c, informers.Query{Skip: int32(skip), First: int32(limit)})
	})
	err := lister.List(ctx, func(page []*models.VM) error {
		for _, vm := range page {
			listed[*vm.ID] = vm
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var diffs []string
	for id, vm := range listed {
		got, ok := s.Get(id)
		switch {
		case !ok:
			diffs = append(diffs, "missing from the store: "+id)
		case !sameJSON(got, vm):
			diffs = append(diffs, fmt.Sprintf("differs: %s (store %s, server %s)", id, status(got), status(vm)))
		}
	}
	for _, id := range s.Keys() {
		if _, ok := listed[id]; !ok {
			diffs = append(diffs, "not on the server: "+id)
		}
	}
	slices.Sort(diffs)
	return diffs, nil
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
