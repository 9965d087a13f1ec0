package upstream

import (
	"bufio"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// A request that timed out (response_timeout) is answered 504 at once, but
// the backend is most likely still running it: a gunicorn gthread worker, or
// a sync worker below its own --timeout, finishes the view whatever the
// gateway does. Releasing the slot then would send the next request to a
// busy worker and break the limit in practice. So the slot passes to a
// goroutine that keeps the connection open and waits for the backend's
// answer to begin (the view returned) or the connection to close (the
// worker died or was killed), timeout_hold at most, and only then releases
// it.

// hold takes over the connection of an exchange that failed with err and
// the backend slot it ran in, when err is a response timeout with no byte
// of the response read and the backend holds timed-out slots. It reports
// whether it did; then the caller must leave the connection alone, which
// the hold closes with closeConn.
func (t cleanTransport) hold(conn net.Conn, closeConn func(), err error) bool {
	b := t.b
	if b == nil || !isTimeout(err) {
		return false
	}
	d := time.Duration(b.hold.Load())
	bc, ok := conn.(*backendConn)
	if d <= 0 || !ok || bc.nread > 0 {
		return false // not holding, or the backend is answering already
	}
	b.rot.mu.Lock()
	p := b.rot.pool
	b.rot.mu.Unlock()
	if p == nil {
		return false
	}
	// A second claim on the slot the exchange runs in: the caller's
	// Release frees the first, so the slot stays taken until the hold ends.
	b.inflight.Add(1)
	p.inflight.Add(1)
	go func() {
		defer p.Release(b)
		defer closeConn()
		if conn.SetDeadline(time.Now().Add(d)) != nil {
			return
		}
		var h fasthttp.ResponseHeader
		_ = h.Read(bufio.NewReaderSize(conn, 4096)) // the head, an EOF, or the hold's deadline
	}()
	return true
}
