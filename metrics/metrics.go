package metrics

import (
	"runtime"
	"shardgate/upstream"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "shardgate"

// durationBuckets spans sub-millisecond proxy overhead to the tens of seconds a
// slow backend or a long queue wait can take.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics owns shardgate's Prometheus registry: the request-path vectors, the
// scrape-time snapshot collector, config reload state, build info and the
// standard go_* and process_* collectors. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	queueWait   *prometheus.HistogramVec
	shed        *prometheus.CounterVec
	backendResp *prometheus.HistogramVec
	backendErrs *prometheus.CounterVec

	reloadOK     prometheus.Counter
	reloadFailed prometheus.Counter
	lastReloadOK prometheus.Gauge

	source  atomic.Pointer[func() Snapshot]
	dropped droppedCounter

	bodies     *BodyMetrics
	resilience resilienceMetrics // see resilience_metrics.go

	mu sync.Mutex // protects codes
	// codes keeps one status-code table per upstream name, so handles made
	// again after a reload share the lazily created code counters.
	codes map[string]*codeTable
}

// NewMetrics returns Metrics with every shardgate metric registered on a fresh
// private registry. version becomes the version label of shardgate_build_info.
func NewMetrics(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), codes: make(map[string]*codeTable)}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "requests_total",
		Help: "Requests routed to an upstream, by the status code the client got (shed ones included).",
	}, []string{"upstream", "code"})
	m.duration = newHistogramVec("request_duration_seconds",
		"Time from request routed to response written, shed requests included.", "upstream")
	m.queueWait = newHistogramVec("queue_wait_seconds",
		"Time a request waited in its upstream's queue for a backend slot.", "upstream")
	m.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "requests_shed_total",
		Help: "Requests answered by the gateway without reaching a backend, by reason.",
	}, []string{"upstream", "reason"})
	m.backendResp = newHistogramVec("backend_response_seconds",
		"Time from request sent to a backend to its response read.", "upstream", "backend")
	m.backendErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "backend_errors_total",
		Help: "Failed backend exchanges, by kind.",
	}, []string{"upstream", "backend", "kind"})
	m.registerReload()
	m.bodies = newBodyMetrics(m.reg)
	m.registerResilience()
	m.reg.MustRegister(m.requests, m.duration, m.queueWait, m.shed, m.backendResp, m.backendErrs,
		newBuildInfo(version), newSnapshotCollector(&m.source), m.dropped.counterFunc(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func newHistogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: name, Help: help, Buckets: durationBuckets,
	}, labels)
}

func newBuildInfo(version string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; labels carry the shardgate version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}

func (m *Metrics) registerReload() {
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "config_reloads_total",
		Help: "Configuration reloads, by result.",
	}, []string{"result"})
	m.reloadOK = reloads.WithLabelValues("success")
	m.reloadFailed = reloads.WithLabelValues("failure")
	m.lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "config_last_reload_successful",
		Help: "1 if the last configuration reload succeeded (or none was tried yet), else 0.",
	})
	m.lastReloadOK.Set(1)
	m.reg.MustRegister(reloads, m.lastReloadOK)
}

// Registry returns the private registry holding every shardgate metric.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetSource sets the function called at scrape time to read the gauges and
// listener counters. Until it is called those metrics are absent. f must be
// safe to call concurrently with the gateway's work.
func (m *Metrics) SetSource(f func() Snapshot) {
	if f == nil {
		m.source.Store(nil)
		return
	}
	m.source.Store(&f)
}

// SetAccessLogDropped sets the function behind
// shardgate_access_log_dropped_total. Calling it again (say, after the access
// log was reopened) keeps the counter monotonic: what the previous function
// counted is carried over.
func (m *Metrics) SetAccessLogDropped(f func() uint64) { m.dropped.set(f) }

// ConfigReload records the result of one configuration reload.
func (m *Metrics) ConfigReload(ok bool) {
	if ok {
		m.reloadOK.Inc()
		m.lastReloadOK.Set(1)
		return
	}
	m.reloadFailed.Inc()
	m.lastReloadOK.Set(0)
}

// Upstream returns the request-path handles of upstream name, whose backends
// are given in order. It resolves every label child now, so call it when the
// config loads. Calling it again with the same name returns handles on the same
// series.
func (m *Metrics) Upstream(name string, backends []string) *UpstreamMetrics {
	u := &UpstreamMetrics{
		name:      name,
		requests:  m.requests,
		codes:     m.codeTable(name),
		duration:  m.duration.WithLabelValues(name),
		queueWait: m.queueWait.WithLabelValues(name),
		backends:  make([]BackendMetrics, len(backends)),
		streams:   m.bodies.streams.WithLabelValues(name),
	}
	for r := range u.shed {
		u.shed[r] = m.shed.WithLabelValues(name, upstream.ShedReason(r).String())
	}
	for i, addr := range backends {
		b := &u.backends[i]
		b.response = m.backendResp.WithLabelValues(name, addr)
		for k := range b.errors {
			b.errors[k] = m.backendErrs.WithLabelValues(name, addr, upstream.ErrorKind(k).String())
		}
	}
	return u
}

func (m *Metrics) codeTable(upstream string) *codeTable {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.codes[upstream]
	if !ok {
		t = new(codeTable)
		m.codes[upstream] = t
	}
	return t
}

// droppedCounter backs shardgate_access_log_dropped_total with a replaceable
// function while keeping the exposed value monotonic.
type droppedCounter struct {
	mu   sync.Mutex // protects f and base
	f    func() uint64
	base uint64
}

func (d *droppedCounter) set(f func() uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f != nil {
		d.base += d.f()
	}
	d.f = f
}

func (d *droppedCounter) value() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.base
	if d.f != nil {
		v += d.f()
	}
	return float64(v)
}

func (d *droppedCounter) counterFunc() prometheus.CounterFunc {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: namespace, Name: "access_log_dropped_total",
		Help: "Access log lines dropped because the log writer fell behind or failed.",
	}, d.value)
}
