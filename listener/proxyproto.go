package listener

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// The PROXY protocol (HAProxy's spec, versions 1 and 2) carries the original
// client address from a load balancer that does not terminate the
// connection (AWS NLB, HAProxy's send-proxy, Envoy).

var (
	// ErrProxyHeader is returned by the first Read of a connection from a
	// ProxyProtocol listener whose PROXY header is missing or invalid; the
	// connection is closed.
	ErrProxyHeader = errors.New("listener: missing or invalid PROXY protocol header")

	errProxyShort = errors.New("listener: PROXY header incomplete")
)

// v2Signature starts every PROXY protocol v2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	v1MaxLen = 107 // the spec's bound on a v1 line, CRLF included
	v2MaxLen = 16 + 65535
)

// proxyHeader is what a parsed header says. local is true when it names no
// client (v2 LOCAL, a health check from the balancer itself; v1 UNKNOWN):
// the connection's own addresses stand.
type proxyHeader struct {
	src, dst netip.AddrPort
	local    bool
}

// parseProxyHeader parses the header at the start of b. It returns the
// header's length, or errProxyShort when b may be the start of a valid
// header but is incomplete, or ErrProxyHeader.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	switch {
	case len(b) >= len(v2Signature) && bytes.Equal(b[:len(v2Signature)], v2Signature):
		return parseV2(b)
	case len(b) < len(v2Signature) && bytes.HasPrefix(v2Signature, b):
		return proxyHeader{}, 0, errProxyShort
	case len(b) >= 6 && string(b[:6]) == "PROXY ":
		return parseV1(b)
	case len(b) < 6 && bytes.HasPrefix([]byte("PROXY "), b):
		return proxyHeader{}, 0, errProxyShort
	}
	return proxyHeader{}, 0, ErrProxyHeader
}

// parseV1 parses "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or
// "PROXY UNKNOWN ...\r\n".
func parseV1(b []byte) (proxyHeader, int, error) {
	end := bytes.IndexByte(b[:min(len(b), v1MaxLen)], '\n')
	if end < 0 {
		if len(b) >= v1MaxLen {
			return proxyHeader{}, 0, ErrProxyHeader
		}
		return proxyHeader{}, 0, errProxyShort
	}
	if end == 0 || b[end-1] != '\r' {
		return proxyHeader{}, 0, ErrProxyHeader
	}
	f := bytes.Split(b[6:end-1], []byte(" "))
	if len(f) >= 1 && string(f[0]) == "UNKNOWN" {
		return proxyHeader{local: true}, end + 1, nil
	}
	if len(f) != 5 || string(f[0]) != "TCP4" && string(f[0]) != "TCP6" {
		return proxyHeader{}, 0, ErrProxyHeader
	}
	src, ok1 := v1Addr(f[1], f[3], string(f[0]) == "TCP4")
	dst, ok2 := v1Addr(f[2], f[4], string(f[0]) == "TCP4")
	if !ok1 || !ok2 {
		return proxyHeader{}, 0, ErrProxyHeader
	}
	return proxyHeader{src: src, dst: dst}, end + 1, nil
}

func v1Addr(ip, port []byte, v4 bool) (netip.AddrPort, bool) {
	a, err := netip.ParseAddr(string(ip))
	if err != nil || a.Zone() != "" || a.Is4() != v4 {
		return netip.AddrPort{}, false
	}
	// The spec forbids leading zeros and signs; 0 is a valid port.
	if len(port) == 0 || len(port) > 5 || len(port) > 1 && port[0] == '0' {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(string(port), 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(p)), true
}

// parseV2 parses the binary header: signature, version/command, family,
// length, addresses, then TLVs (skipped).
func parseV2(b []byte) (proxyHeader, int, error) {
	if len(b) < 16 {
		return proxyHeader{}, 0, errProxyShort
	}
	verCmd, fam := b[12], b[13]
	n := 16 + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 || verCmd&0xf > 1 {
		return proxyHeader{}, 0, ErrProxyHeader
	}
	if len(b) < n {
		return proxyHeader{}, 0, errProxyShort
	}
	body := b[16:n]
	if verCmd&0xf == 0 { // LOCAL
		return proxyHeader{local: true}, n, nil
	}
	switch fam {
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return proxyHeader{}, 0, ErrProxyHeader
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		return proxyHeader{
			src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10])),
			dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12])),
		}, n, nil
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return proxyHeader{}, 0, ErrProxyHeader
		}
		src := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		dst := netip.AddrFrom16([16]byte(body[16:32])).Unmap()
		return proxyHeader{
			src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34])),
			dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:36])),
		}, n, nil
	case 0x00: // UNSPEC: keep the connection's addresses
		return proxyHeader{local: true}, n, nil
	}
	return proxyHeader{}, 0, ErrProxyHeader // UDP, unix sockets: not for HTTP
}

// ProxyProtocol wraps a shard listener so that every connection must start
// with a PROXY protocol v1 or v2 header, read within timeout on the
// connection's first Read (never in Accept, so a silent client does not hold
// the accept loop). RemoteAddr and LocalAddr then report the addresses the
// header carries. A connection whose header is missing, invalid or late is
// closed and its Read returns ErrProxyHeader.
func ProxyProtocol(ln net.Listener, timeout time.Duration) net.Listener {
	return &proxyListener{Listener: ln, timeout: timeout}
}

type proxyListener struct {
	net.Listener
	timeout time.Duration
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &ProxyConn{Conn: c, timeout: l.timeout}, nil
}

// ProxyConn is a connection from a ProxyProtocol listener. Read, RemoteAddr
// and LocalAddr are for the goroutine that serves it (they are valid once the
// first Read returned); Peek and SyscallConn reach the socket and are safe
// from any goroutine.
type ProxyConn struct {
	net.Conn
	timeout time.Duration
	parsed  bool
	rest    []byte // bytes read past the header, returned by Read first
	remote  net.Addr
	local   net.Addr
}

// Read reads the PROXY header first, then the connection's data.
func (c *ProxyConn) Read(b []byte) (int, error) {
	if !c.parsed {
		if err := c.readHeader(); err != nil {
			c.Conn.Close()
			return 0, err
		}
	}
	if len(c.rest) > 0 {
		n := copy(b, c.rest)
		c.rest = c.rest[n:]
		if len(c.rest) == 0 {
			c.rest = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *ProxyConn) readHeader() error {
	c.parsed = true
	if c.timeout > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= v2MaxLen {
				return ErrProxyHeader
			}
			buf = append(buf, make([]byte, min(cap(buf), v2MaxLen))...)[:len(buf)]
		}
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, hlen, perr := parseProxyHeader(buf)
		switch {
		case perr == nil:
			c.rest = buf[hlen:]
			if !h.local {
				c.remote = net.TCPAddrFromAddrPort(h.src)
				c.local = net.TCPAddrFromAddrPort(h.dst)
			}
			return nil
		case !errors.Is(perr, errProxyShort):
			return perr
		case err != nil:
			return ErrProxyHeader
		}
	}
}

// RemoteAddr returns the client address from the PROXY header, or the
// socket's peer for a LOCAL or UNKNOWN header.
func (c *ProxyConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the destination address from the PROXY header, or the
// socket's own.
func (c *ProxyConn) LocalAddr() net.Addr {
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

// SyscallConn returns the socket's RawConn.
func (c *ProxyConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, syscall.EINVAL
	}
	return sc.SyscallConn()
}

// Peek reports the socket's state (see the package function Peek).
func (c *ProxyConn) Peek() State {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return StateClosed
	}
	return Peek(sc)
}

// Shard returns the shard of the accepted connection, or 0.
func (c *ProxyConn) Shard() int {
	if s, ok := c.Conn.(interface{ Shard() int }); ok {
		return s.Shard()
	}
	return 0
}
