package informer

import (
	"fmt"
	"testing"
)

func (n note[K, V]) String() string {
	switch n.kind {
	case kindAdd:
		return fmt.Sprintf("add %v %v initial=%v", n.key, n.obj, n.initial)
	case kindUpdate:
		return fmt.Sprintf("update %v %v->%v", n.key, n.old, n.obj)
	default:
		return fmt.Sprintf("delete %v %v unknown=%v", n.key, n.obj, n.unknown)
	}
}

// Coalescing: per key, the pending notification is the net change from the
// state the handler last saw; its position is that of the oldest.
func TestCoalescing(t *testing.T) {
	add := func(k string, v int) note[string, int] { return note[string, int]{kind: kindAdd, key: k, obj: v} }
	initial := func(k string, v int) note[string, int] {
		return note[string, int]{kind: kindAdd, key: k, obj: v, initial: true}
	}
	upd := func(k string, o, v int) note[string, int] {
		return note[string, int]{kind: kindUpdate, key: k, old: o, obj: v}
	}
	del := func(k string, v int, unknown bool) note[string, int] {
		return note[string, int]{kind: kindDelete, key: k, obj: v, unknown: unknown}
	}
	for _, tc := range []struct {
		name        string
		in          []note[string, int]
		want        []string
		initialLeft int
	}{
		{"distinct keys keep order", []note[string, int]{add("a", 1), upd("b", 1, 2), del("c", 3, false)},
			[]string{"add a 1 initial=false", "update b 1->2", "delete c 3 unknown=false"}, 0},
		{"add+update", []note[string, int]{initial("a", 1), add("b", 1), upd("a", 1, 2), upd("a", 2, 3)},
			[]string{"add a 3 initial=true", "add b 1 initial=false"}, 1},
		{"add+delete", []note[string, int]{initial("a", 1), add("b", 1), upd("a", 1, 2), del("a", 2, false)},
			[]string{"add b 1 initial=false"}, 0},
		{"update+update", []note[string, int]{upd("a", 1, 2), upd("b", 1, 2), upd("a", 2, 3)},
			[]string{"update a 1->3", "update b 1->2"}, 0},
		{"update+delete", []note[string, int]{upd("a", 1, 2), del("a", 2, true)},
			[]string{"delete a 2 unknown=true"}, 0},
		{"delete+add", []note[string, int]{del("a", 1, true), add("a", 5)},
			[]string{"update a 1->5"}, 0},
		{"add again after cancel", []note[string, int]{add("a", 1), del("a", 1, false), add("a", 2), add("b", 0)},
			[]string{"add a 2 initial=false", "add b 0 initial=false"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistration[string, int](nil, nil)
			for _, n := range tc.in {
				r.push(n)
			}
			if r.initialLeft != tc.initialLeft {
				t.Errorf("initialLeft = %d, want %d", r.initialLeft, tc.initialLeft)
			}
			var got []string
			for {
				n, ok := r.pop()
				if !ok {
					break
				}
				got = append(got, n.String())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
			if len(r.pending) != 0 || r.head != nil || r.tail != nil {
				t.Error("queue not empty after draining")
			}
		})
	}
}

// The queue holds one entry per key however many notifications arrive.
func TestQueueBoundedByKeys(t *testing.T) {
	r := newRegistration[int, int](nil, nil)
	for i := range 100_000 {
		k := i % 10
		switch {
		case i < 10:
			r.push(note[int, int]{kind: kindAdd, key: k, obj: i})
		default:
			r.push(note[int, int]{kind: kindUpdate, key: k, old: i - 10, obj: i})
		}
		r.push(note[int, int]{kind: kindAdd, key: 1000 + i, obj: i}) // short-lived objects
		r.push(note[int, int]{kind: kindDelete, key: 1000 + i, obj: i})
	}
	if n := len(r.pending); n != 10 {
		t.Fatalf("pending = %d, want 10", n)
	}
}
