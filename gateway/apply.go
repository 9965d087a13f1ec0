package gateway

import (
	"fmt"
	"maps"
	"slices"

	"shardgate/balancer"
	"shardgate/config"
	"shardgate/discovery"
	"shardgate/metrics"
	"shardgate/upstream"
)

// Apply builds the routing table and pools for cfg and swaps them in as one
// value. Upstreams that keep their name keep their queue; backends that keep
// their upstream and address keep their in-flight count, connections and
// health. Requests already running finish on the state they started with.
// An upstream with discover gets the backends DNS gives (discover.go). On
// error nothing changes.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.applying.Lock()
	defer g.applying.Unlock()
	fresh := g.newWatchers(cfg) // outside mu: each resolves once
	g.mu.Lock()
	watchers := g.keepWatchers(cfg, fresh)
	err := g.apply(cfg, discovered{watchers: watchers})
	var stale []*discovery.Watcher
	if err == nil {
		stale = g.swapWatchers(watchers)
		g.cfg = cfg
	} else {
		stale = slices.Collect(maps.Values(fresh)) // never started
	}
	g.mu.Unlock()
	for _, w := range stale { // after mu: a watcher may be waiting for it
		w.Stop()
	}
	return err
}

// apply does the work of Apply under g.mu, taking the backends of upstreams
// with discover from disc.
func (g *Gateway) apply(cfg *config.Config, disc discovered) error {
	ups := make(map[string]*upstreamState, len(cfg.Upstreams))
	pools := make(map[string]*upstream.Pool, len(cfg.Upstreams))
	backends := make(map[string]*upstream.Backend)
	type update struct {
		pool *upstream.Pool
		pc   upstream.PoolConfig
	}
	var updates []update
	bodies := &bodyConfig{Bodies: cfg.Server.Bodies, readTimeout: cfg.Server.ReadTimeout,
		writeTimeout: cfg.Server.WriteTimeout, maxBody: cfg.Server.MaxBodyBytes}
	for _, name := range cfg.UpstreamNames {
		uc := cfg.Upstreams[name]
		policy, err := balancer.New(uc.Balancer)
		if err != nil {
			return fmt.Errorf("upstreams.%s.balancer: %w", name, err)
		}
		pc := upstream.PoolConfig{
			Balancer:    policy,
			MaxInflight: int64(uc.MaxInflight),
			QueueLength: uc.Queue.MaxLength,
			Timeout:     uc.Queue.Timeout,
			LIFOAfter:   uc.Queue.LIFOAfter,
		}
		resilience(uc, &pc)
		members := uc.Backends
		if uc.Discover != nil {
			members = withDiscovered(uc, disc.addrs(name))
		}
		addrs := make([]string, len(members))
		for i, bc := range members {
			addrs[i] = bc.Address
		}
		metrics := g.upstreamMetrics(name, addrs)
		for i, bc := range members {
			b, err := g.backend(backends, name, uc, bc, metrics.Backend(i))
			if err != nil {
				if i >= len(uc.Backends) {
					return fmt.Errorf("upstreams.%s.discover: backend %s: %w", name, bc.Address, err)
				}
				return fmt.Errorf("upstreams.%s.backends[%d]: %w", name, i, err)
			}
			pc.Backends = append(pc.Backends, b)
		}
		pool := g.pools[name]
		if pool == nil {
			if pc.Share, err = g.poolShare(name, uc); err != nil {
				return fmt.Errorf("upstreams.%s: %w", name, err)
			}
			bare := pc
			bare.Health = nil // checks start below, once nothing can fail
			pool = upstream.NewPool(bare)
		}
		updates = append(updates, update{pool, pc})
		pools[name] = pool
		us := &upstreamState{
			name:       name,
			balancer:   uc.Balancer,
			pool:       pool,
			metrics:    metrics,
			retries:    g.retryMetrics(name),
			retryAfter: retryAfter(uc.Queue.Timeout),
			bodies:     bodies,
			streams:    g.spool.streamCounter(name),
			discovery:  disc.watchers[name],

			tunnels:         g.tunnels.forUpstream(uc),
			connectTimeout:  uc.ConnectTimeout,
			responseTimeout: uc.ResponseTimeout,
		}
		ups[name] = us
	}

	st := &state{trusted: cfg.Server.TrustedProxies, limits: newLimits(cfg.Server)}
	for _, name := range cfg.UpstreamNames {
		st.upstreams = append(st.upstreams, ups[name])
	}
	for _, r := range cfg.Routes {
		st.router.add(r.Host, r.PathPrefix, routeView(ups[r.Upstream], r))
	}
	st.router.build()

	// Nothing can fail from here on.
	for _, u := range updates {
		u.pool.Update(u.pc)
	}
	for key, b := range g.backends {
		if backends[key] == nil {
			b.Retire() // removed: Pool.Update marked it down
		}
	}
	g.forgetRemoved(pools, backends)
	g.pools, g.backends = pools, backends
	g.state.Store(st)
	g.checkSpoolDir(cfg.Server.SpoolDir)
	return nil
}

// upstreamMetrics returns the upstream's metric handles, or nil (which
// records nothing) when the gateway runs without metrics.
func (g *Gateway) upstreamMetrics(name string, addrs []string) *metrics.UpstreamMetrics {
	if g.metrics == nil {
		return nil
	}
	return g.metrics.Upstream(name, addrs)
}

// backend returns the backend for bc, reusing the running one with the same
// upstream and address, whose tunables change at once (they are read per
// request). A new backend records into m, its metric handles: the
// series of an upstream and address never change, so a reused backend keeps
// its own.
func (g *Gateway) backend(into map[string]*upstream.Backend, name string, uc *config.Upstream, bc config.Backend,
	m *metrics.BackendMetrics) (*upstream.Backend, error) {
	key := name + "|" + bc.Address
	c := upstream.BackendConfig{
		Address:         bc.Address,
		Limit:           int64(bc.Limit()),
		Weight:          int64(bc.Weight),
		ConnectTimeout:  uc.ConnectTimeout,
		ResponseTimeout: uc.ResponseTimeout,
		IdleConnTimeout: uc.IdleConnTimeout,
		TimeoutHold:     uc.TimeoutHold,
		Observer:        m,
	}
	b := g.backends[key]
	if b == nil {
		slot, err := g.backendSlot(name, uc, bc)
		if err != nil {
			return nil, err
		}
		c.Slot = slot
		b = upstream.NewBackend(c)
	} else {
		b.Reconfigure(c)
	}
	g.clusterCap(b, c.Limit)
	into[key] = b
	return b, nil
}
