package fakeserver

import (
	"strconv"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/internal/jsonstr"
)

// buffer is a pooled response body.
type buffer struct{ b []byte }

// maxPooled is the largest buffer kept for reuse (a full page of 1000
// generated events is about 800 KiB).
const maxPooled = 4 << 20

var bufPool = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 4096)} }}

func getBuffer() *buffer { return bufPool.Get().(*buffer) }

func (b *buffer) free() {
	if b == nil || cap(b.b) > maxPooled {
		return
	}
	b.b = b.b[:0]
	bufPool.Put(b)
}

// pageEvents is a pooled scratch space for the events of one page and
// their JSON (nil for an event made up for the page).
type pageEvents struct {
	ev  []Event
	enc [][]byte
}

var pagePool = sync.Pool{New: func() any {
	return &pageEvents{ev: make([]Event, 0, DefaultLimit), enc: make([][]byte, 0, DefaultLimit)}
}}

func (p *pageEvents) free() {
	clear(p.ev) // drop references
	clear(p.enc)
	p.ev, p.enc = p.ev[:0], p.enc[:0]
	pagePool.Put(p)
}

// corruption says how appendPage damages one event of the page.
type corruption int

const (
	corruptNone corruption = iota
	corruptMissingRevision
	corruptInvalidRevision
)

// appendPage appends the 200 response body for the page p. When c is not
// corruptNone, the event at index bad loses its revision or gets an
// invalid one.
func appendPage(dst []byte, p *pageEvents, head, compact uint64, c corruption, bad int) []byte {
	dst = append(dst, `{"data":[`...)
	for i := range p.ev {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch {
		case i == bad:
			dst = appendEvent(dst, &p.ev[i], c)
		case p.enc[i] != nil:
			dst = append(dst, p.enc[i]...)
		default:
			dst = appendEvent(dst, &p.ev[i], corruptNone)
		}
	}
	dst = append(dst, `],"currentRevision":"`...)
	dst = strconv.AppendUint(dst, head, 10)
	dst = append(dst, `","compactRevision":"`...)
	dst = strconv.AppendUint(dst, compact, 10)
	dst = append(dst, `","ec":"0","error":null}`...)
	return dst
}

func appendEvent(dst []byte, e *Event, c corruption) []byte {
	dst = append(dst, `{"action":`...)
	dst = appendString(dst, e.Action)
	dst = append(dst, `,"created_at":"`...)
	dst = appendTime(dst, e.CreatedAt)
	dst = append(dst, '"')
	if e.NewValue != "" {
		dst = append(dst, `,"new_value":`...)
		dst = appendString(dst, e.NewValue)
	}
	if e.OldValue != "" {
		dst = append(dst, `,"old_value":`...)
		dst = appendString(dst, e.OldValue)
	}
	if e.PrevRevision != 0 {
		dst = append(dst, `,"prev_revision":"`...)
		dst = strconv.AppendUint(dst, e.PrevRevision, 10)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"resource_id":`...)
	dst = appendString(dst, e.ResourceID)
	dst = append(dst, `,"resource_type":`...)
	dst = appendString(dst, e.ResourceType)
	switch c {
	case corruptMissingRevision:
		// no revision at all
	case corruptInvalidRevision:
		dst = append(dst, `,"revision":"`...)
		dst = strconv.AppendUint(dst, e.Revision, 10)
		dst = append(dst, `a"`...)
	default:
		dst = append(dst, `,"revision":"`...)
		dst = strconv.AppendUint(dst, e.Revision, 10)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendError appends a CloudTower ErrorBody-like JSON object.
func appendError(dst []byte, status int, code, path, message string) []byte {
	dst = append(dst, `{"message":`...)
	dst = appendString(dst, message)
	dst = append(dst, `,"path":`...)
	dst = appendString(dst, path)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, `,"code":`...)
	dst = appendString(dst, code)
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string literal as CloudTower (Node.js's
// JSON.stringify) writes it: < > & are not escaped.
func appendString(dst []byte, s string) []byte { return jsonstr.AppendNoHTML(dst, s) }

// appendTime appends t in UTC as RFC 3339 with milliseconds, like
// JavaScript's Date.toISOString.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	}
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	dst = append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-',
		byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return dst
}
