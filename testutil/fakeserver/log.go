package fakeserver

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Actions of the changes, as CloudTower spells them.
const (
	ActionInsert = "INSERT"
	ActionUpdate = "UPDATE"
	ActionDelete = "DELETE"
)

// Event is one change in the server's log.
//
// Append assigns Revision, PrevRevision and (when zero) CreatedAt; every
// other field is served verbatim. An empty NewValue or OldValue is left out
// of the JSON event, and so is a zero PrevRevision.
type Event struct {
	// Revision is the event's position in the log, from 1 upwards.
	Revision uint64
	// PrevRevision is the revision of the previous change of the same
	// resource (same ResourceType and ResourceID), 0 for its first change:
	// for an event without a ResourceID, and for the first change after
	// the resource's ActionDelete. It is served as prev_revision, which is
	// left out when 0 (the SDK sees nil).
	PrevRevision uint64
	// Action is what happened: ActionInsert, ActionUpdate or ActionDelete
	// for generated events.
	Action string
	// ResourceType is the kind of resource, such as TypeVM.
	ResourceType string
	// ResourceID is the resource's id, a CloudTower cuid for generated
	// events.
	ResourceID string
	// NewValue is the resource as JSON after the change ("" for a delete).
	NewValue string
	// OldValue is the resource as JSON before the change ("" for an
	// insert; the deleted object for a delete).
	OldValue string
	// CreatedAt is when the change happened; it is served in UTC with
	// millisecond precision.
	CreatedAt time.Time
}

// eventLog is the ordered, compactable list of events.
type eventLog struct {
	mu          sync.RWMutex
	events      []Event  // retained events, revisions strictly increasing
	encoded     [][]byte // the JSON of each of events, made once at append
	head        uint64   // newest revision ever appended
	compact     uint64   // newest discarded revision
	retention   int      // keep at most this many events; 0 means all
	lastCreated time.Time
	last        map[resKey]uint64 // revision of each resource's latest change, until its delete
	state       map[string]map[string]*resState
}

// resKey names a resource.
type resKey struct{ typ, id string }

// resState is the current state of one resource.
type resState struct {
	value string // a JSON object
	rev   uint64 // revision of the change that set it
}

func (l *eventLog) init() {
	l.last = map[resKey]uint64{}
	l.state = map[string]map[string]*resState{}
}

// track sets e's PrevRevision (e.Revision is already assigned) and applies
// e to the state. trusted events (generated ones) hold JSON objects for
// sure; others are checked before they enter the state.
func (l *eventLog) track(e *Event, trusted bool) {
	if e.ResourceID == "" {
		return
	}
	k := resKey{e.ResourceType, e.ResourceID}
	e.PrevRevision = l.last[k]
	switch e.Action {
	case ActionDelete:
		delete(l.last, k)
		if m := l.state[e.ResourceType]; m != nil {
			delete(m, e.ResourceID)
		}
		return
	case ActionInsert, ActionUpdate:
		if e.NewValue != "" && (trusted || isJSONObject(e.NewValue)) {
			m := l.state[e.ResourceType]
			if m == nil {
				m = map[string]*resState{}
				l.state[e.ResourceType] = m
			}
			if st := m[e.ResourceID]; st != nil {
				st.value, st.rev = e.NewValue, e.Revision
			} else {
				m[e.ResourceID] = &resState{value: e.NewValue, rev: e.Revision}
			}
		}
	}
	l.last[k] = e.Revision
}

// append adds evs and returns the new head. now is used for events without
// a CreatedAt; created_at never goes backwards.
func (l *eventLog) append(now time.Time, evs []Event, trusted bool) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	now = now.Truncate(time.Millisecond)
	for _, e := range evs {
		if e.CreatedAt.IsZero() {
			e.CreatedAt = now
			if e.CreatedAt.Before(l.lastCreated) {
				e.CreatedAt = l.lastCreated
			}
		}
		if e.CreatedAt.After(l.lastCreated) {
			l.lastCreated = e.CreatedAt
		}
		e.PrevRevision = 0
		l.head++
		e.Revision = l.head
		l.track(&e, trusted)
		l.events = append(l.events, e)
		l.encoded = append(l.encoded, appendEvent(nil, &e, corruptNone))
	}
	l.applyRetentionLocked()
	return l.head
}

// reserve makes room for n more events, so that a large Generate does not
// copy the log over and over.
func (l *eventLog) reserve(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retention > 0 {
		n = min(n, l.retention)
	}
	l.events = slices.Grow(l.events, n)
	l.encoded = slices.Grow(l.encoded, n)
}

func (l *eventLog) applyRetentionLocked() {
	if l.retention > 0 && len(l.events) > l.retention {
		l.dropLocked(len(l.events) - l.retention)
	}
}

// dropLocked discards the n oldest retained events.
func (l *eventLog) dropLocked(n int) {
	if n <= 0 {
		return
	}
	l.compact = l.events[n-1].Revision
	l.events = dropFront(l.events, n)
	l.encoded = dropFront(l.encoded, n)
}

// dropFront discards the n first elements of s. It copies the survivors
// when most of the backing array is dead, so that memory stays
// proportional to what is retained.
func dropFront[T any](s []T, n int) []T {
	clear(s[:n])
	s = s[n:]
	if len(s) < cap(s)/4 {
		s = append(make([]T, 0, 2*len(s)+16), s...)
	}
	return s
}

// compactTo discards every event at or below upTo (clamped to the head)
// and returns the compact revision.
func (l *eventLog) compactTo(upTo uint64) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	upTo = min(upTo, l.head)
	if upTo <= l.compact {
		return l.compact
	}
	n := l.indexAbove(upTo)
	l.dropLocked(n)
	l.compact = upTo // also when no retained event was at exactly upTo
	return l.compact
}

// indexAbove returns the index of the first retained event with a revision
// above rev.
func (l *eventLog) indexAbove(rev uint64) int {
	return sort.Search(len(l.events), func(i int) bool { return l.events[i].Revision > rev })
}

func (l *eventLog) setRetention(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.retention = max(n, 0)
	l.applyRetentionLocked()
}

func (l *eventLog) revisions() (head, compact uint64, n int) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.head, l.compact, len(l.events)
}

func (l *eventLog) snapshot(after uint64) []Event {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := l.indexAbove(after)
	return append([]Event(nil), l.events[i:]...)
}

// pageQuery is a validated resource-change query.
type pageQuery struct {
	start     uint64
	hasStart  bool
	beyond    bool // start_revision does not fit in a uint64
	inclusive bool
	newest    bool // with no start: the newest page rather than the oldest
	limit     int
	filter    filter
}

// filter selects events by type, id and action; empty fields match all.
type filter struct {
	types  []string
	id     string
	action string
}

func (f *filter) match(e *Event) bool {
	if f.id != "" && e.ResourceID != f.id {
		return false
	}
	if f.action != "" && e.Action != f.action {
		return false
	}
	if len(f.types) == 0 {
		return true
	}
	for _, t := range f.types {
		if e.ResourceType == t {
			return true
		}
	}
	return false
}

// page appends the events of the page q selects to p, in revision order,
// with their JSON, and returns the head and compact revisions.
func (l *eventLog) page(p *pageEvents, q *pageQuery) (head, compact uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	evs := l.events
	take := func(i int) {
		p.ev = append(p.ev, evs[i])
		p.enc = append(p.enc, l.encoded[i])
	}
	n0 := len(p.ev)
	if !q.hasStart && q.newest {
		for i := len(evs) - 1; i >= 0 && len(p.ev)-n0 < q.limit; i-- {
			if q.filter.match(&evs[i]) {
				take(i)
			}
		}
		slices.Reverse(p.ev[n0:])
		slices.Reverse(p.enc[n0:])
		return l.head, l.compact
	}
	from := 0
	if q.hasStart {
		switch {
		case q.beyond:
			from = len(evs)
		case q.inclusive && q.start > 0:
			from = l.indexAbove(q.start - 1)
		default:
			from = l.indexAbove(q.start)
		}
	}
	for i := from; i < len(evs) && len(p.ev)-n0 < q.limit; i++ {
		if q.filter.match(&evs[i]) {
			take(i)
		}
	}
	return l.head, l.compact
}
