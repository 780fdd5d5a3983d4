// Package wire defines how towerwatch carries a change feed over NATS
// JetStream: the subjects, the headers and the message body. It is the
// contract between a publishing bridge (package bridge, built on package
// sink) and its consumers (package source), and it is meant to be read
// by consumers written in other languages, which see only the messages.
//
// # Stream and subjects
//
// One JetStream stream (DefaultStream, "CLOUDTOWER_CHANGES", unless
// configured) holds the feed of one CloudTower, and nothing else: its only
// subject filter is "<prefix>.>", with the prefix DefaultPrefix
// ("cloudtower.changes") unless configured. A change is published on
//
//	<prefix>.<resource type>.<action>      for example cloudtower.changes.Vm.UPDATE
//
// where the resource type and the action are CloudTower's strings passed
// through Token: any byte other than an ASCII letter, digit, '-' or '_'
// becomes '_', and an empty string becomes "_". A consumer interested in
// virtual machines subscribes to "cloudtower.changes.Vm.>", in deletions
// of anything to "cloudtower.changes.*.DELETE".
//
// Messages are in revision order: along the stream, stream sequence and
// revision both strictly increase, and each revision is stored once.
//
// # Headers
//
//	Nats-Msg-Id               the revision: the server drops a republished
//	                          revision within the stream's duplicate window
//	Towerwatch-Revision       the revision, a decimal string of up to 256 digits
//	Towerwatch-Prev-Revision  the revision of the change published just before
//	                          this one on the stream, or, for the first
//	                          message, the revision the bridge started after
//	                          ("0" from the start of the feed)
//	Towerwatch-Resource-Type  CloudTower's resource_type, verbatim
//	Towerwatch-Resource-Id    CloudTower's resource_id, verbatim
//	Towerwatch-Action         CloudTower's action, verbatim
//	Content-Type              application/json
//
// The previous revision chains the messages together: a consumer whose
// position is p and whose next message m has Towerwatch-Prev-Revision
// greater than p has missed the changes in between (the stream's limits
// discarded them, or the bridge skipped them after CloudTower compacted its
// history), exactly as a CloudTower client whose position is below the
// server's compactRevision. Package source reports that as a
// *stream.CompactedError whose Compact is that previous revision.
//
// # Body
//
// The body is the change as the JSON object CloudTower's
// /v2/api/resource-changes endpoint returns in its "data" array, encoded
// by the CloudTower SDK's models.ResourceChangeEvent:
//
//	{"action":"UPDATE","created_at":"2025-01-02T03:04:05.678Z",
//	 "new_value":"{...}","old_value":"{...}","prev_revision":"41",
//	 "resource_id":"cl0...","resource_type":"Vm","revision":"42"}
//
// Every field is a JSON string; absent ones are left out. new_value and
// old_value hold JSON documents as strings. prev_revision is CloudTower's
// own field, the previous change of the same resource, passed through
// untouched: nothing here relies on it. It is distinct from the
// Towerwatch-Prev-Revision header, the previous change on this stream,
// which alone carries the chaining (and the gap detection) above.
//
// Other item types plug in with a Codec: the headers Nats-Msg-Id,
// Towerwatch-Revision and Towerwatch-Prev-Revision, the ordering and the
// chaining are the same for every codec; the subject below the prefix,
// the other headers and the body are the codec's.
package wire

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/stream"
)

// Defaults shared by the bridge, the sink and the source.
const (
	// DefaultStream is the name of the JetStream stream.
	DefaultStream = "CLOUDTOWER_CHANGES"
	// DefaultPrefix is the subject prefix: changes are published on
	// DefaultPrefix + ".<resource type>.<action>".
	DefaultPrefix = "cloudtower.changes"
)

// Header names.
const (
	HeaderMsgID        = "Nats-Msg-Id" // = nats.MsgIdHdr
	HeaderRevision     = "Towerwatch-Revision"
	HeaderPrevRevision = "Towerwatch-Prev-Revision"
	HeaderResourceType = "Towerwatch-Resource-Type"
	HeaderResourceID   = "Towerwatch-Resource-Id"
	HeaderAction       = "Towerwatch-Action"
	HeaderContentType  = "Content-Type"
)

// ErrMessage is wrapped by errors about a message that does not follow
// this format (a missing or invalid revision header, an undecodable body).
var ErrMessage = errors.New("wire: malformed message")

// Message is one item as it travels, before the sink adds the revision
// headers, or as a consumer received it.
type Message struct {
	// Subject is the full subject when decoding. When encoding, it is the
	// part after the prefix ("Vm.UPDATE"): the sink prepends the prefix and
	// a dot.
	Subject string
	// Header holds the codec's own headers; it may be nil. When encoding,
	// the map becomes the published message's: the sink adds the revision
	// headers to it, so Encode must return a new map each time (room for
	// six more entries saves the sink a map growth).
	Header nats.Header
	// Data is the body.
	Data []byte
}

// Codec converts the items of a feed to messages and back. Implementations
// must be safe for concurrent use.
type Codec[E any] interface {
	// Revision returns the item's revision (the same as the feed's
	// stream.Source would).
	Revision(item E) (stream.Revision, error)
	// Encode returns the message for item; its Subject is relative to the
	// prefix and must be a valid NATS subject (use Token for each part).
	Encode(item E) (Message, error)
	// Decode rebuilds an item from a message published by Encode.
	Decode(msg Message) (E, error)
}

// HeaderEncoder is implemented by codecs that can write their headers into
// a map the caller reuses from message to message (package sink does), to
// save an allocation per message. EncodeHeader is Encode with the headers
// set in h, with SetHeader; h holds the previous message's headers, so
// EncodeHeader must set (or delete) every header the codec uses. The
// returned Message's Header is h.
type HeaderEncoder[E any] interface {
	EncodeHeader(item E, h nats.Header) (Message, error)
}

// SetHeader sets h[key] to the single value v, reusing the slice h[key]
// holds, if any. key must be in canonical form (as the Header* constants).
func SetHeader(h nats.Header, key, v string) {
	if s := h[key]; cap(s) > 0 {
		s = s[:1]
		s[0] = v
		h[key] = s
		return
	}
	h[key] = []string{v}
}

// Token turns s into one NATS subject token: every byte other than an ASCII
// letter, digit, '-' or '_' becomes '_', and "" becomes "_". Tokens of
// CloudTower's resource types and actions ("Vm", "VmVolume", "_LabelToVm",
// "INSERT", "UPDATE")
// pass through unchanged.
func Token(s string) string {
	if s == "" {
		return "_"
	}
	ok := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !tokenByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// ValidPrefix reports whether prefix can prefix the subjects: one or more
// dot-separated tokens, without wildcards or white space. Its error wraps
// stream.ErrInvalidOption.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("wire: %w: empty subject prefix", stream.ErrInvalidOption)
	}
	for _, tok := range strings.Split(prefix, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") {
			return fmt.Errorf("wire: %w: subject prefix %q has an empty token, a wildcard or white space", stream.ErrInvalidOption, prefix)
		}
	}
	return nil
}

// RevisionHeader returns the revision in h's Towerwatch-Revision header.
func RevisionHeader(h nats.Header) (stream.Revision, error) {
	v := get(h, HeaderRevision)
	if v == "" {
		return stream.Revision{}, fmt.Errorf("%w: no %s header", ErrMessage, HeaderRevision)
	}
	r, err := stream.ParseRevision(v)
	if err != nil {
		return stream.Revision{}, fmt.Errorf("%w: %s header: %w", ErrMessage, HeaderRevision, err)
	}
	return r, nil
}

// PrevRevisionHeader returns the revision in h's Towerwatch-Prev-Revision
// header, or the zero Revision if there is none.
func PrevRevisionHeader(h nats.Header) (stream.Revision, error) {
	v := get(h, HeaderPrevRevision)
	if v == "" {
		return stream.Revision{}, nil
	}
	r, err := stream.ParseRevision(v)
	if err != nil {
		return stream.Revision{}, fmt.Errorf("%w: %s header: %w", ErrMessage, HeaderPrevRevision, err)
	}
	return r, nil
}

// get is h.Get(key) for a canonical key, without canonicalizing it again
// when the publisher sent it in that form (as package sink does).
func get(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return h.Get(key)
}

// CloudTower is the codec of CloudTower's change events described in the
// package documentation.
type CloudTower struct{}

var (
	_ Codec[*models.ResourceChangeEvent]         = CloudTower{}
	_ HeaderEncoder[*models.ResourceChangeEvent] = CloudTower{}
)

// Revision returns the event's revision; see cloudtower.RevisionOf.
func (CloudTower) Revision(ev *models.ResourceChangeEvent) (stream.Revision, error) {
	return cloudtower.RevisionOf(ev)
}

// Encode returns the message of ev: subject "<resource type>.<action>",
// the resource headers, and the SDK model's JSON as the body.
func (c CloudTower) Encode(ev *models.ResourceChangeEvent) (Message, error) {
	// The sink adds up to five headers: room for ten.
	return c.EncodeHeader(ev, make(nats.Header, 10))
}

// EncodeHeader is Encode with the headers set in h; see HeaderEncoder.
func (CloudTower) EncodeHeader(ev *models.ResourceChangeEvent, h nats.Header) (Message, error) {
	if ev == nil {
		return Message{}, fmt.Errorf("wire: nil event")
	}
	data, err := cloudtower.EncodeEvent(ev) // ev.MarshalJSON's bytes, faster
	if err != nil {
		return Message{}, fmt.Errorf("wire: encoding the change: %w", err)
	}
	typ, action, id := deref(ev.ResourceType), deref(ev.Action), deref(ev.ResourceID)
	SetHeader(h, HeaderResourceType, typ)
	SetHeader(h, HeaderResourceID, id)
	SetHeader(h, HeaderAction, action)
	SetHeader(h, HeaderContentType, "application/json")
	return Message{Subject: subjects.get(typ, action), Header: h, Data: data}, nil
}

// subjectCache maps a resource type and an action to the relative subject
// "<Token(type)>.<Token(action)>". CloudTower has a few dozen resource
// types and three actions; the cache stops growing at maxSubjects entries.
type subjectCache struct {
	m sync.Map // subjectKey -> string
	n atomic.Int64
}

type subjectKey struct{ typ, action string }

const maxSubjects = 4096

var subjects subjectCache

func (c *subjectCache) get(typ, action string) string {
	k := subjectKey{typ, action}
	if s, ok := c.m.Load(k); ok {
		return s.(string)
	}
	s := Token(typ) + "." + Token(action)
	if c.n.Load() < maxSubjects {
		if _, loaded := c.m.LoadOrStore(k, s); !loaded {
			c.n.Add(1)
		}
	}
	return s
}

// Decode parses the body as a models.ResourceChangeEvent. An event without
// a revision in its body takes the one of the Towerwatch-Revision header.
func (CloudTower) Decode(msg Message) (*models.ResourceChangeEvent, error) {
	ev, err := cloudtower.DecodeEvent(msg.Data) // json.Unmarshal's result, faster
	if err != nil {
		return nil, fmt.Errorf("%w: body of a message on %s: %w", ErrMessage, msg.Subject, err)
	}
	if ev.Revision == nil {
		r, err := RevisionHeader(msg.Header)
		if err != nil {
			return nil, err
		}
		s := r.String()
		ev.Revision = &s
	}
	return ev, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
