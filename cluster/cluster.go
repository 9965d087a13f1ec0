// Package cluster lets several shardgate replicas in front of the same
// backends share each backend's limit through etcd (issue 14).
//
// Every replica of a cluster name registers under a lease
// (/shardgate/<name>/members/<id>) and holds, per backend (upstream +
// address), a share key /shardgate/<name>/shares/<upstream>/<address>/<id>
// whose value is the slots it may run there. Invariants:
//
//  1. The shares of a backend sum to at most its limit. A share grows only
//     in a transaction that compares the backend's version key
//     (/shardgate/<name>/version/<upstream>/<address>), which every change
//     of a share of that backend rewrites, so a grower always sees the sum
//     it grows into. Shrinking needs no comparison.
//  2. A replica admits on at most what it holds in etcd (local ≤ published).
//     It raises its local share only after the transaction committed, and
//     gives slots back in etcd only one rebalance after it stopped admitting
//     on them locally, never below its requests in flight.
//  3. Share keys carry no lease. When a member's lease is gone, the others
//     delete its share keys only once the upstream's response_timeout has
//     passed since they saw it gone (its last requests may still run).
//  4. A replica that has not renewed its lease for lease_ttl minus a safety
//     margin admits nothing (local share 0), so the others can take its share
//     once the lease expired.
//
// Admission never talks to etcd: the share caps the backend's limit through
// an atomic (upstream.Backend.SetShare).
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"shardgate/metrics"
)

// Config is what a Node is built from.
type Config struct {
	Name, ID           string
	Endpoints          []string
	DialTimeout        time.Duration
	Username, Password string
	TLS                *tls.Config
	LeaseTTL           time.Duration // whole seconds, at least 1s
	RebalanceInterval  time.Duration
	// Inherited is set when this process took over from a previous one of
	// the same replica whose in-flight counts it shares (a binary upgrade
	// handed the slot segment down): then the shares that one held are used
	// at once. Otherwise shares this id held before the process started are
	// used only once the upstream's response_timeout has passed, since the
	// requests of a crashed predecessor may still run.
	Inherited bool
	Log       *slog.Logger
}

// Backend is what the cluster needs of a backend (upstream.Backend).
type Backend interface {
	Limit() int64     // configured limit; 0 = unlimited (not shared)
	Inflight() int64  // requests running on it now
	Waiting() bool    // requests wait for a slot in its pool
	SetShare(s int64) // cap admission at s slots; < 0 lifts the cap
}

// Target is one backend the cluster divides.
type Target struct {
	Upstream, Address string
	// Hold is how long a dead replica's requests may still run on it (the
	// upstream's response_timeout): its share is reclaimed only after.
	Hold    time.Duration
	Backend Backend
}

// entry is this replica's state for one backend.
type entry struct {
	t         Target       // written under both Node.mu and Node.smu; read under either
	local     atomic.Int64 // what admission uses (SetShare); written under Node.smu
	lowered   time.Time    // when local was last lowered below published; zero = not pending
	frozen    time.Time    // until then: inherited from a previous run, not used nor given back
	published int64        // our value in etcd at the last read
	replicas  map[string]int64
}

// Node is this replica's membership. Safe for concurrent use.
type Node struct {
	cfg    Config
	cli    *clientv3.Client
	log    *slog.Logger
	prefix string
	margin time.Duration
	now    func() time.Time

	lease atomic.Int64 // clientv3.LeaseID; 0 = not registered
	// unsafeLease is the lease held when the guard last fired.
	unsafeLease atomic.Int64
	lastOK      atomic.Int64 // Unix ns when the last successful keep-alive was sent
	safe        atomic.Bool

	// smu orders share changes against the guard: once the guard marked
	// the node unsafe, nothing raises a share above 0 until a keep-alive
	// succeeded again. Held only around SetShare, never across etcd calls.
	smu   sync.Mutex
	all   []*entry // every entry, for the guard (protected by smu)
	guard *time.Timer

	rebalances atomic.Uint64
	errs       atomic.Uint64

	targets func() []Target
	last    atomic.Pointer[view] // the last Status built, for Status during a round

	peers atomic.Pointer[[]string] // client URLs of every etcd member, for noQuorum

	mu      sync.Mutex // protects entries, members, absent
	entries map[string]*entry
	members []string
	absent  map[string]time.Time // member id → first seen without a lease
	stale   map[string]time.Time // backend key → first seen with our key but not shared
	started time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

// Start connects to etcd, registers the replica and rebalances every
// RebalanceInterval until Close. targets is called every rebalance for the
// backends to divide (it must be cheap and safe for concurrent use). Until
// the replica holds a share of a backend it admits nothing there.
func Start(cfg Config, targets func() []Target) (*Node, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    cfg.Password,
		TLS:         cfg.TLS,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd: %w", err)
	}
	n := &Node{
		cfg: cfg, cli: cli, log: cfg.Log, targets: targets,
		prefix:  "/shardgate/" + cfg.Name + "/",
		margin:  safetyMargin(cfg.LeaseTTL),
		now:     time.Now,
		entries: make(map[string]*entry),
		absent:  make(map[string]time.Time),
		stop:    make(chan struct{}),
	}
	n.started = n.now()
	n.safe.Store(true)
	n.guard = time.AfterFunc(time.Hour, n.expire)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout+cfg.LeaseTTL)
	err = n.register(ctx)
	cancel()
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("cluster: registering %s with etcd at %s: %w", cfg.ID, strings.Join(cfg.Endpoints, ","), err)
	}
	n.refreshPeers(context.Background())
	n.wg.Add(2)
	go n.keepAlive()
	go n.rebalanceLoop()
	return n, nil
}

// safetyMargin is how long before its lease could expire (by this
// replica's clock) a replica stops admitting on its shares: a fifth of the
// TTL, at least 500 ms, at most a second and a half of it.
func safetyMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/5, 500*time.Millisecond), ttl/2)
}

func (n *Node) memberKey(id string) string { return n.prefix + "members/" + id }

// shareKey and versionKey take a backend key (bkey).
func (n *Node) shareKey(k, id string) string { return n.prefix + "shares/" + k + "/" + id }
func (n *Node) versionKey(k string) string   { return n.prefix + "version/" + k }

// register grants a lease and puts the member key under it.
func (n *Node) register(ctx context.Context) error {
	sent := n.now()
	g, err := n.cli.Grant(ctx, int64(n.cfg.LeaseTTL/time.Second))
	if err != nil {
		n.errs.Add(1)
		return err
	}
	if _, err := n.cli.Put(ctx, n.memberKey(n.cfg.ID), strconv.Itoa(int(sent.Unix())), clientv3.WithLease(g.ID)); err != nil {
		n.errs.Add(1)
		return err
	}
	n.lease.Store(int64(g.ID))
	n.renewed(sent)
	return nil
}

// renewed records a keep-alive sent at sent that succeeded, and sets the
// guard to fire when the lease could expire (less the margin).
func (n *Node) renewed(sent time.Time) {
	n.lastOK.Store(sent.UnixNano())
	if n.guard != nil {
		n.guard.Reset(time.Until(sent.Add(n.cfg.LeaseTTL - n.margin)))
	}
}

// expire is the guard: when the lease may have expired, every share drops
// to 0 at once, whatever the rebalance loop is waiting on.
func (n *Node) expire() {
	if n.now().UnixNano() < n.lastOK.Load()+int64(n.cfg.LeaseTTL-n.margin) {
		return // renewed meanwhile
	}
	n.smu.Lock()
	if n.safe.Swap(false) {
		n.unsafeLease.Store(n.lease.Load())
		n.log.Warn("cluster: lease not renewed in time; admitting nothing until it is", "id", n.cfg.ID)
	}
	for _, e := range n.all {
		e.t.Backend.SetShare(0)
		e.local.Store(0)
	}
	n.smu.Unlock()
}

// keepAlive renews the lease three times per TTL, and registers anew when
// the lease is gone.
func (n *Node) keepAlive() {
	defer n.wg.Done()
	every := max(n.cfg.LeaseTTL/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		sent := n.now()
		id := clientv3.LeaseID(n.lease.Load())
		var err error
		if id == 0 {
			err = n.register(ctx)
		} else if _, err = n.keepAliveOnce(ctx, id, every/2); err == nil {
			n.renewed(sent)
		} else {
			n.errs.Add(1)
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				n.log.Warn("cluster: lease expired; registering again", "id", n.cfg.ID)
				n.lease.Store(0)
				err = n.register(ctx)
			} else {
				qctx, qcancel := context.WithTimeout(context.Background(), max(every/3, 200*time.Millisecond))
				if n.noQuorum(qctx) {
					n.renewed(sent) // no leader anywhere: no lease can expire
				}
				qcancel()
			}
		}
		cancel()
		if err != nil {
			n.log.Debug("cluster: keep-alive failed", "error", err)
		}
	}
}

// refreshPeers records the client URLs of etcd's members.
func (n *Node) refreshPeers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := n.cli.MemberList(ctx)
	if err != nil {
		n.errs.Add(1)
		return
	}
	var urls []string
	for _, m := range resp.Members {
		if len(m.ClientURLs) > 0 {
			urls = append(urls, m.ClientURLs[0])
		}
	}
	if len(urls) == len(resp.Members) {
		n.peers.Store(&urls)
	}
}

// noQuorum reports whether etcd has surely no quorum: a majority of its
// members either answered that they have no leader or refused the
// connection (no process listens: the member is down). Then no lease can
// expire (only a leader expires leases, and a new leader extends every
// lease by its full TTL), so a replica that cannot renew its lease may
// keep its shares: with etcd down altogether every replica serves within
// its current share. A replica cut off from a majority that has a leader
// gets no such answers (a partition times out; it does not refuse) and
// stops admitting as usual.
func (n *Node) noQuorum(ctx context.Context) bool {
	p := n.peers.Load()
	if p == nil {
		return false
	}
	var wg sync.WaitGroup
	var down atomic.Int64
	for _, ep := range *p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if refused(ctx, ep) {
				down.Add(1)
				return
			}
			if st, err := n.cli.Status(ctx, ep); err == nil && st.Leader == 0 {
				down.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(down.Load()) > len(*p)/2
}

// refused reports whether a TCP connection to the host of URL ep is
// refused: nothing listens there.
func refused(ctx context.Context, ep string) bool {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// keepAliveOnce renews the lease once, within d, so that a renewal and
// the no-quorum check after a failed one fit in a keep-alive period.
func (n *Node) keepAliveOnce(ctx context.Context, id clientv3.LeaseID, d time.Duration) (*clientv3.LeaseKeepAliveResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return n.cli.KeepAliveOnce(ctx, id)
}

func (n *Node) rebalanceLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.RebalanceInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.rebalance()
	}
}

// Close stops rebalancing and leaves the cluster: the lease is revoked, so
// the others see this replica gone at once, and its shares are reclaimed
// after the hold like a crashed replica's (its last requests may still run).
func (n *Node) Close() {
	select {
	case <-n.stop:
		return
	default:
	}
	close(n.stop)
	n.wg.Wait()
	n.guard.Stop()
	if id := clientv3.LeaseID(n.lease.Load()); id != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n.cli.Revoke(ctx, id)
		cancel()
	}
	n.cli.Close()
}

// checkSafe reports whether the lease is surely alive, and whether it just
// became so again after the guard fired (recovered).
func (n *Node) checkSafe(now time.Time) (ok, recovered bool) {
	deadline := n.lastOK.Load() + int64(n.cfg.LeaseTTL-n.margin)
	if n.lease.Load() == 0 || now.UnixNano() >= deadline {
		n.expire()
		return false, false
	}
	n.smu.Lock()
	if !n.safe.Swap(true) {
		// The same lease renewed: it never expired, nobody took our
		// shares. A new lease: the old one may have expired and our shares
		// been reclaimed; only a fresh read tells what we hold.
		recovered = n.lease.Load() == n.unsafeLease.Load()
		n.log.Info("cluster: lease renewed; admitting again", "id", n.cfg.ID)
	}
	n.smu.Unlock()
	return true, recovered
}

// setLocal sets what admission uses on e's backend. A node that is not
// safe sets nothing above 0.
func (n *Node) setLocal(e *entry, s int64) {
	n.smu.Lock()
	defer n.smu.Unlock()
	if !n.safe.Load() {
		s = 0
	}
	if s != e.local.Load() {
		e.local.Store(s)
		e.t.Backend.SetShare(s)
	}
}

// state is one read of the cluster's keys.
type state struct {
	members  map[string]bool
	shares   map[string]map[string]shareVal // backend key → id → share
	versions map[string]int64               // backend key → mod revision of its version key
}

type shareVal struct {
	n    int64
	want bool
}

func (n *Node) read(ctx context.Context) (*state, error) {
	resp, err := n.cli.Get(ctx, n.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	st := &state{members: map[string]bool{}, shares: map[string]map[string]shareVal{}, versions: map[string]int64{}}
	for _, kv := range resp.Kvs {
		k := strings.TrimPrefix(string(kv.Key), n.prefix)
		switch {
		case strings.HasPrefix(k, "members/"):
			st.members[strings.TrimPrefix(k, "members/")] = true
		case strings.HasPrefix(k, "version/"):
			st.versions[strings.TrimPrefix(k, "version/")] = kv.ModRevision
		case strings.HasPrefix(k, "shares/"):
			rest := strings.TrimPrefix(k, "shares/")
			i := strings.LastIndexByte(rest, '/')
			if i < 0 {
				continue
			}
			v := string(kv.Value)
			want := strings.HasSuffix(v, "+")
			s, err := strconv.ParseInt(strings.TrimSuffix(v, "+"), 10, 64)
			if err != nil {
				continue
			}
			b := rest[:i]
			if st.shares[b] == nil {
				st.shares[b] = map[string]shareVal{}
			}
			st.shares[b][rest[i+1:]] = shareVal{s, want}
		}
	}
	return st, nil
}

func bkey(t Target) string { return t.Upstream + "/" + t.Address }

// rebalance runs one round: read every key of the cluster, reclaim what
// dead replicas held, then per backend give back, ask for or take slots.
func (n *Node) rebalance() {
	now := n.now()
	safe, recovered := n.checkSafe(now)
	targets := n.targets()
	ctx, cancel := context.WithTimeout(context.Background(), max(n.cfg.RebalanceInterval*2, 300*time.Millisecond))
	defer cancel()
	st, err := n.read(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.forgetRemoved(targets)
	if recovered {
		// The lease was alive all along (renewed, or etcd had no quorum):
		// what we held in etcd is still ours.
		for _, e := range n.entries {
			if !now.Before(e.frozen) {
				n.setLocal(e, e.published)
			}
		}
	}
	if err != nil {
		n.errs.Add(1)
		return // keep the shares we have; never grow without etcd
	}
	n.members = n.members[:0]
	for id := range st.members {
		n.members = append(n.members, id)
	}
	slices.Sort(n.members)
	for id := range n.absent {
		if st.members[id] {
			delete(n.absent, id)
		}
	}
	lease := clientv3.LeaseID(n.lease.Load())
	registered := lease != 0 && st.members[n.cfg.ID]
	for _, t := range targets {
		k := bkey(t)
		e := n.entries[k]
		if t.Backend.Limit() <= 0 { // unlimited: nothing to share
			if e != nil {
				delete(n.entries, k)
				t.Backend.SetShare(-1)
			}
			continue
		}
		if e == nil {
			e = &entry{t: t}
			e.local.Store(-1)
			if v, ok := st.shares[k][n.cfg.ID]; ok && v.n > 0 && !n.cfg.Inherited {
				e.frozen = n.started.Add(t.Hold) // a previous run's requests may still run
			}
			n.entries[k] = e
			n.smu.Lock()
			n.all = append(n.all, e)
			n.smu.Unlock()
			n.setLocal(e, 0)
		}
		n.smu.Lock() // the guard reads e.t under smu
		e.t = t
		n.smu.Unlock()
		n.reclaim(ctx, st, t, now)
		if safe && registered {
			n.balance(ctx, st, e, lease, now)
		}
		e.replicas = make(map[string]int64, len(st.shares[k]))
		for id, v := range st.shares[k] {
			e.replicas[id] = v.n
		}
		e.published = st.shares[k][n.cfg.ID].n
	}
	n.dropStale(ctx, st, targets, now)
	n.smu.Lock()
	n.all = n.all[:0]
	for _, e := range n.entries {
		n.all = append(n.all, e)
	}
	n.smu.Unlock()
}

// dropStale deletes this replica's share keys of backends it no longer
// shares (a reload removed them or made them unlimited, or a previous run
// had them), once the longest response_timeout of its upstreams has passed
// since it noticed: the requests it ran there may still be running. And it
// forgets dead replicas that hold nothing any more.
func (n *Node) dropStale(ctx context.Context, st *state, targets []Target, now time.Time) {
	var hold time.Duration
	live := make(map[string]bool, len(targets))
	for _, t := range targets {
		hold = max(hold, t.Hold)
		if t.Backend.Limit() > 0 {
			live[bkey(t)] = true
		}
	}
	if n.stale == nil {
		n.stale = make(map[string]time.Time)
	}
	for k, shares := range st.shares {
		v, ok := shares[n.cfg.ID]
		if !ok || live[k] {
			delete(n.stale, k)
			continue
		}
		since, seen := n.stale[k]
		if !seen {
			n.stale[k] = now
			continue
		}
		if now.Sub(since) < hold || now.Before(n.started.Add(hold)) {
			continue
		}
		_, err := n.cli.Txn(ctx).Then(
			clientv3.OpDelete(n.shareKey(k, n.cfg.ID)),
			clientv3.OpPut(n.versionKey(k), "1"),
		).Commit()
		if err != nil {
			n.errs.Add(1)
			continue
		}
		n.log.Info("cluster: gave back the share of a backend no longer shared", "backend", k, "slots", v.n)
		delete(n.stale, k)
	}
	for id := range n.absent {
		holds := false
		for _, shares := range st.shares {
			if _, ok := shares[id]; ok {
				holds = true
			}
		}
		if !holds {
			delete(n.absent, id)
		}
	}
}

// forgetRemoved drops the entries of backends a reload removed.
func (n *Node) forgetRemoved(targets []Target) {
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[bkey(t)] = true
	}
	for k := range n.entries {
		if !keep[k] {
			delete(n.entries, k)
		}
	}
	n.smu.Lock()
	n.all = n.all[:0]
	for _, e := range n.entries {
		n.all = append(n.all, e)
	}
	n.smu.Unlock()
}

// reclaim deletes the share keys of t held by replicas whose lease has been
// gone for t.Hold.
func (n *Node) reclaim(ctx context.Context, st *state, t Target, now time.Time) {
	k := bkey(t)
	for id, v := range st.shares[k] {
		if st.members[id] || id == n.cfg.ID {
			continue
		}
		since, ok := n.absent[id]
		if !ok {
			n.absent[id] = now
			continue
		}
		if now.Sub(since) < t.Hold {
			continue
		}
		resp, err := n.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(n.memberKey(id)), "=", 0),
		).Then(
			clientv3.OpDelete(n.shareKey(bkey(t), id)),
			clientv3.OpPut(n.versionKey(bkey(t)), "1"),
		).Commit()
		if err != nil {
			n.errs.Add(1)
			continue
		}
		if resp.Succeeded {
			n.log.Info("cluster: reclaimed the share of a replica that left", "replica", id,
				"upstream", t.Upstream, "backend", t.Address, "slots", v.n)
			delete(st.shares[k], id)
		}
	}
}

// fair returns id's part of an even split of limit among members; the
// remainder goes to the lowest ids. When the limit is smaller than the
// number of members, the slots go to members in turn instead (epoch moves
// them on), so that under sustained load no replica is starved. (With at
// least one slot each, turns would only cost goodput: every move idles a
// slot for a round.)
func fair(limit int64, members []string, id string, epoch int64) int64 {
	m := int64(len(members))
	if m == 0 {
		return limit
	}
	r := int64(slices.Index(members, id))
	if r < 0 {
		r = m
		m++
	}
	f := limit / m
	if f > 0 {
		epoch = 0
	}
	if (r+epoch)%m < limit%m {
		f++
	}
	return f
}

// epoch numbers the turns of fair's remainder: one every ten rebalance
// intervals, at least a second (replicas agree on it up to clock skew,
// which only delays a turn).
func (n *Node) epoch(now time.Time) int64 {
	turn := max(10*n.cfg.RebalanceInterval, time.Second)
	return now.UnixNano() / int64(turn)
}

// balance decides e's share for this round and writes what changed.
func (n *Node) balance(ctx context.Context, st *state, e *entry, lease clientv3.LeaseID, now time.Time) {
	t := e.t
	k := bkey(t)
	if now.Before(e.frozen) {
		return
	}
	limit := t.Backend.Limit()
	mine := st.shares[k][n.cfg.ID]
	P := mine.n
	inflight := t.Backend.Inflight()
	local := e.local.Load()
	demand := t.Backend.Waiting() || (local > 0 && inflight >= local)
	// othersWant: another replica asks and is below its even part, so a
	// busy replica above its own part gives back down to it; othersAsk:
	// another replica asks at all, so an idle one gives back its idle slots.
	var sum int64
	othersWant, othersAsk := false, false
	for id, v := range st.shares[k] {
		sum += v.n
		if id != n.cfg.ID && st.members[id] && v.want {
			othersAsk = true
			if v.n < fair(limit, n.members, id, n.epoch(now)) {
				othersWant = true
			}
		}
	}
	// (A member without a key of this backend has not asked: it writes
	// one, marked as asking, once it has waiters.)
	myFair := fair(limit, n.members, n.cfg.ID, n.epoch(now))
	// What to admit on: what we hold, less what others should get.
	target := P
	switch {
	case othersWant && demand:
		target = min(target, myFair)
	case othersAsk && !demand:
		target = min(target, inflight)
	}
	if sum > limit && target > myFair { // the limit was lowered
		target = myFair
	}
	target = max(target, 0)
	n.setLocal(e, target)
	if target >= P {
		e.lowered = time.Time{}
	} else if e.lowered.IsZero() {
		e.lowered = now
	}
	// Give back in etcd what was lowered locally a round ago and is idle.
	if !e.lowered.IsZero() && now.Sub(e.lowered) >= n.cfg.RebalanceInterval {
		if give := max(target, inflight); give < P && n.write(ctx, e, lease, P, give, demand, 0, false) {
			sum -= P - give
			P = give
		}
		if P <= target {
			e.lowered = time.Time{}
		}
	}
	if !demand {
		if mine.want && P == mine.n {
			n.write(ctx, e, lease, P, P, false, 0, false)
		}
		return
	}
	// Grow into free room.
	want := limit
	if othersWant {
		want = myFair
	}
	free := limit - sum
	if add := min(free, want-P); add > 0 && target >= P && P == mine.n {
		if n.write(ctx, e, lease, P, P+add, true, st.versions[k], true) {
			n.setLocal(e, P+add)
		}
		return
	}
	if !mine.want && target < limit {
		n.write(ctx, e, lease, P, P, true, 0, false) // ask: the others shrink towards fair
	}
}

// write sets this replica's share of e's backend from old to s in etcd,
// while its lease is the current one. grow compares the version key first
// (the sum seen is still the sum), and every change of the value rewrites
// it.
func (n *Node) write(ctx context.Context, e *entry, lease clientv3.LeaseID, old, s int64, want bool, version int64, grow bool) bool {
	v := strconv.FormatInt(s, 10)
	if want {
		v += "+"
	}
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(n.memberKey(n.cfg.ID)), "=", lease)}
	if grow {
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(n.versionKey(bkey(e.t))), "=", version))
	}
	ops := []clientv3.Op{clientv3.OpPut(n.shareKey(bkey(e.t), n.cfg.ID), v)}
	if s != old || grow {
		ops = append(ops, clientv3.OpPut(n.versionKey(bkey(e.t)), "1"))
	}
	resp, err := n.cli.Txn(ctx).If(conds...).Then(ops...).Commit()
	if err != nil {
		n.errs.Add(1)
		return false
	}
	if resp.Succeeded && len(ops) > 1 {
		n.rebalances.Add(1)
	}
	return resp.Succeeded
}

// Status returns the cluster view for /status and /metrics. It never waits
// on etcd: while a rebalance round runs, it returns the view of the last
// one with the shares admission uses now.
func (n *Node) Status() *metrics.ClusterStatus {
	var v *view
	if n.mu.TryLock() {
		v = n.viewLocked()
		n.mu.Unlock()
		n.last.Store(v)
	} else if v = n.last.Load(); v == nil {
		return &metrics.ClusterStatus{Name: n.cfg.Name, ID: n.cfg.ID}
	}
	cs := v.cs
	cs.Shares = slices.Clone(v.cs.Shares)
	for i, e := range v.entries {
		cs.Shares[i].Share = max(e.local.Load(), 0)
	}
	cs.Registered = n.lease.Load() != 0
	cs.Safe = n.safe.Load()
	cs.Rebalances = n.rebalances.Load()
	cs.Errors = n.errs.Load()
	return &cs
}

// view is a Status with the entries its shares come from.
type view struct {
	cs      metrics.ClusterStatus
	entries []*entry
}

func (n *Node) viewLocked() *view {
	v := &view{cs: metrics.ClusterStatus{Name: n.cfg.Name, ID: n.cfg.ID, Members: slices.Clone(n.members)}}
	for _, e := range n.entries {
		v.entries = append(v.entries, e)
	}
	slices.SortFunc(v.entries, func(a, b *entry) int { return strings.Compare(bkey(a.t), bkey(b.t)) })
	for _, e := range v.entries {
		v.cs.Shares = append(v.cs.Shares, metrics.ClusterShare{
			Upstream: e.t.Upstream, Backend: e.t.Address, Limit: e.t.Backend.Limit(),
			Published: e.published, Replicas: maps.Clone(e.replicas),
		})
	}
	return v
}
