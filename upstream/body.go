package upstream

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Options say how Exchange takes a backend's response. Options is plain
// data, read during one exchange; the zero value reads every body whole, as
// Do does.
type Options struct {
	// BufferBytes is the longest body read whole into the response. A
	// longer one (or one of unknown length that grows longer) is returned
	// as a Body holding the rest, with the first BufferBytes bytes already in
	// the response. 0 means no limit.
	BufferBytes int
	// Stream, when not nil, is asked once the header is read: true returns
	// the body as a Body at once, nothing of it read yet. It may edit the
	// header.
	Stream func(*fasthttp.ResponseHeader) bool
	// Timeout bounds the wait for the response header and, once a Body is
	// returned, each read from it. 0 means the backend's response timeout.
	Timeout time.Duration

	body Body // the Body of one exchange while it is read in place
}

// Errors a Body reports.
var (
	errChunk = errors.New("upstream: malformed chunked body")
	// errBodyTrunc is a reset (Classify): the backend closed mid-body.
	errBodyTrunc = fmt.Errorf("upstream: body ended early: %w", io.ErrUnexpectedEOF)
)

// Body is the rest of a backend response body, read from the backend
// connection as it arrives: de-framed (Content-Length, chunked, or up to
// the close). Close hands the connection back: to the pool if the body was
// read to its end and the connection can carry another exchange, else it is
// closed. Read and Close are for one goroutine; Abort may be called from any
// goroutine, also concurrently with Read.
type Body struct {
	br      *bufio.Reader
	conn    net.Conn
	release func(reuse bool) // nil once Close ran
	timeout time.Duration
	length  int64 // content length left; -1: chunked; -2: until the backend closes
	chunk   int64 // bytes left in the current chunk
	keep    bool  // the connection may be reused once the body has ended
	stream  bool  // Options.Stream chose to stream it
	eof     bool
	err     error
}

// Len returns the body bytes still to come when the backend announced its
// length, else -1.
func (b *Body) Len() int64 {
	if b.length < 0 {
		return -1
	}
	return b.length
}

// Streaming reports whether Options.Stream chose to pass the body through
// as it arrives; else it is the rest of a body longer than BufferBytes.
func (b *Body) Streaming() bool { return b.stream }

// Done reports whether the body has been read to its end.
func (b *Body) Done() bool { return b.eof }

// Read reads body bytes; io.EOF once the body ended cleanly. Each read
// from the connection waits at most the exchange's timeout.
func (b *Body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.err = err
	}
	return n, err
}

func (b *Body) read(p []byte) (int, error) {
	switch {
	case b.length >= 0:
		if b.length == 0 {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), b.length)]
		n, err := b.fill(p)
		b.length -= int64(n)
		if err == io.EOF {
			err = errBodyTrunc
		}
		if err == nil && b.length == 0 {
			err = io.EOF
		}
		return n, err
	case b.length == -1:
		return b.readChunked(p)
	default:
		n, err := b.fill(p)
		if err == io.EOF {
			b.keep = false // the backend closed: framing by close
		}
		return n, err
	}
}

// fill reads what the buffer holds, or waits for the connection.
func (b *Body) fill(p []byte) (int, error) {
	if b.br.Buffered() == 0 {
		if err := b.conn.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
			return 0, err
		}
	}
	return b.br.Read(p)
}

func (b *Body) readChunked(p []byte) (int, error) {
	if b.chunk == 0 {
		size, err := b.chunkSize()
		if err != nil {
			return 0, err
		}
		if size == 0 {
			return 0, b.trailer()
		}
		b.chunk = size
	}
	p = p[:min(int64(len(p)), b.chunk)]
	n, err := b.fill(p)
	b.chunk -= int64(n)
	if err == io.EOF {
		return n, errBodyTrunc
	}
	if err == nil && b.chunk == 0 {
		err = b.crlf()
	}
	return n, err
}

// chunkSize reads a chunk-size line, extensions ignored.
func (b *Body) chunkSize() (int64, error) {
	line, err := b.line()
	if err != nil {
		return 0, err
	}
	var size int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case c == ';' || c == ' ' || c == '\t':
			if digits == 0 {
				return 0, errChunk
			}
			return size, nil
		default:
			return 0, errChunk
		}
		if digits++; digits > 15 {
			return 0, errChunk
		}
		size = size<<4 | int64(d)
	}
	if digits == 0 {
		return 0, errChunk
	}
	return size, nil
}

// trailer skips the trailer section after the last chunk: trailers are not
// forwarded.
func (b *Body) trailer() error {
	for range 100 {
		line, err := b.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return io.EOF
		}
	}
	return errChunk
}

func (b *Body) crlf() error {
	line, err := b.line()
	if err == nil && len(line) != 0 {
		err = errChunk
	}
	return err
}

// line reads one line without its CRLF (or LF).
func (b *Body) line() ([]byte, error) {
	if b.br.Buffered() == 0 {
		if err := b.conn.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
			return nil, err
		}
	}
	line, err := b.br.ReadSlice('\n')
	switch {
	case err == io.EOF:
		return nil, errBodyTrunc
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errChunk
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// Abort closes the backend connection now, so that a Read blocked on it
// returns. It is safe to call from any goroutine, and more than once, but
// not after Close.
func (b *Body) Abort() { b.conn.Close() }

// Close hands the connection back: pooled if the body was read to its
// end and nothing more arrived, else closed. It is idempotent.
func (b *Body) Close() error {
	if b.release == nil {
		return nil
	}
	release := b.release
	b.release = nil
	release(b.eof && b.keep && b.br.Buffered() == 0)
	return nil
}

// Exchange forwards req to the backend and reads the response as o says
// (with o nil, whole). It returns a Body when the response body was not read
// whole (see Options); the caller must Close it. The caller must hold a slot
// on the backend. The request is never resent: a pooled connection is
// checked before it is written to. The outcome goes to the backend's
// Observer (the response time is to the end of what was read here);
// Classify tells the kind of a returned error.
func (b *Backend) Exchange(req *fasthttp.Request, resp *fasthttp.Response, o *Options) (*Body, error) {
	b.requests.Add(1)
	start := time.Now()
	resp.ResetBody() // the header is read anew; keep its settings (no default Content-Type)
	req.URI().DisablePathNormalizing = true
	body, err := cleanTransport{b: b}.roundTrip(b.client, req, resp, o)
	if err != nil {
		b.errors.Add(1)
		if err == io.EOF {
			err = fasthttp.ErrConnectionClosed
		}
		b.Observe(0, err)
		return nil, err
	}
	b.Observe(time.Since(start), nil)
	return body, nil
}

// Observe reports one exchange to the backend's Observer: its error, or
// how long it took. Exchange calls it; so does a caller that talks to the
// backend on a connection of its own (an Upgrade tunnel).
func (b *Backend) Observe(took time.Duration, err error) {
	if err != nil {
		b.observer.Error(Classify(err))
		return
	}
	b.observer.Response(took)
}

// readResponse reads a response header and as much of its body as o asks
// for. open reports that the body continues in o.body.
func readResponse(resp *fasthttp.Response, br *bufio.Reader, conn net.Conn, o *Options, timeout time.Duration) (open bool, err error) {
	o.body = Body{keep: true}
	if err := readHeader(resp, br); err != nil {
		return false, err
	}
	h := &resp.Header
	if resp.SkipBody || noBody(h.StatusCode()) {
		return false, nil
	}
	stream := o.Stream != nil && o.Stream(h)
	cl := h.ContentLength()
	if !stream && cl >= 0 && (o.BufferBytes == 0 || cl <= o.BufferBytes) {
		return false, resp.ReadBody(br, 0)
	}
	bd := &o.body
	*bd = Body{br: br, conn: conn, timeout: timeout, length: int64(cl), keep: cl != -2}
	if cl == -2 {
		bd.length = -2
	}
	if stream {
		bd.stream = true
		return true, nil
	}
	// Unknown length, or longer than the buffer: read up to the buffer.
	w := resp.BodyWriter()
	bp := copyBufs.Get().(*[32 << 10]byte)
	defer copyBufs.Put(bp)
	total := 0
	for o.BufferBytes == 0 || total < o.BufferBytes {
		want := len(bp)
		if o.BufferBytes > 0 {
			want = min(want, o.BufferBytes-total)
		}
		n, err := bd.Read(bp[:want])
		w.Write(bp[:n]) //nolint:errcheck // a body buffer takes every write
		total += n
		if err == io.EOF {
			if cl < 0 {
				h.SetContentLength(total)
			}
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

var copyBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// readHeader reads the final response header, skipping interim 1xx ones.
func readHeader(resp *fasthttp.Response, br *bufio.Reader) error {
	for range 10 {
		if err := resp.Header.Read(br); err != nil {
			return err
		}
		if c := resp.Header.StatusCode(); c >= 200 || c == fasthttp.StatusSwitchingProtocols {
			return nil
		}
	}
	return errors.New("upstream: too many interim responses")
}

// noBody reports the statuses whose responses have no body.
func noBody(code int) bool {
	return code < 200 || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified
}
