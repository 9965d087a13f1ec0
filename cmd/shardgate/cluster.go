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
)

// startCluster joins the cluster of c (issue 14): gw's limited backends
// admit on the shares the cluster gives this replica.
func startCluster(c *config.Cluster, gw *gateway.Gateway, inherited bool, log *slog.Logger) (*cluster.Node, error) {
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
	}, func() []cluster.Target {
		bs := gw.ClusterBackends()
		out := make([]cluster.Target, len(bs))
		for i, b := range bs {
			out[i] = cluster.Target{Upstream: b.Upstream, Address: b.Address, Hold: b.Hold, Backend: b.Backend}
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	log.Info("joined cluster", "name", c.Name, "id", c.ID, "etcd", c.Etcd.Endpoints)
	return n, nil
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
