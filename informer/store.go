package informer

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrUnknownIndex is wrapped by the error ByIndex returns for an index
// name that was not registered with the Index option.
var ErrUnknownIndex = errors.New("informer: unknown index")

// IndexFunc returns the index values of an object.
type IndexFunc[V any] func(obj V) []string

// Store is the informer's local copy of the objects, keyed by the
// informer's key function, with the indexes registered by Index.
//
// It is safe for any number of concurrent readers while the informer
// writes. The objects it returns are the stored ones, shared with every
// other reader and with the handlers: they must not be modified (copy one
// before changing it). Slices returned are new and belong to the caller.
// Each read sees the store between two changes, never in the middle of one.
type Store[K comparable, V any] struct {
	mu      sync.RWMutex
	items   map[K]V
	indexes map[string]*index[K, V]
}

type index[K comparable, V any] struct {
	f      IndexFunc[V]
	values map[string]map[K]struct{}
}

func newStore[K comparable, V any](indexes map[string]IndexFunc[V]) *Store[K, V] {
	s := &Store[K, V]{items: map[K]V{}, indexes: map[string]*index[K, V]{}}
	for name, f := range indexes {
		s.indexes[name] = &index[K, V]{f: f, values: map[string]map[K]struct{}{}}
	}
	return s
}

// Get returns the object stored under key, and whether there is one.
func (s *Store[K, V]) Get(key K) (V, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.items[key]
	return v, ok
}

// List returns every stored object, in no particular order.
func (s *Store[K, V]) List() []V {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]V, 0, len(s.items))
	for _, v := range s.items {
		out = append(out, v)
	}
	return out
}

// Keys returns the key of every stored object, in no particular order.
func (s *Store[K, V]) Keys() []K {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]K, 0, len(s.items))
	for k := range s.items {
		out = append(out, k)
	}
	return out
}

// Len returns the number of stored objects.
func (s *Store[K, V]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.items)
}

// ByIndex returns the objects whose index function, for the index
// registered as name, returned value; in no particular order. An unknown
// name is an error wrapping ErrUnknownIndex.
func (s *Store[K, V]) ByIndex(name, value string) ([]V, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, ok := s.indexes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownIndex, name)
	}
	keys := ix.values[value]
	out := make([]V, 0, len(keys))
	for k := range keys {
		out = append(out, s.items[k])
	}
	return out, nil
}

// IndexValues returns the values the index registered as name currently
// holds (each with at least one object), sorted. An unknown name is an
// error wrapping ErrUnknownIndex.
func (s *Store[K, V]) IndexValues(name string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, ok := s.indexes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownIndex, name)
	}
	out := make([]string, 0, len(ix.values))
	for v := range ix.values {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// set stores v under k and returns the previous object. The caller holds
// no lock.
func (s *Store[K, V]) set(k K, v V) (old V, existed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, existed = s.items[k]
	if existed {
		s.unindex(k, old)
	}
	s.items[k] = v
	for _, ix := range s.indexes {
		for _, val := range ix.f(v) {
			m := ix.values[val]
			if m == nil {
				m = map[K]struct{}{}
				ix.values[val] = m
			}
			m[k] = struct{}{}
		}
	}
	return old, existed
}

// remove deletes k and returns the object it held.
func (s *Store[K, V]) remove(k K) (old V, existed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, existed = s.items[k]
	if existed {
		s.unindex(k, old)
		delete(s.items, k)
	}
	return old, existed
}

func (s *Store[K, V]) unindex(k K, v V) {
	for _, ix := range s.indexes {
		for _, val := range ix.f(v) {
			if m := ix.values[val]; m != nil {
				delete(m, k)
				if len(m) == 0 {
					delete(ix.values, val)
				}
			}
		}
	}
}

// snapshot returns a copy of the map; the caller holds no lock.
func (s *Store[K, V]) snapshot() map[K]V {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[K]V, len(s.items))
	for k, v := range s.items {
		m[k] = v
	}
	return m
}
