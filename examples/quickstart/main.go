// Command quickstart watches CloudTower's change feed, served here by the
// embedded fake server with its change generator running, so that it needs
// no CloudTower at all:
//
//	go run ./examples/quickstart            # until Ctrl-C
//	go run ./examples/quickstart -n 50      # stop after 50 changes
//	go run ./examples/quickstart -types Vm,Host
//
// It prints INSERT, UPDATE and DELETE changes of resource types spelled as
// CloudTower spells them (the SDK's model names: Vm, Host, Cluster,
// VmVolume, VmNic, Label, and relations such as _LabelToVm). As on a real
// CloudTower, the fake server wants HTTP Basic with API credentials on the
// resource-change endpoint and the login token everywhere else. Against a
// real CloudTower, replace the fake server with its address, login and API
// credentials in cloudtower.Config; the rest stays the same.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

func main() {
	n := flag.Int("n", 0, "stop after `N` changes (0: until Ctrl-C)")
	types := flag.String("types", "", "comma-separated resource `types` to watch, e.g. Vm,Host (default: all)")
	flag.Parse()
	if *n < 0 || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *n, *types); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run watches until n changes (0: until ctx is done) were printed to w.
func run(ctx context.Context, w io.Writer, n int, types string) error {
	// The stand-in for CloudTower: 20 changes of history, then 5 new
	// changes every 200 ms.
	srv := fakeserver.New(fakeserver.Config{Seed: time.Now().UnixNano()})
	defer srv.Close()
	srv.Generate(20)
	srv.StartHTTP()
	genCtx, stopGen := context.WithCancel(ctx)
	genDone := make(chan error, 1)
	go func() { genDone <- srv.RunGenerator(genCtx, 200*time.Millisecond, 5) }()
	defer func() { stopGen(); <-genDone }()

	c, err := cloudtower.Dial(ctx, cloudtower.Config{
		Host: srv.Host(), Scheme: "http",
		Username: srv.Username(), Password: srv.Password(), // login: the token for every other call
		APIUsername: srv.APIUsername(), APIPassword: srv.APIPassword(), // HTTP Basic on GET /resource-changes
	})
	if err != nil {
		return err
	}
	defer cloudtower.CloseIdleConnections(c)

	var opts []cloudtower.Option
	if types != "" {
		opts = append(opts, cloudtower.ResourceTypes(strings.Split(types, ",")...))
	}
	src := cloudtower.New(c, opts...)

	count := 0
	quiet := slog.New(slog.DiscardHandler)
	for ev, err := range src.Watch(ctx,
		stream.FromStart(), // from the oldest change; the default is "from now"
		stream.PollInterval(100*time.Millisecond), stream.Logger(quiet)) {
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%6s  %-6s %-10s %s\n", *ev.Revision, str(ev.Action), str(ev.ResourceType), str(ev.ResourceID))
		if count++; count == n {
			return nil
		}
	}
	return nil
}

func str(p *string) string {
	if p == nil {
		return "-"
	}
	return *p
}
