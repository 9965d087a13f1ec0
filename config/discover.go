package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Discover adds backends from DNS to an upstream (YAML key discover; the
// upstream's backends list may then be empty or absent). Every Interval the gateway resolves DNS and applies
// the answer as a reload would: new addresses become backends, vanished ones
// stop taking requests (those in flight finish), the others keep their
// state. Each discovered backend gets the limit and weight given here.
type Discover struct {
	// DNS is the name to resolve (YAML key dns, required), for example a
	// Kubernetes headless service "app.default.svc.cluster.local". A name
	// without a trailing dot goes through the resolver's search list.
	DNS string
	// Port is the backends' port (YAML key port): with a port the name's
	// A and AAAA records give the addresses; without one (0) its SRV
	// records give targets and ports, each target resolved to A/AAAA.
	// 0-65535.
	Port int
	// Interval is how often the name is resolved again (YAML key
	// interval). Default 10s; at least 100ms.
	Interval time.Duration
	// Resolver is the DNS server asked, an "ip:port" (YAML key resolver).
	// Default "": the system's resolver (/etc/resolv.conf, /etc/hosts).
	Resolver string
	// Backend is what every discovered backend gets (YAML keys
	// max_inflight, workers, threads and weight, with the meaning they
	// have under backends); its Address is empty.
	Backend Backend
}

// MaxDiscovered caps the backends one discovered upstream may have; a
// larger answer is an error that keeps the current backends.
const MaxDiscovered = 256

const (
	defaultDiscoverInterval = 10 * time.Second
	minDiscoverInterval     = 100 * time.Millisecond
)

func (d *decoder) discover(path string, n *yaml.Node) *Discover {
	c := &Discover{Interval: defaultDiscoverInterval, Backend: Backend{Weight: defaultWeight}}
	f := d.backendFields(&c.Backend)
	f["dns"] = d.str(&c.DNS, dnsName)
	f["port"] = d.integer(&c.Port, between(0, 65535))
	f["interval"] = d.duration(&c.Interval, atLeast(minDiscoverInterval))
	f["resolver"] = d.str(&c.Resolver, resolverAddr)
	delete(f, "address")
	present := d.mapping(path, n, f)
	if present == nil {
		return c
	}
	if present["dns"] == nil {
		d.add(join(path, "dns"), n, "required")
	}
	d.checkBackendLimit(path, c.Backend, present)
	return c
}

// dnsName checks a name to resolve: dot-separated labels of letters,
// digits, '-' and '_' (SRV names start with "_service._proto."), 63 bytes
// each, 253 in all, an optional trailing dot.
func dnsName(s string) string {
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > 253:
		return fmt.Sprintf("longer than 253 bytes: %q", s)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return fmt.Sprintf("empty label in %q", s)
		}
		if len(label) > 63 {
			return fmt.Sprintf("label longer than 63 bytes in %q", s)
		}
		if strings.IndexFunc(label, notHostRune) >= 0 {
			return fmt.Sprintf("want letters, digits, '-', '_' and '.', got %q", s)
		}
	}
	return ""
}

// resolverAddr checks a DNS server address: an IP literal and a port (a
// name would need a resolver of its own).
func resolverAddr(s string) string {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return fmt.Sprintf("want ip:port, like 127.0.0.1:53 or [::1]:53, got %q", s)
	}
	return ""
}

func atLeast(lo time.Duration) func(time.Duration) string {
	return func(v time.Duration) string {
		if v < lo {
			return fmt.Sprintf("must be at least %v, got %v", lo, v)
		}
		return ""
	}
}
