package config

import (
	"maps"
	"net/netip"
	"shardgate/balancer"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Bounds that catch typos; no real deployment comes near them.
const (
	maxShards = 1024
	maxLimit  = 1_000_000
	maxWeight = 1000
)

// config decodes the top-level mapping and runs the checks that span
// sections.
func (d *decoder) config(root *yaml.Node) *Config {
	c := defaultConfig()
	root = resolve(root)
	switch {
	case isNull(root):
		d.add("", root, "empty document")
		return c
	case root.Kind != yaml.MappingNode:
		d.add("", root, "the top level must be a mapping, got %s", kind(root))
		return c
	}
	present := d.mapping("", root, fields{
		"listen":    func(p string, v *yaml.Node) { c.Listen = d.listen(p, v) },
		"admin":     func(p string, v *yaml.Node) { d.adminSection(p, v, &c.Admin) },
		"server":    func(p string, v *yaml.Node) { d.server(p, v, &c.Server) },
		"log":       func(p string, v *yaml.Node) { d.log(p, v, &c.Log) },
		"upstreams": func(p string, v *yaml.Node) { d.upstreams(p, v, c.Upstreams) },
		"routes":    func(p string, v *yaml.Node) { c.Routes = d.routeList(p, v) },
		"processes": d.integer(&c.Processes, between(1, MaxProcesses)),
		"cluster":   func(p string, v *yaml.Node) { c.Cluster = d.cluster(p, v) },
	})
	if present["upstreams"] == nil {
		d.add("upstreams", root, "at least one upstream is required")
	}
	if present["routes"] == nil {
		d.add("routes", root, "at least one route is required")
	}
	if present["listen"] == nil {
		d.listens = []located{{path: "listen[0].address", value: defaultListen}}
	}
	c.UpstreamNames = slices.Sorted(maps.Keys(c.Upstreams))
	d.checkAdmin(c.Admin.Address)
	d.checkRouteUpstreams(c.Upstreams)
	return c
}

func (d *decoder) listen(path string, n *yaml.Node) []Listen {
	items, ok := d.sequence(path, n)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.add(path, n, "at least one listener is required (leave the key out for %q)", defaultListen)
	}
	out := make([]Listen, 0, len(items))
	var redirects []located // redirect_https: true, value "tls" on a TLS listener
	hasTLS := false
	for i, it := range items {
		p := index(path, i)
		var l Listen
		before := len(d.errs)
		present := d.mapping(p, it, fields{
			"address":        d.str(&l.Address, listenAddr),
			"shards":         d.integer(&l.Shards, nonNegative, atMost(maxShards)),
			"tls":            func(p string, v *yaml.Node) { l.TLS = d.tls(p, v, true) },
			"redirect_https": d.boolean(&l.RedirectHTTPS),
			"proxy_protocol": d.boolean(&l.ProxyProtocol),
		})
		if present != nil && present["address"] == nil {
			d.add(join(p, "address"), it, "required")
		}
		// A listener with errors still counts here (by its position and
		// whether it has a tls section), so that its errors are not followed
		// by a wrong one about another listener.
		hasTLS = hasTLS || present["tls"] != nil
		if l.RedirectHTTPS {
			redirects = append(redirects, located{path: join(p, "redirect_https"),
				value: map[bool]string{true: "tls"}[present["tls"] != nil], node: present["redirect_https"]})
		}
		if len(d.errs) > before {
			continue
		}
		here := located{path: join(p, "address"), value: l.Address, node: present["address"]}
		for _, prev := range d.listens {
			if overlaps(prev.value, l.Address) {
				d.add(here.path, here.node, "%q conflicts with %s %q", l.Address, prev.path, prev.value)
			}
		}
		d.listens = append(d.listens, here)
		out = append(out, l)
	}
	d.checkRedirects(redirects, hasTLS)
	return out
}

func (d *decoder) adminSection(path string, n *yaml.Node, a *Admin) {
	present := d.mapping(path, n, fields{
		"address":       d.str(&a.Address, adminAddr),
		"allow":         func(p string, v *yaml.Node) { a.Allow = d.prefixes(p, v) },
		"metrics_allow": func(p string, v *yaml.Node) { a.MetricsAllow = d.prefixes(p, v) },
		"auth":          func(p string, v *yaml.Node) { d.adminAuth(p, v, &a.Auth) },
		"pprof":         d.boolean(&a.Pprof),
		"tls":           func(p string, v *yaml.Node) { a.TLS = d.tls(p, v, false) },
	})
	d.admin = present["address"]
}

// checkAdmin reports a listen address that the admin address overlaps.
func (d *decoder) checkAdmin(addr string) {
	if addr == "" {
		return
	}
	for _, l := range d.listens {
		if !overlaps(l.value, addr) {
			continue
		}
		node := d.admin
		if node == nil {
			node = l.node
		}
		d.add("admin.address", node, "%q conflicts with %s %q", addr, l.path, l.value)
		return
	}
}

func (d *decoder) server(path string, n *yaml.Node, s *Server) {
	d.mapping(path, n, fields{
		"read_timeout":     d.duration(&s.ReadTimeout, positive),
		"write_timeout":    d.duration(&s.WriteTimeout, positive),
		"idle_timeout":     d.duration(&s.IdleTimeout, positive),
		"shutdown_timeout": d.duration(&s.ShutdownTimeout, positive),
		"max_header_bytes": d.size(&s.MaxHeaderBytes, headerBytes),
		"max_body_bytes":   d.size(&s.MaxBodyBytes, positive),
		"max_header_count": d.integer(&s.MaxHeaderCount, between(1, 10000)),
		"max_uri_bytes":    d.size(&s.MaxURIBytes, uriBytes),
		"trusted_proxies":  func(p string, v *yaml.Node) { s.TrustedProxies = d.prefixes(p, v) },

		"header_timeout":        d.duration(&s.HeaderTimeout, positive),
		"min_rate":              d.rate(&s.MinRate),
		"response_buffer_bytes": d.size(&s.ResponseBufferBytes, bufferBytes),
		"request_buffer_bytes":  d.size(&s.RequestBufferBytes, bufferBytes),
		"spool_dir":             d.str(&s.SpoolDir, spoolDir),
		"max_spool_bytes":       d.size(&s.MaxSpoolBytes, nonNegative),
	})
}

func (d *decoder) prefixes(path string, n *yaml.Node) []netip.Prefix {
	items, ok := d.sequence(path, n)
	if !ok {
		return nil
	}
	out := make([]netip.Prefix, 0, len(items))
	for i, it := range items {
		var p netip.Prefix
		field(d, &p, "a CIDR or IP address", func(n *yaml.Node) (netip.Prefix, error) {
			return parsePrefix(n.Value)
		})(index(path, i), it)
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

func (d *decoder) log(path string, n *yaml.Node, l *Log) {
	d.mapping(path, n, fields{
		"format":            d.str(&l.Format, oneOf("text", "json")),
		"level":             d.str(&l.Level, oneOf("debug", "info", "warn", "error")),
		"access_log":        d.str(&l.AccessLog, noControl),
		"access_log_buffer": d.integer(&l.AccessLogBuffer, positive),
	})
}

func (d *decoder) upstreams(path string, n *yaml.Node, ups map[string]*Upstream) {
	es := d.entries(path, n)
	if es == nil {
		return
	}
	if len(es) == 0 {
		d.add(path, n, "at least one upstream is required")
	}
	for _, e := range es {
		p := join(path, e.key)
		if msg := upstreamName(e.key); msg != "" {
			d.add(p, e.keyNode, "%s", msg)
		}
		u := defaultUpstream(e.key)
		ups[e.key] = u
		d.upstream(p, resolve(e.val), u)
	}
}

func (d *decoder) upstream(path string, n *yaml.Node, u *Upstream) {
	present := d.mapping(path, n, fields{
		"balancer":          d.str(&u.Balancer, oneOf(balancer.Names()...)),
		"max_inflight":      d.integer(&u.MaxInflight, nonNegative),
		"queue":             func(p string, v *yaml.Node) { d.queue(p, v, &u.Queue) },
		"connect_timeout":   d.duration(&u.ConnectTimeout, positive),
		"response_timeout":  d.duration(&u.ResponseTimeout, positive),
		"idle_conn_timeout": d.duration(&u.IdleConnTimeout, positive),
		"backends":          func(p string, v *yaml.Node) { u.Backends = d.backends(p, v) },
		"discover":          func(p string, v *yaml.Node) { u.Discover = d.discover(p, v) },
		"health_check":      func(p string, v *yaml.Node) { u.HealthCheck = d.healthCheck(p, v) },
		"outlier_detection": func(p string, v *yaml.Node) { d.outlier(p, v, &u.OutlierDetection) },
		"retry_budget":      func(p string, v *yaml.Node) { d.retryBudget(p, v, &u.RetryBudget) },

		"tunnel_idle_timeout": d.duration(&u.TunnelIdleTimeout, positive),
		"max_tunnels":         d.integer(&u.MaxTunnels, nonNegative, atMost(maxLimit)),
		"timeout_hold":        d.duration(&u.TimeoutHold, nonNegative),
	})
	// Backends listed are members whatever DNS says; with discover the
	// list may be empty or absent.
	switch {
	case present == nil || present["discover"] != nil:
	case present["backends"] == nil:
		d.add(join(path, "backends"), n, "at least one backend is required")
	case len(u.Backends) == 0 && present["backends"].Kind == yaml.SequenceNode && len(present["backends"].Content) == 0:
		d.add(join(path, "backends"), present["backends"], "at least one backend is required")
	}
}

func (d *decoder) queue(path string, n *yaml.Node, q *Queue) {
	d.mapping(path, n, fields{
		"max_length": d.integer(&q.MaxLength, nonNegative),
		"timeout":    d.duration(&q.Timeout, positive),
		"lifo_after": d.duration(&q.LIFOAfter, nonNegative),
	})
}

func (d *decoder) backends(path string, n *yaml.Node) []Backend {
	items, ok := d.sequence(path, n)
	if !ok {
		return nil
	}
	out := make([]Backend, 0, len(items))
	first := map[string]string{} // lowercased address → where it first appeared
	for i, it := range items {
		p := index(path, i)
		before := len(d.errs)
		b, addr := d.backend(p, it)
		if len(d.errs) > before {
			continue
		}
		key := strings.ToLower(b.Address)
		if where, dup := first[key]; dup {
			d.add(join(p, "address"), addr, "%q duplicates %s", b.Address, where)
		} else {
			first[key] = index("backends", i)
		}
		out = append(out, b)
	}
	return out
}

// backend decodes one backend and returns it with its address node.
func (d *decoder) backend(path string, n *yaml.Node) (Backend, *yaml.Node) {
	b := Backend{Weight: defaultWeight}
	present := d.mapping(path, n, d.backendFields(&b))
	if present == nil {
		return b, nil
	}
	if present["address"] == nil {
		d.add(join(path, "address"), n, "required")
	}
	d.checkBackendLimit(path, b, present)
	return b, present["address"]
}

// backendFields are the keys of a backend.
func (d *decoder) backendFields(b *Backend) fields {
	return fields{
		"address":      d.str(&b.Address, backendAddr),
		"max_inflight": d.integer(&b.MaxInflight, nonNegative, atMost(maxLimit)),
		"workers":      d.integer(&b.Workers, nonNegative, atMost(maxLimit)),
		"threads":      d.integer(&b.Threads, nonNegative, atMost(maxLimit)),
		"weight":       d.integer(&b.Weight, between(1, maxWeight)),
	}
}

// checkBackendLimit reports a backend whose limit is given twice or makes no
// sense.
func (d *decoder) checkBackendLimit(path string, b Backend, present map[string]*yaml.Node) {
	workers, threads := present["workers"], present["threads"]
	if present["max_inflight"] != nil && workers != nil {
		d.add(join(path, "workers"), workers, "set either max_inflight or workers, not both")
	}
	if b.Threads > 0 && b.Workers == 0 {
		d.add(join(path, "threads"), threads, "needs workers > 0 (gunicorn's --threads counts per worker)")
	}
	if limit := int64(b.Workers) * int64(max(b.Threads, 1)); b.Workers > 0 && limit > maxLimit {
		d.add(join(path, "threads"), threads, "workers × threads = %d, must be ≤ %d", limit, maxLimit)
	}
}

func (d *decoder) routeList(path string, n *yaml.Node) []Route {
	items, ok := d.sequence(path, n)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.add(path, n, "at least one route is required")
	}
	out := make([]Route, 0, len(items))
	first := map[[2]string]string{} // (host, path_prefix) → where it first appeared
	for i, it := range items {
		p := index(path, i)
		before := len(d.errs)
		r, ok := d.route(p, it)
		if !ok || len(d.errs) > before {
			continue
		}
		key := [2]string{r.Host, r.PathPrefix}
		if where, dup := first[key]; dup {
			d.add(p, it, "host %q with path_prefix %q duplicates %s", r.Host, r.PathPrefix, where)
		} else {
			first[key] = index("routes", i)
		}
		out = append(out, r)
	}
	return out
}

func (d *decoder) route(path string, n *yaml.Node) (Route, bool) {
	r := Route{Host: "*", PathPrefix: "/", Buffering: true}
	present := d.mapping(path, n, fields{
		"host":             d.str(&r.Host, hostPattern),
		"path_prefix":      d.str(&r.PathPrefix, pathPrefix),
		"upstream":         d.str(&r.Upstream, nonEmpty),
		"buffering":        d.boolean(&r.Buffering),
		"response_timeout": d.duration(&r.ResponseTimeout, positive),
	})
	if present == nil {
		return r, false
	}
	r.Host = strings.ToLower(r.Host)
	p := join(path, "upstream")
	switch u := present["upstream"]; {
	case u == nil:
		d.add(p, n, "required")
	case r.Upstream != "":
		d.routes = append(d.routes, located{path: p, value: r.Upstream, node: u})
	}
	return r, true
}

// checkRouteUpstreams reports routes that name no configured upstream.
func (d *decoder) checkRouteUpstreams(ups map[string]*Upstream) {
	for _, r := range d.routes {
		if ups[r.value] == nil {
			d.add(r.path, r.node, "unknown upstream %q", r.value)
		}
	}
}
