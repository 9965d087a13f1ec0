package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Checks return "" for a valid value, else the message for the user.

func positive[T int | time.Duration](v T) string {
	if v <= 0 {
		return "must be > 0"
	}
	return ""
}

func nonNegative[T int | time.Duration](v T) string {
	if v < 0 {
		return "must be ≥ 0"
	}
	return ""
}

func atMost(hi int) func(int) string {
	return func(v int) string {
		if v > hi {
			return fmt.Sprintf("must be ≤ %d", hi)
		}
		return ""
	}
}

func between(lo, hi int) func(int) string {
	return func(v int) string {
		if v < lo || v > hi {
			return fmt.Sprintf("must be between %d and %d", lo, hi)
		}
		return ""
	}
}

func headerBytes(v int) string {
	if v < 1<<10 || v > 1<<20 {
		return "must be between 1KiB and 1MiB"
	}
	return ""
}

func uriBytes(v int) string {
	if v < 256 || v > 1<<20 {
		return "must be between 256B and 1MiB"
	}
	return ""
}

func oneOf(allowed ...string) func(string) string {
	return func(v string) string {
		if !slices.Contains(allowed, v) {
			return fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), v)
		}
		return ""
	}
}

func nonEmpty(v string) string {
	if v == "" {
		return "must not be empty"
	}
	return ""
}

func noControl(v string) string {
	if strings.ContainsFunc(v, unicode.IsControl) {
		return "must not contain control characters"
	}
	return ""
}

func badRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

// splitAddr splits host:port and checks the port is a number from minPort
// to 65535.
func splitAddr(s string, minPort int) (host string, port int, msg string) {
	if strings.Contains(s, "://") {
		return "", 0, fmt.Sprintf("want host:port without a scheme, got %q", s)
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		if _, err := strconv.Atoi(s); err == nil {
			return "", 0, fmt.Sprintf("want host:port, got %q (did you mean %q?)", s, ":"+s)
		}
		return "", 0, fmt.Sprintf("want host:port, got %q", s)
	}
	port, err = strconv.Atoi(p)
	if err != nil || strings.Trim(p, "0123456789") != "" || port < minPort || port > 65535 {
		return "", 0, fmt.Sprintf("port must be a number from %d to 65535, got %q", minPort, p)
	}
	if strings.ContainsFunc(host, badRune) || strings.Contains(host, "/") {
		return "", 0, fmt.Sprintf("invalid host %q", host)
	}
	return host, port, ""
}

// listenAddr checks an address to listen on: the host may be empty (every
// address) and port 0 picks a free port.
func listenAddr(s string) string {
	_, _, msg := splitAddr(s, 0)
	return msg
}

// adminAddr is listenAddr where "" turns the admin listener off.
func adminAddr(s string) string {
	if s == "" {
		return ""
	}
	return listenAddr(s)
}

// Bounds of names that key a backend's shared slot entry
// ("b|UPSTREAM|ADDRESS" fits in shm.MaxKey).
const (
	maxUpstreamName = 100
	maxAddress      = 300
)

func backendAddr(s string) string {
	if len(s) > maxAddress {
		return fmt.Sprintf("longer than %d bytes", maxAddress)
	}
	host, _, msg := splitAddr(s, 1)
	if msg == "" && host == "" {
		msg = fmt.Sprintf("host must not be empty, got %q", s)
	}
	return msg
}

// overlaps reports whether listening on a and b would take the same port on
// the same address. Port 0 never overlaps: each listener gets its own.
func overlaps(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return false
	}
	pa, _ := strconv.Atoi(ap)
	pb, _ := strconv.Atoi(bp)
	if pa != pb || pa == 0 {
		return false
	}
	ah, bh = strings.ToLower(ah), strings.ToLower(bh)
	return ah == bh || covers(ah, bh) || covers(bh, ah)
}

// covers reports whether a socket bound to host w also receives connections
// addressed to host h.
func covers(w, h string) bool {
	switch w {
	case "", "::":
		return true
	case "0.0.0.0":
		ip, err := netip.ParseAddr(h)
		return err != nil || ip.Unmap().Is4()
	}
	return false
}

// hostPattern checks a route host: "*", "*.example.com", "example.com" or a
// bracketed IPv6 literal, without a port. Case does not matter.
func hostPattern(h string) string {
	h = strings.ToLower(h)
	switch {
	case h == "":
		return `must not be empty (use "*" for any host)`
	case h == "*":
		return ""
	case strings.ContainsFunc(h, badRune):
		return fmt.Sprintf("must not contain spaces or control characters, got %q", h)
	case strings.HasPrefix(h, "["):
		return ipv6Literal(h)
	}
	if ip, err := netip.ParseAddr(h); err == nil && ip.Is6() {
		return fmt.Sprintf("write IPv6 addresses in brackets, like %q", "["+h+"]")
	}
	if strings.Contains(h, ":") {
		return fmt.Sprintf("must not contain a port, got %q", h)
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return fmt.Sprintf(`"*" is allowed only as the whole host or a leading "*.", got %q`, h)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return fmt.Sprintf("empty label in %q", h)
		}
		if i := strings.IndexFunc(label, notHostRune); i >= 0 {
			r, _ := utf8.DecodeRuneInString(label[i:])
			return fmt.Sprintf("invalid character %q in %q", r, h)
		}
	}
	return ""
}

func notHostRune(r rune) bool {
	return !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_')
}

func ipv6Literal(h string) string {
	end := strings.IndexByte(h, ']')
	switch {
	case end < 0:
		return fmt.Sprintf("missing \"]\" in %q", h)
	case end != len(h)-1:
		return fmt.Sprintf("must not contain a port, got %q", h)
	}
	ip, err := netip.ParseAddr(h[1:end])
	if err != nil || !ip.Is6() || ip.Zone() != "" {
		return fmt.Sprintf("not an IPv6 address: %q", h)
	}
	return ""
}

func pathPrefix(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("must start with \"/\", got %q", p)
	case strings.ContainsFunc(p, badRune):
		return fmt.Sprintf("must not contain spaces or control characters, got %q", p)
	case strings.ContainsAny(p, "?#"):
		return fmt.Sprintf("must not contain \"?\" or \"#\", got %q", p)
	}
	return ""
}

// upstreamName checks an upstream name, which becomes a Prometheus label
// value.
func upstreamName(s string) string {
	if s == "" {
		return "upstream name must not be empty"
	}
	if strings.IndexFunc(s, notNameRune) >= 0 {
		return fmt.Sprintf("invalid upstream name %q: use letters, digits, '_', '.' and '-'", s)
	}
	if len(s) > maxUpstreamName {
		return fmt.Sprintf("upstream name longer than %d bytes", maxUpstreamName)
	}
	return ""
}

func notNameRune(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
		r == '_' || r == '.' || r == '-')
}
