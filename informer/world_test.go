package informer_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// obj is the test object.
type obj struct {
	ID      string
	Status  string
	Cluster string
	Gen     int
	Blob    string `json:",omitempty"`
}

func keyOf(o *obj) string { return o.ID }

// chg is one item of the world's change feed.
type chg struct {
	Rev uint64
	Op  informer.Op
	Obj obj
}

// world is an in-memory server: objects, a change log with compaction,
// offset-paged listing ordered by id, and hooks to act during a list.
type world struct {
	mu        sync.Mutex
	objs      map[string]obj
	log       []chg
	rev       uint64
	compact   uint64
	inclusive bool // a poll's page includes its start revision

	beforeFetch func(skip int)                  // runs before each list page, outside the lock
	beforePoll  func(ctx context.Context) error // runs before each poll, outside the lock
	fetches     int
	polls       int
}

func newWorld(n int) *world {
	w := &world{objs: map[string]obj{}}
	for i := range n {
		w.insert(obj{ID: id(i), Status: "RUNNING", Cluster: "c" + strconv.Itoa(i%3)})
	}
	return w
}

func id(i int) string { return fmt.Sprintf("vm-%04d", i) }

func (w *world) record(op informer.Op, o obj) uint64 {
	w.rev++
	w.log = append(w.log, chg{Rev: w.rev, Op: op, Obj: o})
	return w.rev
}

func (w *world) insert(o obj) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.objs[o.ID] = o
	return w.record(informer.Insert, o)
}

// update changes an object's status and bumps its generation.
func (w *world) update(id, status string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs[id]
	o.Status, o.Gen = status, o.Gen+1
	w.objs[id] = o
	return w.record(informer.Update, o)
}

func (w *world) move(id, cluster string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs[id]
	o.Cluster, o.Gen = cluster, o.Gen+1
	w.objs[id] = o
	return w.record(informer.Update, o)
}

func (w *world) remove(id string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs[id]
	delete(w.objs, id)
	return w.record(informer.Delete, o)
}

// silently changes the state without a change in the log (a lost change).
func (w *world) silently(f func(objs map[string]obj)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w.objs)
}

// compactAll discards the whole log.
func (w *world) compactAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.compact = w.rev
	w.log = nil
}

func (w *world) state() map[string]obj {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.objs)
}

// hooks sets the hooks (nil leaves one unchanged).
func (w *world) hooks(beforeFetch func(skip int), beforePoll func(ctx context.Context) error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if beforeFetch != nil {
		w.beforeFetch = beforeFetch
	}
	if beforePoll != nil {
		w.beforePoll = beforePoll
	}
}

func (w *world) fetch(ctx context.Context, skip, limit int) ([]*obj, error) {
	w.mu.Lock()
	before := w.beforeFetch
	w.mu.Unlock()
	if f := before; f != nil {
		f(skip)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fetches++
	ids := slices.Sorted(maps.Keys(w.objs))
	var out []*obj
	for i := skip; i < len(ids) && len(out) < limit; i++ {
		o := w.objs[ids[i]]
		out = append(out, &o)
	}
	return out, ctx.Err()
}

func (w *world) lister(limit int) informer.Lister[*obj] {
	return informer.OffsetLister(keyOf, limit, w.fetch)
}

func (w *world) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[chg], error) {
	w.mu.Lock()
	before := w.beforePoll
	w.mu.Unlock()
	if f := before; f != nil {
		if err := f(ctx); err != nil {
			return stream.Page[chg]{}, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	page := stream.Page[chg]{Head: stream.RevisionFromUint64(w.rev), Compact: stream.RevisionFromUint64(w.compact)}
	if w.compact == 0 {
		page.Compact = stream.Revision{}
	}
	a, ok := after.Uint64()
	if !ok { // no start: the newest page
		a = w.rev - min(w.rev, uint64(limit))
	} else if w.inclusive && a > 0 {
		a--
	}
	i := sort.Search(len(w.log), func(i int) bool { return w.log[i].Rev > a })
	for ; i < len(w.log) && len(page.Items) < limit; i++ {
		page.Items = append(page.Items, w.log[i])
	}
	return page, nil
}

func (w *world) Revision(c chg) (stream.Revision, error) {
	return stream.RevisionFromUint64(c.Rev), nil
}

func decode(_ context.Context, c chg) (informer.Change[*obj], error) {
	o := c.Obj
	return informer.Change[*obj]{Op: c.Op, Object: &o}, nil
}

// newInformer builds an informer over w with quick polls.
func newInformer(t *testing.T, w *world, opts ...informer.Option) *informer.Informer[string, *obj] {
	t.Helper()
	opts = append([]informer.Option{
		informer.WatchOptions(stream.PollInterval(100e6), stream.PageSize(10), stream.Logger(discard)),
		informer.Logger(discard),
	}, opts...)
	inf, err := informer.New(w.lister(7), stream.Source[chg](w), decode, keyOf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return inf
}

// event is one notification a recorder saw.
type event struct {
	Kind    string // add, update, delete
	ID      string
	Gen     int
	Status  string
	Initial bool // add: initial; delete: finalStateUnknown
}

func (e event) String() string {
	return fmt.Sprintf("%s %s gen=%d %s %v", e.Kind, e.ID, e.Gen, e.Status, e.Initial)
}

// recorder is a Handler that records what it sees.
type recorder struct {
	mu     sync.Mutex
	events []event
	known  map[string]obj // the state the handler has been told
	bad    []string       // protocol violations
}

func newRecorder() *recorder { return &recorder{known: map[string]obj{}} }

func (r *recorder) OnAdd(o *obj, initial bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.known[o.ID]; ok {
		r.bad = append(r.bad, "add of known "+o.ID)
	}
	r.known[o.ID] = *o
	r.events = append(r.events, event{"add", o.ID, o.Gen, o.Status, initial})
}

func (r *recorder) OnUpdate(old, o *obj) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.known[o.ID]; !ok || k != *old {
		r.bad = append(r.bad, fmt.Sprintf("update of %s from %+v, handler knew %+v", o.ID, *old, k))
	}
	r.known[o.ID] = *o
	r.events = append(r.events, event{"update", o.ID, o.Gen, o.Status, false})
}

func (r *recorder) OnDelete(o *obj, unknown bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.known[o.ID]; !ok {
		r.bad = append(r.bad, "delete of unknown "+o.ID)
	}
	delete(r.known, o.ID)
	r.events = append(r.events, event{"delete", o.ID, o.Gen, o.Status, unknown})
}

func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func (r *recorder) view() (map[string]obj, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.known), slices.Clone(r.bad)
}

// storeState returns the store's content by value.
func storeState(inf *informer.Informer[string, *obj]) map[string]obj {
	m := map[string]obj{}
	for _, o := range inf.Store().List() {
		m[o.ID] = *o
	}
	return m
}
