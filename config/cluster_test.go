package config

import (
	"strings"
	"testing"
	"time"
)

func TestClusterDefaults(t *testing.T) {
	if c := mustParse(t, minimal); c.Cluster != nil {
		t.Fatalf("Cluster = %+v without the key, want nil (single instance)", c.Cluster)
	}
	c := mustParse(t, "cluster:\n  name: prod\n  id: gw-1\n  etcd:\n    endpoints: [\"http://10.0.0.1:2379\", \"https://10.0.0.2:2379/\"]\n"+minimal)
	want := Cluster{Name: "prod", ID: "gw-1", LeaseTTL: 5 * time.Second, RebalanceInterval: 200 * time.Millisecond,
		Etcd: Etcd{Endpoints: []string{"http://10.0.0.1:2379", "https://10.0.0.2:2379"}, DialTimeout: 2 * time.Second}}
	got := *c.Cluster
	if got.Name != want.Name || got.ID != want.ID || got.LeaseTTL != want.LeaseTTL ||
		got.RebalanceInterval != want.RebalanceInterval || got.Etcd.DialTimeout != want.Etcd.DialTimeout ||
		strings.Join(got.Etcd.Endpoints, ",") != strings.Join(want.Etcd.Endpoints, ",") || got.Etcd.TLS != nil {
		t.Fatalf("Cluster = %+v, want %+v", got, want)
	}
}

func TestClusterErrors(t *testing.T) {
	ok := "  name: prod\n  id: a\n  etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\n"
	for _, tc := range []struct{ name, src, want string }{
		{"no name", "cluster:\n  id: a\n  etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\n", "cluster.name: required (line 2)"},
		{"no etcd", "cluster:\n  name: p\n  id: a\n", "cluster.etcd: required (line 2)"},
		{"bad id", "cluster:\n  name: p\n  id: a/b\n  etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\n", `cluster.id: want letters, digits, '.', '-' or '_', got "a/b" (line 3)`},
		{"bare endpoint", "cluster:\n  name: p\n  id: a\n  etcd: {endpoints: [\"127.0.0.1:2379\"]}\n", `cluster.etcd.endpoints[0]: want http://host:port or https://host:port, got "127.0.0.1:2379" (line 4)`},
		{"no endpoints", "cluster:\n  name: p\n  id: a\n  etcd: {endpoints: []}\n", "cluster.etcd.endpoints: at least one endpoint is required (line 4)"},
		{"ttl fraction", "cluster:\n" + ok + "  lease_ttl: 2500ms\n", "cluster.lease_ttl: must be whole seconds between 1s and 1h, got 2.5s (line 5)"},
		{"interval too long", "cluster:\n" + ok + "  lease_ttl: 2s\n  rebalance_interval: 1500ms\n", "cluster.rebalance_interval: must be between 10ms and lease_ttl/2 (1s), got 1.5s (line 6)"},
		{"unknown key", "cluster:\n" + ok + "  ttl: 2s\n", "cluster.ttl"},
		{"cert without key", "cluster:\n  name: prod\n  id: a\n  etcd: {endpoints: [\"https://127.0.0.1:2379\"], tls: {cert: c.pem}}\n", "cert and key go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src + minimal))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse() error = %v, want %q", err, tc.want)
			}
		})
	}
}
