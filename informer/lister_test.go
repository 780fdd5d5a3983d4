package informer_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/towerwatch/towerwatch/informer"
)

func listAll(t *testing.T, l informer.Lister[*obj]) []string {
	t.Helper()
	var got []string
	require.NoError(t, l.List(t.Context(), func(page []*obj) error {
		for _, o := range page {
			got = append(got, o.ID)
		}
		return nil
	}))
	return got
}

// Objects deleted before the offset while listing shift the pages down:
// plain offset paging would skip objects that existed all along;
// OffsetLister does not, and gives none twice.
func TestOffsetListerSurvivesShifts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(w *world, fetch int)
	}{
		{"deletes before the offset", func(w *world, fetch int) {
			if fetch == 2 || fetch == 4 {
				for i := range 6 {
					if _, ok := w.state()[id(i)]; ok {
						w.remove(id(i))
					}
				}
			}
		}},
		{"inserts before the offset", func(w *world, fetch int) {
			if fetch <= 3 {
				for i := range 5 {
					w.insert(obj{ID: id(0) + string(rune('a'+fetch)) + string(rune('a'+i))})
				}
			}
		}},
		{"delete of the page's last object", func(w *world, fetch int) {
			if fetch == 2 {
				w.remove(id(4))
			}
		}},
		{"everything deleted", func(w *world, fetch int) {
			if fetch == 2 {
				for k := range w.state() {
					w.remove(k)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(40)
			stable := map[string]bool{} // objects that exist during the whole list
			for k := range w.state() {
				stable[k] = true
			}
			fetch := 0
			w.beforeFetch = func(int) {
				fetch++
				before := w.state()
				tc.change(w, fetch)
				after := w.state()
				for k := range before {
					if _, ok := after[k]; !ok {
						delete(stable, k)
					}
				}
			}
			got := listAll(t, w.lister(5))
			require.True(t, slices.IsSorted(got), got)
			require.Len(t, slices.Compact(slices.Clone(got)), len(got), "an object given twice")
			for k := range stable {
				require.Contains(t, got, k)
			}
		})
	}
}

// The scenario is real: plain offset paging, on the same deletions,
// misses objects that existed during the whole list.
func TestPlainOffsetPagingMisses(t *testing.T) {
	w := newWorld(40)
	fetch := 0
	w.beforeFetch = func(int) {
		if fetch++; fetch == 2 {
			w.remove(id(0))
			w.remove(id(1))
		}
	}
	seen := map[string]bool{}
	for skip := 0; ; skip += 5 {
		page, err := w.fetch(t.Context(), skip, 5)
		require.NoError(t, err)
		for _, o := range page {
			seen[o.ID] = true
		}
		if len(page) < 5 {
			break
		}
	}
	require.False(t, seen[id(5)] && seen[id(6)], "plain offset paging saw everything")
	require.Contains(t, listAll(t, w.lister(5)), id(5))
	require.Contains(t, listAll(t, w.lister(5)), id(6))
}

func TestOffsetListerErrors(t *testing.T) {
	w := newWorld(3)
	err := informer.OffsetLister(keyOf, 1, w.fetch).List(t.Context(), func([]*obj) error { return nil })
	require.Error(t, err)
	unsorted := informer.OffsetLister(keyOf, 5, func(context.Context, int, int) ([]*obj, error) {
		return []*obj{{ID: "b"}, {ID: "a"}}, nil
	})
	require.ErrorContains(t, unsorted.List(t.Context(), func([]*obj) error { return nil }), "ascending")
	stop := errors.New("stop")
	require.ErrorIs(t, w.lister(2).List(t.Context(), func([]*obj) error { return stop }), stop)
}
