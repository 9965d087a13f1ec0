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
