package test

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"shardgate/internal/etcdtest"
	"shardgate/internal/wait"
)

// clusterProcessesConfig is a replica of `processes: 2` on port (0 = any).
func clusterProcessesConfig(id, port string, ec *etcdtest.Cluster, app *gunicornApp) string {
	return fmt.Sprintf(`processes: 2
listen:
  - address: "127.0.0.1:%s"
    shards: 1
`, port) + clusterReplica(id, ec.Endpoints(), app)
}

// workerPids returns the pids of g's workers, from the supervisor's /status.
func workerPids(t *testing.T, g *Gateway) []int {
	t.Helper()
	code, body := get(t, g.AdminURL+"/status?format=json")
	var v struct {
		Processes []struct {
			Pid int `json:"pid"`
		} `json:"processes"`
	}
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		t.Fatalf("GET /status = %d, %v: %s", code, err, body)
	}
	var out []int
	for _, p := range v.Processes {
		if p.Pid != 0 {
			out = append(out, p.Pid)
		}
	}
	return out
}

// TestClusterWithProcesses: two replicas of `processes: 2` each (four
// gateway processes) on one port in front of one gunicorn with 8 sync
// workers, max_inflight 4, under open-loop overload; a worker of one replica
// is killed (-9) in the middle. Each supervisor is its replica's cluster
// member and caps its workers' shared slots at the replica's share: the app
// never runs more than 4 at once, and does run 4.
func TestClusterWithProcesses(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	app := startWideGunicorns(t, 1)[0]
	first := StartGateway(t, clusterProcessesConfig("p0", "0", ec, app))
	port := first.Addr[strings.LastIndexByte(first.Addr, ':')+1:]
	gs := []*Gateway{first, StartGateway(t, clusterProcessesConfig("p1", port, ec, app))}
	wait.For(t, "both replicas as members", func() bool {
		return len(replicaView(t, gs[0]).Cluster.Members) == 2 && len(replicaView(t, gs[1]).Cluster.Members) == 2
	})
	results := overload(t, gs[0].URL+"/work?ms=50", 120, 6*time.Second)
	wait.For(t, "both replicas hold a share", func() bool { return share(t, gs[0]) > 0 && share(t, gs[1]) > 0 })
	pids := workerPids(t, gs[1])
	if len(pids) != 2 {
		t.Fatalf("replica p1 has workers %v, want 2", pids)
	}
	time.Sleep(time.Second) // the overload runs a while before the worker dies
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rs := <-results
	counts := checkOutcomes(t, rs, "200", "503", "reset")
	s := app.stats(t)
	t.Logf("%d requests: %v; app: %+v", len(rs), counts, s)
	checkAppLimits(t, []*gunicornApp{app}, sharedLimit, true)
	if counts["200"] < len(rs)/2 {
		t.Errorf("only %d of %d requests got 200", counts["200"], len(rs))
	}
	var sum int64
	for i, g := range gs {
		sh := share(t, g)
		t.Logf("replica %d: share %d", i, sh)
		sum += sh
	}
	if sum > sharedLimit {
		t.Errorf("shares sum to %d, limit %d", sum, sharedLimit)
	}
	m := parseMetrics(t, gs[0].Metrics(t))
	checkMetric(t, m, "shardgate_cluster_members", nil, 2)
	if v, ok := m.value("shardgate_cluster_share", map[string]string{"upstream": "app", "backend": app.Addr}); !ok || v > sharedLimit {
		t.Errorf("shardgate_cluster_share on the supervisor = %v (present %v), want at most %d", v, ok, sharedLimit)
	}
}

// TestClusterUpgradeKeepsLimit: a SIGUSR2 binary upgrade of one of two
// replicas under open-loop overload, with processes: 1 and with
// processes: 2. The old and the new binary of the upgraded replica share its
// slot segment, and with it its share: the app never runs more than the
// limit, and clients get only 200s and the queue's 503s.
func TestClusterUpgradeKeepsLimit(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("processes %d", procs), func(t *testing.T) {
			ec := etcdtest.Start(t, 3)
			app := startWideGunicorns(t, 1)[0]
			conf := func(id, port string) string {
				return fmt.Sprintf(`processes: %d
listen:
  - address: "127.0.0.1:%s"
    shards: 1
`, procs, port) + clusterReplica(id, ec.Endpoints(), app)
			}
			first := StartGateway(t, conf("u0", "0"))
			port := first.Addr[strings.LastIndexByte(first.Addr, ':')+1:]
			gs := []*Gateway{first, StartGateway(t, conf("u1", port))}
			wait.For(t, "both replicas as members", func() bool { return len(replicaView(t, gs[1]).Cluster.Members) == 2 })
			results := overload(t, gs[0].URL+"/work?ms=50", 120, 7*time.Second)
			wait.For(t, "both replicas hold a share", func() bool { return share(t, gs[0]) > 0 && share(t, gs[1]) > 0 })

			g := gs[1]
			upgrade(t, g, 20*time.Second)
			rs := <-results
			counts := checkOutcomes(t, rs, "200", "503")
			s := app.stats(t)
			t.Logf("%d requests: %v; app: %+v", len(rs), counts, s)
			checkAppLimits(t, []*gunicornApp{app}, sharedLimit, true)
		})
	}
}
