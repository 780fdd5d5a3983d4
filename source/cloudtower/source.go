package cloudtower

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/go-openapi/runtime"
	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

// MaxPageSize is the largest limit CloudTower accepts per request. Poll
// asks for at most this many changes whatever limit it is given.
const MaxPageSize = 1000

// ExternalCloudTowerHeader is the request header that ExternalCloudTowerID
// sets.
const ExternalCloudTowerHeader = "external-cloudtower-id"

// Source polls CloudTower's resource-change feed (GET /resource-changes)
// through the SDK. It implements stream.Source[*models.ResourceChangeEvent];
// watch it with its Watch method, or with stream.Watch.
//
// A Source holds no state between polls and is safe for concurrent use.
type Source struct {
	svc      resource_change.ClientService
	types    string // comma-joined, "" for all
	id       string
	action   string
	copts    []resource_change.ClientOption
	maxBytes int64       // bound of a 200 body
	creds    Credentials // what the client sends on GET /resource-changes when no option sets AuthInfo
}

var _ stream.Source[*models.ResourceChangeEvent] = (*Source)(nil)

// Option configures a Source.
type Option func(*Source)

// ResourceTypes restricts the feed to changes of these resource types
// (sent as resource_type, comma-joined; empty strings are ignored). A later
// call replaces an earlier one; none means every type. The server spells
// types as its models, case-sensitive ("Vm", "VmVolume", "_LabelToVm"): a
// misspelt type matches nothing, silently (see SuggestResourceType).
func ResourceTypes(types ...string) Option {
	var keep []string
	for _, t := range types {
		if t = strings.TrimSpace(t); t != "" {
			keep = append(keep, t)
		}
	}
	joined := strings.Join(keep, ",")
	return func(s *Source) { s.types = joined }
}

// ResourceID restricts the feed to changes of one resource (resource_id).
// The empty string means every resource.
func ResourceID(id string) Option {
	return func(s *Source) { s.id = id }
}

// Action restricts the feed to one kind of change (action), as CloudTower
// names it: "INSERT", "UPDATE" or "DELETE". The empty string means every
// action.
func Action(action string) Option {
	return func(s *Source) { s.action = action }
}

// ExternalCloudTowerID sends the request header external-cloudtower-id
// with every poll, to read the feed of an external CloudTower managed by
// this one. The empty string sends nothing.
func ExternalCloudTowerID(id string) Option {
	return func(s *Source) {
		if id != "" {
			s.copts = append(s.copts, WithHeader(ExternalCloudTowerHeader, id))
		}
	}
}

// APICredentials authenticates every poll with HTTP Basic and these API
// credentials (the operation's AuthInfo), as CloudTower's specification
// requires for GET /resource-changes, instead of the client's default
// authentication (the login token). It is for a client not made by Dial
// with Config.APIUsername, which does the same. The empty user name sends
// nothing. A later ClientOptions option that sets AuthInfo wins.
func APICredentials(username, password string) Option {
	return func(s *Source) {
		if username != "" {
			s.copts = append(s.copts, basicAuth(username, password))
		}
	}
}

// basicAuth is the client option of APICredentials. Its AuthInfo is an
// apiAuth, so that a poll can tell which credentials it sent.
func basicAuth(username, password string) resource_change.ClientOption {
	w := apiAuth{httptransport.BasicAuth(username, password)}
	return func(op *runtime.ClientOperation) { op.AuthInfo = w }
}

// apiAuth marks the AuthInfo of APICredentials.
type apiAuth struct{ runtime.ClientAuthInfoWriter }

// Header sends the request header name: value with every poll (on top of
// the client's; Config.Headers does the same for a client from Dial).
// Calls accumulate; a later one for the same name replaces the value.
func Header(name, value string) Option {
	return func(s *Source) { s.copts = append(s.copts, WithHeader(name, value)) }
}

// BypassWhitelist sends the header "x-bypass-whitelist: true"
// (BypassWhitelistHeader) with every poll, as Config.BypassWhitelist does
// for a client from Dial.
func BypassWhitelist() Option { return Header(BypassWhitelistHeader, "true") }

// DefaultMaxResponseBytes is the default bound of a response body: enough
// for a page of 1000 large VM objects.
const DefaultMaxResponseBytes = 64 << 20

// MaxResponseBytes bounds the size of a 200 response body (default
// DefaultMaxResponseBytes; n <= 0 means the default). A larger body is not
// read further: the poll fails with an error wrapping stream.ErrProtocol,
// which the engine retries and reports as a warning, and memory stays near
// n however long the body is.
func MaxResponseBytes(n int64) Option {
	return func(s *Source) {
		if n <= 0 {
			n = DefaultMaxResponseBytes
		}
		s.maxBytes = n
	}
}

// ClientOptions adds SDK client options, applied to every poll's request
// after the Source's own. Calls accumulate.
func ClientOptions(opts ...resource_change.ClientOption) Option {
	return func(s *Source) {
		for _, o := range opts {
			if o != nil {
				s.copts = append(s.copts, o)
			}
		}
	}
}

// WithHeader returns an SDK client option that sets a request header, on
// top of whatever the operation's parameters write.
func WithHeader(name, value string) resource_change.ClientOption {
	return func(op *runtime.ClientOperation) {
		params := op.Params
		op.Params = runtime.ClientRequestWriterFunc(func(r runtime.ClientRequest, reg strfmt.Registry) error {
			if params != nil {
				if err := params.WriteToRequest(r, reg); err != nil {
					return err
				}
			}
			return r.SetHeaderParam(name, value)
		})
	}
}

// New returns a Source that polls through c, typically a client from Dial.
// A nil c (or one without its ResourceChange service) gives a Source whose
// every poll fails with a fatal error saying so; it does not panic.
func New(c *client.Cloudtower, opts ...Option) *Source {
	var svc resource_change.ClientService
	creds := CredentialsUnknown
	if c != nil {
		svc = c.ResourceChange
		if dt, ok := c.Transport.(*dialTransport); ok {
			creds = dt.changes
		}
	}
	s := NewFromService(svc, opts...)
	s.creds = creds
	return s
}

// NewFromService returns a Source that polls through svc, the SDK's
// resource-change service (c.ResourceChange) or a stand-in for it. A nil
// svc gives a Source whose every poll fails with a fatal error.
func NewFromService(svc resource_change.ClientService, opts ...Option) *Source {
	s := &Source{svc: svc, maxBytes: DefaultMaxResponseBytes}
	s.copts = []resource_change.ClientOption{s.decodeFast}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s
}

// Poll fetches the changes after the revision after, at most limit of
// them (clamped to 1..MaxPageSize), with the Source's filters. A zero
// after sends no start_revision: the server picks the page, and the head
// revision tells where the feed stands. The request carries ctx.
//
// Items are the events as the server sent them; Head and Compact are its
// currentRevision and compactRevision (zero when absent or empty). Errors
// follow the package's error table: fatal ones are marked with
// stream.Fatal, the rest are retried by the engine.
func (s *Source) Poll(ctx context.Context, after stream.Revision, limit int) (stream.Page[*models.ResourceChangeEvent], error) {
	var page stream.Page[*models.ResourceChangeEvent]
	if s == nil || s.svc == nil {
		return page, stream.Fatal(errNoClient)
	}
	params := resource_change.NewGetResourceChangesParams()
	if ctx != nil {
		params.SetContext(ctx)
	}
	if !after.IsZero() {
		params.SetStartRevision(ptr(after.String()))
	}
	params.SetLimit(ptr(int32(min(max(limit, 1), MaxPageSize))))
	if s.types != "" {
		params.SetResourceType(ptr(s.types))
	}
	if s.id != "" {
		params.SetResourceID(ptr(s.id))
	}
	if s.action != "" {
		params.SetAction(ptr(s.action))
	}
	sent := s.creds
	resp, err := s.svc.GetResourceChanges(params, append(s.copts[:len(s.copts):len(s.copts)], func(op *runtime.ClientOperation) {
		switch op.AuthInfo.(type) {
		case nil:
		case apiAuth:
			sent = CredentialsAPI
		default:
			sent = CredentialsOther
		}
	})...)
	if err != nil {
		err, fatal := classify(opPoll, err)
		var ae *APIError
		if errors.As(err, &ae) {
			ae.Credentials = sent
		}
		if fatal {
			err = stream.Fatal(err)
		}
		return page, err
	}
	if resp == nil || resp.Payload == nil {
		return page, fmt.Errorf("cloudtower: %s: %w: empty response body", opPoll, stream.ErrProtocol)
	}
	p := resp.Payload
	if page.Head, err = optionalRevision(p.CurrentRevision); err != nil {
		return page, fmt.Errorf("cloudtower: %s: %w: currentRevision: %w", opPoll, stream.ErrProtocol, err)
	}
	if page.Compact, err = optionalRevision(p.CompactRevision); err != nil {
		return page, fmt.Errorf("cloudtower: %s: %w: compactRevision: %w", opPoll, stream.ErrProtocol, err)
	}
	page.Items = p.Data
	return page, nil
}

// Revision returns the revision of ev; see RevisionOf.
func (s *Source) Revision(ev *models.ResourceChangeEvent) (stream.Revision, error) {
	return RevisionOf(ev)
}

// RevisionOf returns the revision of a change event. A nil event, a
// missing revision or one that is not a decimal number is an error
// wrapping stream.ErrInvalidRevision. It suits operators that need a
// func(T) (stream.Revision, error), such as a checkpoint.
func RevisionOf(ev *models.ResourceChangeEvent) (stream.Revision, error) {
	if ev == nil {
		return stream.Revision{}, fmt.Errorf("%w: nil event", stream.ErrInvalidRevision)
	}
	if ev.Revision == nil {
		return stream.Revision{}, fmt.Errorf("%w: event has no revision", stream.ErrInvalidRevision)
	}
	return stream.ParseRevision(*ev.Revision)
}

// Watch watches s with the stream engine: it is
// stream.Watch[*models.ResourceChangeEvent](ctx, s, opts...), with the same
// defaults. The stream starts at the server's head (FromNow) unless After
// or FromStart is given:
//
//	for ev, err := range src.Watch(ctx, cloudtower.After(rev)) {
//		if err != nil {
//			return err // ended: see the package documentation
//		}
//		handle(ev)
//	}
//
// A nil s yields one fatal error.
func (s *Source) Watch(ctx context.Context, opts ...stream.Option) iter.Seq2[*models.ResourceChangeEvent, error] {
	return stream.Watch[*models.ResourceChangeEvent](ctx, s, opts...)
}

// After is stream.After: start after rev (exclusive).
func After(rev stream.Revision) stream.Option { return stream.After(rev) }

// FromStart is stream.FromStart: start from the oldest change the server
// keeps.
func FromStart() stream.Option { return stream.FromStart() }

// FromNow is stream.FromNow: start at the server's head (the default).
func FromNow() stream.Option { return stream.FromNow() }

// optionalRevision parses a revision the server may leave out: nil or ""
// is the zero Revision.
func optionalRevision(s *string) (stream.Revision, error) {
	if s == nil || *s == "" {
		return stream.Revision{}, nil
	}
	return stream.ParseRevision(*s)
}

func ptr[T any](v T) *T { return &v }
