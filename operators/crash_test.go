//go:build unix

package operators

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// The crash test runs a checkpointing consumer in a child process (this
// test binary, re-executed), kills it with SIGKILL at a random point, in
// its loop body or in the middle of a checkpoint save, restarts it, and
// checks that the runs together handle the source's whole sequence, with
// at most the uncommitted tail repeated and never a gap.

const (
	crashEvents    = 250
	crashSaveEvery = 7
	envCrashDir    = "TOWERWATCH_CRASH_DIR"
	envCrashMode   = "TOWERWATCH_CRASH_MODE" // "body" or a FileStore step
	envCrashAt     = "TOWERWATCH_CRASH_AT"   // the value (body) or save (step) to die at
)

var crashModes = []string{"body", "write", "sync", "rename", "syncdir"}

func TestCheckpointCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	store := NewFileStore(filepath.Join(dir, "checkpoint.json"))
	ctx := context.Background()

	for run := 1; ; run++ {
		if run > 12 {
			t.Fatal("the consumer never finished")
		}
		before := loadUint(t, store)
		mode, at := "", 0
		if run <= 8 && before < crashEvents { // then one clean run to the end
			mode, at = crashPlan(rng, crashModes, crashEvents-int(before), crashSaveEvery)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("run%d.log", run))
		killed := runCrashChild(t, fmt.Sprintf("run %d (%s at %d)", run, mode, at), "TestCheckpointCrashChild",
			envCrashDir+"="+dir,
			envCrashMode+"="+mode,
			envCrashAt+"="+strconv.Itoa(at),
			"TOWERWATCH_CRASH_LOG="+logPath)

		handled := readLog(t, logPath)
		after, err := store.Load(ctx) // never corrupt, whenever the process died
		if err != nil {
			t.Fatalf("run %d (%s at %d): %v", run, mode, at, err)
		}
		committed, _ := after.Uint64()
		t.Logf("run %d: killed %v (%s at %d): handled %d..%d, checkpoint %d -> %d",
			run, killed, mode, at, first(handled), last(handled), before, committed)

		// The run starts right after the checkpoint and skips nothing.
		for i, r := range handled {
			if r != before+uint64(i)+1 {
				t.Fatalf("run %d handled %v: want %d, %d, ... (a gap or a repeat)", run, handled, before+1, before+2)
			}
		}
		// The checkpoint never passes what was handled, and lags it by at
		// most one save interval (the value being handled when killed
		// included).
		if committed < before || committed > last(handled) && len(handled) > 0 {
			t.Fatalf("run %d: checkpoint %d, before %d, last handled %d", run, committed, before, last(handled))
		}
		if len(handled) > 0 && last(handled)-committed > crashSaveEvery {
			t.Fatalf("run %d: checkpoint %d lags the last handled %d by more than %d", run, committed, last(handled), crashSaveEvery)
		}
		if !killed {
			if committed != crashEvents || last(handled) != crashEvents && len(handled) > 0 {
				t.Fatalf("clean run ended with checkpoint %d, last handled %d; want %d", committed, last(handled), crashEvents)
			}
			return
		}
	}
}

// TestCheckpointCrashChild is the consumer run by TestCheckpointCrash.
func TestCheckpointCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("run by TestCheckpointCrash")
	}
	mode := os.Getenv(envCrashMode)
	at, _ := strconv.Atoi(os.Getenv(envCrashAt))
	logf, err := os.OpenFile(os.Getenv("TOWERWATCH_CRASH_LOG"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	defer dieAtSave(mode, at)()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := NewFileStore(filepath.Join(dir, "checkpoint.json"))
	after, err := LoadAfter(ctx, store, stream.FromStart()) // first run: from the beginning
	if err != nil {
		t.Fatal(err)
	}
	src := newMemSource(crashEvents, true)
	events := stream.Watch(ctx, src.source(), after, stream.PageSize(50), stream.Logger(discardLogger))
	n := 0
	for ev, err := range Checkpoint(ctx, events, store, eventRev, SaveEvery(crashSaveEvery), SaveInterval(0)) {
		if errors.Is(err, errEnd) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintln(logf, ev.Rev); err != nil {
			t.Fatal(err)
		}
		n++
		if mode == "body" && n == at {
			die() // handled, not finished
		}
	}
	t.Fatal("the stream ended without its end error")
}

// die kills the process at once, as a crash would.
func die() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }

// dieAtSave makes the FileStore kill the process at step mode ("write",
// "sync", ...) of its save number at; mode "" or "body" (a crash in the
// loop body, which the caller arranges) installs nothing. The returned
// func removes the hook.
func dieAtSave(mode string, at int) (remove func()) {
	if mode == "" || mode == "body" {
		return func() {}
	}
	saves := 0
	fileStoreHook = func(step string) {
		if step == "write" {
			saves++
		}
		if step == mode && saves == at {
			die()
		}
	}
	return func() { fileStoreHook = nil }
}

func loadUint(t *testing.T, s *FileStore) uint64 {
	t.Helper()
	r, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := r.Uint64()
	return n
}

func readLog(t *testing.T, path string) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("log %s: %v", path, err)
		}
		out = append(out, n)
	}
	return out
}

func first(s []uint64) uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[0]
}

func last(s []uint64) uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// crashPlan picks how the next child run dies: in the loop body after
// 1..left values ("body"), or in a save step ("write", "sync", ...) at one
// of the saves left, a save coming every saveEvery values.
func crashPlan(rng *rand.Rand, modes []string, left, saveEvery int) (mode string, at int) {
	mode = modes[rng.IntN(len(modes))]
	if mode == "body" {
		return mode, 1 + rng.IntN(left)
	}
	return mode, 1 + rng.IntN(max(1, left/saveEvery))
}

// runCrashChild runs the test named child in a new process of this test
// binary with env added, and reports whether it was killed with SIGKILL
// (as the crash tests' children kill themselves); any other failure fails
// t, labelled with what.
func runCrashChild(t *testing.T, what, child string, env ...string) (killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
	return false
}
