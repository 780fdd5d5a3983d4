package bench

// The catch-up benchmark: drain the same backlog of realistic changes from
// the fake server over loopback HTTP with
//
//	impl=towerwatch       stream.Watch over the CloudTower source (defaults)
//	impl=towerwatch-parallel the same with stream.ParallelCatchUp(4)
//	impl=watchor-best     the SDK's watchor at a 1 ms interval, pages forced to 1000
//	impl=watchor-default  the SDK's watchor at its defaults (1 s interval, pages of 100)
//	impl=towerwatch-watchor towerwatch's drop-in watchor facade at the SDK's defaults
//	impl=decode-sdk       the SDK's own JSON decoding of the same response bytes, alone
//	impl=decode-towerwatch the decoder the CloudTower source uses, on the same bytes, alone
//
// Run (about a minute):
//
//	go test -run '^$' -bench CatchUp -benchtime 1x -count 6 ./bench | tee catchup.txt
//	benchstat -col /impl catchup.txt
//
// watchor-default would need 1,000 s for the whole backlog (it sleeps 1 s
// after each page of 100), so it drains only its first 400 changes: its
// rate is fixed by that sleep, and the first page, which comes without a
// wait, makes it look faster than it is over a long backlog.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/go-openapi/strfmt"
	sdkclient "github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"github.com/smartxworks/cloudtower-go-sdk/v2/watchor"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	facade "github.com/towerwatch/towerwatch/source/cloudtower/watchor"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

const backlog = 100_000

var catchUp struct {
	once sync.Once
	srv  *fakeserver.Server
	c    *sdkclient.Cloudtower
	err  error
}

// catchUpServer starts, once per process, the fake server with the backlog
// and a logged-in SDK client. Both live until the process exits.
func catchUpServer(b *testing.B) (*fakeserver.Server, *sdkclient.Cloudtower) {
	catchUp.once.Do(func() {
		catchUp.srv = fakeserver.New(fakeserver.Config{Seed: 1})
		catchUp.srv.Generate(backlog)
		catchUp.srv.StartHTTP()
		catchUp.c, catchUp.err = cloudtower.Dial(context.Background(), cloudtower.Config{
			Host: catchUp.srv.Host(), Scheme: "http",
			Username: catchUp.srv.Username(), Password: catchUp.srv.Password(), APIUsername: catchUp.srv.APIUsername(), APIPassword: catchUp.srv.APIPassword(),
		})
	})
	if catchUp.err != nil {
		b.Fatal(catchUp.err)
	}
	return catchUp.srv, catchUp.c
}

func BenchmarkCatchUp(b *testing.B) {
	watch := func(opts ...stream.Option) func(b *testing.B) {
		return func(b *testing.B) {
			_, c := catchUpServer(b)
			src := cloudtower.New(c)
			drain(b, backlog, func(ctx context.Context, n int) int {
				got := 0
				for ev, err := range src.Watch(ctx, append(opts, stream.FromStart())...) {
					if err != nil {
						b.Fatal(err)
					}
					_ = ev
					if got++; got == n {
						break
					}
				}
				return got
			})
		}
	}
	b.Run("impl=towerwatch", watch())
	b.Run("impl=towerwatch-parallel", watch(stream.ParallelCatchUp(4)))
	b.Run("impl=watchor-best", func(b *testing.B) {
		_, c := catchUpServer(b)
		drain(b, backlog, func(ctx context.Context, n int) int {
			return drainWatchor(b, c, n, time.Millisecond, 1000)
		})
	})
	b.Run("impl=towerwatch-watchor", func(b *testing.B) {
		_, c := catchUpServer(b)
		drain(b, backlog, func(ctx context.Context, n int) int {
			return drainFacade(b, c, n)
		})
	})
	b.Run("impl=watchor-default", func(b *testing.B) {
		_, c := catchUpServer(b)
		drain(b, 400, func(ctx context.Context, n int) int {
			return drainWatchor(b, c, n, 0, 0)
		})
	})
	decodeOnly := func(decode func([]byte) (*models.ResourceChangeResponse, error)) func(*testing.B) {
		return func(b *testing.B) {
			srv, _ := catchUpServer(b)
			pages := rawPages(b, srv)
			drain(b, backlog, func(ctx context.Context, n int) int {
				got := 0
				for _, p := range pages {
					resp, err := decode(p)
					if err != nil {
						b.Fatal(err)
					}
					got += len(resp.Data)
				}
				return got
			})
		}
	}
	b.Run("impl=decode-sdk", decodeOnly(func(p []byte) (*models.ResourceChangeResponse, error) {
		var resp models.ResourceChangeResponse
		return &resp, runtime.JSONConsumer().Consume(bytes.NewReader(p), &resp)
	}))
	b.Run("impl=decode-towerwatch", decodeOnly(cloudtower.DecodeResponse))
}

// drain runs fn b.N times, each draining n changes from revision 0, and
// reports the rate.
func drain(b *testing.B, n int, fn func(ctx context.Context, n int) int) {
	b.ReportAllocs()
	total := 0
	for b.Loop() {
		if got := fn(b.Context(), n); got != n {
			b.Fatalf("drained %d changes, want %d", got, n)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(total), "ns/event")
}

// drainWatchor drains n changes with the SDK's watchor. interval 0 and
// limit 0 keep its defaults; a limit overrides its fixed page of 100.
func drainWatchor(b *testing.B, c *sdkclient.Cloudtower, n int, interval time.Duration, limit int) int {
	opt := func(*runtime.ClientOperation) {}
	if limit > 0 {
		opt = func(op *runtime.ClientOperation) {
			params := op.Params
			op.Params = runtime.ClientRequestWriterFunc(func(r runtime.ClientRequest, reg strfmt.Registry) error {
				if err := params.WriteToRequest(r, reg); err != nil {
					return err
				}
				return r.SetQueryParam("limit", strconv.Itoa(limit))
			})
		}
	}
	w, err := watchor.NewResourceChangeWatchClient(&watchor.NewResourceChangeWatchClientParams{
		Client: c, ClientOptions: opt, PollingInterval: interval,
	})
	if err != nil {
		b.Fatal(err)
	}
	zero := "0"
	if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: &zero}); err != nil {
		b.Fatal(err)
	}
	got := receive(b, n, w.Channel(), w.ErrorChannel())
	// Its poller may be blocked on a full channel or asleep: Stop alone
	// frees neither (one of the defects towerwatch's facade fixes), so
	// drain until it closes the channel.
	w.Stop()
	for range w.Channel() {
	}
	return got
}

// drainFacade drains n changes with towerwatch's watchor facade, at the
// SDK's defaults but for MaxRetries.
func drainFacade(b *testing.B, c *sdkclient.Cloudtower, n int) int {
	w, err := facade.NewResourceChangeWatchClient(&facade.NewResourceChangeWatchClientParams{Client: c})
	if err != nil {
		b.Fatal(err)
	}
	zero := "0"
	if err := w.Start(&facade.ResourceChangeWatchStartParams{StartRevision: &zero}); err != nil {
		b.Fatal(err)
	}
	got := receive(b, n, w.Channel(), w.ErrorChannel())
	if err := w.Stop(); err != nil { // frees everything, with events still buffered
		b.Fatal(err)
	}
	return got
}

// receive takes n changes from a three-channel client.
func receive[E any](b *testing.B, n int, events <-chan *models.ResourceChangeEvent, errs <-chan E) int {
	got := 0
	for got < n {
		select {
		case _, ok := <-events:
			if !ok {
				b.Fatalf("the client closed its channel after %d changes", got)
			}
			got++
		case e := <-errs:
			b.Fatalf("the client failed: %+v", e)
		}
	}
	return got
}

// rawPages fetches the backlog's response bodies as the SDK would receive
// them: pages of 1000 after revisions 0, 1000, 2000...
func rawPages(b *testing.B, srv *fakeserver.Server) [][]byte {
	var pages [][]byte
	for after := 0; after < backlog; after += 1000 {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s%s/resource-changes?start_revision=%d&limit=1000", srv.URL(), fakeserver.BasePath, after), nil)
		req.SetBasicAuth(srv.APIUsername(), srv.APIPassword())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("page after %d: %d %v", after, resp.StatusCode, err)
		}
		pages = append(pages, body)
	}
	http.DefaultClient.CloseIdleConnections()
	return pages
}
