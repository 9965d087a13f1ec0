package cluster

import (
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shardgate/internal/etcdtest"
	"shardgate/internal/wait"
)

// app is one backend as the replicas' admission sees it: a fixed limit and
// a count of what runs on it over all replicas, with its highest.
type app struct {
	limit   int64
	running atomic.Int64
	maxSeen atomic.Int64
}

func (a *app) start() {
	n := a.running.Add(1)
	for {
		m := a.maxSeen.Load()
		if n <= m || a.maxSeen.CompareAndSwap(m, n) {
			return
		}
	}
}

// replica is one replica's view of the app: admission against its share,
// clients that keep `demand` requests open, each running 1-10 ms.
type replica struct {
	a        *app
	share    atomic.Int64
	inflight atomic.Int64
	demand   atomic.Int64
	stop     chan struct{}
	done     sync.WaitGroup
}

func (r *replica) Limit() int64     { return r.a.limit }
func (r *replica) Inflight() int64  { return r.inflight.Load() }
func (r *replica) Waiting() bool    { return r.demand.Load() > r.inflight.Load() }
func (r *replica) SetShare(s int64) { r.share.Store(s) }

// busyReplica returns a running replica of a that wants demand requests
// in flight. Its share is 0 until the cluster gives one, like a clustered
// upstream.Backend's.
func busyReplica(t *testing.T, a *app, demand int64) *replica {
	r := &replica{a: a, stop: make(chan struct{})}
	r.demand.Store(demand)
	r.run(t)
	return r
}

// run admits like upstream.Backend.tryAcquire: CAS below the share.
func (r *replica) run(t *testing.T) {
	r.done.Add(1)
	go func() {
		defer r.done.Done()
		var finishing []time.Time
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(500 * time.Microsecond):
			}
			now := time.Now()
			kept := finishing[:0]
			for _, f := range finishing {
				if now.After(f) {
					r.inflight.Add(-1)
					r.a.running.Add(-1)
				} else {
					kept = append(kept, f)
				}
			}
			finishing = kept
			for r.inflight.Load() < r.demand.Load() {
				n := r.inflight.Load()
				s := r.share.Load()
				if s >= 0 && n >= s {
					break
				}
				if r.inflight.CompareAndSwap(n, n+1) {
					r.a.start()
					finishing = append(finishing, now.Add(time.Duration(1+rand.IntN(10))*time.Millisecond))
				}
			}
		}
	}()
	t.Cleanup(func() { close(r.stop); r.done.Wait() })
}

func startNode(t *testing.T, ec *etcdtest.Cluster, id string, ttl time.Duration, targets ...Target) *Node {
	t.Helper()
	n, err := Start(Config{
		Name: "test", ID: id, Endpoints: ec.Endpoints(), DialTimeout: 2 * time.Second,
		LeaseTTL: ttl, RebalanceInterval: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, func() []Target { return targets })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	// Scrapes run concurrently with rebalancing (-race checks them).
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if cs := n.Status(); cs.ID != id {
				t.Errorf("Status().ID = %q, want %q", cs.ID, id)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return n
}

func target(r *replica, hold time.Duration) Target {
	return Target{Upstream: "app", Address: "127.0.0.1:8000", Hold: hold, Backend: r}
}

func shares(rs ...*replica) (sum int64, each []int64) {
	for _, r := range rs {
		s := max(r.share.Load(), 0)
		sum += s
		each = append(each, s)
	}
	return sum, each
}

func TestSharesNeverExceedLimitAndConvergeEven(t *testing.T) {
	ec := etcdtest.Start(t, 1)
	a := &app{limit: 4}
	var rs []*replica
	for _, id := range []string{"a", "b", "c"} {
		r := busyReplica(t, a, 10)
		startNode(t, ec, id, 2*time.Second, target(r, 200*time.Millisecond))
		rs = append(rs, r)
	}
	wait.For(t, "an even split of 4 over 3 busy replicas", func() bool {
		sum, each := shares(rs...)
		return sum == 4 && min(each[0], each[1], each[2]) >= 1
	})
	// Demand moves: only b stays busy; it gets the whole limit.
	rs[0].demand.Store(0)
	rs[2].demand.Store(0)
	start := time.Now()
	wait.For(t, "the busy replica takes the whole limit", func() bool { return rs[1].share.Load() == 4 })
	t.Logf("busy replica at the whole limit after %v", time.Since(start))
	// And back to all busy.
	rs[0].demand.Store(10)
	rs[2].demand.Store(10)
	wait.For(t, "an even split again", func() bool {
		sum, each := shares(rs...)
		return sum == 4 && min(each[0], each[1], each[2]) >= 1
	})
	if m := a.maxSeen.Load(); m > a.limit {
		t.Fatalf("the app ran %d at once, limit %d", m, a.limit)
	}
	if m := a.maxSeen.Load(); m < a.limit {
		t.Fatalf("the app never reached its limit (%d of %d)", m, a.limit)
	}
}

func TestManyReplicasSmallLimit(t *testing.T) {
	ec := etcdtest.Start(t, 1)
	a := &app{limit: 2}
	var rs []*replica
	for _, id := range []string{"a", "b", "c", "d"} {
		r := busyReplica(t, a, 3)
		startNode(t, ec, id, 2*time.Second, target(r, 100*time.Millisecond))
		rs = append(rs, r)
	}
	wait.For(t, "the whole limit in use", func() bool { sum, _ := shares(rs...); return sum == 2 })
	// The replicas holding it go idle: the others get it.
	var idle, queued []*replica
	for _, r := range rs {
		if r.share.Load() > 0 {
			idle = append(idle, r)
		} else {
			queued = append(queued, r)
		}
	}
	for _, r := range idle {
		r.demand.Store(0)
	}
	wait.For(t, "replicas with share 0 get the freed slots", func() bool {
		var s int64
		for _, r := range queued {
			s += max(r.share.Load(), 0)
		}
		return s == 2
	})
	// All four busy for good: the two slots go round, every replica gets
	// a turn.
	for _, r := range idle {
		r.demand.Store(3)
	}
	had := make([]bool, len(rs))
	wait.For(t, "every busy replica gets a turn", func() bool {
		all := true
		for i, r := range rs {
			had[i] = had[i] || r.share.Load() > 0
			all = all && had[i]
		}
		return all
	})
	if m := a.maxSeen.Load(); m > a.limit {
		t.Fatalf("the app ran %d at once, limit %d", m, a.limit)
	}
}

// crash stops n like kill -9 would: no revoke, no more keep-alives.
func (n *Node) crash() {
	close(n.stop)
	n.wg.Wait()
	n.cli.Close()
}

func TestDeadReplicaShareReturnsAfterTTLAndHold(t *testing.T) {
	ec := etcdtest.Start(t, 1)
	a := &app{limit: 4}
	ra, rb := busyReplica(t, a, 10), busyReplica(t, a, 10)
	hold := 700 * time.Millisecond
	ttl := 2 * time.Second
	startNode(t, ec, "a", ttl, target(ra, hold))
	nb := startNode(t, ec, "b", ttl, target(rb, hold))
	wait.For(t, "an even split", func() bool { return ra.share.Load() == 2 && rb.share.Load() == 2 })
	// b's requests keep running on the app after it died: its in-flight
	// count stays, and so must its share.
	nb.crash()
	rb.demand.Store(0)
	died := time.Now()
	wait.For(t, "a takes the dead replica's share", func() bool { return ra.share.Load() == 4 })
	took := time.Since(died)
	// The lease was renewed at most ttl/3 before the crash.
	if min := ttl*2/3 + hold; took < min {
		t.Fatalf("the dead replica's share went to a after %v, before lease expiry + hold (≥ %v)", took, min)
	}
	t.Logf("share reclaimed %v after the crash", took)
}

func TestCutOffReplicaStopsAdmitting(t *testing.T) {
	ec := etcdtest.Start(t, 1)
	a := &app{limit: 4}
	r := busyReplica(t, a, 10)
	ttl := 2 * time.Second
	startNode(t, ec, "a", ttl, target(r, 100*time.Millisecond))
	wait.For(t, "the whole limit", func() bool { return r.share.Load() == 4 })
	ec.Members[0].Stop()
	stopped := time.Now()
	t.Cleanup(ec.Members[0].Continue)
	wait.For(t, "admission stops", func() bool { return r.share.Load() == 0 })
	took := time.Since(stopped)
	if took > ttl {
		t.Fatalf("still admitting %v after losing etcd, lease TTL %v", took, ttl)
	}
	if took < ttl/3 {
		t.Fatalf("stopped admitting %v after losing etcd: kept no share while the lease was surely alive", took)
	}
	ec.Members[0].Continue()
	wait.For(t, "admission resumes with etcd", func() bool { return r.share.Load() == 4 })
}

// TestQuorumLost: etcd loses its quorum (two of three members killed).
// The replicas keep their shares (no lease can expire without a leader)
// well past the lease TTL, never overshoot, and rebalance again once the
// quorum is back.
func TestQuorumLost(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	a := &app{limit: 4}
	ra, rb := busyReplica(t, a, 10), busyReplica(t, a, 10)
	ttl := 2 * time.Second
	startNode(t, ec, "a", ttl, target(ra, 100*time.Millisecond))
	startNode(t, ec, "b", ttl, target(rb, 100*time.Millisecond))
	wait.For(t, "an even split", func() bool { return ra.share.Load() == 2 && rb.share.Load() == 2 })
	second := ec.LoseQuorum()
	lost := time.Now()
	for time.Since(lost) < 2*ttl {
		if ra.share.Load() != 2 || rb.share.Load() != 2 {
			t.Fatalf("shares %d, %d %v after etcd lost its quorum, want 2, 2 kept", ra.share.Load(), rb.share.Load(), time.Since(lost))
		}
		time.Sleep(10 * time.Millisecond) // sampling the shares
	}
	ec.Restart(second)
	rb.demand.Store(0)
	wait.For(t, "rebalancing after quorum returns", func() bool { return ra.share.Load() == 4 })
	if m := a.maxSeen.Load(); m > a.limit {
		t.Fatalf("the app ran %d at once, limit %d", m, a.limit)
	}
}

// TestRemovedBackendShareReturns: a reload on one replica removes the
// backend; its share goes to the other replica only after the hold.
func TestRemovedBackendShareReturns(t *testing.T) {
	ec := etcdtest.Start(t, 1)
	a := &app{limit: 4}
	ra, rb := busyReplica(t, a, 10), busyReplica(t, a, 10)
	hold := 600 * time.Millisecond
	startNode(t, ec, "a", 2*time.Second, target(ra, hold))
	var bTargets atomic.Pointer[[]Target]
	bTargets.Store(&[]Target{target(rb, hold)})
	nb, err := Start(Config{Name: "test", ID: "b", Endpoints: ec.Endpoints(), DialTimeout: 2 * time.Second,
		LeaseTTL: 2 * time.Second, RebalanceInterval: 50 * time.Millisecond},
		func() []Target { return *bTargets.Load() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nb.Close)
	wait.For(t, "an even split", func() bool { return ra.share.Load() == 2 && rb.share.Load() == 2 })
	// The other backend stays, so b still knows the hold of its upstream.
	other := &replica{a: &app{limit: 0}, stop: make(chan struct{})}
	bTargets.Store(&[]Target{{Upstream: "app", Address: "127.0.0.1:9999", Hold: hold, Backend: other}})
	rb.demand.Store(0)
	removed := time.Now()
	wait.For(t, "a gets the removed backend's share", func() bool { return ra.share.Load() == 4 })
	if took := time.Since(removed); took < hold {
		t.Fatalf("the share of a removed backend went to a after %v, before the hold %v", took, hold)
	}
}
