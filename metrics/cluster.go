package metrics

import "github.com/prometheus/client_golang/prometheus"

// ClusterStatus is the cluster view of a replica (issue 14, package
// cluster): who is a member and what share of each backend's limit this
// replica holds. Nil in a Snapshot when no cluster is configured.
type ClusterStatus struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Registered is true while the replica holds a live lease.
	Registered bool `json:"registered"`
	// Safe is false once the replica could not renew its lease for the
	// lease TTL minus the safety margin: it then admits nothing.
	Safe bool `json:"safe"`
	// Members are the ids of the replicas with a live lease, sorted.
	Members    []string       `json:"members"`
	Shares     []ClusterShare `json:"shares"`
	Rebalances uint64         `json:"rebalances"`
	Errors     uint64         `json:"errors"`
}

// ClusterShare is one backend's limit as the cluster divides it.
type ClusterShare struct {
	Upstream string `json:"upstream"`
	Backend  string `json:"backend"`
	Limit    int64  `json:"limit"`
	// Share is the slots this replica admits on now; Published is what it
	// holds in etcd (at least Share).
	Share     int64 `json:"share"`
	Published int64 `json:"published"`
	// Replicas is every replica's share in etcd, by id.
	Replicas map[string]int64 `json:"replicas"`
}

// clusterCollector exposes a Snapshot's Cluster at scrape time; it has no
// series while no cluster is configured. A snapshotCollector runs it on the
// snapshot it takes (one per scrape), or clusterOnly on a cluster status.
type clusterCollector struct {
	share      *prometheus.Desc
	members    *prometheus.Desc
	rebalances *prometheus.Desc
	errors     *prometheus.Desc
}

func newClusterCollector() clusterCollector {
	return clusterCollector{
		share: desc("cluster_share", "Slots of the backend's limit this replica admits on (its cluster share).",
			[]string{"upstream", "backend"}),
		members:    desc("cluster_members", "Replicas of the cluster with a live lease.", nil),
		rebalances: desc("cluster_rebalances_total", "Changes of this replica's shares committed to etcd.", nil),
		errors:     desc("cluster_errors_total", "Failed etcd operations of this replica.", nil),
	}
}

func (c clusterCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.share
	ch <- c.members
	ch <- c.rebalances
	ch <- c.errors
}

func (c clusterCollector) collect(ch chan<- prometheus.Metric, cs *ClusterStatus) {
	if cs == nil {
		return
	}
	seen := make(map[[2]string]bool, len(cs.Shares))
	for _, s := range cs.Shares {
		k := [2]string{s.Upstream, s.Backend}
		if seen[k] {
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(c.share, prometheus.GaugeValue, float64(s.Share), s.Upstream, s.Backend)
	}
	ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(len(cs.Members)))
	ch <- prometheus.MustNewConstMetric(c.rebalances, prometheus.CounterValue, float64(cs.Rebalances))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(cs.Errors))
}

// clusterOnly collects the cluster metrics of status alone.
type clusterOnly struct {
	c      clusterCollector
	status func() *ClusterStatus
}

func (o clusterOnly) Describe(ch chan<- *prometheus.Desc) { o.c.describe(ch) }
func (o clusterOnly) Collect(ch chan<- prometheus.Metric) { o.c.collect(ch, o.status()) }

// RegisterCluster registers on reg the cluster metrics of status, for the
// supervisor of `processes: N`, whose workers run no cluster node.
func RegisterCluster(reg prometheus.Registerer, status func() *ClusterStatus) {
	reg.MustRegister(clusterOnly{c: newClusterCollector(), status: status})
}
