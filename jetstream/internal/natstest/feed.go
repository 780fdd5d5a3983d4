package natstest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
)

// Item is a change of Feed.
type Item struct {
	Rev  uint64 `json:"rev"`
	Kind string `json:"kind"`
}

// Codec is the wire.Codec of Item: subject "<kind>", body JSON.
type Codec struct{}

// Revision returns the item's revision.
func (Codec) Revision(it Item) (stream.Revision, error) {
	if it.Rev == 0 {
		return stream.Revision{}, errors.New("natstest: item without revision")
	}
	return stream.RevisionFromUint64(it.Rev), nil
}

// Encode encodes it.
func (Codec) Encode(it Item) (wire.Message, error) {
	b, err := json.Marshal(it)
	return wire.Message{Subject: wire.Token(it.Kind), Data: b}, err
}

// Decode decodes an Item.
func (Codec) Decode(m wire.Message) (Item, error) {
	var it Item
	err := json.Unmarshal(m.Data, &it)
	return it, err
}

// ErrFault is the error of an injected failure.
var ErrFault = errors.New("natstest: injected fault")

// Feed is an in-memory stream.Source of Items with revisions 1, 2, 3, ...
// It can discard old items (compaction) and fail polls.
type Feed struct {
	mu      sync.Mutex
	items   []Item // items[i].Rev == base+i+1
	base    uint64 // revisions up to base are compacted
	polls   int
	failNth int // fail every failNth poll; 0 never
	onPoll  func(after stream.Revision)
}

// Kinds are the kinds Append cycles through.
var Kinds = []string{"VM", "HOST", "VOLUME"}

// Append adds n items and returns the new head.
func (f *Feed) Append(n int) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		rev := f.base + uint64(len(f.items)) + 1
		f.items = append(f.items, Item{Rev: rev, Kind: Kinds[rev%uint64(len(Kinds))]})
	}
	return f.base + uint64(len(f.items))
}

// Head returns the newest revision.
func (f *Feed) Head() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.base + uint64(len(f.items))
}

// Compact discards the items up to rev.
func (f *Feed) Compact(rev uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rev <= f.base {
		return
	}
	n := min(int(rev-f.base), len(f.items))
	f.items = f.items[n:]
	f.base = rev
}

// FailEvery makes every nth poll fail (0: none).
func (f *Feed) FailEvery(n int) {
	f.mu.Lock()
	f.failNth = n
	f.mu.Unlock()
}

// OnPoll sets a hook called at the start of each poll, without the Feed's
// lock held: it may call the Feed's methods (Append, OnPoll, ...).
func (f *Feed) OnPoll(h func(after stream.Revision)) {
	f.mu.Lock()
	f.onPoll = h
	f.mu.Unlock()
}

// Poll implements stream.Poller.
func (f *Feed) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[Item], error) {
	if err := ctx.Err(); err != nil {
		return stream.Page[Item]{}, err
	}
	f.mu.Lock()
	hook := f.onPoll
	f.mu.Unlock()
	if hook != nil {
		hook(after)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	if f.failNth > 0 && f.polls%f.failNth == 0 {
		return stream.Page[Item]{}, ErrFault
	}
	head := f.base + uint64(len(f.items))
	page := stream.Page[Item]{Head: stream.RevisionFromUint64(head)}
	if f.base > 0 {
		page.Compact = stream.RevisionFromUint64(f.base)
	}
	if after.IsZero() {
		return page, nil
	}
	a, _ := after.Uint64()
	i := 0
	if a > f.base {
		i = int(a - f.base)
	}
	end := min(len(f.items), i+limit)
	if i < end {
		page.Items = append([]Item(nil), f.items[i:end]...)
	}
	return page, nil
}

// Revision implements stream.Source.
func (f *Feed) Revision(it Item) (stream.Revision, error) { return Codec{}.Revision(it) }

// Rev formats a revision.
func Rev(n uint64) stream.Revision { return stream.MustParseRevision(strconv.FormatUint(n, 10)) }

// Publish publishes the Items from..to into cfg's stream (created if
// needed) with a sink.Publisher, after a Sync. When the stream is empty,
// or restart is not zero, the first message's previous revision is
// restart (from-1 when restart is zero).
func Publish(tb testing.TB, js jetstream.JetStream, cfg sink.Config, from, to, restart uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := sink.EnsureStream(ctx, js, cfg); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	pub := sink.NewPublisher(js, Codec{}, cfg)
	pos, err := pub.Sync(ctx)
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	switch {
	case restart != 0:
		err = pub.Restart(Rev(restart))
	case pos.Revision.IsZero():
		err = pub.Restart(Rev(from - 1))
	}
	if err != nil {
		tb.Fatalf("natstest: %v", err)
	}
	for r := from; r <= to; r++ {
		if err := pub.Publish(ctx, Item{Rev: r, Kind: Kinds[r%uint64(len(Kinds))]}); err != nil {
			tb.Fatalf("natstest: publishing %d: %v", r, err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
}
