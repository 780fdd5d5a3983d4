package cloudtower

import (
	"log/slog"
	"testing"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/stream/streamtest"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// fakeHarness drives the cloudtower Source over the fake server for the
// stream conformance suite.
type fakeHarness struct {
	s *fakeserver.Server
	c *client.Cloudtower
}

func (h fakeHarness) Source() stream.Source[*models.ResourceChangeEvent] { return New(h.c) }

func (h fakeHarness) Append(n int) []stream.Revision {
	head := h.s.Head()
	h.s.Generate(n)
	var revs []stream.Revision
	for _, e := range h.s.Events(head) {
		revs = append(revs, stream.RevisionFromUint64(e.Revision))
	}
	return revs
}

func (h fakeHarness) Compact(upTo stream.Revision) {
	n, ok := upTo.Uint64()
	if !ok {
		panic("revision " + upTo.String() + " is not a uint64")
	}
	h.s.Compact(n)
}

func (h fakeHarness) FailNext() { h.s.InjectFaults(fakeserver.Fault503) }

// TestConformance runs the stream conformance suite on the Source, logged
// in with API credentials, over the fake server on loopback HTTP.
func TestConformance(t *testing.T) {
	streamtest.TestSource(t, func(t *testing.T) streamtest.Harness[*models.ResourceChangeEvent] {
		s := fakeserver.New(fakeserver.Config{Seed: 3})
		s.StartHTTP()
		t.Cleanup(s.Close)
		c, err := Dial(t.Context(), Config{
			Host: s.URL(), Username: s.Username(), Password: s.Password(),
			APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { CloseIdleConnections(c) })
		return fakeHarness{s: s, c: c}
	}, stream.Logger(slog.New(slog.DiscardHandler)))
}

// TestConformanceInBubble runs the suite over the fake server's in-memory
// transport, in synctest bubbles (fake time).
func TestConformanceInBubble(t *testing.T) {
	streamtest.TestSourceInBubble(t, func(t *testing.T) streamtest.Harness[*models.ResourceChangeEvent] {
		s := fakeserver.New(fakeserver.Config{Seed: 3})
		t.Cleanup(s.Close)
		return fakeHarness{s: s, c: dialMemory(t, s)}
	}, stream.Logger(slog.New(slog.DiscardHandler)))
}
