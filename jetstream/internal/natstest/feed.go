package natstest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/towerwatch/towerwatch/jetstream/sink"
	"github.com/towerwatch/towerwatch/jetstream/wire"
	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
)

// Item is a change of the test feeds: a streamtest.Item, whose Key is
// its kind (the subject token).
type Item = streamtest.Item

// Codec is the wire.Codec of Item: subject "<key>", body JSON.
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
	return wire.Message{Subject: wire.Token(it.Key), Data: b}, err
}

// Decode decodes an Item.
func (Codec) Decode(m wire.Message) (Item, error) {
	var it Item
	err := json.Unmarshal(m.Data, &it)
	return it, err
}

// Kinds are the keys of the items Publish publishes (revision r has
// Kinds[r%3]), and of a Feed from NewFeed: CloudTower's resource types.
var Kinds = []string{"Vm", "Host", "VmVolume"}

// NewFeed returns an empty streamtest.Feed whose items have the keys
// Kinds.
func NewFeed() *streamtest.Feed {
	f := &streamtest.Feed{}
	f.SetKeys(Kinds...)
	return f
}

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
		if err := pub.Publish(ctx, Item{Rev: r, Key: Kinds[r%uint64(len(Kinds))]}); err != nil {
			tb.Fatalf("natstest: publishing %d: %v", r, err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		tb.Fatalf("natstest: %v", err)
	}
}
