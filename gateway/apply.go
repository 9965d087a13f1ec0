package gateway

import (
	"fmt"

	"shardgate/admin"
	"shardgate/balancer"
	"shardgate/config"
	"shardgate/upstream"
)

// Apply builds the routing table and pools for cfg and swaps them in as one
// value. Upstreams that keep their name keep their queue; backends that keep
// their upstream and address keep their in-flight count, connections and
// health. Requests already running finish on the state they started with.
// On error nothing changes.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()

	ups := make(map[string]*upstreamState, len(cfg.Upstreams))
	pools := make(map[string]*upstream.Pool, len(cfg.Upstreams))
	backends := make(map[string]*upstream.Backend)
	type update struct {
		pool *upstream.Pool
		pc   upstream.PoolConfig
	}
	var updates []update
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
		addrs := make([]string, len(uc.Backends))
		for i, bc := range uc.Backends {
			addrs[i] = bc.Address
		}
		metrics := g.upstreamMetrics(name, addrs)
		for i, bc := range uc.Backends {
			pc.Backends = append(pc.Backends, g.backend(backends, name, uc, bc, metrics.Backend(i)))
		}
		pool := g.pools[name]
		if pool == nil {
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

			tunnels:         g.tunnels.forUpstream(uc, g.metrics),
			connectTimeout:  uc.ConnectTimeout,
			responseTimeout: uc.ResponseTimeout,
		}
		ups[name] = us
	}

	st := &state{trusted: cfg.Server.TrustedProxies}
	for _, name := range cfg.UpstreamNames {
		st.upstreams = append(st.upstreams, ups[name])
	}
	for _, r := range cfg.Routes {
		st.router.add(r.Host, r.PathPrefix, ups[r.Upstream])
	}
	st.router.build()

	// Nothing can fail from here on.
	for _, u := range updates {
		u.pool.Update(u.pc)
	}
	for key, b := range g.backends {
		if backends[key] == nil {
			b.SetUp(false) // removed: finish what runs, take nothing new
			b.CloseIdleConnections()
		}
	}
	g.forgetRemoved(pools, backends)
	g.pools, g.backends = pools, backends
	g.state.Store(st)
	return nil
}

// upstreamMetrics returns the upstream's metric handles, or nil (which
// records nothing) when the gateway runs without metrics.
func (g *Gateway) upstreamMetrics(name string, addrs []string) *admin.UpstreamMetrics {
	if g.metrics == nil {
		return nil
	}
	return g.metrics.Upstream(name, addrs)
}

// backend returns the backend for bc, reusing the running one with the same
// upstream and address, whose tunables change at once (they are read per
// request). A new backend carries m, its metric handles, as its tag: the
// series of an upstream and address never change, so a reused backend keeps
// its own.
func (g *Gateway) backend(into map[string]*upstream.Backend, name string, uc *config.Upstream, bc config.Backend,
	m *admin.BackendMetrics) *upstream.Backend {
	key := name + "|" + bc.Address
	c := upstream.BackendConfig{
		Address:         bc.Address,
		Limit:           int64(bc.Limit()),
		Weight:          int64(bc.Weight),
		ConnectTimeout:  uc.ConnectTimeout,
		ResponseTimeout: uc.ResponseTimeout,
		IdleConnTimeout: uc.IdleConnTimeout,
		TimeoutHold:     uc.TimeoutHold,
		Tag:             m,
	}
	b := g.backends[key]
	if b == nil {
		b = upstream.NewBackend(c)
	} else {
		b.Reconfigure(c)
	}
	into[key] = b
	return b
}

// Snapshot returns the live state of every upstream and backend.
func (g *Gateway) Snapshot() []admin.UpstreamStatus {
	st := g.state.Load()
	out := make([]admin.UpstreamStatus, 0, len(st.upstreams))
	for _, u := range st.upstreams {
		p := u.pool
		us := admin.UpstreamStatus{
			Name:        u.name,
			Balancer:    u.balancer,
			Inflight:    p.Inflight(),
			MaxInflight: p.MaxInflight(),
			QueueLength: p.QueueLength(),
			QueueMax:    p.QueueMax(),
			LIFO:        p.LIFO(),
			Shed:        make(map[string]uint64, len(shedNames)),
		}
		for r, n := range shedNames {
			us.Shed[n] = p.Shed(upstream.ShedReason(r))
		}
		for _, b := range p.Backends() {
			us.Requests += b.Requests()
			up, reason := b.State()
			us.Backends = append(us.Backends, admin.BackendStatus{
				Address:  b.Address(),
				Limit:    b.Limit(),
				Inflight: b.Inflight(),
				Up:       up,
				Reason:   reason,

				Transitions: transitions(b),
				Requests:    b.Requests(),
				Errors:      b.Errors(),
			})
		}
		us.History = g.history.snapshot(u.name)
		out = append(out, us)
	}
	return out
}
