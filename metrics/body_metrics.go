package metrics

import "github.com/prometheus/client_golang/prometheus"

// BodyMetrics counts what the gateway does with large bodies: bytes written
// to spool files, spool bytes in use, open streams. A nil *BodyMetrics
// records nothing. Safe for concurrent use.
type BodyMetrics struct {
	spooledRequest  prometheus.Counter
	spooledResponse prometheus.Counter
	spoolBytes      prometheus.Gauge
	streams         *prometheus.GaugeVec
}

func newBodyMetrics(reg *prometheus.Registry) *BodyMetrics {
	spooled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "spooled_bytes_total",
		Help: "Body bytes written to spool files, by direction (request, response).",
	}, []string{"direction"})
	b := &BodyMetrics{
		spooledRequest:  spooled.WithLabelValues("request"),
		spooledResponse: spooled.WithLabelValues("response"),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "spool_bytes",
			Help: "Bytes held in spool files now.",
		}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "streams_open",
			Help: "Responses passing through as they arrive, each holding a backend slot.",
		}, []string{"upstream"}),
	}
	reg.MustRegister(spooled, b.spoolBytes, b.streams)
	return b
}

// Bodies returns the body metric handles.
func (m *Metrics) Bodies() *BodyMetrics { return m.bodies }

// Spooled counts n bytes written to a spool file; request tells the
// direction.
func (b *BodyMetrics) Spooled(request bool, n int64) {
	if b == nil || n <= 0 {
		return
	}
	if request {
		b.spooledRequest.Add(float64(n))
	} else {
		b.spooledResponse.Add(float64(n))
	}
}

// SpoolBytes adds delta to the spool bytes in use.
func (b *BodyMetrics) SpoolBytes(delta int64) {
	if b != nil && delta != 0 {
		b.spoolBytes.Add(float64(delta))
	}
}
