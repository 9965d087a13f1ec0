package metrics

import "github.com/prometheus/client_golang/prometheus"

// ForgetBackend deletes the series of backend addr of upstream, once a
// reload removed it, so that /metrics no longer shows it. Handles still held
// by requests in flight keep working but are no longer exported.
func (m *Metrics) ForgetBackend(upstream, addr string) {
	l := prometheus.Labels{"upstream": upstream, "backend": addr}
	m.backendResp.DeletePartialMatch(l)
	m.backendErrs.DeletePartialMatch(l)
}

// ForgetUpstream deletes every series of upstream, backends included, once
// a reload removed it. An upstream of the same name added later starts its
// series again from zero.
func (m *Metrics) ForgetUpstream(upstream string) {
	l := prometheus.Labels{"upstream": upstream}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.requests, m.duration, m.queueWait, m.shed, m.backendResp, m.backendErrs, m.resilience.retries, m.bodies.streams} {
		v.DeletePartialMatch(l)
	}
	m.mu.Lock()
	delete(m.codes, upstream)
	m.mu.Unlock()
}
