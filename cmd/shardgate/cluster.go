package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"shardgate/cluster"
	"shardgate/config"
	"shardgate/gateway"
	"shardgate/shm"
	"shardgate/upstream"
)

// startCluster joins the cluster of c (issue 14): the backends targets
// returns admit on the shares the cluster gives this replica. inherited
// says the slot segment was handed down by an upgrade.
func startCluster(c *config.Cluster, targets func() []cluster.Target, inherited bool, log *slog.Logger) (*cluster.Node, error) {
	tc, err := etcdTLS(c.Etcd.TLS)
	if err != nil {
		return nil, err
	}
	n, err := cluster.Start(cluster.Config{
		Name: c.Name, ID: c.ID,
		Endpoints: c.Etcd.Endpoints, DialTimeout: c.Etcd.DialTimeout,
		Username: c.Etcd.Username, Password: c.Etcd.Password, TLS: tc,
		LeaseTTL: c.LeaseTTL, RebalanceInterval: c.RebalanceInterval,
		Inherited: inherited, Log: log,
	}, targets)
	if err != nil {
		return nil, err
	}
	log.Info("joined cluster", "name", c.Name, "id", c.ID, "etcd", c.Etcd.Endpoints)
	return n, nil
}

// gatewayTargets are the backends of gw, for a process that runs alone.
func gatewayTargets(gw *gateway.Gateway) func() []cluster.Target {
	return func() []cluster.Target {
		bs := gw.ClusterBackends()
		out := make([]cluster.Target, len(bs))
		for i, b := range bs {
			out[i] = cluster.Target{Upstream: b.Upstream, Address: b.Address, Hold: b.Hold, Backend: b.Backend}
		}
		return out
	}
}

// segmentTargets are the backends the workers of a `processes: N` instance
// count in seg, for their supervisor: it divides them in the cluster on
// their behalf, through each entry's share word, which the workers' admission
// reads.
func segmentTargets(seg *shm.Segment) func() []cluster.Target {
	return func() []cluster.Target {
		var out []cluster.Target
		for _, e := range seg.Entries(upstream.BackendKeyPrefix) {
			up, addr, ok := upstream.ParseBackendKey(e.Key)
			if !ok {
				continue
			}
			b := entryBackend{seg: seg, e: e}
			b.pool, b.hasPool = seg.Lookup(upstream.PoolKey(up))
			out = append(out, cluster.Target{Upstream: up, Address: addr, Hold: e.Hold(), Backend: b})
		}
		return out
	}
}

// entryBackend is a backend as its slot entry shows it (cluster.Backend).
type entryBackend struct {
	seg     *shm.Segment
	e       shm.Entry
	pool    shm.Entry // the entry of its upstream's pool, where requests wait
	hasPool bool
}

func (b entryBackend) Limit() int64    { return b.e.Limit().Load() }
func (b entryBackend) Inflight() int64 { return b.e.Inflight().Load() }
func (b entryBackend) Waiting() bool   { return b.hasPool && b.pool.Waiting().Load() > 0 }

// SetShare sets the share word; a raised share wakes the workers, which
// hand its new slots to their waiters.
func (b entryBackend) SetShare(s int64) {
	s = max(s, -1)
	if old := b.e.Share().Swap(s); old >= 0 && (s < 0 || s > old) {
		b.seg.WakeAll()
	}
}

// etcdTLS builds the etcd client's TLS configuration; nil without one.
func etcdTLS(c *config.EtcdTLS) (*tls.Config, error) {
	if c == nil {
		return nil, nil
	}
	tc := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.tls.ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.etcd.tls.ca: no PEM certificate in %s", c.CA)
		}
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("cluster.etcd.tls.cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
