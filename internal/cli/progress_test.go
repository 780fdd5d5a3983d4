package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// clockedProgress returns a progress display writing to out, with a clock
// the test moves.
func clockedProgress(out *strings.Builder, tty, quiet bool, width int) (*progress, *time.Time) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	p := newProgress(out, tty, quiet, 5*time.Second, func() int { return width })
	p.now = func() time.Time { return now }
	return p, &now
}

// catchUp feeds p a catch-up from revision 0 to head, one change per
// step of the clock, with a poll per page of 10.
func catchUp(p *progress, now *time.Time, head uint64, step time.Duration) {
	for r := uint64(1); r <= head; r++ {
		if r%10 == 1 {
			p.poll(stream.PollInfo{Position: stream.RevisionFromUint64(r - 1), Head: stream.RevisionFromUint64(head), CaughtUp: r+10 > head})
		}
		*now = now.Add(step)
		p.delivered(stream.RevisionFromUint64(r))
	}
	p.idle()
}

func TestProgressTerminalLine(t *testing.T) {
	var out strings.Builder
	p, now := clockedProgress(&out, true, false, 60)

	// A short burst shows nothing.
	catchUp(p, now, 20, time.Millisecond)
	if out.String() != "" {
		t.Fatalf("a 20 ms catch-up drew %q", out.String())
	}

	// A long one draws once showAfter has passed, then at most every
	// redrawEvery, cut to the terminal's width, and clears at the end.
	catchUp(p, now, 200, 5*time.Millisecond) // 1 s
	got := out.String()
	draws := strings.Split(strings.TrimPrefix(got, "\r\x1b[K"), "\r\x1b[K")
	if last := draws[len(draws)-1]; last != "" {
		t.Errorf("not cleared at the end: %q", last)
	}
	draws = draws[:len(draws)-1]
	if n := len(draws); n < 7 || n > 9 { // 800 ms of drawing, every 100 ms
		t.Errorf("%d draws, want 8:\n%q", n, got)
	}
	if first := draws[0]; first != "ctwatch: catching up: 40 changes, revision 40 of 200 (20%)," {
		t.Errorf("first draw %q (want it after 200 ms, cut to 59 columns)", first)
	}
}

func TestProgressLinesWithoutTerminal(t *testing.T) {
	var out strings.Builder
	p, now := clockedProgress(&out, false, false, 0)
	catchUp(p, now, 100, 10*time.Millisecond) // 1 s: no line, no summary
	if out.String() != "" {
		t.Fatalf("a 1 s catch-up printed %q", out.String())
	}
	catchUp(p, now, 1200, 10*time.Millisecond) // 12 s
	want := "ctwatch: catching up: 500 changes, revision 500 of 1200 (41%), 100 changes/s\n" +
		"ctwatch: catching up: 1000 changes, revision 1000 of 1200 (83%), 100 changes/s\n" +
		"ctwatch: caught up: 1200 changes up to revision 1200 in 12s (100 changes/s)\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}

	out.Reset()
	q, now := clockedProgress(&out, true, true, 0)
	catchUp(q, now, 1200, 10*time.Millisecond)
	q.stop()
	if out.String() != "" {
		t.Errorf("quiet: %q", out.String())
	}
}

// TestProgressWaitsForLineEnd: output that stops mid-line (a buffered
// writer flushing where its buffer ends) is held back until the line is
// finished, so that a redraw of the progress line cannot erase half a
// row.
func TestProgressWaitsForLineEnd(t *testing.T) {
	var out strings.Builder
	p, now := clockedProgress(&out, true, false, 0)
	stdout := &ttyStdout{w: &out, p: p}
	p.poll(stream.PollInfo{Head: stream.RevisionFromUint64(100)})
	*now = now.Add(time.Second)
	p.delivered(stream.RevisionFromUint64(1)) // draws
	stdout.Write([]byte("1  Vm\n2  Vm"))      // row 2 unfinished
	*now = now.Add(time.Second)
	p.delivered(stream.RevisionFromUint64(2))
	stdout.Write([]byte("  INSERT\n"))
	*now = now.Add(time.Second)
	p.delivered(stream.RevisionFromUint64(3)) // draws again
	got := out.String()
	want := "\r\x1b[Kctwatch: catching up: 1 changes, revision 1 of 100, 1 changes/s" +
		"\r\x1b[K1  Vm\n" + // row 2 held back
		"\r\x1b[Kctwatch: catching up: 1 changes, revision 1 of 100, 1 changes/s" +
		"\r\x1b[Kctwatch: catching up: 2 changes, revision 2 of 100, 1 changes/s" +
		"\r\x1b[K2  Vm  INSERT\n" +
		"\r\x1b[Kctwatch: catching up: 2 changes, revision 2 of 100, 1 changes/s" +
		"\r\x1b[Kctwatch: catching up: 3 changes, revision 3 of 100, 1 changes/s"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}
