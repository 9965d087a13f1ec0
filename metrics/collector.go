package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"shardgate/discovery"
)

// snapshotCollector turns one Snapshot per scrape into the gauges and listener
// counters, so the request path pays nothing for them.
type snapshotCollector struct {
	source *atomic.Pointer[func() Snapshot]

	queueLength     *prometheus.Desc
	queueLIFO       *prometheus.Desc
	upInflight      *prometheus.Desc
	tunnels         *prometheus.Desc
	backendInflight *prometheus.Desc
	backendMax      *prometheus.Desc
	backendUp       *prometheus.Desc
	accepted        *prometheus.Desc
	open            *prometheus.Desc
	lookups         *prometheus.Desc
	discovered      *prometheus.Desc
	cluster         clusterCollector
}

func newSnapshotCollector(source *atomic.Pointer[func() Snapshot]) *snapshotCollector {
	up := []string{"upstream"}
	be := []string{"upstream", "backend"}
	return &snapshotCollector{
		source:          source,
		queueLength:     desc("queue_length", "Requests waiting in the upstream's queue.", up),
		queueLIFO:       desc("queue_lifo", "1 while the upstream's queue serves newest-first, else 0.", up),
		upInflight:      desc("upstream_inflight", "Requests in flight at the upstream's backends.", up),
		tunnels:         desc("tunnels_open", "Upgrade tunnels (WebSocket) open now; each holds a backend slot.", up),
		backendInflight: desc("backend_inflight", "Requests in flight at the backend.", be),
		backendMax:      desc("backend_max_inflight", "Requests the backend may run at once; 0 means unlimited.", be),
		backendUp:       desc("backend_up", "1 while the backend takes new requests, else 0.", be),
		accepted:        desc("listener_accepted_total", "Connections accepted, by listener and shard.", []string{"listener", "shard"}),
		open:            desc("open_connections", "Client connections currently open, by listener.", []string{"listener"}),
		lookups: desc("discovery_lookups_total", "DNS lookups of the upstream's discover name, by result.",
			[]string{"upstream", "result"}),
		discovered: desc("discovery_backends", "Backends of the upstream's last DNS answer applied.", up),
		cluster:    newClusterCollector(),
	}
}

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueLength, c.queueLIFO, c.upInflight, c.tunnels,
		c.backendInflight, c.backendMax, c.backendUp, c.accepted, c.open, c.lookups, c.discovered} {
		ch <- d
	}
	c.cluster.describe(ch)
}

// Collect implements prometheus.Collector. Repeated names or addresses in the
// snapshot are exposed once (listeners are summed) so a scrape never fails.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.source.Load()
	if f == nil {
		return
	}
	snap := (*f)()
	c.cluster.collect(ch, snap.Cluster)
	c.collectListeners(ch, snap.Listeners)
	seen := make(map[string]bool, len(snap.Upstreams))
	for _, u := range snap.Upstreams {
		if seen[u.Name] {
			continue
		}
		seen[u.Name] = true
		c.collectUpstream(ch, &u)
	}
}

func (c *snapshotCollector) collectListeners(ch chan<- prometheus.Metric, ls []ListenerStatus) {
	type total struct {
		accepted []uint64
		open     int64
	}
	var order []string
	totals := make(map[string]*total, len(ls))
	for _, l := range ls {
		t, ok := totals[l.Address]
		if !ok {
			t = &total{}
			totals[l.Address] = t
			order = append(order, l.Address)
		}
		for len(t.accepted) < len(l.Accepted) {
			t.accepted = append(t.accepted, 0)
		}
		for i, n := range l.Accepted {
			t.accepted[i] += n
		}
		t.open += l.Open
	}
	for _, addr := range order {
		t := totals[addr]
		for shard, n := range t.accepted {
			ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(n), addr, strconv.Itoa(shard))
		}
		ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(t.open), addr)
	}
}

func (c *snapshotCollector) collectUpstream(ch chan<- prometheus.Metric, u *UpstreamStatus) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.queueLength, float64(u.QueueLength), u.Name)
	gauge(c.queueLIFO, boolFloat(u.LIFO), u.Name)
	gauge(c.upInflight, float64(u.Inflight), u.Name)
	gauge(c.tunnels, float64(u.Tunnels), u.Name)
	if d := u.Discovery; d != nil {
		gauge(c.discovered, float64(d.Backends), u.Name)
		for r := range discovery.NumResults { // every result, at 0 too
			ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue,
				float64(d.Lookups[r.String()]), u.Name, r.String())
		}
	}
	seen := make(map[string]bool, len(u.Backends))
	for _, b := range u.Backends {
		if seen[b.Address] {
			continue
		}
		seen[b.Address] = true
		gauge(c.backendInflight, float64(b.Inflight), u.Name, b.Address)
		gauge(c.backendMax, float64(b.Limit), u.Name, b.Address)
		gauge(c.backendUp, boolFloat(b.Up), u.Name, b.Address)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
