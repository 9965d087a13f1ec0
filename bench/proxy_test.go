package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shardgate/config"
)

func testProxyConfig(limit int) proxyConfig {
	return proxyConfig{
		listen: "127.0.0.1:18080", admin: "127.0.0.1:19180",
		backends: []upstreamSpec{
			{addr: "127.0.0.1:18001", limit: limit}, {addr: "127.0.0.1:18002", limit: limit},
		},
		queueTimeout: 5 * time.Second, maxConns: 10164, fdLimit: 20000,
	}
}

func TestShardgateYAMLLoads(t *testing.T) {
	for _, limit := range []int{0, 2} {
		c, err := config.Parse([]byte(shardgateYAML(testProxyConfig(limit))))
		if err != nil {
			t.Fatalf("config.Parse(shardgateYAML(limit %d)) error = %v", limit, err)
		}
		if got := c.Listen[0]; got.Address != "127.0.0.1:18080" || got.Shards != 2 {
			t.Errorf("listen = %+v, want 127.0.0.1:18080 with 2 shards", got)
		}
		up := c.Upstreams["app"]
		if up == nil || up.Balancer != "least_inflight" || up.Queue.Timeout != 5*time.Second {
			t.Fatalf("upstream app = %+v, want least_inflight with a 5s queue timeout", up)
		}
		for i, b := range up.Backends {
			if b.Limit() != limit {
				t.Errorf("backends[%d].Limit() = %d, want %d", i, b.Limit(), limit)
			}
		}
	}
}

func TestHAProxyCfg(t *testing.T) {
	cfg := haproxyCfg(testProxyConfig(2))
	for _, want := range []string{
		"nbthread 2", "balance leastconn", "http-reuse always", "timeout queue 5000ms",
		"bind 127.0.0.1:18080", "server b0 127.0.0.1:18001 maxconn 2", "server b1 127.0.0.1:18002 maxconn 2",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxyCfg() lacks %q:\n%s", want, cfg)
		}
	}
	if cfg := haproxyCfg(testProxyConfig(0)); strings.Contains(cfg, " maxconn 0") {
		t.Errorf("haproxyCfg(no limit) limits servers to 0:\n%s", cfg)
	}
	checkWith(t, "haproxy.cfg", cfg, func(path string) []string { return []string{"haproxy", "-c", "-q", "-f", path} })
}

func TestNginxConf(t *testing.T) {
	prefix := t.TempDir()
	conf := nginxConf(testProxyConfig(2), prefix)
	for _, want := range []string{
		"daemon off;", "worker_processes 2;", "least_conn;", "zone app", "keepalive 64;",
		"server 127.0.0.1:18001 max_conns=2;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`,
		"listen 127.0.0.1:18080 reuseport;", "access_log off;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginxConf() lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(nginxConf(testProxyConfig(0), prefix), "max_conns") {
		t.Error("nginxConf(no limit) sets max_conns")
	}
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	checkWith(t, "nginx.conf", conf, func(path string) []string {
		return []string{"nginx", "-t", "-q", "-p", prefix, "-c", path, "-e", filepath.Join(prefix, "error.log")}
	})
}

// checkWith writes text to a temporary file and runs the program's own
// syntax check on it (which starts no server), when the program exists.
func checkWith(t *testing.T, name, text string, argv func(path string) []string) {
	t.Helper()
	args := argv(filepath.Join(t.TempDir(), name))
	bin, err := exec.LookPath(args[0])
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/" + args[0]); err != nil {
			t.Logf("%s not installed; syntax not checked", args[0])
			return
		}
	}
	path := args[len(args)-1]
	for i, a := range args {
		if strings.HasSuffix(a, name) {
			path = args[i]
		}
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, args[1:]...).CombinedOutput(); err != nil {
		t.Errorf("%s rejects the generated %s: %v\n%s\n%s", args[0], name, err, out, text)
	}
}
