package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"
)

// Record is how -o ndjson and -o json print one change:
//
//	{"revision":"123","type":"Vm","id":"ckx...","action":"UPDATE","time":"2025-01-02T03:04:05.678Z","new":{...},"old":{...}}
//
// time is the server's created_at, verbatim. new and old are the new and
// old values decoded as JSON; a value that is not valid JSON is printed as
// a JSON string. A field the server left out or sent empty is omitted (a
// INSERT has no "old", a DELETE no "new").
type Record struct {
	Revision string          `json:"revision"`
	Type     string          `json:"type,omitempty"`
	ID       string          `json:"id,omitempty"`
	Action   string          `json:"action,omitempty"`
	Time     string          `json:"time,omitempty"`
	New      json.RawMessage `json:"new,omitempty"`
	Old      json.RawMessage `json:"old,omitempty"`
}

// NewRecord converts a change to its printed form.
func NewRecord(ev *models.ResourceChangeEvent) Record {
	return Record{
		Revision: str(ev.Revision),
		Type:     str(ev.ResourceType),
		ID:       str(ev.ResourceID),
		Action:   str(ev.Action),
		Time:     str(ev.CreatedAt),
		New:      jsonValue(ev.NewValue),
		Old:      jsonValue(ev.OldValue),
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// jsonValue returns s as JSON: itself if it is valid JSON, else quoted;
// nil if absent or empty.
func jsonValue(s *string) json.RawMessage {
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil
	}
	if json.Valid([]byte(*s)) {
		return json.RawMessage(*s) // the encoder compacts it
	}
	q, _ := json.Marshal(*s)
	return q
}

// newPrinter returns the Sink for an output format, writing to w.
func newPrinter(format string, w io.Writer) Sink {
	bw := bufio.NewWriterSize(w, 32<<10)
	switch format {
	case "table":
		t := &tablePrinter{bw: bw, widths: [...]int{8, 10, 25, 6, 19}}
		t.row("REVISION", "TYPE", "ID", "ACTION", "TIME", "NAME")
		return t
	case "json":
		bw.WriteString("[")
		return &jsonPrinter{bw: bw, array: true}
	default:
		return &jsonPrinter{bw: bw}
	}
}

// jsonPrinter prints ndjson, or one JSON array.
type jsonPrinter struct {
	bw    *bufio.Writer
	array bool
	n     int
	buf   bytes.Buffer
}

func (p *jsonPrinter) Write(ev *models.ResourceChangeEvent) error {
	p.buf.Reset()
	enc := json.NewEncoder(&p.buf)
	enc.SetEscapeHTML(false)
	if p.array {
		enc.SetIndent("  ", "  ")
	}
	if err := enc.Encode(NewRecord(ev)); err != nil {
		return fmt.Errorf("encoding revision %s: %w", str(ev.Revision), err)
	}
	if p.array {
		if p.n > 0 {
			p.bw.WriteString(",")
		}
		p.bw.WriteString("\n  ")
		p.buf.Truncate(p.buf.Len() - 1) // the encoder's newline
	}
	p.n++
	_, err := p.bw.Write(p.buf.Bytes())
	return err
}

func (p *jsonPrinter) Flush() error { return p.bw.Flush() }

func (p *jsonPrinter) Close() error {
	if p.array {
		if p.n > 0 {
			p.bw.WriteString("\n")
		}
		p.bw.WriteString("]\n")
	}
	return p.bw.Flush()
}

// tablePrinter prints aligned columns, streaming: a column widens (for the
// rows after) when a value does not fit.
type tablePrinter struct {
	bw     *bufio.Writer
	widths [5]int
}

func (t *tablePrinter) Write(ev *models.ResourceChangeEvent) error {
	t.row(str(ev.Revision), str(ev.ResourceType), str(ev.ResourceID), str(ev.Action), shortTime(str(ev.CreatedAt)), name(ev))
	return nil
}

func (t *tablePrinter) row(cols ...string) {
	for i := range cols {
		cols[i] = clean(cols[i])
	}
	// The columns after last are empty: no padding before them, so that a
	// row without a name (a Label, a VmNic) has no trailing spaces.
	last := len(cols) - 1
	for last > 0 && cols[last] == "" {
		last--
	}
	for i, c := range cols[:len(t.widths)] {
		n := utf8.RuneCountInString(c)
		t.widths[i] = max(t.widths[i], n)
		t.bw.WriteString(c)
		if i < last {
			t.bw.WriteString(strings.Repeat(" ", t.widths[i]-n+2))
		}
	}
	t.bw.WriteString(cols[len(t.widths)])
	t.bw.WriteString("\n")
}

func (t *tablePrinter) Flush() error { return t.bw.Flush() }
func (t *tablePrinter) Close() error { return t.bw.Flush() }

// shortTime shows a created_at in local time to the second.
func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Local().Format(time.DateTime)
}

// name returns the "name" of the new value, or else of the old one,
// shortened; "" if neither has one.
func name(ev *models.ResourceChangeEvent) string {
	for _, v := range []*string{ev.NewValue, ev.OldValue} {
		if v == nil || *v == "" {
			continue
		}
		var o struct {
			Name any `json:"name"`
		}
		if json.Unmarshal([]byte(*v), &o) != nil {
			continue
		}
		if s, ok := o.Name.(string); ok && s != "" {
			if utf8.RuneCountInString(s) > 40 {
				s = string([]rune(s)[:39]) + "…"
			}
			return s
		}
	}
	return ""
}

// clean drops control characters, so that a value cannot move the cursor
// or change the terminal's state.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || (r >= 0x7f && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}
