package gateway

import (
	"shardgate/config"
	"shardgate/shm"
	"shardgate/upstream"
)

// Option configures a Gateway at New.
type Option func(*Gateway)

// WithShared makes the gateway count every backend's and pool's slots on
// the shared slot segment that s belongs to, so that all processes of the
// instance (workers, and the old and new binary during an upgrade) admit
// against the same limits (docs/DESIGN.md, "Admission rules", rule 8).
func WithShared(s *upstream.Shared) Option {
	return func(g *Gateway) { g.shared = s }
}

// backendSlot returns the shared slot of a new backend, or nil when the
// gateway counts in this process only. Backends are keyed by upstream name
// and address, as reload keys them.
func (g *Gateway) backendSlot(name string, uc *config.Upstream, bc config.Backend) (*shm.Slot, error) {
	if g.shared == nil {
		return nil, nil
	}
	share := int64(-1)
	if g.clustered && bc.Limit() > 0 {
		share = 0 // see clusterCap
	}
	return g.shared.BackendSlot(name, bc.Address, uc.ResponseTimeout, share)
}

// poolShare returns the shared state of a new pool, or nil when the gateway
// counts in this process only.
func (g *Gateway) poolShare(name string, uc *config.Upstream) (*upstream.PoolShare, error) {
	if g.shared == nil {
		return nil, nil
	}
	return g.shared.PoolShare(name, uc.ResponseTimeout)
}
