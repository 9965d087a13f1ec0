package gateway

import (
	"net"
	"strconv"

	"github.com/valyala/fasthttp"
)

// setForwarded sets X-Forwarded-Proto, X-Forwarded-Host and
// X-Forwarded-Port. A trusted proxy's own values are kept: it terminated
// the client's connection and knows its scheme, host and port (a Django app
// behind a TLS load balancer needs X-Forwarded-Proto: https, or
// SECURE_SSL_REDIRECT redirects forever). From anyone else every line of
// them is replaced by what this connection says. It does not allocate.
func setForwarded(h *fasthttp.RequestHeader, trustedPeer bool, c net.Conn) {
	if !trustedPeer || len(h.Peek("X-Forwarded-Proto")) == 0 {
		h.Del("X-Forwarded-Proto")
		proto := "http"
		if _, ok := c.(tlsConner); ok {
			proto = "https"
		}
		h.Set("X-Forwarded-Proto", proto)
	}
	if !trustedPeer || len(h.Peek("X-Forwarded-Host")) == 0 {
		h.Del("X-Forwarded-Host")
		if host := h.Host(); len(host) > 0 {
			h.SetBytesV("X-Forwarded-Host", host)
		}
	}
	if !trustedPeer || len(h.Peek("X-Forwarded-Port")) == 0 {
		h.Del("X-Forwarded-Port")
		if c == nil {
			return
		}
		if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
			var buf [5]byte
			h.SetBytesV("X-Forwarded-Port", strconv.AppendUint(buf[:0], uint64(ta.Port), 10))
		}
	}
}
