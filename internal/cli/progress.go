package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/towerwatch/towerwatch/stream"
)

// progress shows, on stderr, how a catch-up goes: changes done, the
// current and the head revision, changes per second. On a terminal it
// redraws one line in place (at most every redrawEvery, and only once the
// catch-up has lasted showAfter, so that a short burst of live changes
// does not flash it) and clears it once caught up; otherwise it prints a
// line every `every`, and a summary once caught up if it printed any line.
//
// poll may be called from any goroutine; the rest from the main loop
// (idle from its checkpoint's OnIdle hook), or under the lock through the
// writers that share the terminal.
type progress struct {
	mu     sync.Mutex
	w      io.Writer // stderr, raw
	tty    bool
	quiet  bool
	every  time.Duration
	width  func() int // terminal columns, 0 if unknown
	now    func() time.Time
	redraw time.Duration
	// idleNow: idle was called and nothing was delivered since. A poll
	// that says caught up then arms recheck, which calls idle again once
	// idleGrace has passed with nothing delivered (the poll's changes, if
	// any, come first).
	idleNow bool
	recheck *time.Timer
	stopped bool

	head     stream.Revision
	catching bool // the newest poll said more is waiting
	caughtUp bool // a poll said caught up since catching began
	since    time.Time
	startRev stream.Revision // position when catching began
	rev      stream.Revision // last delivered
	done     int             // delivered since catching began
	shown    bool            // tty: a line is on the screen
	lastDraw time.Time
	printed  bool // non-tty: a line was printed during this catch-up
}

const (
	redrawEvery = 100 * time.Millisecond
	showAfter   = 200 * time.Millisecond
)

func newProgress(w io.Writer, tty, quiet bool, every time.Duration, width func() int) *progress {
	if every <= 0 {
		every = 5 * time.Second
	}
	if width == nil {
		width = func() int { return 0 }
	}
	return &progress{w: w, tty: tty, quiet: quiet, every: every, width: width, now: time.Now, redraw: redrawEvery}
}

// poll records what a poll learnt. Safe for concurrent use.
func (p *progress) poll(info stream.PollInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !info.Head.IsZero() {
		p.head = info.Head
	}
	if info.CaughtUp {
		p.caughtUp = true
		if p.catching && p.idleNow && !p.stopped {
			if p.recheck == nil {
				p.recheck = time.AfterFunc(idleGrace, p.recheckIdle)
			} else {
				p.recheck.Reset(idleGrace)
			}
		}
		return
	}
	p.caughtUp = false
	if !p.catching {
		p.catching = true
		p.since = p.now()
		p.lastDraw = p.since
		p.startRev = info.Position
		p.done = 0
		p.printed = false
	}
}

// delivered counts one change handed to the sink.
func (p *progress) delivered(rev stream.Revision) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rev = rev
	p.idleNow = false
	if !p.catching {
		return
	}
	p.done++
	if p.quiet {
		return
	}
	now := p.now()
	switch {
	case p.tty && now.Sub(p.since) >= showAfter && (!p.shown || now.Sub(p.lastDraw) >= p.redraw):
		p.drawLocked(now)
	case !p.tty && now.Sub(p.lastDraw) >= p.every:
		p.lastDraw = now
		p.printed = true
		fmt.Fprintln(p.w, p.lineLocked(now))
	}
}

// idle is called when the source has had nothing ready for idleGrace, and
// the output is flushed: if the last poll said caught up, the catch-up is
// over.
func (p *progress) idle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idleNow = true
	p.idleLocked()
}

// recheckIdle is idle again, for a poll that said caught up after idle
// looked, if nothing was delivered since.
func (p *progress) recheckIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idleNow && !p.stopped {
		p.idleLocked()
	}
}

func (p *progress) idleLocked() {
	if !p.catching || !p.caughtUp {
		return
	}
	p.catching = false
	if p.quiet {
		return
	}
	if p.tty {
		p.clearLocked()
		return
	}
	if p.printed {
		now := p.now()
		el := now.Sub(p.since)
		fmt.Fprintf(p.w, "%s: caught up: %d changes up to revision %s in %s (%s changes/s)\n",
			Name, p.done, p.rev, el.Round(100*time.Millisecond), rate(p.done, el))
	}
}

// stop clears the line before the program exits.
func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	p.catching = false
	p.stopped = true
	if p.recheck != nil {
		p.recheck.Stop()
	}
}

func (p *progress) drawLocked(now time.Time) {
	line := p.lineLocked(now)
	if w := p.width(); w > 1 && len(line) >= w {
		line = line[:w-1]
	}
	p.lastDraw = now
	p.shown = true
	io.WriteString(p.w, "\r\x1b[K"+line)
}

func (p *progress) clearLocked() {
	if p.shown {
		io.WriteString(p.w, "\r\x1b[K")
		p.shown = false
	}
}

func (p *progress) lineLocked(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: catching up: %d changes, revision %s", Name, p.done, orDash(p.rev))
	if !p.head.IsZero() {
		fmt.Fprintf(&b, " of %s", p.head)
		if pc, ok := percent(p.startRev, p.rev, p.head); ok {
			fmt.Fprintf(&b, " (%d%%)", pc)
		}
	}
	fmt.Fprintf(&b, ", %s changes/s", rate(p.done, now.Sub(p.since)))
	return b.String()
}

// withTerminal runs write (an output to the terminal that the progress
// line is drawn on) with the line cleared, and draws it again after.
func (p *progress) withTerminal(write func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	shown := p.shown
	p.clearLocked()
	write()
	if shown && p.catching && !p.quiet {
		p.drawLocked(p.now())
	}
}

func percent(start, cur, head stream.Revision) (int, bool) {
	s, ok1 := start.Uint64()
	c, ok2 := cur.Uint64()
	h, ok3 := head.Uint64()
	if !ok1 || !ok2 || !ok3 || h <= s || c < s {
		return 0, false
	}
	return int(min(100, float64(c-s)*100/float64(h-s))), true
}

func rate(n int, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
}

func orDash(r stream.Revision) string {
	if r.IsZero() {
		return "-"
	}
	return r.String()
}

// stderrWriter writes to stderr with the progress line cleared first.
type stderrWriter struct{ p *progress }

func (w stderrWriter) Write(b []byte) (n int, err error) {
	w.p.withTerminal(func() { n, err = w.p.w.Write(b) })
	return n, err
}

// ttyStdout writes to a stdout that shares the terminal with the progress
// line. It writes whole lines only, holding back an unfinished last line
// until its end comes: a buffered writer flushes where its buffer ends,
// and a progress line drawn after half a row would erase it.
type ttyStdout struct {
	w       io.Writer
	p       *progress
	pending []byte // the unfinished line held back
	buf     []byte
}

func (w *ttyStdout) Write(b []byte) (int, error) {
	end := bytes.LastIndexByte(b, '\n') + 1
	if end == 0 {
		w.pending = append(w.pending, b...)
		return len(b), nil
	}
	w.buf = append(append(w.buf[:0], w.pending...), b[:end]...)
	w.pending = append(w.pending[:0], b[end:]...)
	var err error
	w.p.withTerminal(func() { _, err = w.w.Write(w.buf) })
	if err != nil {
		return 0, err
	}
	return len(b), nil
}
