package gateway

import (
	"slices"
	"strings"
	"sync"

	"shardgate/config"
	"shardgate/discovery"
	"shardgate/metrics"
)

// DNS discovery (upstreams.NAME.discover). Each such upstream has a
// discovery.Watcher that resolves its name every interval. Its backends are
// those it lists, if any, and the watcher's addresses, each with the
// discover section's limit and weight. A changed answer is applied as a reload of the last applied config
// would be (apply, under mu): kept backends keep their state, removed ones
// finish what they run. A reload keeps an upstream's watcher, and so its
// backends, while dns, port, resolver and interval stay the same; otherwise
// the new watcher resolves once before the config is applied.

// DiscoverySpec returns what the watcher of an upstream with discover d
// resolves.
func DiscoverySpec(d *config.Discover) discovery.Spec {
	return discovery.Spec{Name: d.DNS, Port: d.Port, Resolver: d.Resolver, Interval: d.Interval,
		Max: config.MaxDiscovered}
}

// withDiscovered returns the backends of an upstream with discover: those
// it lists, then one per address DNS gave that it does not list, each as
// the discover section says.
func withDiscovered(uc *config.Upstream, addrs []string) []config.Backend {
	out := slices.Clip(uc.Backends)
	for _, a := range addrs {
		if slices.ContainsFunc(uc.Backends, func(b config.Backend) bool { return strings.EqualFold(b.Address, a) }) {
			continue
		}
		b := uc.Discover.Backend
		b.Address = a
		out = append(out, b)
	}
	return out
}

// discovered is where apply takes the backends of upstreams with discover:
// the addresses their watchers installed, except for the upstream whose new
// answer is being applied.
type discovered struct {
	watchers map[string]*discovery.Watcher
	name     string   // "" or the upstream whose answer changed
	changed  []string // its new addresses
}

func (d discovered) addrs(name string) []string {
	if name == d.name {
		return d.changed
	}
	return d.watchers[name].Addrs()
}

// newWatchers returns a resolved watcher for every upstream of cfg with
// discover but no running watcher of the same spec.
func (g *Gateway) newWatchers(cfg *config.Config) map[string]*discovery.Watcher {
	g.mu.Lock()
	need := map[string][]string{} // upstream → what is known of its name
	for _, name := range cfg.UpstreamNames {
		d := cfg.Upstreams[name].Discover
		if d == nil {
			continue
		}
		sp := DiscoverySpec(d)
		switch w := g.watchers[name]; {
		case w == nil:
			need[name] = nil
		case w.Spec() == sp:
		case w.Spec().Name == sp.Name && w.Spec().Port == sp.Port:
			need[name] = w.Addrs() // the same records: kept if DNS fails now
		default:
			need[name] = nil
		}
	}
	g.mu.Unlock()
	// Each resolves once, all at once: a dead DNS server delays a start by
	// one lookup timeout, not one per upstream.
	fresh := make(map[string]*discovery.Watcher, len(need))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, known := range need {
		wg.Go(func() {
			w := discovery.NewWatcher(DiscoverySpec(cfg.Upstreams[name].Discover), known, g.log.With("upstream", name))
			mu.Lock()
			fresh[name] = w
			mu.Unlock()
		})
	}
	wg.Wait()
	return fresh
}

// keepWatchers returns the watchers cfg needs: the fresh ones, else the
// running ones. The caller holds mu.
func (g *Gateway) keepWatchers(cfg *config.Config, fresh map[string]*discovery.Watcher) map[string]*discovery.Watcher {
	out := make(map[string]*discovery.Watcher, len(fresh))
	for _, name := range cfg.UpstreamNames {
		if cfg.Upstreams[name].Discover == nil {
			continue
		}
		if w := fresh[name]; w != nil {
			out[name] = w
		} else {
			out[name] = g.watchers[name]
		}
	}
	return out
}

// swapWatchers makes watchers the running set, starting the new ones, and
// returns those it replaced, for the caller to stop once it released mu.
func (g *Gateway) swapWatchers(watchers map[string]*discovery.Watcher) (stale []*discovery.Watcher) {
	for name, w := range g.watchers {
		if watchers[name] != w {
			stale = append(stale, w)
		}
	}
	for name, w := range watchers {
		if g.watchers[name] != w {
			w.Start(g.rediscovered(name, w))
		}
	}
	g.watchers = watchers
	return stale
}

// rediscovered returns what applies a changed answer of w, the watcher of
// upstream name.
func (g *Gateway) rediscovered(name string, w *discovery.Watcher) discovery.Apply {
	return func(addrs []string) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.watchers[name] != w {
			return nil // a reload replaced w; the new watcher decides
		}
		old := w.Addrs()
		err := g.apply(g.cfg, discovered{watchers: g.watchers, name: name, changed: addrs})
		if err != nil {
			g.log.Error("DNS discovery: applying the new backends failed; the old ones stay",
				"upstream", name, "error", err)
			return err
		}
		g.log.Info("DNS discovery changed the backends", "upstream", name, "dns", w.Spec().Name,
			"added", without(addrs, old), "removed", without(old, addrs), "backends", len(addrs))
		return nil
	}
}

// without returns the addresses of a not in b.
func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// stopWatchers stops DNS discovery (Close).
func (g *Gateway) stopWatchers() {
	g.mu.Lock()
	ws := g.watchers
	g.watchers = nil
	g.mu.Unlock()
	for _, w := range ws {
		w.Stop()
	}
}

// discoveryStatus returns what w, an upstream's watcher, saw; nil without
// one.
func discoveryStatus(w *discovery.Watcher) *metrics.DiscoveryStatus {
	if w == nil {
		return nil
	}
	st, sp := w.Status(), w.Spec()
	ds := &metrics.DiscoveryStatus{
		DNS: sp.Name, Port: sp.Port, Backends: len(st.Addrs),
		Lookups:    make(map[string]uint64, discovery.NumResults),
		LastLookup: st.LastLookup, LastError: st.LastError,
	}
	for r, n := range st.Lookups {
		ds.Lookups[discovery.Result(r).String()] = n
	}
	return ds
}
