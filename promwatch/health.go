package promwatch

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// A Checker says whether something a process runs is ready: nil, or an
// error whose message is a one-line reason. *Metrics is one.
type Checker interface {
	Ready() error
}

// CheckerFunc adapts a function to the Checker interface.
type CheckerFunc func() error

// Ready calls f.
func (f CheckerFunc) Ready() error { return f() }

// Healthz returns the liveness handler: 200 "ok" while the process can
// serve HTTP at all.
func Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, "ok")
	})
}

// Readyz returns the readiness handler: 200 "ok" when every check is
// ready (also when there is none), else 503 with the first check's reason
// on one line, such as "not ready: last successful poll 9.5s ago (limit
// 3s)". Nil checks are skipped.
func Readyz(checks ...Checker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for _, c := range checks {
			if c == nil {
				continue
			}
			if err := c.Ready(); err != nil {
				reply(w, http.StatusServiceUnavailable, oneLine(err.Error()))
				return
			}
		}
		reply(w, http.StatusOK, "ok")
	})
}

// Handler returns a handler serving /metrics (what g gathers, in the
// formats Prometheus negotiates), /healthz (Healthz) and /readyz
// (Readyz(checks...)); other paths get 404. Pass the registry the
// collectors were registered on as g.
func Handler(g prometheus.Gatherer, checks ...Checker) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", Healthz())
	mux.Handle("GET /readyz", Readyz(checks...))
	return mux
}

func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, body)
}

func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
