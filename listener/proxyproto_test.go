package listener

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func v2Header(cmd, fam byte, body []byte) []byte {
	h := append([]byte(nil), v2Signature...)
	h = append(h, 0x20|cmd, fam, byte(len(body)>>8), byte(len(body)))
	return append(h, body...)
}

func TestParseProxyHeader(t *testing.T) {
	v4body := []byte{203, 0, 113, 9, 10, 0, 0, 1, 0x30, 0x39, 0x01, 0xbb}
	v6body := append(append(netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice()...), 0, 80, 1, 0xbb)
	tests := []struct {
		name     string
		in       []byte
		src, dst string // "" for a local header
		n        int    // header length; 0 for an error
		err      error
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\nGET"), "192.0.2.1:56324", "192.0.2.2:443", 42, nil},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"), "[2001:db8::1]:1", "[2001:db8::2]:2", 40, nil},
		{"v1 unknown", []byte("PROXY UNKNOWN ff:ff::1 whatever\r\n"), "", "", 33, nil},
		{"v1 short", []byte("PROXY TCP4 192.0.2.1"), "", "", 0, errProxyShort},
		{"v1 prefix only", []byte("PRO"), "", "", 0, errProxyShort},
		{"v1 no CR", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"), "", "", 0, ErrProxyHeader},
		{"v1 tcp4 with v6 address", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), "", "", 0, ErrProxyHeader},
		{"v1 port too big", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n"), "", "", 0, ErrProxyHeader},
		{"v1 leading zero port", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 080 2\r\n"), "", "", 0, ErrProxyHeader},
		{"v1 too many fields", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n"), "", "", 0, ErrProxyHeader},
		{"v1 too long", append([]byte("PROXY "), bytes.Repeat([]byte("x"), 120)...), "", "", 0, ErrProxyHeader},
		{"http request", []byte("GET / HTTP/1.1\r\n"), "", "", 0, ErrProxyHeader},
		{"v2 tcp4", append(v2Header(1, 0x11, v4body), "GET"...), "203.0.113.9:12345", "10.0.0.1:443", 28, nil},
		{"v2 tcp6", v2Header(1, 0x21, v6body), "[2001:db8::1]:80", "[2001:db8::2]:443", 52, nil},
		{"v2 tcp4 with TLVs", v2Header(1, 0x11, append(v4body, 0x04, 0, 2, 'a', 'b')), "203.0.113.9:12345", "10.0.0.1:443", 33, nil},
		{"v2 local", v2Header(0, 0x00, nil), "", "", 16, nil},
		{"v2 unspec", v2Header(1, 0x00, []byte{1, 2}), "", "", 18, nil},
		{"v2 short body", v2Header(1, 0x11, v4body)[:20], "", "", 0, errProxyShort},
		{"v2 short signature", v2Signature[:5], "", "", 0, errProxyShort},
		{"v2 body too small for tcp4", v2Header(1, 0x11, v4body[:8]), "", "", 0, ErrProxyHeader},
		{"v2 udp", v2Header(1, 0x12, v4body), "", "", 0, ErrProxyHeader},
		{"v2 version 1", append(append(append([]byte(nil), v2Signature...), 0x11, 0x11, 0, 12), v4body...), "", "", 0, ErrProxyHeader},
		{"v2 command 2", v2Header(2, 0x11, v4body), "", "", 0, ErrProxyHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := parseProxyHeader(tt.in)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("parseProxyHeader() error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if n != tt.n {
				t.Errorf("parseProxyHeader() length = %d, want %d", n, tt.n)
			}
			if tt.src == "" {
				if !h.local {
					t.Errorf("parseProxyHeader() = %+v, want a local header", h)
				}
				return
			}
			if h.local || h.src.String() != tt.src || h.dst.String() != tt.dst {
				t.Errorf("parseProxyHeader() = %v → %v (local %v), want %s → %s", h.src, h.dst, h.local, tt.src, tt.dst)
			}
		})
	}
}

// FuzzParseProxyHeader: the parser never panics, never claims more bytes
// than it was given, and agrees with itself when given more input.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\nGET / HTTP/1.1\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, 0x11, []byte{203, 0, 113, 9, 10, 0, 0, 1, 0x30, 0x39, 0x01, 0xbb}))
	f.Add(v2Header(0, 0x00, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseProxyHeader(b)
		if err != nil {
			if !errors.Is(err, ErrProxyHeader) && !errors.Is(err, errProxyShort) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("length %d outside 1..%d", n, len(b))
		}
		if !h.local && (!h.src.IsValid() || !h.dst.IsValid()) {
			t.Fatalf("non-local header without addresses: %+v", h)
		}
		h2, n2, err2 := parseProxyHeader(append(append([]byte(nil), b...), "trailing"...))
		if err2 != nil || n2 != n || h2 != h {
			t.Fatalf("with trailing bytes: %+v %d %v, want %+v %d", h2, n2, err2, h, n)
		}
	})
}

// TestProxyConnSplitHeader: a header that arrives in pieces is still
// parsed, and the bytes after it are read as data.
func TestProxyConnSplitHeader(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := &ProxyConn{Conn: server, timeout: time.Second}
	go func() {
		for _, part := range []string{"PROXY TCP4 19", "8.51.100.7 10.0.0.1 4000 80\r", "\nhello"} {
			client.Write([]byte(part))
		}
	}()
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("Read() error = %v", err)
	}
	if got := string(buf[:n]); got != "hello" {
		t.Errorf("Read() = %q, want hello", got)
	}
	if got := c.RemoteAddr().String(); got != "198.51.100.7:4000" {
		t.Errorf("RemoteAddr() = %s, want 198.51.100.7:4000", got)
	}
	if got := c.LocalAddr().String(); got != "10.0.0.1:80" {
		t.Errorf("LocalAddr() = %s, want 10.0.0.1:80", got)
	}
}
