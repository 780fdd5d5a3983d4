package bench

// The informer benchmarks, over the fake server on loopback HTTP:
//
//	BenchmarkInformerSync                 the first sync of an informer of 100,000 VMs
//	                                      (list in pages of 1000 + replay): objects/s, and
//	                                      the heap the synced store holds per object
//	BenchmarkInformerApply/impl=new-value 100,000 VM updates applied from new_value
//	BenchmarkInformerApply/impl=refetch   the same kind of updates, each VM fetched by id
//	                                      (POST /get-vms where id), the production user's pattern;
//	                                      10,000 of them (one round trip each, about 150 us: 100,000
//	                                      would take 15 s of CI time for the same rate per change)
//
// Run:
//
//	go test -run '^$' -bench Informer -benchtime 1x -count 3 ./bench | tee informer.txt
//	benchstat -col /impl informer.txt

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkclient "github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/informers"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

const (
	informerVMs     = 100_000 // VMs listed by BenchmarkInformerSync
	informerChanges = 100_000 // updates applied by BenchmarkInformerApply/impl=new-value
	refetchChanges  = 10_000  // updates applied by BenchmarkInformerApply/impl=refetch
	applyVMs        = 1_000   // VMs the updates of BenchmarkInformerApply go round
)

// vmTemplate returns a VM as the fake server's generator renders it (the
// SDK model's fields, about 400 bytes), with its id and name.
func vmTemplate(b *testing.B) (json string, id, name string) {
	s := fakeserver.New(fakeserver.Config{Seed: 1})
	defer s.Close()
	s.Generate(200)
	vms := s.Resources(fakeserver.TypeVM)
	if len(vms) == 0 {
		b.Fatal("the generator made no VM")
	}
	var vm models.VM
	if err := jsonUnmarshal(vms[0].JSON, &vm); err != nil {
		b.Fatal(err)
	}
	return vms[0].JSON, vms[0].ID, *vm.Name
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// vmJSON renders VM i (generation gen) from the template.
func vmJSON(tmpl, tmplID, tmplName string, i, gen int) (id, js string) {
	id = fmt.Sprintf("cvm%022d", i)
	js = strings.Replace(tmpl, `"`+tmplID+`"`, `"`+id+`"`, 1)
	js = strings.Replace(js, `"`+tmplName+`"`, fmt.Sprintf(`"vm-%d-gen-%d"`, i, gen), 1)
	return id, js
}

// gate holds GET /resource-changes requests while closed.
type gate struct {
	next http.RoundTripper
	mu   sync.RWMutex
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, fakeserver.ResourceChangesPath) {
		g.mu.RLock()
		defer g.mu.RUnlock()
	}
	return g.next.RoundTrip(r)
}

// informerServer starts a fake server on loopback HTTP holding n VMs, and
// dials it through a gate.
func informerServer(b *testing.B, n int) (*fakeserver.Server, *sdkclient.Cloudtower, *gate, [3]string) {
	tmpl, tmplID, tmplName := vmTemplate(b)
	s := fakeserver.New(fakeserver.Config{Seed: 2})
	evs := make([]fakeserver.Event, 0, n)
	for i := range n {
		id, js := vmJSON(tmpl, tmplID, tmplName, i, 0)
		evs = append(evs, fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: fakeserver.TypeVM, ResourceID: id, NewValue: js})
	}
	s.Append(evs...)
	s.StartHTTP()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	g := &gate{next: tr}
	c, err := cloudtower.Dial(context.Background(), cloudtower.Config{
		Host: s.Host(), Scheme: "http", Transport: g,
		Username: s.Username(), Password: s.Password(), APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
	})
	return s, c, g, [3]string{tmpl, tmplID, tmplName}
}

func quietInformer(extra ...informers.Option) []informers.Option {
	quiet := informer.Logger(informerQuiet)
	return append([]informers.Option{informers.PageSize(1000), informers.InformerOptions(quiet,
		informer.WatchOptions(stream.Logger(informerQuiet), stream.PollInterval(10*time.Millisecond)))}, extra...)
}

var informerQuiet = slog.New(slog.DiscardHandler)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func BenchmarkInformerSync(b *testing.B) {
	_, c, _, _ := informerServer(b, informerVMs)
	var perObject float64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		before := heapInUse()
		inf, err := informers.VMs(c, quietInformer()...)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		go func() { done <- inf.Run(ctx) }()
		if err := inf.WaitForSync(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := inf.Store().Len(); n != informerVMs {
			b.Fatalf("synced %d VMs, want %d", n, informerVMs)
		}
		if i == 0 {
			perObject = float64(heapInUse()-before) / informerVMs
		}
		cancel()
		<-done
		runtime.KeepAlive(inf)
		b.StartTimer()
	}
	b.ReportMetric(float64(informerVMs)*float64(b.N)/b.Elapsed().Seconds(), "objects/s")
	b.ReportMetric(perObject, "B/object")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkInformerApply(b *testing.B) {
	for _, impl := range []struct {
		name    string
		changes int
		opts    []informers.Option
	}{
		{"new-value", informerChanges, nil},
		{"refetch", refetchChanges, []informers.Option{informers.RefetchByID()}},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			s, c, g, tmpl := informerServer(b, applyVMs)
			inf, err := informers.VMs(c, quietInformer(impl.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			last := make(chan struct{}, 1)
			var sentinel atomic.Pointer[string]
			sentinel.Store(new(string))
			inf.AddHandler(informer.HandlerFuncs[*models.VM]{UpdateFunc: func(_, vm *models.VM) {
				if *vm.Name == *sentinel.Load() {
					last <- struct{}{}
				}
			}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- inf.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			if err := inf.WaitForSync(ctx); err != nil {
				b.Fatal(err)
			}
			gen := 0
			evs := make([]fakeserver.Event, impl.changes)
			lists := 0
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				g.mu.Lock() // the informer waits while the changes are appended
				gen++
				for j := range evs {
					// The last change is the only one of VM applyVMs-1: the
					// informer has applied every change once it sees it.
					vm := j % (applyVMs - 1)
					if j == len(evs)-1 {
						vm = applyVMs - 1
					}
					id, js := vmJSON(tmpl[0], tmpl[1], tmpl[2], vm, gen*impl.changes+j)
					evs[j] = fakeserver.Event{Action: fakeserver.ActionUpdate, ResourceType: fakeserver.TypeVM, ResourceID: id, NewValue: js}
				}
				var vm models.VM
				if err := jsonUnmarshal(evs[len(evs)-1].NewValue, &vm); err != nil {
					b.Fatal(err)
				}
				sentinel.Store(vm.Name)
				s.Append(evs...)
				before := s.Stats().Lists
				b.StartTimer()
				g.mu.Unlock()
				select {
				case <-last:
				case err := <-done:
					b.Fatal(err)
				}
				b.StopTimer()
				lists += s.Stats().Lists - before
				b.StartTimer()
			}
			b.ReportMetric(float64(impl.changes)*float64(b.N)/b.Elapsed().Seconds(), "changes/s")
			b.ReportMetric(float64(lists)/float64(impl.changes*b.N), "lists/change")
			b.ReportMetric(0, "ns/op")
		})
	}
}
