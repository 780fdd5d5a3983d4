package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Main runs ctwatch as a process: Run with the process's arguments,
// environment and standard streams and the given extensions, then
// os.Exit with Run's exit code. Ctrl-C or SIGTERM end the watch cleanly
// (output flushed, checkpoint saved, exit code 0); a second one, while
// that is under way, kills the process at once (the checkpoint may then
// lag the output, never lead it). Main does not return.
func Main(ext ...Extension) {
	ctx, stop := SignalContext()
	code := Run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, ext...)
	stop()
	os.Exit(code)
}

// SignalContext returns a context cancelled by the first SIGINT or
// SIGTERM. That signal also restores the default action, so that a second
// one kills the process at once. Call the CancelFunc when done.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}
