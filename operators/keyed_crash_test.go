//go:build unix

package operators

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// TestHandleByKeyCrash is the crash test of Checkpoint (crash_test.go) for
// HandleByKey's watermark: a consumer handling the feed with 4 workers,
// its watermark saved by Checkpoint in a FileStore, runs in a child
// process that is killed with SIGKILL at a random point (in a handler
// call, or in the middle of a save), then restarted from the checkpoint.
// Each run must handle, per key, the server's sequence of that key after
// the checkpoint it started from, in order, without gaps; its new
// checkpoint must have been handled completely (nothing at or below it
// lost); the last, clean run ends at the feed's end.

const (
	keyedCrashEvents = 300
	keyedCrashKeys   = 13
	envKeyedDir      = "TOWERWATCH_KEYED_CRASH_DIR"
	envKeyedMode     = "TOWERWATCH_KEYED_CRASH_MODE" // "body" or a FileStore step
	envKeyedAt       = "TOWERWATCH_KEYED_CRASH_AT"   // the call (body) or save (step) to die at
	envKeyedLog      = "TOWERWATCH_KEYED_CRASH_LOG"
)

var errKeyedEnd = errors.New("end of the keyed crash feed")

// keyedCrashFeed is the server's sequence: revision r changes key r*7 mod
// keyedCrashKeys.
func keyedCrashFeed() []kc {
	cs := make([]kc, keyedCrashEvents)
	for i := range cs {
		r := uint64(i + 1)
		cs[i] = kc{Rev: r, Key: fmt.Sprintf("vm-%d", r*7%keyedCrashKeys)}
	}
	return cs
}

// keyedCrashSource serves the feed; a poll after its end fails with
// stream.Fatal(errKeyedEnd).
func keyedCrashSource() stream.Source[kc] {
	feed := keyedCrashFeed()
	poll := func(ctx context.Context, after stream.Revision, limit int) (stream.Page[kc], error) {
		a, _ := after.Uint64()
		p := stream.Page[kc]{Head: rev(keyedCrashEvents)}
		for _, c := range feed {
			if c.Rev > a && len(p.Items) < limit {
				p.Items = append(p.Items, c)
			}
		}
		if len(p.Items) == 0 && a == keyedCrashEvents {
			return p, stream.Fatal(errKeyedEnd)
		}
		return p, nil
	}
	return stream.NewSource(poll, kcRev)
}

func TestHandleByKeyCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	store := NewFileStore(filepath.Join(dir, "checkpoint.json"))
	server := keyedPerKey(keyedCrashFeed())
	keyOf := map[uint64]string{}
	for _, c := range keyedCrashFeed() {
		keyOf[c.Rev] = c.Key
	}
	modes := []string{"body", "body", "write", "sync", "rename", "syncdir"}

	for run := 1; ; run++ {
		if run > 14 {
			t.Fatal("the consumer never finished")
		}
		before := loadUint(t, store)
		mode, at := "", 0
		if run <= 10 && before < keyedCrashEvents { // then one clean run to the end
			mode, at = crashPlan(rng, modes, keyedCrashEvents-int(before), keyedCrashSaveEvery)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("run%d.log", run))
		killed := runCrashChild(t, fmt.Sprintf("run %d (%s at %d)", run, mode, at), "TestHandleByKeyCrashChild",
			envKeyedDir+"="+dir,
			envKeyedMode+"="+mode,
			envKeyedAt+"="+strconv.Itoa(at),
			envKeyedLog+"="+logPath)
		handled := readKeyedLog(t, logPath)
		after, err := store.Load(context.Background())
		if err != nil {
			t.Fatalf("run %d (%s at %d): %v", run, mode, at, err)
		}
		committed, _ := after.Uint64()
		t.Logf("run %d: killed %v (%s at %d): %d calls, checkpoint %d -> %d", run, killed, mode, at, len(handled), before, committed)

		// Per key: the server's sequence after the checkpoint, in order,
		// a prefix of it if the run was killed.
		got := map[string][]uint64{}
		done := map[uint64]bool{}
		for _, c := range handled {
			if keyOf[c.Rev] != c.Key {
				t.Fatalf("run %d handled %v: the server has key %s", run, c, keyOf[c.Rev])
			}
			got[c.Key] = append(got[c.Key], c.Rev)
			done[c.Rev] = true
		}
		for k, revs := range got {
			i, _ := slices.BinarySearch(server[k], before+1)
			want := server[k][i:]
			if len(revs) > len(want) || !slices.Equal(revs, want[:len(revs)]) {
				t.Fatalf("run %d, key %s: handled %v, want a prefix of %v", run, k, revs, want)
			}
		}
		// Nothing at or below the new checkpoint is lost.
		if committed < before {
			t.Fatalf("run %d: checkpoint went back from %d to %d", run, before, committed)
		}
		for r := before + 1; r <= committed; r++ {
			if !done[r] {
				t.Fatalf("run %d: checkpoint %d, but revision %d was not handled", run, committed, r)
			}
		}
		if !killed {
			if committed != keyedCrashEvents {
				t.Fatalf("clean run ended with checkpoint %d, want %d", committed, keyedCrashEvents)
			}
			for r := before + 1; r <= keyedCrashEvents; r++ {
				if !done[r] {
					t.Fatalf("clean run: revision %d not handled", r)
				}
			}
			return
		}
	}
}

const keyedCrashSaveEvery = 5

// TestHandleByKeyCrashChild is the consumer run by TestHandleByKeyCrash.
func TestHandleByKeyCrashChild(t *testing.T) {
	dir := os.Getenv(envKeyedDir)
	if dir == "" {
		t.Skip("run by TestHandleByKeyCrash")
	}
	mode := os.Getenv(envKeyedMode)
	at, _ := strconv.Atoi(os.Getenv(envKeyedAt))
	logf, err := os.OpenFile(os.Getenv(envKeyedLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	defer dieAtSave(mode, at)()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := NewFileStore(filepath.Join(dir, "checkpoint.json"))
	after, err := LoadAfter(ctx, store, stream.FromStart()) // from the start on the first run
	if err != nil {
		t.Fatal(err)
	}
	events := stream.Watch(ctx, keyedCrashSource(), after, stream.PageSize(40),
		stream.PollInterval(time.Millisecond), stream.Logger(discardLogger))
	var (
		mu    sync.Mutex
		calls int
	)
	apply := func(ctx context.Context, c kc) error {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // simulated I/O
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(logf, "%d %s\n", c.Rev, c.Key); err != nil {
			return stream.Fatal(err)
		}
		calls++
		if mode == "body" && calls == at {
			die() // applied, but not in the watermark yet
		}
		return nil
	}
	keyedMarks := HandleByKey(ctx, events, 4, kcKey, kcRev, apply)
	for _, err := range Checkpoint(ctx, keyedMarks, store, WatermarkRevision, SaveEvery(keyedCrashSaveEvery), SaveInterval(0)) {
		if errors.Is(err, errKeyedEnd) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the stream ended without its end error")
}

func readKeyedLog(t *testing.T, path string) []kc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []kc
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		revText, key, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseUint(revText, 10, 64)
		if !ok || err != nil {
			t.Fatalf("log %s: bad line %q", path, sc.Text())
		}
		out = append(out, kc{Rev: n, Key: key})
	}
	return out
}
