package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Cluster makes this instance one replica of several that share each
// backend's limit through etcd (YAML key cluster; issue 14, package
// cluster). Nil when the key is absent: the single-instance mode, which
// needs no etcd.
type Cluster struct {
	// Name is the cluster: replicas with the same name share limits (YAML
	// key name, required). Letters, digits, '.', '-', '_'.
	Name string
	// ID names this replica, unique within the cluster (YAML key id,
	// required). Same characters as Name.
	ID string
	// Etcd is how to reach etcd (YAML key etcd, required).
	Etcd Etcd
	// LeaseTTL is the TTL of the replica's lease (YAML key lease_ttl),
	// whole seconds. Default 5s; between 1s and 1h. A replica that cannot
	// renew it for LeaseTTL less a safety margin (a fifth, 0.5s at least)
	// admits nothing; a dead replica's share returns to the others after
	// LeaseTTL plus the upstream's response_timeout.
	LeaseTTL time.Duration
	// RebalanceInterval is how often the replica adjusts its shares (YAML
	// key rebalance_interval). Default 200ms; between 10ms and lease_ttl/2.
	RebalanceInterval time.Duration
}

// Etcd is the etcd client configuration of a cluster.
type Etcd struct {
	// Endpoints are the etcd members' client URLs (YAML key endpoints,
	// required): "http://host:port" or "https://host:port".
	Endpoints []string
	// DialTimeout bounds connecting to etcd at startup (YAML key
	// dial_timeout). Default 2s; must be > 0.
	DialTimeout time.Duration
	// Username and Password authenticate to etcd (YAML keys username,
	// password). Default "": no authentication. Both or neither.
	Username, Password string
	// TLS holds client TLS files (YAML key tls); nil = plain or system
	// roots for https endpoints.
	TLS *EtcdTLS
}

// EtcdTLS are the TLS files of the etcd client.
type EtcdTLS struct {
	// CA is a PEM file of the CAs that sign etcd's certificates (YAML key
	// ca). Default "": the system roots.
	CA string
	// Cert and Key are the client certificate and its key, PEM files (YAML
	// keys cert, key). Both or neither.
	Cert, Key string
	// ServerName overrides the name checked in etcd's certificates (YAML
	// key server_name).
	ServerName string
}

// Defaults of the cluster section.
const (
	defaultLeaseTTL          = 5 * time.Second
	defaultRebalanceInterval = 200 * time.Millisecond
	defaultEtcdDialTimeout   = 2 * time.Second
)

func clusterName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.IndexFunc(s, notNameRune) >= 0 {
		return fmt.Sprintf("want letters, digits, '.', '-' or '_', got %q", s)
	}
	return ""
}

func leaseTTL(v time.Duration) string {
	if v < time.Second || v > time.Hour || v%time.Second != 0 {
		return fmt.Sprintf("must be whole seconds between 1s and 1h, got %v", v)
	}
	return ""
}

func etcdEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Sprintf("want http://host:port or https://host:port, got %q", s)
	}
	return ""
}

func (d *decoder) cluster(path string, n *yaml.Node) *Cluster {
	c := &Cluster{LeaseTTL: defaultLeaseTTL, RebalanceInterval: defaultRebalanceInterval,
		Etcd: Etcd{DialTimeout: defaultEtcdDialTimeout}}
	present := d.mapping(path, n, fields{
		"name":               d.str(&c.Name, clusterName),
		"id":                 d.str(&c.ID, clusterName),
		"etcd":               func(p string, v *yaml.Node) { d.etcd(p, v, &c.Etcd) },
		"lease_ttl":          d.duration(&c.LeaseTTL, leaseTTL),
		"rebalance_interval": d.duration(&c.RebalanceInterval, positive),
	})
	if present == nil {
		return c
	}
	for _, k := range []string{"name", "id", "etcd"} {
		if present[k] == nil {
			d.add(join(path, k), n, "required")
		}
	}
	if ri := c.RebalanceInterval; present["rebalance_interval"] != nil && (ri < 10*time.Millisecond || ri > c.LeaseTTL/2) {
		d.add(join(path, "rebalance_interval"), present["rebalance_interval"],
			"must be between 10ms and lease_ttl/2 (%v), got %v", c.LeaseTTL/2, ri)
	}
	return c
}

func (d *decoder) etcd(path string, n *yaml.Node, e *Etcd) {
	present := d.mapping(path, n, fields{
		"endpoints": func(p string, v *yaml.Node) {
			items, ok := d.sequence(p, v)
			if !ok {
				return
			}
			if len(items) == 0 {
				d.add(p, v, "at least one endpoint is required")
			}
			for i, it := range items {
				var s string
				d.str(&s, etcdEndpoint)(index(p, i), it)
				if s != "" {
					e.Endpoints = append(e.Endpoints, strings.TrimSuffix(s, "/"))
				}
			}
		},
		"dial_timeout": d.duration(&e.DialTimeout, positive),
		"username":     d.str(&e.Username),
		"password":     d.str(&e.Password),
		"tls": func(p string, v *yaml.Node) {
			e.TLS = &EtcdTLS{}
			tp := d.mapping(p, v, fields{
				"ca": d.str(&e.TLS.CA), "cert": d.str(&e.TLS.Cert), "key": d.str(&e.TLS.Key),
				"server_name": d.str(&e.TLS.ServerName),
			})
			if tp != nil && (e.TLS.Cert == "") != (e.TLS.Key == "") {
				d.add(join(p, "key"), v, "cert and key go together")
			}
		},
	})
	if present == nil {
		return
	}
	if present["endpoints"] == nil {
		d.add(join(path, "endpoints"), n, "required")
	}
	if (e.Username == "") != (e.Password == "") {
		d.add(join(path, "password"), n, "username and password go together")
	}
}
