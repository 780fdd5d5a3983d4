package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// demo is the embedded fake CloudTower of --demo: a loopback HTTP server
// with a backlog of generated changes and a generator adding more. Like a
// real CloudTower, it wants HTTP Basic with the API credentials on the
// resource-change endpoint and the login token elsewhere.
type demo struct {
	url, username, password  string
	apiUsername, apiPassword string
	stop                     func()
}

// startDemo starts the demo server with backlog changes in its log, a
// generator adding rate changes per second, and latency added to each
// request (so that catching up takes long enough to be seen).
func startDemo(backlog int, rate float64, latency time.Duration) (*demo, error) {
	if backlog < 0 || rate < 0 || latency < 0 {
		return nil, UsageError("--demo-backlog, --demo-rate and --demo-latency must not be negative")
	}
	srv := fakeserver.New(fakeserver.Config{Seed: 1})
	if backlog > 0 {
		srv.Generate(backlog)
	}
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				return
			}
		}
		h.ServeHTTP(w, req)
	}))

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if rate > 0 {
		every, batch := time.Duration(float64(time.Second)/rate), 1
		if every < 10*time.Millisecond {
			every = 10 * time.Millisecond
			batch = max(1, int(rate/100))
		}
		wg.Go(func() { _ = srv.RunGenerator(ctx, every, batch) })
	}
	return &demo{
		url:         ts.URL + fakeserver.BasePath,
		username:    srv.Username(),
		password:    srv.Password(),
		apiUsername: srv.APIUsername(),
		apiPassword: srv.APIPassword(),
		stop: func() {
			cancel()
			wg.Wait()
			ts.CloseClientConnections()
			ts.Close()
			srv.Close()
		},
	}, nil
}
