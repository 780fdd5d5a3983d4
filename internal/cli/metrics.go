package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/towerwatch/towerwatch/promwatch"
	"github.com/towerwatch/towerwatch/promwatch/cloudtowerprom"
	"github.com/towerwatch/towerwatch/stream"
)

// metricsServer is the HTTP server of --metrics-addr: /metrics (the
// watch's promwatch metrics, Go runtime and process metrics), /healthz and
// /readyz. Run owns it: it starts before the source opens and is shut
// down when Run returns.
type metricsServer struct {
	watch *promwatch.Metrics
	srv   *http.Server
	done  chan struct{} // closed when Serve has returned
}

// metricsShutdown bounds how long Run waits for scrapes in flight when it
// stops the server.
const metricsShutdown = time.Second

// startMetrics starts the --metrics-addr server, if the flag is set, and
// makes its registry Config.Registerer.
func (r *runner) startMetrics() error {
	addr := strings.TrimSpace(r.f.MetricsAddr)
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return UsageError("--metrics-addr %q: want HOST:PORT (such as 127.0.0.1:9464, or :9464 for every interface): %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := promwatch.New(reg, promwatch.ReadyWithin(3*r.cfg.PollInterval))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	s := &metricsServer{
		watch: m,
		srv: &http.Server{
			Handler:           promwatch.Handler(reg, m),
			ReadHeaderTimeout: 10 * time.Second,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.cfg.Logger.Error("metrics server stopped", "error", err)
		}
	}()
	r.metrics = s
	r.cfg.Registerer = reg
	if !r.cfg.Quiet {
		fmt.Fprintf(r.errw, "%s: serving metrics at http://%s/metrics, health at /healthz and /readyz\n", Name, ln.Addr())
	}
	return nil
}

// stopMetrics shuts the server down, waiting up to metricsShutdown for
// scrapes in flight, and returns once its goroutine has.
func (r *runner) stopMetrics() {
	s := r.metrics
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdown)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

// watchMetrics returns the watch's collectors; nil (which ignores every
// call) without --metrics-addr.
func (r *runner) watchMetrics() *promwatch.Metrics {
	if r.metrics == nil {
		return nil
	}
	return r.metrics.watch
}

// onPoll is Config.OnPoll and the watch's stream.OnPoll hook: the
// progress display and the metrics.
func (r *runner) onPoll(info stream.PollInfo) {
	r.prog.poll(info)
	r.watchMetrics().OnPoll(info)
}

// countEvents counts the changes and compactions of src, with
// --metrics-addr.
func (r *runner) countEvents(src Changes) Changes {
	return cloudtowerprom.Events(r.watchMetrics(), src)
}
