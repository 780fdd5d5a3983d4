package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"golang.org/x/term"
)

// errInterrupted is returned by the password prompt for Ctrl-C: like
// Ctrl-C while watching, it ends Run with ExitOK.
var errInterrupted = errors.New("interrupted")

// promptPassword reads a password (what: "Password", "API password") for
// user from a terminal on stdin, without echo; without a terminal it
// returns the usage error noTTY (a format with one %s, the user). Ctrl-C
// there ends Run at once (errInterrupted); a SIGINT from elsewhere ends it
// once Enter is pressed.
func (r *runner) promptPassword(ctx context.Context, user, what, noTTY string) (string, error) {
	f, ok := r.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", UsageError(noTTY, user)
	}
	pw, err := readSecret(f, func() { fmt.Fprintf(r.errw, "%s for %s: ", what, user) })
	fmt.Fprintln(r.errw)
	switch {
	case errors.Is(err, errInterrupted):
		return "", err
	case ctx.Err() != nil:
		return "", ctx.Err()
	case err != nil:
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return pw, nil
}

// readSecret prompts, then reads a line from the terminal f in raw mode:
// no echo, and Ctrl-C arrives as a byte (term.ReadPassword leaves it a
// signal, which cannot interrupt the read). Backspace and Ctrl-U edit;
// Ctrl-D on an empty line is the end of input. The prompt is written once
// echo is off, so that nothing typed ahead of it shows.
func readSecret(f *os.File, prompt func()) (string, error) {
	fd := int(f.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return "", err
	}
	defer term.Restore(fd, old)
	prompt()
	var (
		line []byte
		b    [1]byte
	)
	for {
		n, err := f.Read(b[:])
		if n == 0 {
			if err == nil {
				continue
			}
			return "", err
		}
		switch c := b[0]; c {
		case 3: // Ctrl-C
			return "", errInterrupted
		case 4: // Ctrl-D
			if len(line) == 0 {
				return "", io.EOF
			}
		case '\r', '\n':
			return string(line), nil
		case 0x7f, '\b':
			_, size := utf8.DecodeLastRune(line)
			line = line[:len(line)-size]
		case 0x15: // Ctrl-U
			line = line[:0]
		default:
			line = append(line, c)
		}
	}
}
