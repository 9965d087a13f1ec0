package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"shardgate/listener"
)

// errBareLF is what a client connection's Read returns once the client
// ended a header block with a bare LF: serverError answers it with 400.
var errBareLF = errors.New("gateway: header block ends in a bare LF")

// headConn is a client connection that watches the bytes of each request
// head go by. fasthttp takes a header block as complete only once it has
// seen CRLF CRLF, so a request whose lines all end in bare LF would wait
// for more bytes until read_timeout. headConn finds the empty line that
// ends the head in the bytes it delivers; when that line or the one before
// it ends in a bare LF, the next Read (fasthttp asking for more, since it
// does not see an end) fails with errBareLF at once instead of waiting.
// Such a request is refused either way: when fasthttp does take it (a
// CRLF CRLF follows in the same buffer), the handler's checks refuse its
// bare LF.
//
// The watch starts on a new connection and again when the handler runs
// (rearm), and stops at the first end of a head: body bytes are never
// looked at. A request pipelined behind another in bytes fasthttp has
// already buffered is not watched; with a bare-LF head it waits for
// read_timeout as before. Bytes that arrive after the rearm but do not
// start with a request line (the rest of a pipelined request) end the
// watch at once.
//
// Only the connection's serving goroutine uses a headConn.
type headConn struct {
	net.Conn
	linger   bool // drain what the client still sends before closing; see Close
	watching bool
	bad      bool
	state    uint8 // where the scan is: see scan
	crlf     bool  // the last line ended in CRLF
	prevCR   bool  // the last byte scanned was CR

	// The end of the request line so far, to tell a request line from
	// bytes that are not one.
	tail    [len("HTTP/1.1\r")]byte
	tailN   int // bytes in tail
	lineLen int // bytes in the request line so far
}

// shardConn is a client connection that knows its listener shard.
type shardConn interface{ Shard() int }

func newHeadConn(c net.Conn) *headConn { return &headConn{Conn: c, watching: true} }

// wrapHead wraps an accepted client connection in a headConn, and a TLS one
// in a tlsHeadConn, which still offers fasthttp's TLS interface.
func wrapHead(c net.Conn) net.Conn {
	hc := newHeadConn(c)
	if t, ok := c.(tlsConner); ok {
		return &tlsHeadConn{headConn: hc, tls: t}
	}
	return hc
}

// tlsConner is fasthttp's view of a TLS connection (ctx.IsTLS,
// ctx.TLSConnectionState); X-Forwarded-Proto asks it too.
type tlsConner interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// tlsHeadConn is a headConn over a TLS connection. Without it the wrapper
// would hide the TLS under it: requests over TLS would reach the backend
// with X-Forwarded-Proto: http (regression: TestTLSSNIVersionsAndForwardedProto).
type tlsHeadConn struct {
	*headConn
	tls tlsConner
}

// Handshake implements tlsConner.
func (c *tlsHeadConn) Handshake() error { return c.tls.Handshake() }

// ConnectionState implements tlsConner.
func (c *tlsHeadConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// header is what both wrappers share: the headConn itself.
type header interface{ head() *headConn }

func (c *headConn) head() *headConn { return c }

// rearm starts watching for the next request's head, if c is a headConn.
func rearm(c net.Conn) {
	if h, ok := c.(header); ok {
		hc := h.head()
		*hc = headConn{Conn: hc.Conn, watching: true}
	}
}

// Read implements net.Conn.
func (c *headConn) Read(p []byte) (int, error) {
	if c.bad {
		return 0, errBareLF
	}
	n, err := c.Conn.Read(p)
	if c.watching && n > 0 {
		c.scan(p[:n])
	}
	return n, err
}

const (
	reqLine   uint8 = iota // in the request line, or the empty lines before it
	midLine                // inside a header line
	lineStart              // just after a LF
	startCR                // a CR at the start of a line
)

// scan follows b through the head until the empty line that ends it. The
// watch stops without a verdict when the first line does not end in an
// HTTP version: those are not the first bytes of a request (a pipelined
// request's body after the handler rearmed the watch), and fasthttp
// answers a request line without a version itself.
func (c *headConn) scan(b []byte) {
	for len(b) > 0 {
		switch c.state {
		case reqLine:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.keep(b)
				return
			}
			c.keep(b[:i])
			b = b[i+1:]
			t := c.tail[:c.tailN]
			c.crlf = len(t) > 0 && t[len(t)-1] == '\r'
			if c.crlf {
				t = t[:len(t)-1]
			}
			switch {
			case len(t) == 0 && c.lineLen <= 1: // an empty line before the request
			case !isVersionEnd(t):
				c.watching = false
				return
			default:
				c.state = lineStart
			}
			c.tailN, c.lineLen = 0, 0
		case midLine:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.prevCR = b[len(b)-1] == '\r'
				return
			}
			c.crlf = i > 0 && b[i-1] == '\r' || i == 0 && c.prevCR
			c.state, b = lineStart, b[i+1:]
		case lineStart:
			switch b[0] {
			case '\n': // LF LF
				c.end(false)
				return
			case '\r':
				c.state = startCR
			default:
				c.state = midLine
			}
			c.prevCR, b = b[0] == '\r', b[1:]
		case startCR:
			if b[0] == '\n' {
				c.end(c.crlf)
				return
			}
			c.state = midLine // fasthttp refuses the bare CR
		}
	}
}

// keep adds b to the request line seen so far.
func (c *headConn) keep(b []byte) {
	c.lineLen += len(b)
	if len(b) >= len(c.tail) {
		c.tailN = copy(c.tail[:], b[len(b)-len(c.tail):])
		return
	}
	n := min(c.tailN, len(c.tail)-len(b))
	copy(c.tail[:], c.tail[c.tailN-n:c.tailN])
	c.tailN = n + copy(c.tail[n:], b)
}

// isVersionEnd reports whether line ends in "HTTP/d.d".
func isVersionEnd(line []byte) bool {
	n := len(line)
	return n >= 8 && string(line[n-8:n-3]) == "HTTP/" && isDigit(line[n-3]) && line[n-2] == '.' && isDigit(line[n-1])
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// end stops the watch at the end of a head; clean is whether it ended in
// CRLF CRLF.
func (c *headConn) end(clean bool) {
	c.watching = false
	c.bad = !clean
}

// Shard returns the listener shard of the wrapped connection, or 0.
func (c *headConn) Shard() int {
	if sc, ok := c.Conn.(shardConn); ok {
		return sc.Shard()
	}
	return 0
}

// Peek reports the state of the wrapped connection without consuming
// data (listener.Peek asks); StateIdle when it cannot tell, as a
// connection without a socket is never taken for closed.
func (c *headConn) Peek() listener.State {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return listener.Peek(sc)
	}
	return listener.StateIdle
}

// SyscallConn returns the wrapped connection's, so that the queue can
// still peek at the socket (scratch.Gone).
func (c *headConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// ReadFrom writes what r yields to the wrapped connection as it arrives.
// fasthttp writes a response body through a bufio.Writer, which hands the
// whole body to ReadFrom once its buffer is empty (after the header went
// out): a streamed body then reaches the client read by read instead of
// waiting in a 4 KiB buffer. Without this method the wrapper would hide
// *net.TCPConn's ReadFrom and hold every stream back (regression:
// TestStreamEventsArriveAsSent/with-length saw events a second late).
func (c *headConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	// Hide ReadFrom from io.Copy, which would call it again.
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// Lingering close. A response refusing a request body the client is still
// sending (413, 503 cannot buffer) is followed by a close; closing a socket
// with unread bytes in it makes the kernel send RST instead of FIN, and a
// client that receives the RST before it has read the response loses the
// response with it. So such a connection is half-closed after the response
// and what the client still sends is read and discarded, for at most
// lingerTime (lingerIdle without a byte) and lingerBytes, as nginx's
// lingering_close does.
const (
	lingerTime  = 5 * time.Second
	lingerIdle  = time.Second
	lingerBytes = 64 << 20
)

// lingerOnClose asks for a lingering close of c (the connection of a
// request being answered) when it is a headConn.
func lingerOnClose(c net.Conn) {
	if h, ok := c.(header); ok {
		h.head().linger = true
	}
}

// Close closes the connection, lingering first if asked to.
func (c *headConn) Close() error {
	if c.linger {
		c.linger = false
		c.drain()
	}
	return c.Conn.Close()
}

func (c *headConn) drain() {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	buf := make([]byte, 32<<10) // only for a refused body, not per request
	end := time.Now().Add(lingerTime)
	for n := 0; n < lingerBytes; {
		now := time.Now()
		deadline := now.Add(lingerIdle)
		if end.Before(deadline) {
			deadline = end
		}
		if !now.Before(end) || c.Conn.SetReadDeadline(deadline) != nil {
			return
		}
		m, err := c.Conn.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}
