package gateway

import (
	"bytes"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"
)

// route sends requests whose path starts with prefix to up.
type route struct {
	prefix string
	up     *upstreamState
}

// routes of one host pattern, longest prefix first.
type routes []route

func (rs routes) match(path []byte) *upstreamState {
	for i := range rs {
		if prefixMatch(path, rs[i].prefix) {
			return rs[i].up
		}
	}
	return nil
}

// prefixMatch reports whether path starts with prefix at a segment
// boundary: "/api" matches "/api" and "/api/x" but not "/apix"; a prefix
// that ends in "/" matches anything below it.
func prefixMatch(path []byte, prefix string) bool {
	if len(path) < len(prefix) || string(path[:len(prefix)]) != prefix {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

type suffixRoutes struct {
	suffix string // ".example.com" for "*.example.com"
	routes routes
}

// router is an immutable routing table: host first (exact, then the longest
// matching "*.suffix", then "*"), then the longest path prefix. A host group
// without a matching prefix falls through to the next, less specific one.
// Safe for concurrent use.
type router struct {
	exact    map[string]routes
	suffixes []suffixRoutes // longest suffix first
	any      routes
}

// add puts a route in the table; build sorts it.
func (r *router) add(host, prefix string, up *upstreamState) {
	rt := route{prefix: prefix, up: up}
	switch {
	case host == "*":
		r.any = append(r.any, rt)
	case strings.HasPrefix(host, "*."):
		suffix := host[1:]
		for i := range r.suffixes {
			if r.suffixes[i].suffix == suffix {
				r.suffixes[i].routes = append(r.suffixes[i].routes, rt)
				return
			}
		}
		r.suffixes = append(r.suffixes, suffixRoutes{suffix: suffix, routes: routes{rt}})
	default:
		if r.exact == nil {
			r.exact = make(map[string]routes)
		}
		r.exact[host] = append(r.exact[host], rt)
	}
}

func (r *router) build() {
	byLen := func(rs routes) {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].prefix) > len(rs[j].prefix) })
	}
	for _, rs := range r.exact {
		byLen(rs)
	}
	for i := range r.suffixes {
		byLen(r.suffixes[i].routes)
	}
	sort.SliceStable(r.suffixes, func(i, j int) bool { return len(r.suffixes[i].suffix) > len(r.suffixes[j].suffix) })
	byLen(r.any)
}

// match returns the upstream for a normalised host and path, or nil.
func (r *router) match(host, path []byte) *upstreamState {
	if rs, ok := r.exact[string(host)]; ok {
		if up := rs.match(path); up != nil {
			return up
		}
	}
	for i := range r.suffixes {
		s := &r.suffixes[i]
		if len(host) > len(s.suffix) && string(host[len(host)-len(s.suffix):]) == s.suffix {
			if up := s.routes.match(path); up != nil {
				return up
			}
		}
	}
	return r.any.match(path)
}

// normalizeHost lowercases host into dst and strips a port and a trailing dot.
func normalizeHost(dst, host []byte) []byte {
	if len(host) > 0 && host[0] == '[' { // IPv6 literal
		if i := bytes.IndexByte(host, ']'); i > 0 {
			host = host[:i+1]
		}
	} else if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	dst = dst[:0]
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// routePath returns the path to route on. The request is left untouched so
// its request-target is forwarded exactly as the client sent it; a target
// that is not a plain origin-form path is parsed and normalised (percent
// decoding, dot segments) into u, so "/api/../admin" routes as "/admin".
func routePath(uri []byte, u *fasthttp.URI) []byte {
	if len(uri) == 1 && uri[0] == '*' { // OPTIONS *
		return slash
	}
	if len(uri) == 0 || uri[0] != '/' { // absolute-form
		u.Reset()
		if err := u.Parse(nil, uri); err != nil {
			return nil
		}
		return u.Path()
	}
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if !needsNormalizing(uri) {
		return uri
	}
	// Set the path alone: parsing "//admin/x" as a target would read
	// "admin" as a host and route "/x".
	u.Reset()
	u.SetPathBytes(uri)
	return u.Path()
}

func needsNormalizing(uri []byte) bool {
	end := bytes.IndexByte(uri, '?')
	if end < 0 {
		end = len(uri)
	}
	for i, c := range uri[:end] {
		switch {
		case c == '%' || c == '\\':
			return true
		case c == '/' && i+1 < end && (uri[i+1] == '.' || uri[i+1] == '/'):
			return true
		}
	}
	return false
}

var slash = []byte("/")
