package fakeserver

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestGeneratorConsistency(t *testing.T) {
	s := New(Config{Seed: 42})
	defer s.Close()
	if head := s.Generate(20000); head != 20000 {
		t.Fatalf("head %d", head)
	}
	evs := s.Events(0)
	current := map[string]string{} // live resource id -> current value
	typeOf := map[string]string{}
	deleted := map[string]bool{}
	actions := map[string]int{}
	types := map[string]int{}
	updated := map[string]int{}
	sizes := map[string][2]int{} // type -> total bytes, values
	syncs := 0
	total, values := 0, 0
	checkValue := func(e Event, v string) {
		t.Helper()
		var obj map[string]any
		if err := json.Unmarshal([]byte(v), &obj); err != nil {
			t.Fatalf("rev %d: value is not a JSON object: %v\n%s", e.Revision, err, v)
		}
		if obj["id"] != e.ResourceID {
			t.Fatalf("rev %d: value id %v, want %s", e.Revision, obj["id"], e.ResourceID)
		}
		if len(v) < 60 || len(v) > 700 {
			t.Errorf("rev %d: %s value of %d bytes", e.Revision, e.ResourceType, len(v))
		}
		total += len(v)
		values++
		sz := sizes[e.ResourceType]
		sizes[e.ResourceType] = [2]int{sz[0] + len(v), sz[1] + 1}
	}
	for _, e := range evs {
		id := e.ResourceID
		if len(id) != 25 || id[0] != 'c' || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("rev %d: id %q is not a cuid", e.Revision, id)
		}
		if deleted[id] {
			t.Fatalf("rev %d: %s %s after its deletion", e.Revision, e.Action, id)
		}
		if ty, ok := typeOf[id]; ok && ty != e.ResourceType {
			t.Fatalf("rev %d: %s changed type from %s to %s", e.Revision, id, ty, e.ResourceType)
		}
		actions[e.Action]++
		types[e.ResourceType]++
		switch e.Action {
		case ActionInsert:
			if _, ok := typeOf[id]; ok {
				t.Fatalf("rev %d: %s inserted twice", e.Revision, id)
			}
			if e.OldValue != "" {
				t.Fatalf("rev %d: insert with an old value", e.Revision)
			}
			checkValue(e, e.NewValue)
			current[id] = e.NewValue
		case ActionUpdate, ActionDelete:
			cur, ok := current[id]
			if !ok {
				t.Fatalf("rev %d: %s of %s before its insert", e.Revision, e.Action, id)
			}
			if e.OldValue != cur {
				t.Fatalf("rev %d: old value is not the previous new value", e.Revision)
			}
			if e.Action == ActionDelete {
				if e.NewValue != "" {
					t.Fatalf("rev %d: delete with a new value", e.Revision)
				}
				delete(current, id)
				deleted[id] = true
				break
			}
			if e.ResourceType == TypeLabelToVM {
				t.Fatalf("rev %d: update of a relation", e.Revision)
			}
			if e.NewValue == cur {
				syncs++ // an update with old_value == new_value
			}
			checkValue(e, e.NewValue)
			current[id] = e.NewValue
			updated[id]++
		default:
			t.Fatalf("rev %d: action %q", e.Revision, e.Action)
		}
		typeOf[id] = e.ResourceType
	}
	for _, ty := range ResourceTypes() {
		if types[ty] < 300 {
			t.Errorf("only %d %s events", types[ty], ty)
		}
	}
	if len(types) != len(ResourceTypes()) {
		t.Errorf("types %v", types)
	}
	if actions[ActionInsert] < 1000 || actions[ActionUpdate] < 8000 || actions[ActionDelete] < 1000 {
		t.Errorf("actions %v", actions)
	}
	if syncs < actions[ActionUpdate]/100 || syncs > actions[ActionUpdate]/10 {
		t.Errorf("%d of %d updates with old_value == new_value", syncs, actions[ActionUpdate])
	}
	if vm := sizes[TypeVM]; vm[0]/vm[1] < 350 || vm[0]/vm[1] > 600 {
		t.Errorf("mean Vm value size %d bytes, want about 450", vm[0]/vm[1])
	}
	// The state is what the log says is live.
	for _, ty := range ResourceTypes() {
		for _, r := range s.Resources(ty) {
			if current[r.ID] != r.JSON || typeOf[r.ID] != ty {
				t.Fatalf("state of %s %s differs from the log", ty, r.ID)
			}
			delete(current, r.ID)
		}
	}
	if len(current) != 0 {
		t.Errorf("%d live resources missing from the state", len(current))
	}
	many := 0
	for _, n := range updated {
		if n >= 10 {
			many++
		}
	}
	if many < 100 {
		t.Errorf("only %d resources updated 10 times or more", many)
	}
	means := map[string]int{}
	for ty, sz := range sizes {
		means[ty] = sz[0] / sz[1]
	}
	t.Logf("%d events: %v %v, %d syncs, mean value %d bytes %v", len(evs), actions, types, syncs, total/values, means)
}

func TestGeneratorDeterministic(t *testing.T) {
	fixed := func() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }
	gen := func(seed int64, parts ...int) []Event {
		s := New(Config{Seed: seed, Now: fixed})
		defer s.Close()
		for _, n := range parts {
			s.Generate(n)
		}
		return s.Events(0)
	}
	a := gen(1, 5000)
	if b := gen(1, 1, 2047, 2952); !reflect.DeepEqual(a, b) {
		t.Error("same seed, different events")
	}
	if c := gen(2, 5000); reflect.DeepEqual(a[:10], c[:10]) {
		t.Error("different seeds, same events")
	}
	// Appended events shift revisions but not what is generated.
	s := New(Config{Seed: 1, Now: fixed})
	defer s.Close()
	s.Generate(100)
	appendN(s, 3)
	s.Generate(100)
	mixed := s.Events(0)
	for i := range 200 {
		j := i
		if i >= 100 {
			j = i + 3
		}
		e := mixed[j]
		e.Revision, e.PrevRevision = a[i].Revision, a[i].PrevRevision
		if !reflect.DeepEqual(e, a[i]) {
			t.Fatalf("generated event %d changed by an Append", i)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		s := New(Config{})
		s.Generate(n)
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}
