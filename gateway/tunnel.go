package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/config"
	"shardgate/upstream"
)

// A request with "Connection: upgrade" and an Upgrade header (WebSocket,
// h2c, ...) becomes a tunnel. The handler hijacks the client connection at
// once, and the tunnel runs on the hijack goroutine fasthttp starts, with
// the RequestCtx still valid: it takes a backend slot (queueing like any
// request), dials the backend on a connection of its own, forwards the
// request with its Connection and Upgrade headers, and reads the answer.
// A 101 is passed to the client byte for byte and both connections are
// then spliced until either side closes or tunnel_idle_timeout passes with
// no byte either way; any other answer is an ordinary response, after which
// the client connection closes. The slot is held for the tunnel's life.

// tunnelBufSize is each direction's copy buffer.
const tunnelBufSize = 32 << 10

// maxTunnelHead bounds the backend's answer head.
const maxTunnelHead = 32 << 10

// tunnelSet counts the tunnels of one upstream (shardgate_tunnels_open,
// read from the snapshot); it outlives reloads.
type tunnelSet struct {
	open atomic.Int64
	max  atomic.Int64 // 0 = no cap
	idle atomic.Int64 // tunnel_idle_timeout in ns
}

// tunnelRegistry holds every upstream's tunnelSet and the open tunnels, so
// that a drain can close them. Safe for concurrent use.
type tunnelRegistry struct {
	mu sync.Mutex // protects sets and open
	// sets is keyed by upstream name.
	sets    map[string]*tunnelSet
	open    map[*tunnel]struct{}
	closing bool           // drain is closing tunnels: no new one opens
	wg      sync.WaitGroup // one per open tunnel
}

// forUpstream returns the tunnelSet of upstream uc, updated to its settings.
func (r *tunnelRegistry) forUpstream(uc *config.Upstream) *tunnelSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sets == nil {
		r.sets = make(map[string]*tunnelSet)
		r.open = make(map[*tunnel]struct{})
	}
	ts := r.sets[uc.Name]
	if ts == nil {
		ts = &tunnelSet{}
		r.sets[uc.Name] = ts
	}
	ts.max.Store(int64(uc.MaxTunnels))
	ts.idle.Store(int64(uc.TunnelIdleTimeout))
	return ts
}

func (ts *tunnelSet) add(n int64) { ts.open.Add(n) }

// tunnel is one open tunnel's connections.
type tunnel struct {
	client, backend net.Conn
	clientRaw       net.Conn     // the socket under client, whose Close fasthttp leaves to itself
	last            atomic.Int64 // Unix ns of the last byte either way
	closeOnce       sync.Once
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		t.clientRaw.Close()
		t.backend.Close()
	})
}

// Drain closes the tunnels still open when ctx ends, after waiting for
// them to close by themselves until then. It returns once every tunnel is
// gone.
func (r *tunnelRegistry) drain(ctx context.Context) {
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	r.mu.Lock()
	r.closing = true
	for t := range r.open {
		t.close()
	}
	r.mu.Unlock()
	<-done
}

// CloseTunnels waits for the open Upgrade tunnels to close until ctx ends,
// then closes the rest; call it on shutdown, after the server stopped.
func (g *Gateway) CloseTunnels(ctx context.Context) { g.tunnels.drain(ctx) }

// upgradeRequested returns a copy of the Upgrade header value of a request
// that asks for a protocol upgrade ("Connection: upgrade" and a non-empty
// Upgrade), or nil.
func upgradeRequested(h *fasthttp.RequestHeader) []byte {
	if !h.ConnectionUpgrade() {
		return nil
	}
	v := h.Peek(fasthttp.HeaderUpgrade)
	if len(v) == 0 {
		return nil
	}
	return bytes.Clone(v)
}

// startTunnel hijacks the client connection for the upgrade request ctx
// routed to u; its request headers are already rewritten.
func (g *Gateway) startTunnel(ctx *fasthttp.RequestCtx, u *upstreamState, proto []byte, start time.Time) {
	h := &ctx.Request.Header
	h.Set(fasthttp.HeaderConnection, "Upgrade")
	h.SetBytesV(fasthttp.HeaderUpgrade, proto)
	raw := ctx.Conn()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer g.recoverTunnelPanic()
		g.runTunnel(ctx, c, raw, u, start)
	})
}

func (g *Gateway) recoverTunnelPanic() {
	if v := recover(); v != nil {
		g.log.Error("panic in tunnel", "panic", v)
	}
}

// runTunnel is the hijack handler: c is the client connection (reading
// what fasthttp buffered first), raw the accepted connection under it.
func (g *Gateway) runTunnel(ctx *fasthttp.RequestCtx, c, raw net.Conn, u *upstreamState, start time.Time) {
	s := &scratch{conn: raw, done: make(chan struct{}, 1)}
	ts := u.tunnels
	if m := ts.max.Load(); m > 0 && ts.open.Load() >= m {
		reply(ctx, fasthttp.StatusServiceUnavailable, "too many tunnels", u.retryAfter)
		g.answerHijacked(ctx, c, s, u, nil, start, 0, 0, "")
		return
	}
	b, waited, err := u.pool.Acquire(s) // s.conn is raw: asks whether the client left
	if err != nil {
		reason, _ := upstream.Reason(err)
		u.metrics.Shed(reason)
		reply(ctx, fasthttp.StatusServiceUnavailable, shedText[reason], u.retryAfter)
		if reason == upstream.ShedClientGone {
			ctx.Response.SetStatusCode(statusClientGone) // recorded, never sent: the client left
		}
		g.answerHijacked(ctx, c, s, u, nil, start, waited, 0, reason.String())
		return
	}
	defer u.pool.Release(b)
	sent := time.Now()
	bc, br, head, err := g.upgradeExchange(ctx, u, b)
	took := time.Since(sent)
	b.Observe(took, err)
	if err != nil {
		code, text := backendStatus(upstream.Classify(err), err)
		g.failed(u, b, err)
		reply(ctx, code, text, "")
		g.answerHijacked(ctx, c, s, u, b, start, waited, took, "")
		return
	}
	u.pool.Answered(b, ctx.Response.StatusCode())
	if head == nil { // not 101: an ordinary response, already in ctx.Response
		bc.Close()
		rewriteResponse(&ctx.Response.Header, s)
		g.answerHijacked(ctx, c, s, u, b, start, waited, took, "")
		return
	}
	u.metrics.QueueWait(waited)
	u.metrics.Request(fasthttp.StatusSwitchingProtocols, time.Since(start))
	g.logAccess(ctx, s, start, u, b, waited, took, "")
	t := &tunnel{client: c, clientRaw: raw, backend: bc}
	if !g.tunnels.track(t) {
		t.close()
		return
	}
	ts.add(1)
	defer ts.add(-1)
	defer g.tunnels.untrack(t)
	if _, err := c.Write(head); err != nil {
		t.close()
		return
	}
	t.splice(br, time.Duration(ts.idle.Load()))
}

// track records an open tunnel; it reports false once the registry drains.
func (r *tunnelRegistry) track(t *tunnel) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	if r.open == nil {
		r.open = make(map[*tunnel]struct{})
	}
	r.open[t] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *tunnelRegistry) untrack(t *tunnel) {
	r.mu.Lock()
	delete(r.open, t)
	r.mu.Unlock()
	r.wg.Done()
}

// hijackedWriteTimeout bounds writing a non-tunnel answer to a hijacked
// client connection.
const hijackedWriteTimeout = 30 * time.Second

// answerHijacked writes ctx.Response to the hijacked client connection
// (which closes after it), unless its client left, and records the
// request; shed names the shed reason, if any.
func (g *Gateway) answerHijacked(ctx *fasthttp.RequestCtx, c net.Conn, s *scratch, u *upstreamState,
	b *upstream.Backend, start time.Time, waited, took time.Duration, shed string) {
	if ctx.Response.StatusCode() != statusClientGone {
		ctx.Response.SetConnectionClose()
		c.SetWriteDeadline(time.Now().Add(hijackedWriteTimeout))
		bw := bufio.NewWriter(c)
		if err := ctx.Response.Write(bw); err == nil {
			bw.Flush()
		}
	}
	u.metrics.QueueWait(waited)
	u.metrics.Request(ctx.Response.StatusCode(), time.Since(start))
	g.logAccess(ctx, s, start, u, b, waited, took, shed)
}

// upgradeExchange dials b, sends the upgrade request and reads the head of
// the answer. On 101 it returns the connection, a reader holding what the
// backend sent after the head, and the raw head to pass on; on any other
// status the whole response is read into ctx.Response and head is nil.
func (g *Gateway) upgradeExchange(ctx *fasthttp.RequestCtx, u *upstreamState, b *upstream.Backend) (
	net.Conn, *bufio.Reader, []byte, error) {
	conn, err := net.DialTimeout("tcp", b.Address(), u.connectTimeout)
	if err != nil {
		return nil, nil, nil, &upstream.DialError{Err: err}
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	conn.SetDeadline(time.Now().Add(u.responseTimeout))
	bw := bufio.NewWriterSize(conn, 4096)
	if err := ctx.Request.Write(bw); err != nil {
		return nil, nil, nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, nil, nil, err
	}
	br := bufio.NewReaderSize(conn, tunnelBufSize)
	head, err := readHead(br)
	if err != nil {
		return nil, nil, nil, err
	}
	if !bytes.HasPrefix(head[bytes.IndexByte(head, ' ')+1:], []byte("101")) {
		resp := &ctx.Response
		resp.Reset()
		err := resp.Read(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br)))
		if err != nil {
			return nil, nil, nil, err
		}
		ok = true
		return conn, nil, nil, nil
	}
	ctx.Response.SetStatusCode(fasthttp.StatusSwitchingProtocols)
	conn.SetDeadline(time.Time{})
	ok = true
	return conn, br, head, nil
}

var errHeadTooLarge = errors.New("gateway: backend answer head too large")

// readHead reads an HTTP response head, up to and including its empty line.
func readHead(br *bufio.Reader) ([]byte, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errHeadTooLarge
			}
			if len(head) == 0 && errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, err
		}
		head = append(head, line...)
		if len(head) > maxTunnelHead {
			return nil, errHeadTooLarge
		}
		if len(line) <= 2 && (len(head) > len(line)) { // "\r\n" or "\n" after the status line
			if !bytes.HasPrefix(head, []byte("HTTP/1.")) || bytes.IndexByte(head, ' ') < 0 {
				return nil, fmt.Errorf("gateway: not an HTTP response: %q", firstLine(head))
			}
			return head, nil
		}
	}
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return bytes.TrimRight(b[:i], "\r")
	}
	return b
}

// splice copies bytes both ways until both directions end, or one fails,
// or idle passes with no byte either way. A side that ends cleanly (EOF)
// half-closes the other's write side, so what is still in flight the other
// way arrives.
func (t *tunnel) splice(backendReader io.Reader, idle time.Duration) {
	t.touch()
	var wg sync.WaitGroup
	wg.Go(func() { t.pipe(t.backend, t.client, t.client, idle) })
	t.pipe(t.client, backendReader, t.backend, idle)
	wg.Wait()
	t.close()
}

// pipe copies from r (reading rc) to dst.
func (t *tunnel) pipe(dst io.Writer, r io.Reader, rc net.Conn, idle time.Duration) {
	buf := make([]byte, tunnelBufSize)
	rc.SetReadDeadline(time.Now().Add(idle))
	for {
		n, err := r.Read(buf)
		if n > 0 {
			t.touch()
			if wc, ok := dst.(net.Conn); ok {
				wc.SetWriteDeadline(time.Now().Add(idle))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				t.close()
				return
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			last := time.Unix(0, t.last.Load())
			if time.Since(last) < idle {
				rc.SetReadDeadline(last.Add(idle))
				continue
			}
		}
		if errors.Is(err, io.EOF) && closeWrite(dst) {
			return
		}
		t.close()
		return
	}
}

// closeWrite half-closes dst's write side, reporting whether it could.
func closeWrite(dst io.Writer) bool {
	for {
		switch c := dst.(type) {
		case interface{ CloseWrite() error }:
			return c.CloseWrite() == nil
		case interface{ UnsafeConn() net.Conn }:
			dst = c.UnsafeConn()
		default:
			return false
		}
	}
}
