package metrics

import (
	"os"
	"regexp"
	"shardgate/upstream"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func fakeSnapshot() Snapshot {
	return Snapshot{
		Version: "test",
		Ready:   true,
		Listeners: []ListenerStatus{
			{Address: "127.0.0.1:8080", Accepted: []uint64{10, 7}, Open: 3},
		},
		Upstreams: []UpstreamStatus{{
			Name: "app", Balancer: "least_inflight",
			Inflight: 5, MaxInflight: 0, QueueLength: 12, QueueMax: 100, LIFO: true,
			Requests: 99, Shed: map[string]uint64{"queue_full": 4},
			Backends: []BackendStatus{
				{Address: "10.0.0.1:80", Limit: 4, Inflight: 4, Up: true, Requests: 60, Errors: 1},
				{Address: "10.0.0.2:80", Limit: 0, Inflight: 1, Up: false, Requests: 39},
			},
			Discovery: &DiscoveryStatus{DNS: "app.svc", Port: 80, Backends: 2,
				Lookups: map[string]uint64{"ok": 9, "error": 2}},
		}},
		Cluster: &ClusterStatus{Name: "c", ID: "a", Members: []string{"a", "b"},
			Shares: []ClusterShare{{Upstream: "app", Backend: "10.0.0.1:80", Limit: 4, Share: 2, Published: 2}}},
	}
}

// populated returns Metrics with every shardgate_ metric holding a series.
func populated(t testing.TB) *Metrics {
	t.Helper()
	m := NewMetrics("test")
	m.SetSource(fakeSnapshot)
	m.SetAccessLogDropped(func() uint64 { return 0 })
	u := m.Upstream("app", []string{"10.0.0.1:80", "10.0.0.2:80"})
	u.Request(200, time.Millisecond)
	u.QueueWait(time.Millisecond)
	u.Shed(upstream.ShedQueueTimeout)
	u.Backend(0).Response(time.Millisecond)
	u.Backend(0).Error(upstream.ErrReset)
	m.ConfigReload(true)
	m.Retries("app").Retry(RetrySuccess)
	NewTLSHandshakeErrors(m).WithLabelValues(":443", "timeout").Inc()
	NewAdminRefused(m.Registry()).WithLabelValues("403").Inc()
	return m
}

func TestSnapshotGauges(t *testing.T) {
	m := NewMetrics("test")
	if n := len(gather(t, m)["shardgate_queue_length"].GetMetric()); n != 0 {
		t.Fatalf("queue_length has %d series before SetSource, want 0", n)
	}
	m.SetSource(fakeSnapshot)
	tests := []struct {
		name, key string
		want      float64
	}{
		{"shardgate_queue_length", "upstream=app", 12},
		{"shardgate_queue_lifo", "upstream=app", 1},
		{"shardgate_upstream_inflight", "upstream=app", 5},
		{"shardgate_backend_inflight", "backend=10.0.0.1:80,upstream=app", 4},
		{"shardgate_backend_inflight", "backend=10.0.0.2:80,upstream=app", 1},
		{"shardgate_backend_max_inflight", "backend=10.0.0.1:80,upstream=app", 4},
		{"shardgate_backend_max_inflight", "backend=10.0.0.2:80,upstream=app", 0},
		{"shardgate_backend_up", "backend=10.0.0.1:80,upstream=app", 1},
		{"shardgate_backend_up", "backend=10.0.0.2:80,upstream=app", 0},
		{"shardgate_listener_accepted_total", "listener=127.0.0.1:8080,shard=0", 10},
		{"shardgate_listener_accepted_total", "listener=127.0.0.1:8080,shard=1", 7},
		{"shardgate_open_connections", "listener=127.0.0.1:8080", 3},
		{"shardgate_discovery_backends", "upstream=app", 2},
		{"shardgate_discovery_lookups_total", "result=ok,upstream=app", 9},
		{"shardgate_discovery_lookups_total", "result=empty,upstream=app", 0},
		{"shardgate_discovery_lookups_total", "result=error,upstream=app", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name+"{"+tt.key+"}", func(t *testing.T) {
			if got := value(t, m, tt.name, tt.key); got != tt.want {
				t.Errorf("%s{%s} = %v, want %v", tt.name, tt.key, got, tt.want)
			}
		})
	}
	if mf := gather(t, m)["shardgate_listener_accepted_total"]; mf.GetType() != dto.MetricType_COUNTER {
		t.Errorf("listener_accepted_total type = %v, want COUNTER", mf.GetType())
	}
}

func TestSnapshotIsReadAtEveryScrape(t *testing.T) {
	m := NewMetrics("test")
	queued := 0
	m.SetSource(func() Snapshot {
		return Snapshot{Upstreams: []UpstreamStatus{{Name: "app", QueueLength: queued}}}
	})
	for _, n := range []int{0, 7, 3} {
		queued = n
		if got := value(t, m, "shardgate_queue_length", "upstream=app"); got != float64(n) {
			t.Errorf("queue_length = %v, want %d", got, n)
		}
	}
}

// A snapshot that repeats a listener address (two listeners on port 0) or an
// upstream name must not break the whole scrape.
func TestSnapshotDuplicatesDoNotBreakScrape(t *testing.T) {
	m := NewMetrics("test")
	m.SetSource(func() Snapshot {
		return Snapshot{
			Listeners: []ListenerStatus{
				{Address: ":0", Accepted: []uint64{1}, Open: 1},
				{Address: ":0", Accepted: []uint64{2, 5}, Open: 2},
			},
			Upstreams: []UpstreamStatus{
				{Name: "app", Backends: []BackendStatus{{Address: "a:1", Up: true}, {Address: "a:1"}}},
				{Name: "app"},
			},
		}
	})
	if got := value(t, m, "shardgate_listener_accepted_total", "listener=:0,shard=0"); got != 3 {
		t.Errorf("listener_accepted_total{:0,0} = %v, want 3", got)
	}
	if got := value(t, m, "shardgate_listener_accepted_total", "listener=:0,shard=1"); got != 5 {
		t.Errorf("listener_accepted_total{:0,1} = %v, want 5", got)
	}
	if got := value(t, m, "shardgate_open_connections", "listener=:0"); got != 3 {
		t.Errorf("open_connections{:0} = %v, want 3", got)
	}
	if got := value(t, m, "shardgate_backend_up", "backend=a:1,upstream=app"); got != 1 {
		t.Errorf("backend_up{a:1} = %v, want 1 (first entry wins)", got)
	}
}

// designMetric is one row of the "Prometheus metrics" table of
// docs/DESIGN.md.
type designMetric struct {
	typ    dto.MetricType
	labels []string // sorted
}

// designTable reads the metrics table of docs/DESIGN.md, so the document and
// the exposition cannot drift apart.
var designTable = func() map[string]designMetric {
	data, err := os.ReadFile("../docs/DESIGN.md")
	if err != nil {
		panic(err)
	}
	_, section, _ := strings.Cut(string(data), "\n## Prometheus metrics\n")
	section, _, _ = strings.Cut(section, "\n## ")
	types := map[string]dto.MetricType{
		"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE, "histogram": dto.MetricType_HISTOGRAM,
	}
	backticked := regexp.MustCompile("`([a-z_]+)`")
	table := map[string]designMetric{}
	for _, line := range strings.Split(section, "\n") {
		cols := strings.Split(line, "|")
		if len(cols) < 4 || !strings.HasPrefix(strings.TrimSpace(cols[1]), "`shardgate_") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cols[1]), "`")
		typ, ok := types[strings.TrimSpace(cols[2])]
		if !ok {
			panic("docs/DESIGN.md: metric " + name + " has type " + cols[2])
		}
		var labels []string
		for _, m := range backticked.FindAllStringSubmatch(cols[3], -1) {
			labels = append(labels, m[1])
		}
		sort.Strings(labels)
		table[name] = designMetric{typ, labels}
	}
	if len(table) == 0 {
		panic("docs/DESIGN.md: no metrics table found")
	}
	return table
}()

func TestExpositionMatchesDesignTable(t *testing.T) {
	families := gather(t, populated(t))
	for name, want := range designTable {
		t.Run(name, func(t *testing.T) {
			mf, ok := families[name]
			if !ok || len(mf.GetMetric()) == 0 {
				t.Fatalf("%s missing from the exposition", name)
			}
			if mf.GetType() != want.typ {
				t.Errorf("%s type = %v, want %v", name, mf.GetType(), want.typ)
			}
			for _, metric := range mf.GetMetric() {
				var got []string
				for _, lp := range metric.GetLabel() {
					got = append(got, lp.GetName())
				}
				sort.Strings(got)
				if !slices.Equal(got, want.labels) {
					t.Errorf("%s labels = %v, want %v", name, got, want.labels)
				}
			}
		})
	}
	for name := range families {
		if _, ok := designTable[name]; strings.HasPrefix(name, "shardgate_") && !ok {
			t.Errorf("exposition has %s, which the metrics table of docs/DESIGN.md does not list", name)
		} else if !ok && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("exposition has %s, want only shardgate_, go_ and process_ metrics", name)
		}
	}
}
