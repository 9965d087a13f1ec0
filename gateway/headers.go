package gateway

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1 plus the
// ones proxies conventionally drop. Expect is answered by the gateway
// itself, which has read the whole body before forwarding.
var hopHeaders = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
	"Upgrade", "Proxy-Authorization", "Proxy-Authenticate", "Expect",
}

// framing headers are never removed on a client's say-so: the gateway owns
// the message framing and the Host header is forwarded unchanged.
func protected(name []byte) bool {
	return eqFold(name, "Host") || eqFold(name, "Content-Length") || eqFold(name, "Transfer-Encoding")
}

// rewriteRequest turns the client's request into the one the backend gets:
// hop-by-hop headers, headers the client named in Connection and headers
// whose names contain "_" go (gunicorn reads X_Forwarded_For as
// X-Forwarded-For and SCRIPT_NAME as the mount point); only then are the
// gateway's own headers set, so a client can never remove them.
//
// It returns false, changing nothing, for a request that carries both
// Content-Length and Transfer-Encoding: conflicting framing is the stuff of
// request smuggling, and such a request is refused rather than guessed at.
func rewriteRequest(h *fasthttp.RequestHeader, peer netip.Addr, trusted []netip.Prefix, s *scratch) bool {
	s.names, s.buf, s.xff = s.names[:0], s.buf[:0], s.xff[:0]
	var length, chunked bool
	var hops uint16 // bit i: hopHeaders[i] is present
	for k, v := range h.AllInOrder() {
		switch {
		case eqFold(k, "Content-Length"):
			length = true
		case eqFold(k, "Transfer-Encoding"):
			chunked = true
		case eqFold(k, "X-Forwarded-For"):
			// Every line counts: a second one must not slip through.
			if len(s.xff) > 0 {
				s.xff = append(s.xff, ", "...)
			}
			s.xff = append(s.xff, v...)
		case bytes.IndexByte(k, '_') >= 0:
			s.addName(k)
		default:
			if i := hopIndex(k); i >= 0 {
				hops |= 1 << i
				if i == 0 { // Connection
					s.addTokens(v)
				}
			}
		}
	}
	if length && chunked {
		return false
	}
	trustedPeer := isTrusted(peer, trusted)
	keepPrior := len(s.xff) > 0 && trustedPeer
	for _, name := range s.names {
		if eqFold(name, "X-Forwarded-For") {
			keepPrior = false // the client called it hop-by-hop
		}
		if !protected(name) {
			h.DelBytes(name)
		}
	}
	for i, name := range hopHeaders {
		if hops&(1<<i) != 0 {
			h.Del(name)
		}
	}
	h.ResetConnectionClose()

	// The gateway's own headers replace every line the client sent. Other
	// forwarding headers only a trusted proxy may pass on.
	if keepPrior {
		s.xff = append(s.xff, ", "...)
	} else {
		s.xff = s.xff[:0]
	}
	if !trustedPeer {
		dropForwarding(h, s)
	}
	if peer.IsValid() {
		s.xff = peer.AppendTo(s.xff)
	} else {
		s.xff = append(s.xff, "unknown"...) // not a TCP peer (in-memory listeners in tests)
	}
	h.Del("X-Forwarded-For")
	h.SetBytesV("X-Forwarded-For", s.xff)
	setForwarded(h, trustedPeer, s.conn)
	return true
}

// hopIndex returns the index of name in hopHeaders, or -1.
func hopIndex(name []byte) int {
	for i, hop := range hopHeaders {
		if eqFold(name, hop) {
			return i
		}
	}
	return -1
}

// rewriteResponse drops the backend's hop-by-hop headers. The gateway
// decides about the client connection itself. Response header names keep
// the backend's spelling (see upstream's transport), so every name is
// matched ignoring case and deleted as spelled.
func rewriteResponse(h *fasthttp.ResponseHeader, s *scratch) {
	s.names, s.buf = s.names[:0], s.buf[:0]
	for k, v := range h.All() {
		if eqFold(k, "Connection") {
			s.addTokens(v)
		}
	}
	listed := len(s.names)
	for k := range h.All() {
		if hopIndex(k) >= 0 || listedIn(s.names[:listed], k) && !protected(k) {
			s.addName(k)
		}
	}
	for _, name := range s.names[listed:] {
		h.DelBytes(name)
	}
	h.ResetConnectionClose()
}

// dropFold removes every response header named name (at most 64 bytes),
// however the backend spelled it, calling seen (when not nil) with each
// value before it goes. Response names keep the backend's spelling, so
// Peek and Del, which match it exactly, would miss "x-accel-buffering".
func dropFold(h *fasthttp.ResponseHeader, name string, seen func(v []byte)) {
	var spelled [64]byte
	for {
		n := 0
		for k, v := range h.All() {
			if eqFold(k, name) {
				if seen != nil {
					seen(v)
				}
				n = copy(spelled[:], k)
				break
			}
		}
		if n == 0 {
			return
		}
		h.DelBytes(spelled[:n])
	}
}

// listedIn reports whether names holds name, ignoring case.
func listedIn(names [][]byte, name []byte) bool {
	for _, n := range names {
		if bytes.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// addTokens records the header names listed in a Connection value.
func (s *scratch) addTokens(v []byte) {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.Trim(tok, " \t")
		if len(tok) > 0 && !eqFold(tok, "close") && !eqFold(tok, "keep-alive") {
			s.addName(tok)
		}
	}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr returns the client's IP address without allocating.
func peerAddr(c net.Conn) netip.Addr {
	if c == nil {
		return netip.Addr{}
	}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}

// eqFold reports whether b equals the ASCII string s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if c|0x20 != d|0x20 || (c|0x20 < 'a' || c|0x20 > 'z') && c != d {
			return false
		}
	}
	return true
}

// peerAddrPort appends the client's ip:port to dst without allocating.
func peerAddrPort(dst []byte, c net.Conn) []byte {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return netip.AddrPortFrom(a.Unmap(), uint16(ta.Port)).AppendTo(dst)
	}
	return dst
}
