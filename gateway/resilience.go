package gateway

import (
	"shardgate/config"
	"shardgate/metrics"
	"shardgate/upstream"
)

// resilience fills the health check, outlier detection and retry budget
// settings of pc from uc.
func resilience(uc *config.Upstream, pc *upstream.PoolConfig) {
	if h := uc.HealthCheck; h != nil {
		pc.Health = &upstream.HealthConfig{
			Path: h.Path, Host: h.Host, Interval: h.Interval, Timeout: h.Timeout,
			Rise: h.Rise, Fall: h.Fall, ExpectMin: h.ExpectMin, ExpectMax: h.ExpectMax,
		}
	}
	o := uc.OutlierDetection
	pc.Outlier = upstream.OutlierConfig{
		Consecutive: int64(o.Consecutive), BaseTime: o.BaseEjectionTime,
		MaxPercent: o.MaxEjectedPercent, On5xx: o.EjectOn5xx,
	}
	pc.Retry = upstream.RetryConfig{
		Percent: int64(uc.RetryBudget.Percent), MinPerSecond: int64(uc.RetryBudget.MinPerSecond),
	}
}

// retryMetrics returns the upstream's retry counters, or nil (which records
// nothing) when the gateway runs without metrics.
func (g *Gateway) retryMetrics(name string) *metrics.RetryMetrics {
	if g.metrics == nil {
		return nil
	}
	return g.metrics.Retries(name)
}

// stopChecks stops the active health checks of every pool.
func (g *Gateway) stopChecks() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.pools {
		p.StopChecks()
	}
}

// forgetRemoved deletes the metric series of the upstreams and backends
// that the new pools and backends no longer have. g.mu must be held, with
// g.pools and g.backends still the old ones.
func (g *Gateway) forgetRemoved(pools map[string]*upstream.Pool, backends map[string]*upstream.Backend) {
	if g.metrics == nil {
		return
	}
	for name := range g.pools {
		if pools[name] == nil {
			g.metrics.ForgetUpstream(name)
		}
	}
	for key, b := range g.backends {
		name := key[:len(key)-len(b.Address())-1] // key is name + "|" + address
		if backends[key] == nil && pools[name] != nil {
			g.metrics.ForgetBackend(name, b.Address())
		}
	}
}

// ReopenAccessLog reopens the access log file (SIGUSR1); a no-op when the
// access log is off or goes to a stream.
func (g *Gateway) ReopenAccessLog() error {
	if g.access == nil {
		return nil
	}
	return g.access.Reopen()
}
