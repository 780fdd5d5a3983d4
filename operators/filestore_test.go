package operators

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/towerwatch/towerwatch/stream"
)

func TestFileStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "checkpoint.json")
	s := NewFileStore(path)
	r, err := s.Load(ctx)
	if err != nil || !r.IsZero() {
		t.Fatalf("Load of a missing file = %v, %v; want the zero Revision, nil", r, err)
	}
	big := stream.MustParseRevision("123456789012345678901234567890") // beyond 64 bits
	for _, want := range []stream.Revision{rev(1), rev(42), big} {
		if err := s.Save(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := NewFileStore(path).Load(ctx)
		if err != nil || got != want {
			t.Fatalf("Load = %v, %v; want %v", got, err, want)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("file %q is not JSON: %v", b, err)
	}
	if doc["version"] != float64(1) || doc["revision"] != big.String() || doc["updated"] == "" {
		t.Fatalf("file %s: want version 1, the revision as a string, an update time", b)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

func TestFileStoreCorrupt(t *testing.T) {
	ctx := context.Background()
	for name, content := range map[string]string{
		"empty":         "",
		"garbage":       "\x00\x01 not json",
		"truncated":     `{"version":1,"revision":"12`,
		"wrong version": `{"version":2,"revision":"12"}`,
		"no version":    `{"revision":"12"}`,
		"bad revision":  `{"version":1,"revision":"12a"}`,
		"empty rev":     `{"version":1,"revision":""}`,
		"number rev":    `{"version":1,"revision":12}`,
		"unknown field": `{"version":1,"revision":"12","extra":true}`,
		"two objects":   `{"version":1,"revision":"12"}{"version":1,"revision":"13"}`,
	} {
		path := filepath.Join(t.TempDir(), "checkpoint.json")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := NewFileStore(path).Load(ctx)
		if err == nil {
			t.Fatalf("%s: Load = %v, want an error", name, r)
		}
		wantErrIs(t, err, ErrCorruptCheckpoint)
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: error %q does not name the file", name, err)
		}
	}
}

func TestFileStoreIgnoresLeftoverTemp(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "checkpoint.json")
	s := NewFileStore(path)
	if err := s.Save(ctx, rev(5)); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a save leaves a partial temporary file.
	if err := os.WriteFile(path+".tmp", []byte(`{"version":1,"revis`), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Load(ctx); err != nil || r != rev(5) {
		t.Fatalf("Load = %v, %v; want 5", r, err)
	}
	if err := s.Save(ctx, rev(6)); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Load(ctx); err != nil || r != rev(6) {
		t.Fatalf("Load = %v, %v; want 6", r, err)
	}
}

func TestFileStoreErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := NewFileStore(filepath.Join(dir, "checkpoint.json"))
	wantErrIs(t, s.Save(ctx, stream.Revision{}), stream.ErrInvalidOption)
	missing := NewFileStore(filepath.Join(dir, "no", "such", "dir", "checkpoint.json"))
	if err := missing.Save(ctx, rev(1)); err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	wantErrIs(t, s.Save(cctx, rev(1)), context.Canceled)
	_, err := s.Load(cctx)
	wantErrIs(t, err, context.Canceled)
	wantEqual(t, "Path", s.Path(), filepath.Join(dir, "checkpoint.json"))
}
