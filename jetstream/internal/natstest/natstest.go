// Package natstest runs a NATS server with JetStream inside a test
// process: on a loopback port, with its storage in a temporary directory,
// shut down (and its goroutines ended) when the test ends.
package natstest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an embedded NATS server.
type Server struct {
	*server.Server
	opts *server.Options
}

// Start starts a JetStream-enabled server on 127.0.0.1 with a random port
// and registers its shutdown with tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  tb.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	s := start(tb, opts)
	tb.Cleanup(s.Stop)
	return s
}

func start(tb testing.TB, opts *server.Options) *Server {
	tb.Helper()
	s, err := run(opts)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	return s
}

func run(opts *server.Options) (*Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go ns.Start() // ended by Shutdown
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("server not ready within 10s")
	}
	return &Server{Server: ns, opts: opts}, nil
}

// Run starts a server like Start, for examples: with its storage in a new
// temporary directory. Stop it with the returned function, which also
// removes the directory.
func Run() (*Server, func(), error) {
	dir, err := os.MkdirTemp("", "natstest")
	if err != nil {
		return nil, nil, err
	}
	s, err := run(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return s, func() { s.Stop(); os.RemoveAll(dir) }, nil
}

// Stop shuts the server down and waits until it has stopped. It may be
// called more than once.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart stops the server and starts a new one on the same port and
// storage directory, and returns it. Clients reconnect to it.
func (s *Server) Restart(tb testing.TB) *Server {
	tb.Helper()
	opts := *s.opts
	opts.Port = s.Addr().(*net.TCPAddr).Port
	s.Stop()
	ns := start(tb, &opts)
	tb.Cleanup(ns.Stop)
	return ns
}

// Connect connects to the server, and closes the connection when the test
// ends. Connections retry forever on loss.
func (s *Server) Connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		tb.Fatalf("natstest: connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// JetStream connects to the server and returns a JetStream context on the
// new connection.
func (s *Server) JetStream(tb testing.TB, opts ...nats.Option) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(s.Connect(tb, opts...))
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	return js
}

// Eventually calls cond every few milliseconds until it returns true, and
// fails the test if that does not happen within timeout.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("natstest: %s: not within %v", what, timeout)
		}
		// Polling a condition on a real server (not a sleep that stands in
		// for one): the wait is bounded by the deadline above.
		t := time.NewTimer(5 * time.Millisecond)
		<-t.C
	}
}

// Ctx returns a context cancelled when the test ends or after timeout.
func Ctx(tb testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	tb.Cleanup(cancel)
	return ctx
}

// Revisions reads the whole stream with an ordered consumer and returns
// the Towerwatch-Revision header of each message, in stream order.
func Revisions(tb testing.TB, js jetstream.JetStream, stream string) []uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	str, err := js.Stream(ctx, stream)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	n := str.CachedInfo().State.Msgs
	out := make([]uint64, 0, n)
	if n == 0 {
		return out
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	for uint64(len(out)) < n {
		batch, err := cons.Fetch(min(int(n)-len(out), 5000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			tb.Fatalf("natstest: fetch: %v", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			r, err := strconv.ParseUint(m.Headers().Get("Towerwatch-Revision"), 10, 64)
			if err != nil {
				tb.Fatalf("natstest: message on %s: revision: %v", m.Subject(), err)
			}
			out = append(out, r)
		}
		if err := batch.Error(); err != nil {
			tb.Fatalf("natstest: fetch: %v", err)
		}
		if got == 0 {
			tb.Fatalf("natstest: read %d of %d messages", len(out), n)
		}
	}
	return out
}

// CheckRange fails the test unless revs is exactly from, from+1, ..., to.
func CheckRange(tb testing.TB, revs []uint64, from, to uint64) {
	tb.Helper()
	if to < from {
		if len(revs) != 0 {
			tb.Fatalf("want no revision, got %d from %d", len(revs), revs[0])
		}
		return
	}
	want := to - from + 1
	for i, r := range revs {
		if r != from+uint64(i) {
			tb.Fatalf("revision #%d is %d, want %d (got %d revisions, want %d: %d..%d)", i, r, from+uint64(i), len(revs), want, from, to)
		}
	}
	if uint64(len(revs)) != want {
		tb.Fatalf("got %d revisions, want %d (%d..%d)", len(revs), want, from, to)
	}
}

// Logger returns a logger that writes to the test's output (shown for a
// failed test, or with -v), at Info level and above.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// ForExample starts a server with Run, connects to it, and returns the
// JetStream context, a context that times out after 10s, and the function
// that ends all three. It panics if the server does not start.
func ForExample() (jetstream.JetStream, context.Context, func()) {
	srv, stop, err := Run()
	if err != nil {
		panic(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		stop()
		panic(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	return js, ctx, func() { cancel(); nc.Close(); stop() }
}
