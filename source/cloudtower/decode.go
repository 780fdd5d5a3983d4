package cloudtower

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/go-openapi/runtime"
	"github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"
	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/stream"
)

// Decoding a page of 1000 changes with encoding/json through the SDK costs
// about 6 µs and 18 allocations per change, several times what fetching
// it costs. The Source therefore reads 200 responses itself (fastReader)
// with a decoder specialised for the one shape this endpoint returns.
//
// The decoder is exact, not approximate: it accepts only the plain shape
// (the known keys once each, string or null values, the escapes \" \\ \/
// \b \f \n \r \t, valid UTF-8, nothing after the object). Anything else
// (unknown or duplicate keys, \u escapes, a non-null "error", invalid
// UTF-8, trailing data, a syntax error) makes it give up, and the body is
// decoded by encoding/json exactly as the SDK would (same result, same
// error). FuzzDecodeResponse checks that the two agree.
//
// Each event's strings share one allocation of their own (never the page's
// buffer), so keeping an event does not keep its page alive.

// errSlowPath means the fast decoder declined the input.
var errSlowPath = errors.New("cloudtower: not the plain response shape")

// fastReader reads 200 responses of GET /resource-changes with
// DecodeResponse, at most max bytes of them, and leaves every other status
// to the SDK's reader.
type fastReader struct {
	next runtime.ClientResponseReader
	max  int64
	ctx  context.Context // the poll's, for hintLast (hint.go)
}

// decodeFast is the SDK client option that installs fastReader.
func (s *Source) decodeFast(op *runtime.ClientOperation) {
	if op.Reader != nil {
		op.Reader = fastReader{next: op.Reader, max: s.maxBytes, ctx: op.Context}
	}
}

// TooLargeError reports a response body larger than the Source's
// MaxResponseBytes. It wraps stream.ErrProtocol: the poll is retried.
type TooLargeError struct {
	Limit int64 // the bound, in bytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("response body larger than %d bytes", e.Limit)
}

// Unwrap returns stream.ErrProtocol.
func (e *TooLargeError) Unwrap() error { return stream.ErrProtocol }

// maxPooledBody bounds the buffers kept for reuse; a page of 1000 typical
// changes is under 1 MiB.
const maxPooledBody = 8 << 20

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (r fastReader) ReadResponse(resp runtime.ClientResponse, consumer runtime.Consumer) (any, error) {
	if resp.Code() != 200 {
		return r.next.ReadResponse(resp, consumer)
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyPool.Put(buf)
		}
	}()
	buf.Reset()
	limit := r.max
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	// One byte more than the bound tells a body over it from one at it,
	// without reading (or buffering) any further.
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body(), limit+1)); err != nil {
		return nil, models.NewUnexpectedError(resp, err)
	}
	if int64(buf.Len()) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	hintLast(r.ctx, buf.Bytes())
	payload, err := DecodeResponse(buf.Bytes())
	if err != nil {
		return nil, models.NewUnexpectedError(resp, err)
	}
	return &resource_change.GetResourceChangesOK{Payload: payload}, nil
}

// DecodeResponse decodes the body of a 200 response of GET
// /resource-changes exactly as the SDK does (encoding/json with UseNumber;
// an empty body is an empty response; the same errors), several times
// faster: see the comment at the top of decode.go. A Source decodes with
// it; it is exported for tools that record or replay raw responses, and
// for the benchmarks. It does not retain b.
func DecodeResponse(b []byte) (*models.ResourceChangeResponse, error) {
	if resp, err := decodeFastPath(b); err == nil {
		return resp, nil
	}
	return decodeSlowPath(b)
}

// DecodeEvent decodes one change event, as json.Unmarshal into a
// models.ResourceChangeEvent would (same result, same errors), with the
// fast decoder of DecodeResponse. It is meant for events stored or
// forwarded one by one, such as the JetStream bridge's messages. It does
// not retain b.
func DecodeEvent(b []byte) (*models.ResourceChangeEvent, error) {
	d := fastDecoder{b: b}
	if ev, err := d.event(); err == nil {
		if d.ws(); d.i == len(b) {
			return ev, nil
		}
	}
	ev := new(models.ResourceChangeEvent)
	if err := json.Unmarshal(b, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeSlowPath is the SDK's own decoding (runtime.JSONConsumer).
func decodeSlowPath(b []byte) (*models.ResourceChangeResponse, error) {
	resp := new(models.ResourceChangeResponse)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(resp); err != nil && err != io.EOF {
		return nil, err
	}
	return resp, nil
}

// Event fields, in the order of eventKeys.
const (
	fAction = iota
	fCreatedAt
	fNewValue
	fOldValue
	fPrevRevision
	fResourceID
	fResourceType
	fRevision
	nFields
)

var eventKeys = [nFields]string{"action", "created_at", "new_value", "old_value", "prev_revision", "resource_id", "resource_type", "revision"}

// eventBox holds an event and its strings in one allocation.
type eventBox struct {
	ev models.ResourceChangeEvent
	s  [nFields]string
}

type fastDecoder struct {
	b       []byte
	i       int
	scratch []byte // the current event's decoded strings
}

func decodeFastPath(b []byte) (*models.ResourceChangeResponse, error) {
	d := fastDecoder{b: b}
	resp := new(models.ResourceChangeResponse)
	var seen [5]bool // data, currentRevision, compactRevision, ec, error
	err := d.object(func(key []byte) error {
		var k int
		switch string(key) {
		case "data":
			k = 0
		case "currentRevision":
			k = 1
		case "compactRevision":
			k = 2
		case "ec":
			k = 3
		case "error":
			k = 4
		default:
			return errSlowPath
		}
		if seen[k] {
			return errSlowPath
		}
		seen[k] = true
		switch k {
		case 0:
			return d.events(resp)
		case 4:
			return d.null()
		}
		s, ok, err := d.topString()
		if err != nil || !ok {
			return err
		}
		switch k {
		case 1:
			resp.CurrentRevision = &s
		case 2:
			resp.CompactRevision = &s
		case 3:
			resp.Ec = &s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.ws(); d.i != len(d.b) {
		return nil, errSlowPath
	}
	return resp, nil
}

// object parses {"key": value, ...}, calling member with the cursor on
// each value.
func (d *fastDecoder) object(member func(key []byte) error) error {
	if d.ws(); !d.consume('{') {
		return errSlowPath
	}
	if d.ws(); d.consume('}') {
		return nil
	}
	for {
		d.ws()
		key, err := d.key()
		if err != nil {
			return err
		}
		if d.ws(); !d.consume(':') {
			return errSlowPath
		}
		d.ws()
		if err := member(key); err != nil {
			return err
		}
		d.ws()
		if d.consume('}') {
			return nil
		}
		if !d.consume(',') {
			return errSlowPath
		}
	}
}

// events parses the data array (or null).
func (d *fastDecoder) events(resp *models.ResourceChangeResponse) error {
	if d.peek('n') {
		return d.null()
	}
	if !d.consume('[') {
		return errSlowPath
	}
	// A typical change is 300 to 1000 bytes: guess the count from the size.
	data := make([]*models.ResourceChangeEvent, 0, min(len(d.b)/256, MaxPageSize))
	if d.ws(); d.consume(']') {
		resp.Data = data
		return nil
	}
	for {
		d.ws()
		ev, err := d.event()
		if err != nil {
			return err
		}
		data = append(data, ev)
		if d.ws(); d.consume(']') {
			resp.Data = data
			return nil
		}
		if !d.consume(',') {
			return errSlowPath
		}
	}
}

// event parses one event object into a fresh eventBox.
func (d *fastDecoder) event() (*models.ResourceChangeEvent, error) {
	var (
		span    [nFields][2]int
		present [nFields]bool // a string, not null
		seen    [nFields]bool
	)
	d.scratch = d.scratch[:0]
	err := d.object(func(key []byte) error {
		k := -1
		for j := range eventKeys {
			if string(key) == eventKeys[j] {
				k = j
				break
			}
		}
		if k < 0 || seen[k] {
			return errSlowPath
		}
		seen[k] = true
		if d.peek('n') {
			return d.null()
		}
		start := len(d.scratch)
		if err := d.appendString(); err != nil {
			return err
		}
		span[k] = [2]int{start, len(d.scratch)}
		present[k] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	box := new(eventBox)
	all := string(d.scratch)
	ptrs := [nFields]**string{&box.ev.Action, &box.ev.CreatedAt, &box.ev.NewValue, &box.ev.OldValue,
		&box.ev.PrevRevision, &box.ev.ResourceID, &box.ev.ResourceType, &box.ev.Revision}
	for k := range nFields {
		if present[k] {
			box.s[k] = all[span[k][0]:span[k][1]]
			*ptrs[k] = &box.s[k]
		}
	}
	return &box.ev, nil
}

// topString parses a string or null outside an event; ok is false for null.
func (d *fastDecoder) topString() (s string, ok bool, err error) {
	if d.peek('n') {
		return "", false, d.null()
	}
	d.scratch = d.scratch[:0]
	if err := d.appendString(); err != nil {
		return "", false, err
	}
	return string(d.scratch), true, nil
}

// special marks the bytes that end a run of plain string content.
var special = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendString decodes the string at the cursor onto d.scratch. It
// declines \u escapes, control characters and invalid UTF-8, which
// encoding/json handles in ways not worth repeating here.
func (d *fastDecoder) appendString() error {
	if !d.consume('"') {
		return errSlowPath
	}
	b, i, start := d.b, d.i, len(d.scratch)
	for {
		j := i
		for j < len(b) && !special[b[j]] {
			j++
		}
		d.scratch = append(d.scratch, b[i:j]...)
		if j+1 >= len(b) { // no closing quote, or no byte after a backslash
			return errSlowPath
		}
		switch b[j] {
		case '"':
			d.i = j + 1
			if !utf8.Valid(d.scratch[start:]) {
				return errSlowPath
			}
			return nil
		case '\\':
			c := b[j+1]
			switch c {
			case '"', '\\', '/':
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			default: // \u, or invalid
				return errSlowPath
			}
			d.scratch = append(d.scratch, c)
			i = j + 2
		default: // a control character
			return errSlowPath
		}
	}
}

// key returns the bytes of the object key at the cursor, declining
// escapes and control characters.
func (d *fastDecoder) key() ([]byte, error) {
	if !d.consume('"') {
		return nil, errSlowPath
	}
	j := d.i
	for j < len(d.b) && !special[d.b[j]] {
		j++
	}
	if j >= len(d.b) || d.b[j] != '"' {
		return nil, errSlowPath
	}
	k := d.b[d.i:j]
	d.i = j + 1
	return k, nil
}

func (d *fastDecoder) null() error {
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return nil
	}
	return errSlowPath
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) peek(c byte) bool { return d.i < len(d.b) && d.b[d.i] == c }

func (d *fastDecoder) consume(c byte) bool {
	if d.peek(c) {
		d.i++
		return true
	}
	return false
}
