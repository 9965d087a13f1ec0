package test

import (
	"testing"
	"time"

	"shardgate/internal/etcdtest"
	"shardgate/internal/wait"
)

// TestClusterGoodput: three replicas under open-loop overload serve at
// least 95% of what one gateway with the same limit serves under the same
// load (a ratio measured side by side, not a speed).
func TestClusterGoodput(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	app := startWideGunicorns(t, 1)[0]
	// 8 s, so that the first rebalances (shares start at 0) weigh little.
	const rate, d = 120, 8 * time.Second

	one := StartGateway(t, sharedConfig("", []*gunicornApp{app}))
	checkOutcomes(t, <-overload(t, one.URL+"/work?ms=50", rate, d), "200", "503")
	base := app.stats(t).Served
	one.stop(t)

	gs := startReplicas(t, 3, ec, app)
	wait.For(t, "all three replicas as members", func() bool {
		return len(replicaView(t, gs[2]).Cluster.Members) == 3
	})
	checkOutcomes(t, <-overload(t, gs[0].URL+"/work?ms=50", rate, d), "200", "503")
	s := app.stats(t)
	got := s.Served - base
	t.Logf("one gateway served %d, three replicas %d (%.0f%%); app max at once %d", base, got, 100*float64(got)/float64(base), s.MaxInflight)
	checkAppLimits(t, []*gunicornApp{app}, sharedLimit, false)
	if float64(got) < 0.95*float64(base) {
		t.Errorf("three replicas served %d, under 95%% of one gateway's %d", got, base)
	}
}
