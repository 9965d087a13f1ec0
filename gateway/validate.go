package gateway

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/config"
)

// Request hardening. fasthttp has parsed the request before the handler
// runs and already refuses much (see README "Request hardening"): control
// bytes and DEL in the request-target and in values, bad Content-Length,
// codings other than chunked and identity, duplicate Host; test/ pins each
// of those, so a parser upgrade that lets one through fails the tests.
// What it accepts but gunicorn, or any other parser behind the gateway,
// could read differently is refused here, before routing, with a 4xx (or
// 501/505) and a closed connection. What is accepted is forwarded in one
// canonical form: fasthttp's client writes the request line and every
// header line anew with CRLF, the body framed by Content-Length (normalize
// removes the trailers that would make it send chunked), as HTTP/1.0 or
// HTTP/1.1.

// limits are the request limits the checks enforce, from config.Server;
// a zero limit is not enforced.
type limits struct {
	maxHeaderCount int
	maxURIBytes    int
	maxBodyBytes   int
}

func newLimits(sc config.Server) limits {
	return limits{maxHeaderCount: sc.MaxHeaderCount, maxURIBytes: sc.MaxURIBytes, maxBodyBytes: sc.MaxBodyBytes}
}

// refusal is the answer to a request the gateway will not forward.
type refusal struct {
	status int
	text   string
}

// requestRules check the request line and the header block as a whole, in
// order; the first that matches answers.
var requestRules = [...]struct {
	refusal
	bad func(h *fasthttp.RequestHeader, l *limits) bool
}{
	{refusal{fasthttp.StatusHTTPVersionNotSupported, "HTTP version not supported"}, badVersion},
	{refusal{fasthttp.StatusBadRequest, "invalid method"}, badMethod},
	{refusal{fasthttp.StatusNotImplemented, "CONNECT is not supported"}, isConnect},
	{refusal{fasthttp.StatusRequestURITooLong, "request-target too long"}, func(h *fasthttp.RequestHeader, l *limits) bool {
		return l.maxURIBytes > 0 && len(h.RequestURI()) > l.maxURIBytes
	}},
	{refusal{fasthttp.StatusRequestHeaderFieldsTooLarge, "too many header fields"}, func(h *fasthttp.RequestHeader, l *limits) bool {
		return l.maxHeaderCount > 0 && fieldCount(h.RawHeaders()) > l.maxHeaderCount
	}},
	{refusal{fasthttp.StatusRequestEntityTooLarge, "request body too large"}, func(h *fasthttp.RequestHeader, l *limits) bool {
		return l.maxBodyBytes > 0 && h.ContentLength() > l.maxBodyBytes
	}},
}

// field is one header line as the client sent it.
type field struct {
	name, value []byte
	bareLF      bool // the line ended in LF without CR
	folded      bool // the line started with SP or HTAB: obs-fold
}

// fieldRules check every header line as it came off the wire, in order.
var fieldRules = [...]struct {
	refusal
	bad func(f field) bool
}{
	{refusal{fasthttp.StatusBadRequest, "obs-fold in header"}, func(f field) bool { return f.folded }},
	{refusal{fasthttp.StatusBadRequest, "bare LF in header"}, func(f field) bool { return f.bareLF }},
	{refusal{fasthttp.StatusBadRequest, "invalid header name"}, func(f field) bool { return !isToken(f.name) }},
	{refusal{fasthttp.StatusBadRequest, "unsupported transfer coding"}, func(f field) bool {
		// fasthttp refuses every coding but chunked and identity, and
		// forwards identity as no body at all, leaving the body to be read
		// as the next request. Only a single chunked is accepted.
		return eqFold(f.name, "Transfer-Encoding") && !eqFold(f.value, "chunked")
	}},
	{refusal{fasthttp.StatusBadRequest, "invalid Host"}, func(f field) bool {
		return eqFold(f.name, "Host") && !isHost(f.value)
	}},
	{refusal{fasthttp.StatusExpectationFailed, "unsupported expectation"}, func(f field) bool {
		return eqFold(f.name, "Expect") && !eqFold(f.value, "100-continue")
	}},
}

// check returns the refusal for a request the gateway must not forward,
// or nil. It looks at the parsed header and at its raw bytes; it allocates
// nothing.
func (l *limits) check(h *fasthttp.RequestHeader) *refusal {
	for i := range requestRules {
		if requestRules[i].bad(h, l) {
			return &requestRules[i].refusal
		}
	}
	raw := h.RawHeaders()
	var f field
	for len(raw) > 0 {
		raw = nextField(raw, &f)
		if f.name == nil && !f.folded && !f.bareLF {
			break // the empty line that ends the block
		}
		for i := range fieldRules {
			if fieldRules[i].bad(f) {
				return &fieldRules[i].refusal
			}
		}
	}
	return nil
}

// nextField parses the first line of raw into f and returns the rest. An
// empty line leaves f.name nil.
func nextField(raw []byte, f *field) []byte {
	line, rest := raw, raw[len(raw):]
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		line, rest = raw[:i], raw[i+1:]
	}
	*f = field{bareLF: len(line) == 0 || line[len(line)-1] != '\r'}
	if !f.bareLF {
		line = line[:len(line)-1]
	}
	if len(line) == 0 {
		return rest
	}
	f.folded = line[0] == ' ' || line[0] == '\t'
	name, value, _ := bytes.Cut(line, []byte{':'})
	f.name, f.value = name, bytes.Trim(value, " \t") // OWS
	return rest
}

// fieldCount returns the number of header lines in raw.
func fieldCount(raw []byte) int {
	return max(bytes.Count(raw, []byte{'\n'})-1, 0)
}

// badVersion reports a version the gateway does not speak: HTTP/1.x is
// served (forwarded as HTTP/1.1 when x > 1), others get 505. fasthttp
// refuses anything that is not HTTP/d.d.
func badVersion(h *fasthttp.RequestHeader, _ *limits) bool {
	p := h.Protocol()
	return len(p) != len("HTTP/1.1") || p[5] != '1'
}

func badMethod(h *fasthttp.RequestHeader, _ *limits) bool { return !isToken(h.Method()) }

// isConnect: the gateway is no forward proxy and tunnels nothing.
func isConnect(h *fasthttp.RequestHeader, _ *limits) bool { return h.IsConnect() }

// normalize rewrites what the gateway accepts into the one form it sends:
// HTTP/1.x above 1.1 as HTTP/1.1, no default Content-Type the client did
// not send, and no trailer fields (they arrive after the body; forwarded,
// they would make the gateway send the body chunked with a trailer section
// that a backend may take for the next request, and a field in it that
// arrived after the routing decision could never be checked; RFC 9110
// 6.5.1 lets a proxy drop them). Fields named as trailers are dropped from
// the header section too.
func normalize(h *fasthttp.RequestHeader, s *scratch) {
	if p := h.Protocol(); p[7] > '1' {
		h.SetProtocol("HTTP/1.1")
	}
	h.SetNoDefaultContentType(true)
	dropTrailers(h, s)
}

// dropTrailers removes the Trailer declaration and the fields it names (or
// that a chunked body's trailer section added). It runs again once a
// streamed request body has been read, since fasthttp parses that trailer
// section only then.
func dropTrailers(h *fasthttp.RequestHeader, s *scratch) {
	s.names, s.buf = s.names[:0], s.buf[:0]
	for name := range h.Trailers() {
		s.addName(name)
	}
	if len(s.names) == 0 {
		return
	}
	h.Del("Trailer")
	for _, name := range s.names {
		if !protected(name) {
			h.DelBytes(name)
		}
	}
}

// tchar is RFC 9110 5.6.2's token character set.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// hostChar is what RFC 3986's authority may hold without userinfo:
// unreserved, pct-encoded, sub-delims, ":" and the brackets of an IP
// literal.
var hostChar = func() (t [256]bool) {
	for c := range t {
		t[c] = tchar[c]
	}
	for _, c := range []byte("^`|#") {
		t[c] = false
	}
	for _, c := range []byte("():;=,[]") {
		t[c] = true
	}
	return t
}()

// isHost reports whether v is a valid Host value: host[:port], no
// userinfo (which fasthttp's client would turn into an Authorization
// header), no path, no space.
func isHost(v []byte) bool {
	for _, c := range v {
		if !hostChar[c] {
			return false
		}
	}
	return true
}

// refuse answers a request the checks refused and closes the connection:
// whatever follows on it may be framed differently than the client meant.
func (g *Gateway) refuse(ctx *fasthttp.RequestCtx, s *scratch, start time.Time, r *refusal) {
	reply(ctx, r.status, r.text, "")
	ctx.SetConnectionClose()
	lingerOnClose(ctx.Conn()) // so that the client reads the refusal, not a reset
	g.logAccess(ctx, s, start, nil, nil, 0, 0, "")
}

// expect decides an "Expect: 100-continue" request before its body is
// read (fasthttp's ExpectHandler): a request the checks refuse, one whose
// Content-Length is over max_body_bytes included, gets its answer at once
// instead of 100 Continue. fasthttp then closes the connection.
func (g *Gateway) expect(ctx *fasthttp.RequestCtx) int {
	start := time.Now()
	r := g.state.Load().limits.check(&ctx.Request.Header)
	if r == nil {
		return fasthttp.StatusContinue
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	s.conn = ctx.Conn()
	reply(ctx, r.status, r.text, "")
	g.logAccess(ctx, s, start, nil, nil, 0, 0, "")
	return r.status
}
