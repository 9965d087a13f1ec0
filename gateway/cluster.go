package gateway

import (
	"time"

	"shardgate/upstream"
)

// WithCluster makes the gateway one replica of a cluster that shares each
// backend's limit (issue 14, package cluster): a limited backend admits
// nothing until the cluster gave this replica a share of it.
func WithCluster() Option {
	return func(g *Gateway) { g.clustered = true }
}

// clusterCap starts a new or newly limited backend at share 0 when the
// gateway is clustered, so that it never admits on its own limit before the
// cluster gave it a share.
func (g *Gateway) clusterCap(b *upstream.Backend, limit int64) {
	if g.clustered && limit > 0 && b.Share() < 0 {
		b.SetShare(0)
	}
}

// ClusterBackend is one backend the cluster divides.
type ClusterBackend struct {
	Upstream, Address string
	// Hold is the upstream's response_timeout: how long a dead replica's
	// requests may still run on the backend.
	Hold    time.Duration
	Backend *upstream.Backend
}

// ClusterBackends returns the backends of the current configuration, for
// the cluster's rebalancing. It takes no lock.
func (g *Gateway) ClusterBackends() []ClusterBackend {
	st := g.state.Load()
	var out []ClusterBackend
	for _, u := range st.upstreams {
		for _, b := range u.pool.Backends() {
			out = append(out, ClusterBackend{Upstream: u.name, Address: b.Address(), Hold: u.responseTimeout, Backend: b})
		}
	}
	return out
}
