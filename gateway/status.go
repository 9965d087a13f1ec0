package gateway

import (
	"shardgate/metrics"
	"shardgate/upstream"
)

// Snapshot returns the live state of every upstream and backend.
func (g *Gateway) Snapshot() []metrics.UpstreamStatus {
	st := g.state.Load()
	out := make([]metrics.UpstreamStatus, 0, len(st.upstreams))
	for _, u := range st.upstreams {
		p := u.pool
		us := metrics.UpstreamStatus{
			Name:        u.name,
			Balancer:    u.balancer,
			Inflight:    p.Inflight(),
			MaxInflight: p.MaxInflight(),
			QueueLength: p.QueueLength(),
			QueueMax:    p.QueueMax(),
			LIFO:        p.LIFO(),
			Shed:        make(map[string]uint64, upstream.NumShedReasons),
			Streams:     u.streams.Load(),
			Tunnels:     u.tunnels.open.Load(),
			Discovery:   discoveryStatus(u.discovery),
		}
		for r := range upstream.NumShedReasons {
			us.Shed[r.String()] = p.Shed(r)
		}
		for _, b := range p.Backends() {
			us.Requests += b.Requests()
			up, reason := b.State()
			us.Backends = append(us.Backends, metrics.BackendStatus{
				Address:     b.Address(),
				Limit:       b.Limit(),
				Inflight:    b.Inflight(),
				Up:          up,
				Reason:      reason,
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
