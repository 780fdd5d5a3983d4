package cloudtower

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

func TestLastRevision(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string // "" for no hint
	}{
		{`{"data":[{"revision":"7","new_value":"{}"},{"revision":"12","new_value":"{\"revision\":\"99\"}"}],"currentRevision":"20","compactRevision":""}`, "12"},
		{`{"data":[{"new_value":"{\"revision\":\"99\"}","revision":"0012"}],"currentRevision":"20"}`, "12"},
		{`{"data":[],"currentRevision":"20","compactRevision":"3"}`, ""},
		{`{"data":[{"revision":"12a"}]}`, ""},
		{`{"data":[{"revision":"`, ""},
		{`{"data":[{"revision":"123`, ""},
		{`{"data":[{"revision":""}]}`, ""},
		{``, ""},
	} {
		rev, ok := lastRevision([]byte(tc.body))
		if ok != (tc.want != "") || (ok && rev != stream.MustParseRevision(tc.want)) {
			t.Errorf("lastRevision(%s) = %v, %v; want %q", tc.body, rev, ok, tc.want)
		}
	}
}

// Over loopback HTTP through the SDK, the Source hints the next poll
// before decoding a page: polls overlap (which prefetching alone never
// does: it starts the next poll once a page is decoded), and the delivered
// sequence is the server's.
func TestHintOverlapsPolls(t *testing.T) {
	s, c := startFake(t, fakeserver.Config{Seed: 5})
	s.Generate(3000)
	src := New(c)
	var mu sync.Mutex
	inflight, overlapped := 0, 0
	spy := stream.NewSource(func(ctx context.Context, after stream.Revision, limit int) (stream.Page[*models.ResourceChangeEvent], error) {
		mu.Lock()
		if inflight++; inflight > 1 {
			overlapped++
		}
		mu.Unlock()
		defer func() { mu.Lock(); inflight--; mu.Unlock() }()
		return src.Poll(ctx, after, limit)
	}, src.Revision)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []*models.ResourceChangeEvent
	for ev, err := range stream.Watch(ctx, spy, e2eOptions(stream.FromStart(), stream.PageSize(100))...) {
		if err != nil {
			t.Fatal(err)
		}
		if got = append(got, ev); len(got) == 3000 {
			break
		}
	}
	checkSame(t, got, s.Events(0))
	if overlapped == 0 {
		t.Error("no poll started before the previous one returned: the hint did not reach the engine")
	}
}
