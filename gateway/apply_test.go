package gateway

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"shardgate/config"
	"shardgate/internal/wait"
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
