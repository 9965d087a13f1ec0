package gateway

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/config"
	"shardgate/internal/wait"
	"shardgate/metrics"
)

// Regression: a reload that removed a whole upstream left its backends'
// health checks running (Pool.Update, which stops them, is not called for
// a pool that is gone).
func TestRemovedUpstreamStopsItsChecks(t *testing.T) {
	var checks atomic.Int64
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/h" {
			checks.Add(1)
		}
	})
	g, _ := newTestGateway(t, fmt.Sprintf(`
admin: {address: ""}
upstreams:
  app: {backends: [{address: %q}]}
  checked:
    backends: [{address: %q}]
    health_check: {path: /h, interval: 20ms, timeout: 10ms}
routes:
  - {upstream: app}
`, addr, addr))
	t.Cleanup(g.Close)
	wait.For(t, "checks", func() bool { return checks.Load() >= 2 })
	cfg, err := config.Parse([]byte(oneUpstream(addr, 0, "")))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a check already running may finish
	before := checks.Load()
	time.Sleep(200 * time.Millisecond) // ten intervals: running checks would ask again
	if n := checks.Load() - before; n != 0 {
		t.Fatalf("%d health checks after the reload removed their upstream, want none", n)
	}
}

// Regression: shardgate_tunnels_open of an upstream a reload removed and a
// later one added back was gone for good (its gauge child was deleted, and
// the gateway kept counting into the deleted one).
func TestTunnelsGaugeSurvivesUpstreamReadded(t *testing.T) {
	addr := startBackend(t, func(ctx *fasthttp.RequestCtx) {})
	two := fmt.Sprintf(`
admin: {address: ""}
upstreams:
  app: {backends: [{address: %q}]}
  ws: {backends: [{address: %q}]}
routes:
  - {upstream: app}
`, addr, addr)
	parse := func(s string) *config.Config {
		cfg, err := config.Parse([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	m := metrics.NewMetrics("test")
	g, err := New(parse(two), m, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	m.SetSource(func() metrics.Snapshot { return metrics.Snapshot{Upstreams: g.Snapshot()} })
	for _, cfg := range []*config.Config{parse(oneUpstream(addr, 0, "")), parse(two)} {
		if err := g.Apply(cfg); err != nil {
			t.Fatal(err)
		}
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "shardgate_tunnels_open" {
			continue
		}
		for _, s := range f.GetMetric() {
			if s.GetLabel()[0].GetValue() == "ws" {
				return
			}
		}
	}
	t.Fatal("no shardgate_tunnels_open{upstream=\"ws\"} after ws was removed and added back")
}
