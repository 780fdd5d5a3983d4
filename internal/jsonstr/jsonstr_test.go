package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seeds = []string{
	"", "plain", `{"name":"vm-1","labels":[]}`, `"\`, "<b>&amp;</b>", "\b\f\n\r\t\x00\x01\x1f\x7f",
	"虚拟机 ✓ 🚀", "bad \xff utf8 \xe4\xb8", "\xed\xa0\x80", "\u2028\u2029", "\ufffd",
}

// check asserts that Append writes what encoding/json writes, and that
// AppendNoHTML writes JSON that decodes to the same string.
func check(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := Append(nil, s); !bytes.Equal(got, want) {
		t.Fatalf("Append(%q) = %s, encoding/json writes %s", s, got, want)
	}
	var wantS, gotS string
	_ = json.Unmarshal(want, &wantS)
	b := AppendNoHTML(nil, s)
	if err := json.Unmarshal(b, &gotS); err != nil || gotS != wantS || bytes.ContainsAny(b[1:len(b)-1], "\x00\n") {
		t.Fatalf("AppendNoHTML(%q) = %s: decodes to %q, %v; want %q", s, b, gotS, err, wantS)
	}
}

func TestAppend(t *testing.T) {
	for _, s := range seeds {
		check(t, s)
	}
	if got := string(AppendNoHTML([]byte("x:"), "<&>")); got != `x:"<&>"` {
		t.Fatalf("AppendNoHTML escaped HTML: %s", got)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(check)
}
