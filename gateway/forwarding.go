package gateway

import "github.com/valyala/fasthttp"

// dropForwarding removes, from a client that is not a trusted proxy, every
// header that tells a backend where the request came from or how: Forwarded,
// X-Real-IP and every X-Forwarded-* in any spelling of its case. gunicorn
// (forwarded_allow_ips, 127.0.0.1 by default) takes X-Forwarded-Proto,
// X-Forwarded-Protocol and X-Forwarded-Ssl from the gateway for the scheme,
// and refuses a request whose three disagree; Django and Flask's ProxyFix
// read X-Forwarded-Port, -Prefix and -Server. The gateway then sets its own
// X-Forwarded-For, -Proto and -Host. It uses s.names and s.buf.
func dropForwarding(h *fasthttp.RequestHeader, s *scratch) {
	s.names, s.buf = s.names[:0], s.buf[:0]
	for k := range h.All() {
		if isForwarding(k) {
			s.addName(k)
		}
	}
	for _, name := range s.names {
		h.DelBytes(name)
	}
}

func isForwarding(name []byte) bool {
	const prefix = "X-Forwarded-"
	return eqFold(name, "Forwarded") || eqFold(name, "X-Real-Ip") ||
		len(name) > len(prefix) && eqFold(name[:len(prefix)], prefix)
}
