package cloudtower

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/go-openapi/runtime"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

const okPage = `{"data":[` +
	`{"action":"INSERT","resource_id":"vm-1","resource_type":"Vm","revision":"11","prev_revision":"10","created_at":"2025-01-02T03:04:05.678Z","new_value":"{}"},` +
	`{"action":"UPDATE","resource_id":"vm-1","resource_type":"Vm","revision":"12","prev_revision":"11"}` +
	`],"currentRevision":"20","compactRevision":"3","ec":"0","error":null}`

// recorder is a handler that answers okPage and records each request.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, r.Clone(context.Background()))
	rec.mu.Unlock()
	respond(w, 200, "application/json", okPage)
}

func (rec *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("no request reached the server")
	}
	return rec.reqs[len(rec.reqs)-1]
}

func TestPollRequest(t *testing.T) {
	rec := &recorder{}
	srv := newTestServer(t, rec.ServeHTTP)
	c := dialTest(t, srv, nil)
	var optionRan bool
	custom := func(op *runtime.ClientOperation) { optionRan = true }

	for _, row := range []struct {
		name  string
		opts  []Option
		after stream.Revision
		limit int
		want  url.Values
		hdr   map[string]string
	}{
		{name: "no position, no filters", limit: 1,
			want: url.Values{"limit": {"1"}}},
		{name: "position", after: stream.MustParseRevision("007"), limit: 100,
			want: url.Values{"limit": {"100"}, "start_revision": {"7"}}},
		{name: "huge position", after: stream.MustParseRevision("123456789012345678901234567890"), limit: 2,
			want: url.Values{"limit": {"2"}, "start_revision": {"123456789012345678901234567890"}}},
		{name: "limit clamped up", after: stream.RevisionFromUint64(0), limit: 0,
			want: url.Values{"limit": {"1"}, "start_revision": {"0"}}},
		{name: "limit clamped down", limit: 5000,
			want: url.Values{"limit": {"1000"}}},
		{name: "filters",
			opts: []Option{ResourceTypes("Vm", " ", "Host"), ResourceID("vm-1"), Action("UPDATE")}, limit: 10,
			want: url.Values{"limit": {"10"}, "resource_type": {"Vm,Host"}, "resource_id": {"vm-1"}, "action": {"UPDATE"}}},
		{name: "later ResourceTypes replaces",
			opts: []Option{ResourceTypes("Vm"), ResourceTypes("Host")}, limit: 10,
			want: url.Values{"limit": {"10"}, "resource_type": {"Host"}}},
		{name: "empty filters send nothing",
			opts: []Option{ResourceTypes(), ResourceID(""), Action(""), ExternalCloudTowerID(""), nil}, limit: 10,
			want: url.Values{"limit": {"10"}}},
		{name: "external cloudtower and client options",
			opts: []Option{ExternalCloudTowerID("ext-9"), ClientOptions(nil, custom)}, limit: 10,
			want: url.Values{"limit": {"10"}}, hdr: map[string]string{ExternalCloudTowerHeader: "ext-9"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			page, err := New(c, row.opts...).Poll(context.Background(), row.after, row.limit)
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			r := rec.last(t)
			if r.URL.Path != DefaultBasePath+"/resource-changes" || r.Method != http.MethodGet {
				t.Errorf("request %s %s", r.Method, r.URL.Path)
			}
			if got := r.URL.Query(); got.Encode() != row.want.Encode() {
				t.Errorf("query = %s, want %s", got.Encode(), row.want.Encode())
			}
			if got := r.Header.Get("Authorization"); got != testToken {
				t.Errorf("Authorization = %q, want the bare token", got)
			}
			for k, v := range row.hdr {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if len(page.Items) != 2 || page.Head != stream.RevisionFromUint64(20) || page.Compact != stream.RevisionFromUint64(3) {
				t.Errorf("page = %d items, head %s, compact %s", len(page.Items), page.Head, page.Compact)
			}
		})
	}
	if !optionRan {
		t.Error("the ClientOptions option did not run")
	}
}

func TestPollPage(t *testing.T) {
	for _, row := range []struct {
		name, body    string
		head, compact string
		items         int
	}{
		{"full", okPage, "20", "3", 2},
		{"absent revisions", `{"data":[],"ec":"0"}`, "", "", 0},
		{"empty revisions", `{"data":null,"currentRevision":"","compactRevision":"","ec":"0"}`, "", "", 0},
		{"leading zeros", `{"data":[],"currentRevision":"0042","compactRevision":"0","ec":"0"}`, "42", "0", 0},
		{"empty body", ``, "", "", 0},
	} {
		t.Run(row.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				respond(w, 200, "application/json", row.body)
			})
			page, err := New(dialTest(t, srv, nil)).Poll(context.Background(), stream.Revision{}, 10)
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			if page.Head.String() != row.head || page.Compact.String() != row.compact || len(page.Items) != row.items {
				t.Errorf("page = %d items, head %q, compact %q; want %d, %q, %q",
					len(page.Items), page.Head, page.Compact, row.items, row.head, row.compact)
			}
		})
	}
	// A page is delivered as the server sent it: the first item in full.
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { respond(w, 200, "application/json", okPage) })
	page, err := New(dialTest(t, srv, nil)).Poll(context.Background(), stream.Revision{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	ev := page.Items[0]
	if *ev.Action != "INSERT" || *ev.ResourceID != "vm-1" || *ev.ResourceType != "Vm" || *ev.Revision != "11" ||
		*ev.PrevRevision != "10" || *ev.CreatedAt != "2025-01-02T03:04:05.678Z" || *ev.NewValue != "{}" || ev.OldValue != nil {
		t.Errorf("first event decoded wrongly: %+v", ev)
	}
}

// fakeService is a resource_change.ClientService stand-in.
type fakeService struct {
	params *resource_change.GetResourceChangesParams
	resp   *resource_change.GetResourceChangesOK
	err    error
}

func (f *fakeService) GetResourceChanges(p *resource_change.GetResourceChangesParams, _ ...resource_change.ClientOption) (*resource_change.GetResourceChangesOK, error) {
	f.params = p
	return f.resp, f.err
}

func (f *fakeService) SetTransport(runtime.ClientTransport) {}

func TestNewFromService(t *testing.T) {
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, "mine")
	svc := &fakeService{resp: &resource_change.GetResourceChangesOK{Payload: &models.ResourceChangeResponse{
		Data: []*models.ResourceChangeEvent{{Revision: ptr("5")}}, CurrentRevision: ptr("5"), CompactRevision: ptr("0"),
	}}}
	page, err := NewFromService(svc).Poll(ctx, stream.RevisionFromUint64(4), 3)
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("Poll = %v, %v", page, err)
	}
	if svc.params.Context != ctx {
		t.Error("the request does not carry the stream's context")
	}
	// No payload at all: a retryable protocol error.
	svc.resp = &resource_change.GetResourceChangesOK{}
	if _, err := NewFromService(svc).Poll(ctx, stream.Revision{}, 3); !errors.Is(err, stream.ErrProtocol) || stream.IsFatal(err) {
		t.Errorf("nil payload: err = %v", err)
	}
	// An SDK error goes through the table.
	svc.resp, svc.err = nil, &resource_change.GetResourceChangesNotFound{}
	if _, err := NewFromService(svc).Poll(ctx, stream.Revision{}, 3); !errors.Is(err, ErrUnsupported) || !stream.IsFatal(err) {
		t.Errorf("not found: err = %v", err)
	}
}

func TestNilSource(t *testing.T) {
	for name, src := range map[string]*Source{
		"New(nil)":            New(nil),
		"NewFromService(nil)": NewFromService(nil),
		"nil *Source":         nil,
	} {
		_, err := src.Poll(context.Background(), stream.Revision{}, 10)
		if !stream.IsFatal(err) || !errors.Is(err, errNoClient) {
			t.Errorf("%s: Poll err = %v, want a fatal errNoClient", name, err)
		}
		n := 0
		for ev, err := range src.Watch(context.Background()) {
			n++
			if ev != nil || !errors.Is(err, errNoClient) {
				t.Errorf("%s: Watch yielded %v, %v", name, ev, err)
			}
		}
		if n != 1 {
			t.Errorf("%s: Watch yielded %d values, want 1", name, n)
		}
	}
}

func TestRevisionOf(t *testing.T) {
	for _, row := range []struct {
		ev   *models.ResourceChangeEvent
		want string
		ok   bool
	}{
		{&models.ResourceChangeEvent{Revision: ptr("42")}, "42", true},
		{&models.ResourceChangeEvent{Revision: ptr("0042")}, "42", true},
		{&models.ResourceChangeEvent{Revision: ptr("98765432109876543210987654321")}, "98765432109876543210987654321", true},
		{nil, "", false},
		{&models.ResourceChangeEvent{}, "", false},
		{&models.ResourceChangeEvent{Revision: ptr("")}, "", false},
		{&models.ResourceChangeEvent{Revision: ptr("4x")}, "", false},
		{&models.ResourceChangeEvent{Revision: ptr("-1")}, "", false},
	} {
		got, err := RevisionOf(row.ev)
		if row.ok != (err == nil) || got.String() != row.want {
			t.Errorf("RevisionOf(%v) = %q, %v", row.ev, got, err)
		}
		if err != nil && !errors.Is(err, stream.ErrInvalidRevision) {
			t.Errorf("RevisionOf error %v does not wrap stream.ErrInvalidRevision", err)
		}
		got2, err2 := (*Source)(nil).Revision(row.ev)
		if got2 != got || (err2 == nil) != (err == nil) {
			t.Errorf("Source.Revision differs from RevisionOf")
		}
	}
}
