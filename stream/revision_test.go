package stream_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/towerwatch/towerwatch/stream"
)

func TestParseRevision(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"000", "0"}, {"7", "7"}, {"007", "7"}, {"1234567890", "1234567890"},
		{strings.Repeat("9", 256), strings.Repeat("9", 256)},
		{"18446744073709551616", "18446744073709551616"}, // 2^64
	} {
		r, err := stream.ParseRevision(tc.in)
		if err != nil {
			t.Fatalf("ParseRevision(%q): %v", tc.in, err)
		}
		if r.String() != tc.want || r.IsZero() {
			t.Errorf("ParseRevision(%q) = %q (zero %v), want %q", tc.in, r, r.IsZero(), tc.want)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"", "empty"}, {"-1", "digit"}, {"+1", "digit"}, {" 1", "digit"}, {"1 ", "digit"},
		{"1e3", "digit"}, {"0x10", "digit"}, {"١٢", "digit"},
		{strings.Repeat("1", 257), "at most 256"},
	} {
		_, err := stream.ParseRevision(tc.in)
		if !errors.Is(err, stream.ErrInvalidRevision) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseRevision(%q) = %v, want ErrInvalidRevision saying %q", tc.in, err, tc.why)
		}
	}
}

func TestRevisionCompare(t *testing.T) {
	var none stream.Revision
	order := []stream.Revision{none, mustRev("0"), mustRev("1"), mustRev("9"), mustRev("10"),
		mustRev("99"), mustRev("100"), mustRev("18446744073709551615"), mustRev("18446744073709551616")}
	for i, a := range order {
		for j, b := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%q.Compare(%q) = %d, want %d", a, b, got, want)
			}
			if a.Less(b) != (want < 0) {
				t.Errorf("%q.Less(%q) wrong", a, b)
			}
		}
	}
	if mustRev("0042") != mustRev("42") {
		t.Error("leading zeros must not change identity")
	}
}

func TestRevisionCompareDoesNotAllocate(t *testing.T) {
	a, b := mustRev(strings.Repeat("9", 200)), mustRev(strings.Repeat("9", 199)+"8")
	n := testing.AllocsPerRun(1000, func() {
		if a.Compare(b) != 1 {
			t.Fatal("wrong order")
		}
	})
	if n != 0 {
		t.Fatalf("Compare allocates %v times", n)
	}
}

func TestRevisionUint64AndText(t *testing.T) {
	r := stream.RevisionFromUint64(12345)
	if n, ok := r.Uint64(); !ok || n != 12345 {
		t.Fatalf("Uint64 = %d, %v", n, ok)
	}
	if _, ok := mustRev("18446744073709551616").Uint64(); ok {
		t.Fatal("2^64 must not fit a uint64")
	}
	if _, ok := (stream.Revision{}).Uint64(); ok {
		t.Fatal("zero revision has no number")
	}
	var back stream.Revision
	text, _ := r.MarshalText()
	if err := back.UnmarshalText(text); err != nil || back != r {
		t.Fatalf("text round trip: %v, %v", back, err)
	}
	if err := back.UnmarshalText([]byte("x")); !errors.Is(err, stream.ErrInvalidRevision) {
		t.Fatalf("UnmarshalText(x) = %v", err)
	}
	if err := back.UnmarshalText(nil); err != nil || !back.IsZero() {
		t.Fatalf("UnmarshalText(empty) = %v, %v", back, err)
	}
}

func FuzzParseRevision(f *testing.F) {
	for _, s := range []string{"0", "1", "007", "", "-1", "12a", strings.Repeat("9", 256), strings.Repeat("9", 257), "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := stream.ParseRevision(s)
		if err != nil {
			if !errors.Is(err, stream.ErrInvalidRevision) {
				t.Fatalf("error %v does not wrap ErrInvalidRevision", err)
			}
			return
		}
		if r.IsZero() || len(s) > stream.MaxRevisionDigits {
			t.Fatalf("accepted %q as %q", s, r)
		}
		again, err := stream.ParseRevision(r.String())
		if err != nil || again != r {
			t.Fatalf("round trip of %q: %q, %v", s, again, err)
		}
		if strings.TrimLeft(s, "0") != strings.TrimLeft(r.String(), "0") {
			t.Fatalf("%q parsed as %q", s, r)
		}
	})
}

func mustRev(s string) stream.Revision { return stream.MustParseRevision(s) }
