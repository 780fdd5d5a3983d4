package watchor_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/watchor"
)

// TestExtraSourceOptions: the API credentials and headers given as source
// options reach every poll, and the caller's own ClientOptions still apply
// (after them: its AuthInfo wins).
func TestExtraSourceOptions(t *testing.T) {
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	var (
		mu   sync.Mutex
		seen []http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if r.Header.Get("Authorization") != basic("api", "secret") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":[{"revision":"6","action":"INSERT","resource_type":"Vm","resource_id":"vm-1"}],"currentRevision":"6","compactRevision":"0","ec":"0"}`))
	}))
	defer srv.Close()
	c, err := cloudtower.Dial(context.Background(), cloudtower.Config{Host: srv.URL, Token: "login-token", Transport: srv.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	defer cloudtower.CloseIdleConnections(c)

	for _, tc := range []struct {
		name  string
		copts func(*runtime.ClientOperation)
		extra []cloudtower.Option
	}{
		{"source options", nil, []cloudtower.Option{cloudtower.APICredentials("api", "secret"), cloudtower.BypassWhitelist(), cloudtower.Header("X-Tenant", "blue")}},
		{"the caller's ClientOptions win", func(op *runtime.ClientOperation) { op.AuthInfo = httptransport.BasicAuth("api", "secret") },
			[]cloudtower.Option{cloudtower.APICredentials("api", "wrong"), cloudtower.BypassWhitelist(), cloudtower.Header("X-Tenant", "blue")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			w, err := watchor.NewResourceChangeWatchClient(&watchor.NewResourceChangeWatchClientParams{
				Client: c, ClientOptions: tc.copts, PollingInterval: time.Millisecond,
			}, tc.extra...)
			if err != nil {
				t.Fatal(err)
			}
			rev := "5"
			if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: &rev}); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-w.Channel():
				if *ev.Revision != "6" {
					t.Errorf("got revision %s, want 6", *ev.Revision)
				}
			case e := <-w.ErrorChannel():
				t.Fatalf("stopped: %v", e.Err)
			}
			if err := w.Stop(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, h := range seen {
				if h.Get(cloudtower.BypassWhitelistHeader) != "true" || h.Get("X-Tenant") != "blue" {
					t.Errorf("headers %v lack the extra ones", h)
				}
			}
		})
	}
}
