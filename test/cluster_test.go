package test

// Several replicas, one limit (issue 14): shardgate processes with the same
// cluster name in front of one gunicorn share its max_inflight through a
// real 3-member etcd cluster, on one port (SO_REUSEPORT spreads the clients
// over them). The app's own count of requests at once is the judge.

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/etcdtest"
	"shardgate/internal/wait"
)

const (
	clusterTTL  = 2 * time.Second
	clusterHold = 2 * time.Second // the upstream's response_timeout
)

// clusterConfig is a replica's config: listen on port (0 = any), one
// upstream over app at max_inflight sharedLimit.
func clusterConfig(id, port string, ec *etcdtest.Cluster, app *gunicornApp) string {
	return clusterConfigOn(id, port, ec.Endpoints(), app)
}

// clusterConfigOn is clusterConfig with the given etcd endpoints, and a
// second listener of the replica's own (privateAddr).
func clusterConfigOn(id, port string, endpoints []string, app *gunicornApp) string {
	return fmt.Sprintf(`listen:
  - address: "127.0.0.1:%s"
    shards: 1
  - address: "127.0.0.1:0"
    shards: 1
`, port) + clusterReplica(id, endpoints, app)
}

// clusterReplica is the part of a replica's config after its listeners.
func clusterReplica(id string, endpoints []string, app *gunicornApp) string {
	eps, _ := json.Marshal(endpoints)
	return fmt.Sprintf(`admin:
  address: "127.0.0.1:0"
cluster:
  name: e2e
  id: %s
  etcd: {endpoints: %s, dial_timeout: 2s}
  lease_ttl: %v
  rebalance_interval: 100ms
upstreams:
  app:
    queue: {timeout: 1s, max_length: 2000}
    response_timeout: %v
    backends: [{address: %q, max_inflight: %d}]
routes:
  - {host: "*", path_prefix: /, upstream: app}
`, id, eps, clusterTTL, clusterHold, app.Addr, sharedLimit)
}

// privateURL is the URL of g's own listener, which no other replica shares.
func privateURL(t *testing.T, g *Gateway) string {
	t.Helper()
	listen, _, ok := findReady(g.Logs())
	addrs := strings.Split(listen, ",")
	if !ok || len(addrs) < 2 {
		t.Fatalf("no second listener in the ready line: %q", listen)
	}
	return "http://" + addrs[1]
}

// startReplicas starts n replicas on one port.
func startReplicas(t *testing.T, n int, ec *etcdtest.Cluster, app *gunicornApp) []*Gateway {
	t.Helper()
	first := StartGateway(t, clusterConfig("r0", "0", ec, app))
	port := first.Addr[strings.LastIndexByte(first.Addr, ':')+1:]
	gs := []*Gateway{first}
	for i := 1; i < n; i++ {
		gs = append(gs, StartGateway(t, clusterConfig(fmt.Sprintf("r%d", i), port, ec, app)))
	}
	return gs
}

type clusterView struct {
	Cluster struct {
		Members []string `json:"members"`
		Safe    bool     `json:"safe"`
		Shares  []struct {
			Share     int64            `json:"share"`
			Published int64            `json:"published"`
			Replicas  map[string]int64 `json:"replicas"`
		} `json:"shares"`
		Rebalances uint64 `json:"rebalances"`
	} `json:"cluster"`
}

func replicaView(t *testing.T, g *Gateway) clusterView {
	t.Helper()
	code, body := get(t, g.AdminURL+"/status?format=json")
	var v clusterView
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		t.Fatalf("GET /status = %d, %v: %s", code, err, body)
	}
	return v
}

// share returns the share g admits on now (0 before it has one).
func share(t *testing.T, g *Gateway) int64 {
	v := replicaView(t, g)
	if len(v.Cluster.Shares) == 0 {
		return 0
	}
	return v.Cluster.Shares[0].Share
}

// TestClusterReplicasShareLimit: three replicas under open-loop overload,
// the etcd leader killed (-9) in the middle. The app (8 sync workers) never
// runs more than max_inflight 4 at once, and does run 4; clients get only
// 200s and the queue's 503s; the shares end evenly split.
func TestClusterReplicasShareLimit(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	app := startWideGunicorns(t, 1)[0]
	gs := startReplicas(t, 3, ec, app)
	wait.For(t, "all three replicas as members", func() bool {
		return len(replicaView(t, gs[2]).Cluster.Members) == 3
	})
	// Capacity 4 slots / 50 ms = 80/s; offer 120/s for 5s.
	results := overload(t, gs[0].URL+"/work?ms=50", 120, 5*time.Second)
	time.Sleep(2 * time.Second) // the overload runs a while before the leader dies
	leader := ec.Leader()
	if leader == nil {
		t.Fatal("no etcd leader")
	}
	ec.Kill(leader)
	t.Logf("killed etcd leader %s", leader.Name)
	rs := <-results
	counts := checkOutcomes(t, rs, "200", "503")
	s := app.stats(t)
	t.Logf("%d requests: %v; app: %+v", len(rs), counts, s)
	checkAppLimits(t, []*gunicornApp{app}, sharedLimit, true)
	// Rebalancing goes on with the two members left: each busy replica got some.
	var sum int64
	for i, g := range gs {
		sh := share(t, g)
		t.Logf("replica %d: share %d", i, sh)
		sum += sh
	}
	if sum > sharedLimit {
		t.Errorf("shares sum to %d, limit %d", sum, sharedLimit)
	}
}

// TestClusterReplicaKilled: kill -9 of one of two busy replicas. The other
// takes the dead one's share only after its lease expired and
// response_timeout passed (its requests may still run on the app); the app
// never runs more than its limit.
func TestClusterReplicaKilled(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	app := startWideGunicorns(t, 1)[0]
	gs := startReplicas(t, 2, ec, app)
	// Both busy: the clients of the shared port are spread over both.
	r0 := overload(t, gs[0].URL+"/work?ms=50", 120, 8*time.Second)
	wait.For(t, "both replicas hold a share", func() bool { return share(t, gs[0]) > 0 && share(t, gs[1]) > 0 })
	before := share(t, gs[0])
	time.Sleep(time.Second)
	if err := syscall.Kill(gs[1].Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wait.For(t, "the survivor takes the whole limit", func() bool { return share(t, gs[0]) == sharedLimit })
	took := time.Since(killed)
	t.Logf("survivor went from %d to %d slots %v after the kill", before, sharedLimit, took)
	// The lease was renewed at most a third of its TTL before the kill.
	if min := clusterTTL*2/3 + clusterHold; took < min {
		t.Errorf("the dead replica's share returned %v after the kill, before lease expiry + response_timeout (≥ %v)", took, min)
	}
	rs := <-r0
	// The killed replica's clients lose their connections; nobody else does.
	counts := checkOutcomes(t, rs, "200", "503", "reset")
	s := app.stats(t)
	t.Logf("clients: %v; app: %+v", counts, s)
	checkAppLimits(t, []*gunicornApp{app}, sharedLimit, false)
}

// TestClusterUnevenDemand: clients reach one replica only (its own
// listener). Within a second it holds nearly the whole limit, and the app
// runs at its limit, not below.
func TestClusterUnevenDemand(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	app := startWideGunicorns(t, 1)[0]
	gs := startReplicas(t, 3, ec, app)
	wait.For(t, "all three replicas as members", func() bool {
		return len(replicaView(t, gs[0]).Cluster.Members) == 3
	})
	// First every replica busy (the shared port), so that all hold a share.
	first := overload(t, gs[0].URL+"/work?ms=50", 120, 2*time.Second)
	wait.For(t, "every replica holds a share", func() bool {
		return share(t, gs[0]) > 0 && share(t, gs[1]) > 0 && share(t, gs[2]) > 0
	})
	checkOutcomes(t, <-first, "200", "503")
	results := overload(t, privateURL(t, gs[0])+"/work?ms=50", 120, 3*time.Second)
	start := time.Now()
	wait.For(t, "the busy replica holds the whole limit", func() bool { return share(t, gs[0]) == sharedLimit })
	took := time.Since(start)
	t.Logf("busy replica at %d slots %v after the load began", sharedLimit, took)
	if took > time.Second {
		t.Errorf("the busy replica took %v to get the limit, want within a second", took)
	}
	rs := <-results
	counts := checkOutcomes(t, rs, "200", "503")
	s := app.stats(t)
	t.Logf("%v; app: %+v", counts, s)
	if s.MaxInflight != sharedLimit {
		t.Errorf("the app ran at most %d at once, want exactly its limit %d", s.MaxInflight, sharedLimit)
	}
}

// TestClusterReplicaCutOff: one replica's only etcd endpoint is stopped
// (SIGSTOP: no answer, no reset). Within the lease TTL it stops admitting
// on its share; the other takes that share over only after it did (lease
// expiry + response_timeout), and the app never runs more than its limit.
func TestClusterReplicaCutOff(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	app := startWideGunicorns(t, 1)[0]
	a := StartGateway(t, clusterConfigOn("a", "0", ec.Endpoints()[:2], app))
	cutEP := ec.Members[2]
	b := StartGateway(t, clusterConfigOn("b", "0", []string{cutEP.ClientURL}, app))
	ra := overload(t, privateURL(t, a)+"/work?ms=50", 60, 9*time.Second)
	rb := overload(t, privateURL(t, b)+"/work?ms=50", 60, 9*time.Second)
	wait.For(t, "both replicas hold a share", func() bool { return share(t, a) > 0 && share(t, b) > 0 })
	time.Sleep(500 * time.Millisecond)
	cutEP.Stop()
	t.Cleanup(cutEP.Continue)
	cut := time.Now()
	wait.For(t, "the cut-off replica stops admitting", func() bool { return share(t, b) == 0 })
	// When it stopped is when its guard fired, as its log line says, not
	// when a poll of /status on two busy cores saw it.
	stopped := guardFired(t, b).Sub(cut)
	wait.For(t, "the other takes the whole limit", func() bool { return share(t, a) == sharedLimit })
	taken := time.Since(cut)
	t.Logf("cut-off replica stopped admitting after %v; the other took its share after %v", stopped, taken)
	if stopped > clusterTTL {
		t.Errorf("the cut-off replica admitted for %v, longer than the lease TTL %v", stopped, clusterTTL)
	}
	if taken < stopped+clusterHold {
		t.Errorf("its share was taken %v after the cut, before it stopped (%v) + response_timeout", taken, stopped)
	}
	<-ra
	<-rb
	s := app.stats(t)
	t.Logf("app: %+v", s)
	checkAppLimits(t, []*gunicornApp{app}, sharedLimit, false)
	cutEP.Continue()
}

// guardFired returns when g logged that its lease guard fired.
func guardFired(t *testing.T, g *Gateway) time.Time {
	t.Helper()
	for line := range strings.SplitSeq(g.Logs(), "\n") {
		if !strings.Contains(line, "lease not renewed in time") {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, textFields(line)["time"]); err == nil {
			return at
		}
	}
	t.Fatalf("no guard line with a time in the logs:\n%s", g.Logs())
	return time.Time{}
}

// TestClusterQuorumLost: under load, the etcd leader and then a second
// member are killed (-9): quorum is lost. No lease can expire without a
// leader, so the replicas keep serving within their shares well past the
// lease TTL; the app never runs more than its limit; once a member is back
// the shares follow demand again.
func TestClusterQuorumLost(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	app := startWideGunicorns(t, 1)[0]
	gs := startReplicas(t, 2, ec, app)
	results := overload(t, gs[0].URL+"/work?ms=50", 100, 6*time.Second)
	wait.For(t, "both replicas hold a share", func() bool { return share(t, gs[0]) > 0 && share(t, gs[1]) > 0 })
	second := ec.LoseQuorum()
	lost := time.Now()
	for time.Since(lost) < 2*clusterTTL {
		if share(t, gs[0]) == 0 || share(t, gs[1]) == 0 {
			t.Fatalf("a replica stopped admitting %v after etcd lost its quorum, want its share kept", time.Since(lost))
		}
		time.Sleep(50 * time.Millisecond) // sampling the shares
	}
	ec.Restart(second)
	rs := <-results
	counts := checkOutcomes(t, rs, "200", "503")
	// Quorum is back: demand on one replica only moves the whole limit to it.
	results = overload(t, privateURL(t, gs[0])+"/work?ms=50", 100, 3*time.Second)
	wait.For(t, "rebalancing after quorum returns", func() bool { return share(t, gs[0]) == sharedLimit })
	checkOutcomes(t, <-results, "200", "503")
	s := app.stats(t)
	t.Logf("%v; app: %+v", counts, s)
	checkAppLimits(t, []*gunicornApp{app}, sharedLimit, false)
}
