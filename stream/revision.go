package stream

import (
	"errors"
	"fmt"
	"strconv"
)

// MaxRevisionDigits is the longest decimal revision ParseRevision accepts.
const MaxRevisionDigits = 256

// ErrInvalidRevision is wrapped by every error ParseRevision returns.
var ErrInvalidRevision = errors.New("invalid revision")

// Revision is a position in a change feed: an arbitrary-precision,
// non-negative decimal integer, as CloudTower sends it (a string).
//
// The zero value means "no revision" and sorts before every real revision,
// including "0". Revisions are comparable with == (leading zeros are removed
// when parsing), and Compare never allocates.
type Revision struct {
	d string // canonical digits, no leading zeros ("0" for zero); "" for none
}

// ParseRevision parses a decimal revision: one to MaxRevisionDigits ASCII
// digits, no sign, no spaces. Leading zeros are accepted and dropped, so
// "007" and "7" are the same revision. Any other input returns an error
// wrapping ErrInvalidRevision that says what was wrong.
func ParseRevision(s string) (Revision, error) {
	if s == "" {
		return Revision{}, fmt.Errorf("%w: empty string", ErrInvalidRevision)
	}
	if len(s) > MaxRevisionDigits {
		return Revision{}, fmt.Errorf("%w: %d digits, at most %d allowed", ErrInvalidRevision, len(s), MaxRevisionDigits)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			return Revision{}, fmt.Errorf("%w: %s: byte %d is %q, want a decimal digit", ErrInvalidRevision, quoteShort(s), i, c)
		}
	}
	i := 0
	for i < len(s)-1 && s[i] == '0' {
		i++
	}
	return Revision{d: s[i:]}, nil
}

// MustParseRevision is like ParseRevision but panics on invalid input.
// It is meant for constants in tests and examples.
func MustParseRevision(s string) Revision {
	r, err := ParseRevision(s)
	if err != nil {
		panic(err)
	}
	return r
}

// RevisionFromUint64 returns the revision n.
func RevisionFromUint64(n uint64) Revision {
	return Revision{d: strconv.FormatUint(n, 10)}
}

// IsZero reports whether r is the zero value, "no revision".
func (r Revision) IsZero() bool { return r.d == "" }

// String returns the canonical decimal form, or "" for the zero Revision.
func (r Revision) String() string { return r.d }

// Uint64 returns r as a uint64, and false if r is zero or does not fit.
func (r Revision) Uint64() (uint64, bool) {
	if r.d == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(r.d, 10, 64)
	return n, err == nil
}

// Compare returns -1 if r < o, 0 if r == o and +1 if r > o.
// The zero Revision is less than every other. It does not allocate.
func (r Revision) Compare(o Revision) int {
	switch {
	case len(r.d) < len(o.d):
		return -1
	case len(r.d) > len(o.d):
		return 1
	case r.d < o.d:
		return -1
	case r.d > o.d:
		return 1
	}
	return 0
}

// Less reports whether r < o.
func (r Revision) Less(o Revision) bool { return r.Compare(o) < 0 }

// MarshalText implements encoding.TextMarshaler.
func (r Revision) MarshalText() ([]byte, error) { return []byte(r.d), nil }

// UnmarshalText implements encoding.TextUnmarshaler; empty text gives the
// zero Revision.
func (r *Revision) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*r = Revision{}
		return nil
	}
	v, err := ParseRevision(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func quoteShort(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "..."
	}
	return strconv.Quote(s)
}
