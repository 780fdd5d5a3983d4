package operators

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// ErrCorruptCheckpoint is wrapped by the error FileStore.Load returns for a
// file that exists but does not hold a valid checkpoint.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint file")

// FileStoreVersion is the format version FileStore writes and reads.
const FileStoreVersion = 1

// FileStore is a CheckpointStore that keeps the revision in one small,
// human-readable JSON file:
//
//	{"version":1,"revision":"123","updated":"2025-01-02T03:04:05.123456789Z"}
//
// revision is the decimal revision, a string because revisions can exceed
// 64 bits; updated is when it was saved (RFC 3339, UTC), for people only.
//
// Save is atomic and durable: it writes the new content to a temporary file
// in the same directory (the file's name plus ".tmp"), flushes it to disk,
// renames it over the file and flushes the directory. If the process dies
// at any point, the file holds either the old or the new checkpoint, never
// a mix; a leftover temporary file is ignored and overwritten by the next
// Save. A FileStore is safe for concurrent use within one process; two
// processes must not share a file.
type FileStore struct {
	path string
	mu   sync.Mutex
}

// NewFileStore returns a FileStore that keeps its checkpoint at path. The
// directory must exist; the file is created by the first Save.
func NewFileStore(path string) *FileStore {
	return &FileStore{path: path}
}

// Path returns the checkpoint file's path.
func (s *FileStore) Path() string { return s.path }

type fileCheckpoint struct {
	Version  int    `json:"version"`
	Revision string `json:"revision"`
	Updated  string `json:"updated,omitempty"`
}

// Load reads the checkpoint. A missing file gives the zero Revision and no
// error. A file that cannot be parsed, has another version or holds an
// invalid revision gives an error wrapping ErrCorruptCheckpoint.
func (s *FileStore) Load(ctx context.Context) (stream.Revision, error) {
	if err := ctx.Err(); err != nil {
		return stream.Revision{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return stream.Revision{}, nil
	}
	if err != nil {
		return stream.Revision{}, fmt.Errorf("operators: loading checkpoint: %w", err)
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("operators: %w %s: "+format, append([]any{ErrCorruptCheckpoint, s.path}, args...)...)
	}
	var fc fileCheckpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return stream.Revision{}, corrupt("%v", err)
	}
	if dec.More() {
		return stream.Revision{}, corrupt("trailing data after the JSON object")
	}
	if fc.Version != FileStoreVersion {
		return stream.Revision{}, corrupt("version %d, want %d", fc.Version, FileStoreVersion)
	}
	rev, err := stream.ParseRevision(fc.Revision)
	if err != nil {
		return stream.Revision{}, corrupt("%v", err)
	}
	return rev, nil
}

// fileStoreHook, when set by a test, is called at each step of Save, so a
// test can kill the process there.
var fileStoreHook func(step string)

// Save writes rev atomically, as described on FileStore. rev must not be
// the zero Revision.
func (s *FileStore) Save(ctx context.Context, rev stream.Revision) error {
	if rev.IsZero() {
		return invalid("FileStore.Save: zero revision")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b, err := json.Marshal(fileCheckpoint{
		Version:  FileStoreVersion,
		Revision: rev.String(),
		Updated:  time.Now().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return err
	}
	b = append(b, '\n')

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeAtomic(b); err != nil {
		return fmt.Errorf("operators: saving checkpoint %s: %w", s.path, err)
	}
	return nil
}

func (s *FileStore) writeAtomic(b []byte) (err error) {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	hook("write")
	if _, err := f.Write(b); err != nil {
		return err
	}
	hook("sync")
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	hook("rename")
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	hook("syncdir")
	return syncDir(filepath.Dir(s.path))
}

func hook(step string) {
	if fileStoreHook != nil {
		fileStoreHook(step)
	}
}

// syncDir flushes a directory, so that a rename in it is durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
