package metrics

import "github.com/prometheus/client_golang/prometheus"

// NewTLSHandshakeErrors registers shardgate_tls_handshake_errors_total on m's
// registry and returns it; labels listener (the configured address) and
// reason (a fixed set, see tlsconf.Reason). Call it once per Metrics; the
// caller resolves the children when the listeners are built.
func NewTLSHandshakeErrors(m *Metrics) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "tls_handshake_errors_total",
		Help: "TLS handshakes that failed, by listener and reason.",
	}, []string{"listener", "reason"})
	m.Registry().MustRegister(v)
	return v
}

// NewAdminRefused registers shardgate_admin_refused_total{code} on reg and
// returns it: admin requests refused with 403 (client not in admin.allow)
// or 401 (missing or wrong credentials).
func NewAdminRefused(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "admin_refused_total",
		Help: "Admin requests refused, by status code (403 not allowed, 401 unauthenticated).",
	}, []string{"code"})
	reg.MustRegister(v)
	return v
}
