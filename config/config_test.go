package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// minimal is the smallest valid configuration.
const minimal = `upstreams:
  app:
    backends:
      - address: 127.0.0.1:8001
routes:
  - upstream: app
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse() error:\n%v", err)
	}
	return c
}

func TestParseDefaults(t *testing.T) {
	got := mustParse(t, minimal)
	want := &Config{
		Listen: []Listen{{Address: ":8080", Shards: 0}},
		Admin:  Admin{Address: "127.0.0.1:9180"},
		Server: Server{
			ReadTimeout:     30 * time.Second,
			WriteTimeout:    30 * time.Second,
			IdleTimeout:     60 * time.Second,
			ShutdownTimeout: 30 * time.Second,
			MaxHeaderBytes:  16384,
			MaxBodyBytes:    10485760,
			Bodies: Bodies{HeaderTimeout: 10 * time.Second, MinRate: 1024, ResponseBufferBytes: 65536,
				RequestBufferBytes: 65536, SpoolDir: defaultBodies().SpoolDir, MaxSpoolBytes: 1 << 30},
			MaxHeaderCount: 100,
			MaxURIBytes:    8192,
		},
		Log:       Log{Format: "text", Level: "info", AccessLog: "", AccessLogBuffer: 4096},
		Processes: 1,
		Upstreams: map[string]*Upstream{"app": {
			Name:            "app",
			Balancer:        "least_inflight",
			MaxInflight:     0,
			Queue:           Queue{MaxLength: 1000, Timeout: 5 * time.Second, LIFOAfter: 500 * time.Millisecond},
			ConnectTimeout:  time.Second,
			ResponseTimeout: 30 * time.Second,
			IdleConnTimeout: time.Second,
			Backends:        []Backend{{Address: "127.0.0.1:8001", Weight: 1}},
			OutlierDetection: OutlierDetection{Consecutive: 3, BaseEjectionTime: 2 * time.Second,
				MaxEjectedPercent: 50},
			RetryBudget:       RetryBudget{Percent: 20, MinPerSecond: 3},
			TunnelIdleTimeout: time.Hour,
			TimeoutHold:       time.Minute,
		}},
		UpstreamNames: []string{"app"},
		Routes:        []Route{{Host: "*", PathPrefix: "/", Upstream: "app", Buffering: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(minimal) =\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(got.Upstreams["app"], want.Upstreams["app"]) {
		t.Errorf("Upstreams[app] = %+v, want %+v", got.Upstreams["app"], want.Upstreams["app"])
	}
}

const full = `listen:
  - address: 127.0.0.1:0
    shards: 4
  - address: 127.0.0.1:0
admin:
  address: "[::1]:9999"
server:
  read_timeout: 1m30s
  write_timeout: 0.5s
  idle_timeout: 2m
  shutdown_timeout: 10s
  max_header_bytes: 1KiB
  max_body_bytes: 2MB
  max_header_count: 50
  max_uri_bytes: 2KiB
  trusted_proxies: [10.1.2.3/8, 192.168.0.1, "::1", "::ffff:172.16.0.1", "fd00::/8"]
log:
  format: json
  level: debug
  access_log: /var/log/shardgate/access.log
  access_log_buffer: 10
upstreams:
  zeta:
    balancer: p2c
    max_inflight: 7
    queue:
      max_length: 0
      timeout: 250ms
      lifo_after: 0
    connect_timeout: 2s
    response_timeout: 0h1m
    idle_conn_timeout: 1500ms
    backends:
      - address: backend-1.internal:80
        max_inflight: 3
        weight: 1000
      - address: "[::1]:8002"
        workers: 3
        threads: 4
      - address: 127.0.0.1:8003
        workers: 5
  alpha:
    balancer: round_robin
    backends:
      - address: 127.0.0.1:9001
  mid.dle-1_x:
    balancer: random
    backends:
      - address: 127.0.0.1:9002
routes:
  - host: API.Example.com
    path_prefix: /v1/
    upstream: zeta
  - host: "*.Example.com"
    upstream: alpha
  - host: "[::1]"
    upstream: alpha
  - upstream: zeta
`

func TestParseValues(t *testing.T) {
	c := mustParse(t, full)
	zeta, alpha := c.Upstreams["zeta"], c.Upstreams["alpha"]
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"Listen", c.Listen, []Listen{{Address: "127.0.0.1:0", Shards: 4}, {Address: "127.0.0.1:0"}}},
		{"Admin.Address", c.Admin.Address, "[::1]:9999"},
		{"Server.ReadTimeout", c.Server.ReadTimeout, 90 * time.Second},
		{"Server.WriteTimeout", c.Server.WriteTimeout, 500 * time.Millisecond},
		{"Server.IdleTimeout", c.Server.IdleTimeout, 2 * time.Minute},
		{"Server.ShutdownTimeout", c.Server.ShutdownTimeout, 10 * time.Second},
		{"Server.MaxHeaderBytes", c.Server.MaxHeaderBytes, 1024},
		{"Server.MaxBodyBytes", c.Server.MaxBodyBytes, 2000000},
		{"Server.MaxHeaderCount", c.Server.MaxHeaderCount, 50},
		{"Server.MaxURIBytes", c.Server.MaxURIBytes, 2048},
		{"Server.TrustedProxies", c.Server.TrustedProxies, []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("192.168.0.1/32"),
			netip.MustParsePrefix("::1/128"),
			netip.MustParsePrefix("172.16.0.1/32"),
			netip.MustParsePrefix("fd00::/8"),
		}},
		{"Log", c.Log, Log{Format: "json", Level: "debug", AccessLog: "/var/log/shardgate/access.log", AccessLogBuffer: 10}},
		{"UpstreamNames", c.UpstreamNames, []string{"alpha", "mid.dle-1_x", "zeta"}},
		{"zeta.Name", zeta.Name, "zeta"},
		{"zeta.Balancer", zeta.Balancer, "p2c"},
		{"zeta.MaxInflight", zeta.MaxInflight, 7},
		{"zeta.Queue", zeta.Queue, Queue{MaxLength: 0, Timeout: 250 * time.Millisecond, LIFOAfter: 0}},
		{"zeta.ConnectTimeout", zeta.ConnectTimeout, 2 * time.Second},
		{"zeta.ResponseTimeout", zeta.ResponseTimeout, time.Minute},
		{"zeta.IdleConnTimeout", zeta.IdleConnTimeout, 1500 * time.Millisecond},
		{"zeta.Backends", zeta.Backends, []Backend{
			{Address: "backend-1.internal:80", MaxInflight: 3, Weight: 1000},
			{Address: "[::1]:8002", Workers: 3, Threads: 4, Weight: 1},
			{Address: "127.0.0.1:8003", Workers: 5, Weight: 1},
		}},
		{"alpha.Balancer", alpha.Balancer, "round_robin"},
		{"alpha.Queue", alpha.Queue, Queue{MaxLength: 1000, Timeout: 5 * time.Second, LIFOAfter: 500 * time.Millisecond}},
		{"middle.Balancer", c.Upstreams["mid.dle-1_x"].Balancer, "random"},
		{"Routes", c.Routes, []Route{
			{Host: "api.example.com", PathPrefix: "/v1/", Upstream: "zeta", Buffering: true},
			{Host: "*.example.com", PathPrefix: "/", Upstream: "alpha", Buffering: true},
			{Host: "[::1]", PathPrefix: "/", Upstream: "alpha", Buffering: true},
			{Host: "*", PathPrefix: "/", Upstream: "zeta", Buffering: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("%s = %+v, want %+v", tt.name, tt.got, tt.want)
			}
		})
	}
}

// TestParseOptional covers keys whose absence, null or zero value means
// something of its own.
func TestParseOptional(t *testing.T) {
	tests := []struct {
		name string
		src  string
		get  func(*Config) any
		want any
	}{
		{"admin address empty disables admin", "admin: {address: \"\"}\n" + minimal,
			func(c *Config) any { return c.Admin.Address }, ""},
		{"admin null keeps default", "admin:\n" + minimal,
			func(c *Config) any { return c.Admin.Address }, "127.0.0.1:9180"},
		{"admin address null keeps default", "admin:\n  address: ~\n" + minimal,
			func(c *Config) any { return c.Admin.Address }, "127.0.0.1:9180"},
		{"null duration keeps default", "server:\n  read_timeout:\n" + minimal,
			func(c *Config) any { return c.Server.ReadTimeout }, 30 * time.Second},
		{"size in plain bytes", "server:\n  max_body_bytes: 123\n" + minimal,
			func(c *Config) any { return c.Server.MaxBodyBytes }, 123},
		{"size with space before unit", "server:\n  max_body_bytes: 3 GiB\n" + minimal,
			func(c *Config) any { return c.Server.MaxBodyBytes }, 3 << 30},
		{"trusted proxies empty list", "server:\n  trusted_proxies: []\n" + minimal,
			func(c *Config) any { return len(c.Server.TrustedProxies) }, 0},
		{"integer in hex", "listen:\n  - {address: \":81\", shards: 0x10}\n" + minimal,
			func(c *Config) any { return c.Listen[0].Shards }, 16},
		{"listen port 0 twice", "listen:\n  - address: \":0\"\n  - address: \":0\"\n" + minimal,
			func(c *Config) any { return len(c.Listen) }, 2},
		{"listen on other addresses of the admin port", "listen:\n  - address: 10.0.0.1:9180\n" + minimal,
			func(c *Config) any { return c.Listen[0].Address }, "10.0.0.1:9180"},
		{"ipv4 wildcard does not cover ipv6 host", "listen:\n  - address: 0.0.0.0:80\n  - address: \"[::1]:80\"\n" + minimal,
			func(c *Config) any { return len(c.Listen) }, 2},
		{"admin disabled may share nothing", "listen:\n  - address: 127.0.0.1:9180\nadmin:\n  address: \"\"\n" + minimal,
			func(c *Config) any { return c.Listen[0].Address }, "127.0.0.1:9180"},
		{"upstream without route is allowed", "upstreams:\n  spare: {backends: [{address: \"h:1\"}]}\n  app: {backends: [{address: \"h:2\"}]}\nroutes: [{upstream: app}]\n",
			func(c *Config) any { return c.UpstreamNames }, []string{"app", "spare"}},
		{"same path on two hosts", minimal + "  - {host: a.com, upstream: app}\n  - {host: b.com, upstream: app}\n",
			func(c *Config) any { return len(c.Routes) }, 3},
		{"same backend in two upstreams",
			"upstreams:\n  a: {backends: [{address: \"h:1\"}]}\n  b: {backends: [{address: \"h:1\"}]}\nroutes: [{upstream: a}]\n",
			func(c *Config) any { return len(c.Upstreams) }, 2},
		{"discover with backends", "upstreams:\n  app:\n    backends: [{address: \"h:1\"}]\n    discover: {dns: app.svc, port: 80}\nroutes: [{upstream: app}]\n",
			func(c *Config) any { return []any{len(c.Upstreams["app"].Backends), c.Upstreams["app"].Discover.DNS} },
			[]any{1, "app.svc"}},
		{"discover with an empty backends list", "upstreams:\n  app:\n    backends: []\n    discover: {dns: app.svc, port: 80}\nroutes: [{upstream: app}]\n",
			func(c *Config) any { return len(c.Upstreams["app"].Backends) }, 0},
		{"discover defaults", "upstreams:\n  app:\n    discover: {dns: app.svc.}\nroutes: [{upstream: app}]\n",
			func(c *Config) any { return *c.Upstreams["app"].Discover },
			Discover{DNS: "app.svc.", Interval: 10 * time.Second, Backend: Backend{Weight: 1}}},
		{"discover values", "upstreams:\n  app:\n    discover: {dns: _http._tcp.app.svc, port: 8000, interval: 250ms, resolver: \"[::1]:5353\", workers: 4, threads: 2, weight: 3}\nroutes: [{upstream: app}]\n",
			func(c *Config) any {
				d := c.Upstreams["app"].Discover
				return []any{d.DNS, d.Port, d.Interval, d.Resolver, d.Backend.Limit(), d.Backend.Weight, len(c.Upstreams["app"].Backends)}
			},
			[]any{"_http._tcp.app.svc", 8000, 250 * time.Millisecond, "[::1]:5353", 8, 3, 0}},
		{"explicit max_inflight 0 is unlimited", "upstreams:\n  app:\n    backends: [{address: \"h:1\", max_inflight: 0}]\nroutes: [{upstream: app}]\n",
			func(c *Config) any { return c.Upstreams["app"].Backends[0].Limit() }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.src)
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseAnchorsAndMerges(t *testing.T) {
	src := `upstreams:
  app: &base
    balancer: p2c
    queue: {max_length: 5}
    backends:
      - &b1 {address: 127.0.0.1:8001, max_inflight: 2}
  other:
    <<: *base
    balancer: random
    backends:
      - *b1
      - {<<: *b1, address: 127.0.0.1:8002}
routes:
  - upstream: app
`
	c := mustParse(t, src)
	o := c.Upstreams["other"]
	if o.Balancer != "random" {
		t.Errorf("other.Balancer = %q, want %q (explicit key beats merged one)", o.Balancer, "random")
	}
	if o.Queue.MaxLength != 5 {
		t.Errorf("other.Queue.MaxLength = %d, want 5 (merged)", o.Queue.MaxLength)
	}
	want := []Backend{
		{Address: "127.0.0.1:8001", MaxInflight: 2, Weight: 1},
		{Address: "127.0.0.1:8002", MaxInflight: 2, Weight: 1},
	}
	if !reflect.DeepEqual(o.Backends, want) {
		t.Errorf("other.Backends = %+v, want %+v", o.Backends, want)
	}
}

func TestBackendLimit(t *testing.T) {
	tests := []struct {
		b    Backend
		want int
	}{
		{Backend{}, 0},
		{Backend{MaxInflight: 4}, 4},
		{Backend{Workers: 3}, 3},
		{Backend{Workers: 2, Threads: 2}, 4},
		{Backend{Workers: 4, Threads: 8}, 32},
		{Backend{Workers: 2, Threads: 1}, 2},
	}
	for _, tt := range tests {
		if got := tt.b.Limit(); got != tt.want {
			t.Errorf("%+v.Limit() = %d, want %d", tt.b, got, tt.want)
		}
	}
}

func TestExampleFile(t *testing.T) {
	c, err := Load(filepath.Join("..", "config.example.yaml"))
	if err != nil {
		t.Fatalf("Load(config.example.yaml) error:\n%v", err)
	}
	if want := []Listen{{Address: ":8080", Shards: 0}}; !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("Listen = %+v, want %+v", c.Listen, want)
	}
	if c.Admin.Address != "127.0.0.1:9180" {
		t.Errorf("Admin.Address = %q, want %q", c.Admin.Address, "127.0.0.1:9180")
	}
	app := c.Upstreams["app"]
	if app == nil || len(c.Upstreams) != 1 {
		t.Fatalf("UpstreamNames = %v, want [app]", c.UpstreamNames)
	}
	if app.Balancer != "least_inflight" {
		t.Errorf("app.Balancer = %q, want least_inflight", app.Balancer)
	}
	want := []struct {
		addr  string
		limit int
	}{{"127.0.0.1:8001", 4}, {"127.0.0.1:8002", 4}, {"127.0.0.1:8003", 2}}
	if len(app.Backends) != len(want) {
		t.Fatalf("len(app.Backends) = %d, want %d", len(app.Backends), len(want))
	}
	for i, w := range want {
		b := app.Backends[i]
		if b.Address != w.addr || b.Limit() != w.limit {
			t.Errorf("Backends[%d] = %s limit %d, want %s limit %d", i, b.Address, b.Limit(), w.addr, w.limit)
		}
	}
	if b := app.Backends[1]; b.Workers != 2 || b.Threads != 2 {
		t.Errorf("Backends[1] workers, threads = %d, %d, want 2, 2", b.Workers, b.Threads)
	}
	if wantR := []Route{{Host: "*", PathPrefix: "/", Upstream: "app", Buffering: true}}; !reflect.DeepEqual(c.Routes, wantR) {
		t.Errorf("Routes = %+v, want %+v", c.Routes, wantR)
	}
	if c.Log.AccessLog != "" {
		t.Errorf("Log.AccessLog = %q, want off", c.Log.AccessLog)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load(good) error: %v", err)
	}
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("server:\n  read_timeout: abc\n"+minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var e *Error
	if !errors.As(err, &e) || e.Path != "server.read_timeout" || e.Line != 2 {
		t.Errorf("Load(bad) error = %v, want an *Error at server.read_timeout line 2", err)
	}
}
