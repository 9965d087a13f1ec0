package accesslog

import (
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// appendEntry appends e as one JSON object and a newline to dst. It allocates
// only when dst must grow.
func appendEntry(dst []byte, e *Entry) []byte {
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	dst = append(dst, `{"time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","client":`...)
	dst = appendString(dst, e.Client)
	dst = append(dst, `,"method":`...)
	dst = appendString(dst, e.Method)
	dst = append(dst, `,"host":`...)
	dst = appendString(dst, e.Host)
	dst = append(dst, `,"path":`...)
	dst = appendString(dst, e.Path)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(e.Status), 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, e.Bytes, 10)
	dst = append(dst, `,"upstream":`...)
	dst = appendString(dst, bytesOf(e.Upstream))
	dst = append(dst, `,"backend":`...)
	dst = appendString(dst, bytesOf(e.Backend))
	dst = append(dst, `,"shard":`...)
	dst = strconv.AppendInt(dst, int64(e.Shard), 10)
	dst = append(dst, `,"queue_wait_ms":`...)
	dst = appendMillis(dst, e.QueueWait)
	dst = append(dst, `,"backend_ms":`...)
	dst = appendMillis(dst, e.BackendTime)
	dst = append(dst, `,"total_ms":`...)
	dst = appendMillis(dst, e.Total)
	dst = append(dst, `,"shed":`...)
	dst = appendString(dst, bytesOf(e.Shed))
	if e.Aborted != "" {
		dst = append(dst, `,"aborted":`...)
		dst = appendString(dst, bytesOf(e.Aborted))
	}
	return append(dst, "}\n"...)
}

// appendMillis appends d in milliseconds with three decimals (microsecond
// precision), e.g. 1.500; integer arithmetic keeps it cheap.
func appendMillis(dst []byte, d time.Duration) []byte {
	us := int64(d / time.Microsecond)
	if us < 0 {
		dst = append(dst, '-')
		us = -us
	}
	dst = strconv.AppendInt(dst, us/1000, 10)
	frac := us % 1000
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// bytesOf views s as bytes without copying; the result must not be modified.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a quoted JSON string. Quotes, backslashes, control
// characters, DEL and U+2028/U+2029 are escaped; each byte of invalid UTF-8
// becomes \ufffd, so hostile input always yields one valid JSON line.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending and needs no escaping
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != 0x7f {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = appendEscapedByte(append(dst, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(append(dst, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(append(dst, s[start:i]...), `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendEscapedByte(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}
