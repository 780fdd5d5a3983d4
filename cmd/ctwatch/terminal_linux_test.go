//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

var (
	// A table row; one without a name (a Label, a VmNic) ends with its
	// time, without trailing spaces.
	rowRE      = regexp.MustCompile(`^(\d+)\s+(\S+)\s+(\S+)\s+(INSERT|UPDATE|DELETE)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\s+\S+)?$`)
	progressRE = regexp.MustCompile(`^ctwatch: catching up: \d+ changes, revision \d+ of \d+ \(\d+%\), \d+ changes/s$`)
)

// screenLines splits what a terminal received into the lines it showed,
// each redraw ("\r", then erase-line) starting a new one.
func screenLines(raw string) []string {
	raw = strings.ReplaceAll(raw, "\x1b[K", "")
	return strings.FieldsFunc(raw, func(r rune) bool { return r == '\r' || r == '\n' })
}

// startOnPTY starts ctwatch with args on a new pseudo-terminal of rows x
// cols as its stdin, stdout, stderr and controlling terminal (in a session
// of its own, so that Ctrl-C typed there reaches it as SIGINT). It returns
// the terminal's master end (closed at the end of the test) and what the
// terminal receives.
func startOnPTY(t *testing.T, rows, cols uint16, args ...string) (*exec.Cmd, *os.File, *capture) {
	t.Helper()
	master, slave, err := openPTY(rows, cols)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	cmd := command(args, "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close() // the child has it: reading master fails once it exits
	if err != nil {
		t.Fatal(err)
	}
	return cmd, master, startCapture(master)
}

// typeThenExit types keys on the terminal, then waits for ctwatch to
// exit with code 0 and returns all the terminal received.
func typeThenExit(t *testing.T, cmd *exec.Cmd, master *os.File, screen *capture, keys string) string {
	t.Helper()
	if _, err := master.Write([]byte(keys)); err != nil {
		t.Fatal(err)
	}
	code := wait(t, cmd)
	<-screen.done
	raw := screen.String()
	if code != 0 {
		t.Fatalf("exit %d after typing %q:\n%.3000s", code, keys, raw)
	}
	return raw
}

// TestTerminal runs ctwatch --demo on a pseudo-terminal 100 columns wide,
// as an operator would: stdout and stderr a terminal, so a table and a
// progress line redrawn in place while it catches up on the demo's 2000
// changes; then Ctrl-C, typed on the terminal, ends it with exit code 0
// and the checkpoint at the last row printed.
func TestTerminal(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ck")
	cmd, master, screen := startOnPTY(t, 40, 100, "--demo", "--checkpoint", ckpt)

	lastRow := func(s string) (rev int, row string) {
		for _, l := range screenLines(s) {
			if m := rowRE.FindStringSubmatch(strings.TrimPrefix(l, "^C")); m != nil {
				rev, _ = strconv.Atoi(m[1])
				row = l
			}
		}
		return rev, row
	}
	screen.waitFor(t, "the demo's backlog", func(s string) bool {
		rev, _ := lastRow(s)
		return rev >= 2000
	})
	raw := typeThenExit(t, cmd, master, screen, "\x03") // Ctrl-C

	lines := screenLines(raw)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "ctwatch: demo: watching") ||
		!regexp.MustCompile(`^REVISION  TYPE +ID +ACTION  TIME +NAME$`).MatchString(lines[1]) {
		t.Errorf("want the demo banner and the table header first:\n%q", lines[:min(3, len(lines))])
	}
	var rows, progress int
	for _, l := range lines[2:] {
		// The terminal echoes the Ctrl-C as "^C" wherever the output
		// stands when it is typed: alone, before a row, or after a
		// progress line not yet erased.
		l = strings.TrimSuffix(strings.TrimPrefix(l, "^C"), "^C")
		switch {
		case rowRE.MatchString(l):
			if col := strings.Index(lines[1], "ACTION"); !regexp.MustCompile(`^(INSERT|UPDATE|DELETE)`).MatchString(l[col:]) {
				t.Errorf("row not aligned with the header:\n%s\n%s", lines[1], l)
			}
			rows++
		case progressRE.MatchString(l):
			if len(l) >= 100 {
				t.Errorf("progress line wider than the terminal: %q", l)
			}
			progress++
		case l == "":
		default:
			t.Errorf("unexpected line on the terminal: %q", l)
		}
	}
	if rows < 2000 || progress == 0 {
		t.Errorf("%d rows, %d progress lines: want at least 2000 and 1", rows, progress)
	}
	if !strings.Contains(raw, "\r\x1b[Kctwatch: catching up: ") {
		t.Errorf("the progress line is not redrawn in place")
	}
	// Once caught up the progress line is erased: the last one is
	// followed by an erase, not left on the screen.
	if i := strings.LastIndex(raw, "ctwatch: catching up: "); !strings.Contains(raw[i:], "\r\x1b[K") {
		t.Errorf("the last progress line was not cleared: %q", raw[i:])
	}
	rev, _ := lastRow(raw)
	if got := loadCheckpoint(t, ckpt); got != strconv.Itoa(rev) {
		t.Errorf("checkpoint %s, want the last row's revision %d", got, rev)
	}
	t.Logf("%d rows, %d progress lines; checkpoint %d", rows, progress, rev)
	if t.Failed() {
		t.Logf("terminal output:\n%.5000s", raw)
	}
}

// TestPasswordPrompt: with a user name and no password, ctwatch asks for
// it on the terminal without echoing it (backspace edits); Ctrl-C at the
// prompt ends it with exit code 0; either way the terminal's echo is back
// on after.
func TestPasswordPrompt(t *testing.T) {
	// The feed takes the login token too: this test is about the login
	// password's prompt, not the API credentials.
	srv := fakeserver.New(fakeserver.Config{Seed: 5, Password: "s3cret-pw", ChangesAuth: fakeserver.AuthEither})
	srv.Generate(10)
	base := srv.StartHTTP() + fakeserver.BasePath
	t.Cleanup(srv.Close)

	for _, tt := range []struct {
		name  string
		typed string
		rows  int
	}{
		{"password", "s3cret-pX\x7fw\r", 3},
		{"ctrl-c", "s3\x03", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd, master, screen := startOnPTY(t, 24, 80, "--server", base, "--username", "admin", "--from", "0", "--limit", "3", "-o", "ndjson", "-q")
			screen.waitFor(t, "the prompt", func(s string) bool { return strings.Contains(s, "Password for admin: ") })
			raw := typeThenExit(t, cmd, master, screen, tt.typed)
			if strings.Contains(raw, "s3cret") {
				t.Errorf("the password was echoed:\n%s", raw)
			}
			if n := strings.Count(raw, `{"revision":`); n != tt.rows {
				t.Errorf("%d changes printed, want %d:\n%s", n, tt.rows, raw)
			}
			if tt.rows == 0 && strings.Contains(raw, "error") {
				t.Errorf("Ctrl-C reported as an error:\n%s", raw)
			}
			tio, err := unix.IoctlGetTermios(int(master.Fd()), unix.TCGETS)
			if err != nil || tio.Lflag&unix.ECHO == 0 {
				t.Errorf("echo is off after exit (%v)", err)
			}
		})
	}
}
