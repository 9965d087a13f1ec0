package metrics

import (
	"math"
	"runtime"
	"shardgate/upstream"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// gather returns the registry's families by name.
func gather(t testing.TB, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather() error = %v", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// labelKey renders a metric's labels as "k=v,k=v" in the registry's order.
func labelKey(metric *dto.Metric) string {
	var parts []string
	for _, lp := range metric.GetLabel() {
		parts = append(parts, lp.GetName()+"="+lp.GetValue())
	}
	return strings.Join(parts, ",")
}

// series returns the label keys of every series of family name, sorted.
func series(t testing.TB, m *Metrics, name string) []string {
	t.Helper()
	var keys []string
	for _, metric := range gather(t, m)[name].GetMetric() {
		keys = append(keys, labelKey(metric))
	}
	sort.Strings(keys)
	return keys
}

// find returns the series of family name whose labels render as key.
func find(t testing.TB, m *Metrics, name, key string) *dto.Metric {
	t.Helper()
	for _, metric := range gather(t, m)[name].GetMetric() {
		if labelKey(metric) == key {
			return metric
		}
	}
	t.Fatalf("%s{%s} not found; have %v", name, key, series(t, m, name))
	return nil
}

// value returns the value of a counter or gauge series.
func value(t testing.TB, m *Metrics, name, key string) float64 {
	t.Helper()
	metric := find(t, m, name, key)
	if c := metric.GetCounter(); c != nil {
		return c.GetValue()
	}
	return metric.GetGauge().GetValue()
}

func TestRequestCountsOnlyCodesSeen(t *testing.T) {
	m := NewMetrics("test")
	u := m.Upstream("app", []string{"127.0.0.1:8001"})
	u.Request(200, 3*time.Millisecond)
	u.Request(200, 3*time.Millisecond)
	u.Request(503, 2*time.Second)
	u.Request(42, time.Millisecond) // nonsense code from a broken caller

	want := []string{"code=200,upstream=app", "code=503,upstream=app", "code=other,upstream=app"}
	if got := series(t, m, "shardgate_requests_total"); !slices.Equal(got, want) {
		t.Fatalf("shardgate_requests_total series = %v, want %v", got, want)
	}
	for key, want := range map[string]float64{
		"code=200,upstream=app": 2, "code=503,upstream=app": 1, "code=other,upstream=app": 1,
	} {
		if got := value(t, m, "shardgate_requests_total", key); got != want {
			t.Errorf("shardgate_requests_total{%s} = %v, want %v", key, got, want)
		}
	}

	h := find(t, m, "shardgate_request_duration_seconds", "upstream=app").GetHistogram()
	if got := h.GetSampleCount(); got != 4 {
		t.Errorf("request_duration_seconds count = %d, want 4", got)
	}
	if got, want := h.GetSampleSum(), 2.007; math.Abs(got-want) > 1e-9 {
		t.Errorf("request_duration_seconds sum = %v, want %v", got, want)
	}
	wantBuckets := map[float64]uint64{0.001: 1, 0.0025: 1, 0.005: 3, 1: 3, 2.5: 4, 30: 4}
	for _, b := range h.GetBucket() {
		if want, ok := wantBuckets[b.GetUpperBound()]; ok && b.GetCumulativeCount() != want {
			t.Errorf("request_duration_seconds bucket le=%v = %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}

func TestShedQueueWaitAndBackendMetrics(t *testing.T) {
	m := NewMetrics("test")
	u := m.Upstream("app", []string{"10.0.0.1:80", "10.0.0.2:80"})
	u.Shed(upstream.ShedQueueFull)
	u.Shed(upstream.ShedQueueFull)
	u.Shed(upstream.ShedClientGone)
	u.Shed(upstream.ShedReason(99)) // ignored
	u.QueueWait(250 * time.Millisecond)
	u.Backend(1).Response(20 * time.Millisecond)
	u.Backend(0).Error(upstream.ErrTimeout)
	u.Backend(0).Error(upstream.ErrTimeout)
	u.Backend(1).Error(upstream.ErrProtocol)
	u.Backend(2).Response(time.Second) // out of range: nil handle, records nothing
	u.Backend(-1).Error(upstream.ErrReset)

	tests := []struct {
		name, key string
		want      float64
	}{
		{"shardgate_requests_shed_total", "reason=queue_full,upstream=app", 2},
		{"shardgate_requests_shed_total", "reason=queue_timeout,upstream=app", 0},
		{"shardgate_requests_shed_total", "reason=client_gone,upstream=app", 1},
		{"shardgate_requests_shed_total", "reason=no_backend,upstream=app", 0},
		{"shardgate_backend_errors_total", "backend=10.0.0.1:80,kind=timeout,upstream=app", 2},
		{"shardgate_backend_errors_total", "backend=10.0.0.1:80,kind=connect,upstream=app", 0},
		{"shardgate_backend_errors_total", "backend=10.0.0.2:80,kind=protocol,upstream=app", 1},
		{"shardgate_backend_errors_total", "backend=10.0.0.2:80,kind=reset,upstream=app", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name+"{"+tt.key+"}", func(t *testing.T) {
			if got := value(t, m, tt.name, tt.key); got != tt.want {
				t.Errorf("%s{%s} = %v, want %v", tt.name, tt.key, got, tt.want)
			}
		})
	}
	if got := len(series(t, m, "shardgate_backend_errors_total")); got != 8 {
		t.Errorf("backend_errors_total has %d series, want 8 (2 backends x 4 kinds)", got)
	}
	qw := find(t, m, "shardgate_queue_wait_seconds", "upstream=app").GetHistogram()
	if qw.GetSampleCount() != 1 || qw.GetSampleSum() != 0.25 {
		t.Errorf("queue_wait_seconds count, sum = %d, %v; want 1, 0.25", qw.GetSampleCount(), qw.GetSampleSum())
	}
	resp := find(t, m, "shardgate_backend_response_seconds", "backend=10.0.0.2:80,upstream=app").GetHistogram()
	if resp.GetSampleCount() != 1 || resp.GetSampleSum() != 0.02 {
		t.Errorf("backend_response_seconds{10.0.0.2:80} count, sum = %d, %v; want 1, 0.02", resp.GetSampleCount(), resp.GetSampleSum())
	}
	if n := find(t, m, "shardgate_backend_response_seconds", "backend=10.0.0.1:80,upstream=app").GetHistogram().GetSampleCount(); n != 0 {
		t.Errorf("backend_response_seconds{10.0.0.1:80} count = %d, want 0", n)
	}
}

func TestUpstreamAgainSharesSeries(t *testing.T) {
	m := NewMetrics("test")
	before := m.Upstream("app", []string{"a:1"})
	before.Request(200, time.Millisecond)
	before.Backend(0).Error(upstream.ErrConnect)
	after := m.Upstream("app", []string{"a:1", "b:1"}) // reload added a backend
	after.Request(200, time.Millisecond)
	after.Backend(0).Error(upstream.ErrConnect)

	if got := value(t, m, "shardgate_requests_total", "code=200,upstream=app"); got != 2 {
		t.Errorf("requests_total{app,200} = %v, want 2", got)
	}
	if got := value(t, m, "shardgate_backend_errors_total", "backend=a:1,kind=connect,upstream=app"); got != 2 {
		t.Errorf("backend_errors_total{a:1,connect} = %v, want 2", got)
	}
}

func TestNilHandlesRecordNothing(t *testing.T) {
	var u *UpstreamMetrics
	u.Request(200, time.Second)
	u.QueueWait(time.Second)
	u.Shed(upstream.ShedNoBackend)
	if b := u.Backend(0); b != nil {
		t.Fatalf("(*UpstreamMetrics)(nil).Backend(0) = %v, want nil", b)
	}
	var b *BackendMetrics
	b.Response(time.Second)
	b.Error(upstream.ErrReset)
}

func TestLabelStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{upstream.ShedQueueFull.String(), "queue_full"},
		{upstream.ShedQueueTimeout.String(), "queue_timeout"},
		{upstream.ShedClientGone.String(), "client_gone"},
		{upstream.ShedNoBackend.String(), "no_backend"},
		{upstream.ShedReason(-1).String(), "unknown"},
		{upstream.ErrConnect.String(), "connect"},
		{upstream.ErrTimeout.String(), "timeout"},
		{upstream.ErrReset.String(), "reset"},
		{upstream.ErrProtocol.String(), "protocol"},
		{upstream.ErrorKind(4).String(), "unknown"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

func TestConfigReload(t *testing.T) {
	m := NewMetrics("test")
	steps := []struct {
		ok                     bool
		success, failure, last float64
	}{
		{false, 0, 1, 0},
		{false, 0, 2, 0},
		{true, 1, 2, 1},
	}
	if got := value(t, m, "shardgate_config_last_reload_successful", ""); got != 1 {
		t.Errorf("config_last_reload_successful before any reload = %v, want 1", got)
	}
	for i, s := range steps {
		m.ConfigReload(s.ok)
		got := [3]float64{
			value(t, m, "shardgate_config_reloads_total", "result=success"),
			value(t, m, "shardgate_config_reloads_total", "result=failure"),
			value(t, m, "shardgate_config_last_reload_successful", ""),
		}
		if want := [3]float64{s.success, s.failure, s.last}; got != want {
			t.Errorf("after reload %d (ok=%v): success, failure, last = %v, want %v", i, s.ok, got, want)
		}
	}
}

func TestAccessLogDroppedStaysMonotonic(t *testing.T) {
	m := NewMetrics("test")
	if got := value(t, m, "shardgate_access_log_dropped_total", ""); got != 0 {
		t.Errorf("access_log_dropped_total without a source = %v, want 0", got)
	}
	first := uint64(5)
	m.SetAccessLogDropped(func() uint64 { return first })
	if got := value(t, m, "shardgate_access_log_dropped_total", ""); got != 5 {
		t.Errorf("access_log_dropped_total = %v, want 5", got)
	}
	m.SetAccessLogDropped(func() uint64 { return 2 }) // log reopened, new writer
	if got := value(t, m, "shardgate_access_log_dropped_total", ""); got != 7 {
		t.Errorf("access_log_dropped_total after a new source = %v, want 7", got)
	}
}

func TestBuildInfo(t *testing.T) {
	m := NewMetrics("1.2.3")
	key := "goversion=" + runtime.Version() + ",version=1.2.3"
	if got := value(t, m, "shardgate_build_info", key); got != 1 {
		t.Errorf("build_info{%s} = %v, want 1", key, got)
	}
}

func TestStandardCollectorsPresent(t *testing.T) {
	m := NewMetrics("test")
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if n, err := testutil.GatherAndCount(m.Registry(), name); err != nil || n != 1 {
			t.Errorf("GatherAndCount(%s) = %d, %v; want 1, nil", name, n, err)
		}
	}
}

func TestExpositionPassesPromlint(t *testing.T) {
	m := populated(t)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather() error = %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("Lint() error = %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
