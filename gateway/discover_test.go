package gateway

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"shardgate/config"
	"shardgate/internal/dnstest"
	"shardgate/internal/wait"
	"shardgate/metrics"
	"shardgate/shm"
	"shardgate/upstream"
)

func backendAddrs(g *Gateway) []string {
	var out []string
	for _, b := range g.Snapshot()[0].Backends {
		out = append(out, b.Address)
	}
	return out
}

func discoverYAML(resolver string, port int, interval time.Duration) string {
	return fmt.Sprintf(`
admin: {address: ""}
upstreams:
  app:
    discover: {dns: app.test., port: %d, interval: %v, resolver: %q, max_inflight: 3}
routes:
  - {upstream: app}
`, port, interval, resolver)
}

func TestDiscoveredBackendsBeforeTheFirstInterval(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.2", "127.0.0.1")
	g, _ := newTestGateway(t, discoverYAML(dns.Addr, 8000, time.Hour))
	t.Cleanup(g.Close)
	// New resolved once: the backends are there before any interval passed.
	if got, want := backendAddrs(g), []string{"127.0.0.1:8000", "127.0.0.2:8000"}; !slices.Equal(got, want) {
		t.Fatalf("backends after New = %q, want %q", got, want)
	}
	if b := g.Snapshot()[0].Backends[0]; b.Limit != 3 {
		t.Errorf("discovered backend limit = %d, want discover.max_inflight 3", b.Limit)
	}
	// A reload that changes the port resolves again before it applies.
	cfg, err := config.Parse([]byte(discoverYAML(dns.Addr, 9000, 100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := backendAddrs(g), []string{"127.0.0.1:9000", "127.0.0.2:9000"}; !slices.Equal(got, want) {
		t.Fatalf("backends after a reload to port 9000 = %q, want %q", got, want)
	}
	dns.SetAddrs("app.test", "127.0.0.3")
	wait.For(t, "the new record applied", func() bool { return slices.Equal(backendAddrs(g), []string{"127.0.0.3:9000"}) })
	// The watcher records the set once the gateway applied it.
	wait.For(t, "the discovery status to show it", func() bool { return g.Snapshot()[0].Discovery.Backends == 1 })
	if d := g.Snapshot()[0].Discovery; d.Lookups["ok"] < 2 || d.LastError != "" {
		t.Fatalf("discovery status %+v, want 2 good lookups at least, no error", d)
	}
}

// Regression: a backend removed by a reload (or by DNS discovery) kept its
// entry of the shared slot table, so after 512 different addresses the next
// Apply failed with a full table.
func TestBackendChurnDoesNotFillTheSlotTable(t *testing.T) {
	seg, err := shm.Create()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	proc, err := seg.Join()
	if err != nil {
		t.Fatal(err)
	}
	shared := upstream.NewShared(proc)
	shared.Start()
	t.Cleanup(shared.Close)
	conf := func(i int) *config.Config {
		cfg, err := config.Parse([]byte(oneUpstream(fmt.Sprintf("10.%d.%d.1:80", i/250, i%250), 1, "")))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	g, err := New(conf(0), metrics.NewMetrics("test"), nil, slog.New(slog.DiscardHandler), WithShared(shared))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	for i := 1; i < 2*shm.MaxSlots; i++ {
		if err := g.Apply(conf(i)); err != nil {
			t.Fatalf("Apply() of the %dth backend address = %v", i+1, err)
		}
	}
}

func TestListedBackendsStayWithDiscover(t *testing.T) {
	dns := dnstest.Start(t)
	dns.SetAddrs("app.test", "127.0.0.1", "127.0.0.2")
	g, _ := newTestGateway(t, fmt.Sprintf(`
admin: {address: ""}
upstreams:
  app:
    backends: [{address: "127.0.0.1:8000", max_inflight: 7}, {address: "10.0.0.1:80"}]
    discover: {dns: app.test., port: 8000, interval: 100ms, resolver: %q, max_inflight: 3}
routes:
  - {upstream: app}
`, dns.Addr))
	t.Cleanup(g.Close)
	limits := func() map[string]int64 {
		out := map[string]int64{}
		for _, b := range g.Snapshot()[0].Backends {
			out[b.Address] = b.Limit
		}
		return out
	}
	// The listed 127.0.0.1:8000 keeps its own limit; DNS adds 127.0.0.2.
	want := map[string]int64{"127.0.0.1:8000": 7, "10.0.0.1:80": 0, "127.0.0.2:8000": 3}
	if got := limits(); !maps.Equal(got, want) {
		t.Fatalf("backends = %v, want %v", got, want)
	}
	dns.Remove("app.test")
	wait.For(t, "the discovered backend gone", func() bool { return len(limits()) == 2 })
	if got := limits(); got["127.0.0.1:8000"] != 7 || got["10.0.0.1:80"] != 0 {
		t.Fatalf("after NXDOMAIN backends = %v, want the two listed ones", got)
	}
}

func TestUpstreamsResolveAtOnce(t *testing.T) {
	// Nothing answers on this UDP port: every first lookup runs into its
	// timeout, and the gateway starts after one of them, not three.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var ups strings.Builder
	for _, name := range []string{"a", "b", "c"} {
		fmt.Fprintf(&ups, "  %s:\n    discover: {dns: %s.test., port: 80, resolver: %q}\n", name, name, pc.LocalAddr())
	}
	start := time.Now()
	g, _ := newTestGateway(t, "admin: {address: \"\"}\nupstreams:\n"+ups.String()+"routes:\n  - {upstream: a}\n")
	t.Cleanup(g.Close)
	took := time.Since(start)
	for _, u := range g.Snapshot() {
		if d := u.Discovery; d == nil || d.Lookups["error"] != 1 || len(u.Backends) != 0 {
			t.Fatalf("upstream %s: discovery %+v, backends %v; want one failed lookup and none", u.Name, d, u.Backends)
		}
	}
	if took > 8*time.Second { // one lookup timeout is 5s; three in a row would be 15s
		t.Fatalf("New took %v with three dead lookups, want them at once", took)
	}
}
