package informers_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/vm_nic"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/informers"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var discard = slog.New(slog.DiscardHandler)

// hookTransport runs onList before each list request it forwards.
type hookTransport struct {
	next   http.RoundTripper
	onList atomic.Pointer[func()]
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/get-") {
		if f := h.onList.Load(); f != nil {
			(*f)()
		}
	}
	return h.next.RoundTrip(r)
}

func (h *hookTransport) set(f func()) { h.onList.Store(&f) }

// dial logs in to s in memory: the login token for lists, the API
// credentials for the change feed.
func dial(t *testing.T, s *fakeserver.Server) (*client.Cloudtower, *hookTransport) {
	t.Helper()
	ht := &hookTransport{next: s.Transport()}
	c, err := cloudtower.Dial(t.Context(), cloudtower.Config{
		Host: "http://" + fakeserver.MemoryHost, Username: s.Username(), Password: s.Password(),
		APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
		Transport: ht, Logger: discard,
	})
	require.NoError(t, err)
	return c, ht
}

func quick(opts ...informers.Option) []informers.Option {
	return append([]informers.Option{informers.PageSize(50), informers.InformerOptions(
		informer.Logger(discard),
		informer.WatchOptions(stream.PollInterval(time.Second), stream.Logger(discard)))}, opts...)
}

// canon re-encodes an object through its SDK model.
func canon[V any](t *testing.T, raw []byte) string {
	t.Helper()
	var v V
	require.NoError(t, json.Unmarshal(raw, &v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// requireInSync checks that the store holds exactly the server's objects.
func requireInSync[V any](t *testing.T, s *fakeserver.Server, typ string, inf *informer.Informer[string, V]) {
	t.Helper()
	want := map[string]string{}
	for _, r := range s.Resources(typ) {
		want[r.ID] = canon[V](t, []byte(r.JSON))
	}
	got := map[string]string{}
	for _, k := range inf.Store().Keys() {
		v, _ := inf.Store().Get(k)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		got[k] = string(b)
	}
	require.Equal(t, len(want), len(got), "objects")
	require.Equal(t, want, got)
}

func run[V any](t *testing.T, inf *informer.Informer[string, V]) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- inf.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}
}

func settle() {
	time.Sleep(3 * time.Second)
	synctest.Wait()
}

// vmRecorder keeps the state a handler has been told.
type vmRecorder struct {
	mu       sync.Mutex
	known    map[string]*models.VM
	tombs    int
	deletes  int
	initial  int
	problems []string
}

func newVMRecorder() *vmRecorder { return &vmRecorder{known: map[string]*models.VM{}} }

func (r *vmRecorder) OnAdd(vm *models.VM, initial bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.known[*vm.ID]; ok {
		r.problems = append(r.problems, "add of known "+*vm.ID)
	}
	if initial {
		r.initial++
	}
	r.known[*vm.ID] = vm
}

func (r *vmRecorder) OnUpdate(old, vm *models.VM) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known[*vm.ID] != old {
		r.problems = append(r.problems, "update from a state not given "+*vm.ID)
	}
	r.known[*vm.ID] = vm
}

func (r *vmRecorder) OnDelete(vm *models.VM, unknown bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.known[*vm.ID]; !ok {
		r.problems = append(r.problems, "delete of unknown "+*vm.ID)
	}
	delete(r.known, *vm.ID)
	r.deletes++
	if unknown {
		r.tombs++
	}
}

// End to end over the fake server: changes during the list, changes after
// the sync, compaction while the informer is behind (re-list with
// tombstones), and the store and a handler's view equal to the server's.
func TestVMsEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 11})
		defer s.Close()
		s.Generate(3000)
		c, ht := dial(t, s)
		ht.set(func() { s.Generate(40) }) // inserts, updates and deletes during the list
		var relists []informer.RelistInfo
		inf, err := informers.VMs(c, quick(informers.InformerOptions(
			informer.OnRelist(func(ri informer.RelistInfo) { relists = append(relists, ri) }),
			informer.Index("status", func(vm *models.VM) []string { return []string{string(*vm.Status)} })))...)
		require.NoError(t, err)
		rec := newVMRecorder()
		inf.AddHandler(rec)
		stop := run(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		ht.set(func() {})
		settle()
		requireInSync(t, s, fakeserver.TypeVM, inf)
		require.Equal(t, inf.Store().Len(), rec.initial)

		// Changes after the sync.
		s.Generate(500)
		settle()
		requireInSync(t, s, fakeserver.TypeVM, inf)

		// Behind, then compacted: the history after the informer's
		// position is gone.
		before := len(s.Resources(fakeserver.TypeVM))
		s.Generate(3000)
		s.Compact(s.Head())
		settle()
		requireInSync(t, s, fakeserver.TypeVM, inf)
		require.Equal(t, 1, inf.Relists())
		require.ErrorIs(t, relists[0].Cause, stream.ErrCompacted)
		require.Positive(t, relists[0].Deleted+relists[0].Added+relists[0].Updated)
		rec.mu.Lock()
		require.Empty(t, rec.problems)
		require.Equal(t, relists[0].Deleted, rec.tombs)
		require.Len(t, rec.known, len(s.Resources(fakeserver.TypeVM)))
		rec.mu.Unlock()
		t.Logf("VMs %d -> %d; relist %+v", before, inf.Store().Len(), relists[0])

		// The index follows.
		running, err := inf.Store().ByIndex("status", "RUNNING")
		require.NoError(t, err)
		n := 0
		for _, r := range s.Resources(fakeserver.TypeVM) {
			if strings.Contains(r.JSON, `"status":"RUNNING"`) {
				n++
			}
		}
		require.Len(t, running, n)

		// And it keeps watching.
		s.Generate(200)
		settle()
		requireInSync(t, s, fakeserver.TypeVM, inf)
	})
}

func TestEveryKind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 5})
		defer s.Close()
		s.Generate(2000)
		c, _ := dial(t, s)
		hosts, err := informers.Hosts(c, quick()...)
		require.NoError(t, err)
		clusters, err := informers.Clusters(c, quick()...)
		require.NoError(t, err)
		volumes, err := informers.VMVolumes(c, quick()...)
		require.NoError(t, err)
		labels, err := informers.Labels(c, quick()...)
		require.NoError(t, err)
		nics, err := informers.New(c, nicKind, quick()...)
		require.NoError(t, err)
		stops := []func(){run(t, hosts), run(t, clusters), run(t, volumes), run(t, labels), run(t, nics)}
		defer func() {
			for _, stop := range stops {
				stop()
			}
		}()
		settle()
		s.Generate(1000)
		settle()
		requireInSync(t, s, fakeserver.TypeHost, hosts)
		requireInSync(t, s, fakeserver.TypeCluster, clusters)
		requireInSync(t, s, fakeserver.TypeVMVolume, volumes)
		requireInSync(t, s, fakeserver.TypeLabel, labels)
		requireInSync(t, s, fakeserver.TypeVMNic, nics)
		for _, n := range []int{hosts.Store().Len(), clusters.Store().Len(), volumes.Store().Len(), labels.Store().Len(), nics.Store().Len()} {
			require.Positive(t, n)
		}
	})
}

// nicKind is a Kind for a type without a ready-made constructor.
var nicKind = informers.Kind[*models.VMNic]{
	Type: fakeserver.TypeVMNic,
	ID:   func(n *models.VMNic) string { return *n.ID },
	List: func(ctx context.Context, c *client.Cloudtower, q informers.Query) ([]*models.VMNic, error) {
		body := &models.GetVMNicsRequestBody{First: &q.First, Skip: &q.Skip, OrderBy: models.VMNicOrderByInputIDASC.Pointer()}
		if q.ID != "" {
			body.Where = &models.VMNicWhereInput{ID: &q.ID}
		}
		resp, err := c.VMNic.GetVMNics(vm_nic.NewGetVMNicsParams().WithContext(ctx).WithRequestBody(body))
		if err != nil {
			return nil, err
		}
		return resp.Payload, nil
	},
}

// RefetchByID fetches each changed VM by id: one list request per change,
// and the store still equals the server (also when the VM is gone by
// then).
func TestRefetchByID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 3})
		defer s.Close()
		s.Generate(1000)
		c, _ := dial(t, s)
		inf, err := informers.VMs(c, quick(informers.RefetchByID())...)
		require.NoError(t, err)
		stop := run(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		settle()
		lists := s.Stats().Lists
		head := s.Head()
		s.Generate(400)
		vmChanges := 0
		for _, ev := range s.Events(head) {
			if ev.ResourceType == fakeserver.TypeVM && ev.Action != fakeserver.ActionDelete {
				vmChanges++
			}
		}
		settle()
		requireInSync(t, s, fakeserver.TypeVM, inf)
		require.Equal(t, vmChanges, s.Stats().Lists-lists)
	})
}

// Lists take the login token: a refused token ends Run with
// cloudtower.ErrUnauthorized, fatal.
func TestRefusedTokenIsFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 1})
		defer s.Close()
		s.Generate(100)
		c, err := cloudtower.Dial(t.Context(), cloudtower.Config{
			Host: "http://" + fakeserver.MemoryHost, Token: "not-the-token",
			APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
			Transport: s.Transport(), Logger: discard,
		})
		require.NoError(t, err)
		inf, err := informers.VMs(c, quick()...)
		require.NoError(t, err)
		err = inf.Run(t.Context())
		require.ErrorIs(t, err, cloudtower.ErrUnauthorized)
		require.True(t, stream.IsFatal(err))
	})
}

// The change feed takes the API credentials: without them, on a server
// that requires Basic there, Run ends with cloudtower.ErrUnauthorized.
func TestFeedNeedsAPICredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 1})
		defer s.Close()
		s.Generate(100)
		c, err := cloudtower.Dial(t.Context(), cloudtower.Config{
			// No API credentials, on purpose: the login token alone.
			Host: "http://" + fakeserver.MemoryHost, Username: s.Username(), Password: s.Password(),
			Transport: s.Transport(), Logger: discard,
		})
		require.NoError(t, err)
		inf, err := informers.VMs(c, quick()...)
		require.NoError(t, err)
		require.ErrorIs(t, inf.Run(t.Context()), cloudtower.ErrUnauthorized)

		// Given as a Source option instead, they work.
		inf, err = informers.VMs(c, quick(informers.SourceOptions(cloudtower.APICredentials(s.APIUsername(), s.APIPassword())))...)
		require.NoError(t, err)
		stop := run(t, inf)
		defer stop()
		require.NoError(t, inf.WaitForSync(t.Context()))
		requireInSync(t, s, fakeserver.TypeVM, inf)
	})
}

func TestOptionErrors(t *testing.T) {
	require.ErrorIs(t, informers.PageSize(1).Err(), stream.ErrInvalidOption)
	require.ErrorIs(t, informers.InformerOptions(informer.Resync(-1)).Err(), stream.ErrInvalidOption)
	_, err := informers.VMs(nil)
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	_, err = informers.New(&client.Cloudtower{}, informers.Kind[*models.VM]{Type: "Vm"})
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	require.NoError(t, informers.RefetchByID().Err())
	require.ErrorIs(t, informers.Validate(informers.RefetchByID(), informers.PageSize(0)), stream.ErrInvalidOption)
	var nilErr error
	require.False(t, errors.Is(nilErr, stream.ErrInvalidOption))
}

// The start protocol holds under each server behaviour the API leaves
// open: inclusive start, oldest page without a start, shuffled and
// repeated pages.
func TestServerKnobs(t *testing.T) {
	for name, k := range map[string]fakeserver.Knobs{
		"inclusive start":    {InclusiveStart: true},
		"oldest if no start": {OldestWhenNoStart: true},
		"shuffled":           {Shuffle: true},
		"repeated pages":     {RepeatEvery: 3},
		"all":                {InclusiveStart: true, OldestWhenNoStart: true, Shuffle: true, RepeatEvery: 4},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := fakeserver.New(fakeserver.Config{Seed: 7, Knobs: k})
				defer s.Close()
				s.Generate(2000)
				c, ht := dial(t, s)
				ht.set(func() { s.Generate(30) })
				inf, err := informers.VMs(c, quick()...)
				require.NoError(t, err)
				rec := newVMRecorder()
				inf.AddHandler(rec)
				stop := run(t, inf)
				defer stop()
				require.NoError(t, inf.WaitForSync(t.Context()))
				ht.set(func() {})
				s.Generate(700)
				settle()
				requireInSync(t, s, fakeserver.TypeVM, inf)
				rec.mu.Lock()
				defer rec.mu.Unlock()
				require.Empty(t, rec.problems)
				require.Len(t, rec.known, inf.Store().Len())
				require.Equal(t, 0, inf.Relists())
			})
		})
	}
}

// Transient faults of the change feed (5xx, 429, resets, truncated and
// malformed pages, events without revision) and of the lists (connection
// errors) cost retries, never correctness.
func TestTransientFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 9})
		defer s.Close()
		s.Generate(2000)
		s.SetRandomFaults(9, 0.3, fakeserver.Fault500, fakeserver.Fault502Text, fakeserver.Fault503Empty,
			fakeserver.Fault429, fakeserver.FaultReset, fakeserver.FaultTruncate, fakeserver.FaultMalformedJSON,
			fakeserver.FaultMissingRevision)
		c, ht := dial(t, s)
		inf, err := informers.VMs(c, quick(informers.InformerOptions(informer.Backoff(100*time.Millisecond, time.Second)))...)
		require.NoError(t, err)
		var lists atomic.Int32
		failing := &failingTransport{next: ht.next, every: 3, n: &lists}
		ht.next = failing
		stop := run(t, inf)
		defer stop()
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour) // fake time: never an endless test
		defer cancel()
		require.NoError(t, inf.WaitForSync(ctx))
		s.Generate(500)
		time.Sleep(time.Minute)
		synctest.Wait()
		requireInSync(t, s, fakeserver.TypeVM, inf)
		require.Positive(t, failing.failed.Load())
	})
}

// failingTransport fails every every-th list request with a connection
// error.
type failingTransport struct {
	next   http.RoundTripper
	every  int32
	n      *atomic.Int32
	failed atomic.Int32
}

func (f *failingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/get-") && f.n.Add(1)%f.every == 0 {
		f.failed.Add(1)
		return nil, errors.New("connection reset by peer")
	}
	return f.next.RoundTrip(r)
}
