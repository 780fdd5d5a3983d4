// Package jsonstr writes JSON string literals without reflection, for the
// hand-written encoders of the CloudTower source and of the fake server.
package jsonstr

import "unicode/utf8"

// Append appends s as a JSON string literal exactly as encoding/json.Marshal
// writes it: the quote, the backslash and control characters escaped (\b,
// \f, \n, \r, \t in their short form), < > & escaped for HTML, U+2028 and
// U+2029 escaped, and each byte of invalid UTF-8 replaced by \ufffd.
func Append(dst []byte, s string) []byte { return appendString(dst, s, &plainHTML) }

// AppendNoHTML is Append without escaping < > &, as JavaScript's
// JSON.stringify (and so CloudTower) writes strings.
func AppendNoHTML(dst []byte, s string) []byte { return appendString(dst, s, &plain) }

// plain and plainHTML mark the ASCII bytes written as they are.
var plain, plainHTML = func() (t, h [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
		h[c] = t[c] && c != '<' && c != '>' && c != '&'
	}
	return t, h
}()

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string, plain *[utf8.RuneSelf]bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default: // other control characters, and < > & for HTML
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
