package informer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/towerwatch/towerwatch/informer"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
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

// chg is the value of a change in the world's feed (streamtest.Item.Value,
// as JSON).
type chg struct {
	Op  informer.Op
	Obj obj
}

// world is an in-memory server: objects, listed by offset in id order,
// and their change log, a streamtest.Feed (with its compaction, faults and
// server behaviours), plus a hook to act during a list.
type world struct {
	mu   sync.Mutex
	objs map[string]obj
	feed *streamtest.Feed

	beforeFetch func(skip int) // runs before each list page, outside the lock
}

func newWorld(n int) *world {
	w := &world{objs: map[string]obj{}, feed: &streamtest.Feed{}}
	for i := range n {
		w.insert(obj{ID: id(i), Status: "RUNNING", Cluster: "c" + strconv.Itoa(i%3)})
	}
	return w
}

func id(i int) string { return fmt.Sprintf("vm-%04d", i) }

// record appends a change; w.mu is held, so that the log's order is the
// state's.
func (w *world) record(op informer.Op, o obj) uint64 {
	b, err := json.Marshal(chg{Op: op, Obj: o})
	if err != nil {
		panic(err)
	}
	return w.feed.Add(streamtest.Item{Key: o.ID, Value: string(b)})
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
func (w *world) compactAll() { w.feed.Compact(w.feed.Head()) }

func (w *world) state() map[string]obj {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.objs)
}

// onPoll sets the hook run before each poll (nil: none).
func (w *world) onPoll(f func(ctx context.Context) error) {
	if f == nil {
		w.feed.OnPoll(nil)
		return
	}
	w.feed.OnPoll(func(ctx context.Context, _ stream.Revision) error { return f(ctx) })
}

func (w *world) fetch(ctx context.Context, skip, limit int) ([]*obj, error) {
	w.mu.Lock()
	before := w.beforeFetch
	w.mu.Unlock()
	if before != nil {
		before(skip)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
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

func decode(_ context.Context, it streamtest.Item) (informer.Change[*obj], error) {
	var c chg
	if err := json.Unmarshal([]byte(it.Value), &c); err != nil {
		return informer.Change[*obj]{}, err
	}
	return informer.Change[*obj]{Op: c.Op, Object: &c.Obj}, nil
}

// newInformer builds an informer over w with quick polls.
func newInformer(t *testing.T, w *world, opts ...informer.Option) *informer.Informer[string, *obj] {
	t.Helper()
	opts = append([]informer.Option{
		informer.WatchOptions(stream.PollInterval(100e6), stream.PageSize(10), stream.Logger(discard)),
		informer.Logger(discard),
	}, opts...)
	inf, err := informer.New(w.lister(7), w.feed, decode, keyOf, opts...)
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
