package gateway

import (
	"bytes"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"shardgate/listener"
)

// Edge is what a listener group does beyond plain HTTP: PROXY protocol, TLS
// termination, HSTS, or redirecting everything to HTTPS. The zero Edge is a
// plain listener.
type Edge struct {
	// ProxyProtocol, when > 0, requires a PROXY protocol v1 or v2 header
	// within this time on every connection; the client address is taken
	// from it. Connections without a valid one are closed.
	ProxyProtocol time.Duration
	// TLS, when not nil, terminates TLS (after the PROXY header, if any).
	TLS *TLSListener
	// HSTS is the Strict-Transport-Security value set on every response;
	// "" sets none.
	HSTS string
	// RedirectPort, when not "", answers every request with 308 to
	// https://HOST:RedirectPort/TARGET (":443" is left out).
	RedirectPort string
	// Challenge, when not nil, answers ACME HTTP-01 requests on a
	// redirecting listener; it reports whether it did.
	Challenge func(ctx *fasthttp.RequestCtx) bool
}

func (e *Edge) plain() bool {
	return e == nil || e.ProxyProtocol == 0 && e.TLS == nil && e.HSTS == "" && e.RedirectPort == "" && e.Challenge == nil
}

// SetEdge configures grp's edge behaviour; call it before Serve.
func (s *Server) SetEdge(grp *listener.Group, e Edge) {
	if s.edges == nil {
		s.edges = map[*listener.Group]*Edge{}
	}
	s.edges[grp] = &e
}

// wrap layers the edge's connection wrappers over one shard socket.
func (e *Edge) wrap(ln net.Listener) net.Listener {
	if e == nil {
		return ln
	}
	if e.ProxyProtocol > 0 {
		ln = listener.ProxyProtocol(ln, e.ProxyProtocol)
	}
	if e.TLS != nil {
		ln = &tlsShard{Listener: ln, t: e.TLS}
	}
	return ln
}

// servers returns the fasthttp servers (fast, lean) for a group: the shared
// pair for a plain listener, else a pair of its own with the edge's handler.
func (s *Server) servers(e *Edge) (fast, lean *fasthttp.Server) {
	if e.plain() {
		return s.fast, s.lean
	}
	h := s.g.Handler
	switch {
	case e.RedirectPort != "":
		h = redirectHandler(e.RedirectPort, e.Challenge)
	case e.TLS != nil:
		h = tlsHandler(h, e.HSTS)
	case e.Challenge != nil:
		next, challenge := h, e.Challenge
		h = func(ctx *fasthttp.RequestCtx) {
			if !challenge(ctx) {
				next(ctx)
			}
		}
	}
	fast, lean = newFastHTTP(s.g, s.sc, s.log, false), newFastHTTP(s.g, s.sc, s.log, true)
	fast.Handler, lean.Handler = h, h
	s.extra = append(s.extra, fast, lean)
	return fast, lean
}

var hstsName = []byte("Strict-Transport-Security")

// tlsHandler serves requests that came over TLS. fasthttp parses their URI
// as https://, and a plain-HTTP backend client refuses such a request: the
// scheme is set back to http, as the backend is spoken to (the backend
// learns the client's scheme from X-Forwarded-Proto). hsts, when not "", is
// set on every response.
func tlsHandler(next fasthttp.RequestHandler, hsts string) fasthttp.RequestHandler {
	val := []byte(hsts)
	return func(ctx *fasthttp.RequestCtx) {
		ctx.Request.URI().SetScheme("http")
		next(ctx)
		if len(val) > 0 {
			dropFold(&ctx.Response.Header, "Strict-Transport-Security", nil) // the backend's, however spelled
			ctx.Response.Header.SetCanonical(hstsName, val)
		}
	}
}

// redirectHandler answers every request with 308 to the same host and target
// over HTTPS on port, except ACME HTTP-01 requests that challenge answers.
func redirectHandler(port string, challenge func(*fasthttp.RequestCtx) bool) fasthttp.RequestHandler {
	suffix := ":" + port
	if port == "443" {
		suffix = ""
	}
	return func(ctx *fasthttp.RequestCtx) {
		if challenge != nil && challenge(ctx) {
			return
		}
		host := hostOnly(ctx.Request.Header.Host())
		if len(host) == 0 || !validHost(host) {
			reply(ctx, fasthttp.StatusBadRequest, "missing or invalid Host", "")
			return
		}
		target := ctx.Request.Header.RequestURI()
		if len(target) == 0 || target[0] != '/' {
			// Absolute form or "*": keep only the path and query.
			target = ctx.URI().RequestURI()
		}
		loc := make([]byte, 0, len("https://")+len(host)+len(suffix)+len(target))
		loc = append(append(append(append(loc, "https://"...), host...), suffix...), target...)
		reply(ctx, fasthttp.StatusPermanentRedirect, "redirecting to https", "")
		ctx.Response.Header.SetBytesV("Location", loc)
	}
}

// hostOnly strips the port from a Host header value, keeping IPv6 brackets.
func hostOnly(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && !bytes.Contains(h[i:], []byte("]")) {
		return h[:i]
	}
	return h
}

// validHost accepts the characters of a DNS name, an IPv4 address or a
// bracketed IPv6 address, so nothing odd ends up in a Location header.
func validHost(h []byte) bool {
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '[', c == ']', c == ':':
		default:
			return false
		}
	}
	return true
}

var acmePrefix = []byte("/.well-known/acme-challenge/")

// HTTPChallenge returns an Edge.Challenge that answers ACME HTTP-01
// requests (GET /.well-known/acme-challenge/TOKEN) with h, such as an
// autocert.Manager's HTTPHandler. Other requests cost one prefix compare.
func HTTPChallenge(h http.Handler) func(*fasthttp.RequestCtx) bool {
	fh := fasthttpadaptor.NewFastHTTPHandler(h)
	return func(ctx *fasthttp.RequestCtx) bool {
		if !bytes.HasPrefix(ctx.Request.Header.RequestURI(), acmePrefix) {
			return false
		}
		fh(ctx)
		return true
	}
}
