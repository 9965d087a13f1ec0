package upstream

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shardgate/shm"
)

// Across processes (docs/DESIGN.md, "Admission rules", rule 8). Slots are
// shared (counter); queues are not: each process holds its own
// waiters, and a slot cannot be handed directly to a waiter of another
// process. Instead each process publishes, per pool, the enqueue times of
// its oldest and newest waiter (shm.Slot.Publish). A process that frees a
// slot, or whose own queue is empty, wakes the process whose waiter comes
// next (FIFO: the oldest across processes; LIFO: the newest), which then
// takes the free slot by CAS like any other admission. A process keeps a
// slot for its own waiter unless another process's waiter should go first
// by more than crossTolerance; if it stood aside and the slot is still free
// after yieldGrace (the other process could not use it), it takes it after
// all: a slot never idles for longer than that while anyone waits.

const (
	// crossTolerance is how much older (FIFO) or newer (LIFO) another
	// process's next waiter must be than this process's for this one to
	// leave a freed slot to it.
	crossTolerance = 2 * time.Millisecond
	// yieldGrace is how long a slot left to another process may stay free
	// before this process takes it for its own waiter.
	yieldGrace = 5 * time.Millisecond
	// reapInterval is how often a process looks for dead processes whose
	// slots must be returned.
	reapInterval = 100 * time.Millisecond
)

// Shared is this process's membership in the shared slot segment of its
// instance: it makes the shared slots of backends and pools, and runs the
// loop that answers wake-ups from other processes and reclaims the slots of
// dead ones. Safe for concurrent use.
type Shared struct {
	proc *shm.Process

	// mu protects pools.
	mu    sync.Mutex
	pools []*Pool

	// yieldAt is when a pool of this process first left a slot to another
	// process since the loop last took such slots back (Unix ns; 0 = none).
	yieldAt atomic.Int64
	started atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

// NewShared returns the membership of proc. Call Start to serve it.
func NewShared(proc *shm.Process) *Shared {
	return &Shared{proc: proc, stop: make(chan struct{}), done: make(chan struct{})}
}

// BackendSlot returns the shared slot of backend address of upstream, for
// BackendConfig.Slot. hold is the upstream's response_timeout: how long the
// slots a dead process held on it are kept. share is the cluster share the
// entry starts with when this claims it: -1 (none), or 0 for a limited
// backend of a clustered instance, which admits nothing until the cluster
// gives it some; an entry in use keeps its share.
func (s *Shared) BackendSlot(upstream, address string, hold time.Duration, share int64) (*shm.Slot, error) {
	return s.proc.Slot(BackendKeyPrefix+upstream+"|"+address, hold, share)
}

// BackendKeyPrefix starts the key of every backend's slot entry:
// "b|UPSTREAM|ADDRESS".
const BackendKeyPrefix = "b|"

// ParseBackendKey returns the upstream and address of a backend's slot
// entry key.
func ParseBackendKey(key string) (upstream, address string, ok bool) {
	rest, ok := strings.CutPrefix(key, BackendKeyPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "|") // upstream names have no '|'
}

// PoolKey is the key of the slot entry of upstream's pool.
func PoolKey(upstream string) string { return "p|" + upstream }

// PoolShare returns the shared state of the pool of upstream, for
// PoolConfig.Share.
func (s *Shared) PoolShare(upstream string, hold time.Duration) (*PoolShare, error) {
	sl, err := s.proc.Slot(PoolKey(upstream), hold, noShare)
	if err != nil {
		return nil, err
	}
	return &PoolShare{s: s, slot: sl}, nil
}

// PoolShare is a pool's part of the shared segment: its in-flight and
// waiting words and its published waiters.
type PoolShare struct {
	s    *Shared
	slot *shm.Slot
	// force (protected by the pool's mu) makes the pool take free slots for
	// its own waiters without standing aside.
	force bool
}

// attach makes p count on sh's shared words; called by NewPool before p is
// used.
func (p *Pool) attach(sh *PoolShare) {
	if sh == nil {
		return
	}
	p.share = sh
	p.inflight.attach(sh.slot.Inflight(), sh.slot.Held())
	p.waiting.attach(sh.slot.Waiting(), sh.slot.MyWaiting())
	sh.s.mu.Lock()
	sh.s.pools = append(sh.s.pools, p)
	sh.s.mu.Unlock()
}

// publishLocked records the enqueue times of the pool's oldest and newest
// waiter for the other processes.
func (p *Pool) publishLocked() {
	if p.share == nil {
		return
	}
	var head, tail int64
	if p.q.len > 0 {
		head, tail = p.q.head.enqueued.UnixNano(), p.q.tail.enqueued.UnixNano()
	}
	p.share.slot.Publish(head, tail)
}

// othersWaiting reports whether another process counts a waiter for the
// pool: a process raises its counts before it publishes a waiter and
// lowers them before it unpublishes one, so without it Slot.Next, which
// reads every process's row, finds nobody.
func (sh *PoolShare) othersWaiting() bool {
	return sh.slot.Waiting().Load()-sh.slot.MyWaiting().Load() > 0
}

// yieldLocked reports whether a free slot should be left to another
// process, whose next waiter goes before this one's by more than
// crossTolerance.
func (p *Pool) yieldLocked() bool {
	sh := p.share
	if sh == nil || sh.force || p.q.len == 0 || !sh.othersWaiting() {
		return false
	}
	lifo := p.lifo.Load()
	proc, t := sh.slot.Next(lifo)
	if proc < 0 {
		return false
	}
	var yield bool
	if lifo {
		yield = t > p.q.tail.enqueued.UnixNano()+int64(crossTolerance)
	} else {
		yield = t < p.q.head.enqueued.UnixNano()-int64(crossTolerance)
	}
	if yield && sh.s.yieldAt.CompareAndSwap(0, time.Now().UnixNano()) {
		sh.s.proc.Wake(sh.s.proc.Index()) // the loop shortens its wait to yieldGrace
	}
	return yield
}

// othersQueuedLocked reports whether another process has a waiter queued
// for this pool: then a newcomer queues too instead of taking a slot freed
// for that waiter.
func (p *Pool) othersQueuedLocked() bool {
	if p.share == nil || !p.share.othersWaiting() {
		return false
	}
	proc, _ := p.share.slot.Next(false)
	return proc >= 0
}

// wakeRemoteLocked wakes the process whose waiter should get a slot of
// this pool next, if another process has one.
func (p *Pool) wakeRemoteLocked() {
	sh := p.share
	if sh == nil || !sh.othersWaiting() {
		return
	}
	if proc, _ := sh.slot.Next(p.lifo.Load()); proc >= 0 {
		sh.s.proc.Wake(proc)
	}
}

// Start serves the membership on a goroutine until Close: it hands slots freed in other
// processes to this process's waiters when woken, takes slots it left to
// another process that did not use them, and returns the slots of dead
// processes (shm.Process.Reap).
func (s *Shared) Start() {
	if s.started.CompareAndSwap(false, true) {
		go s.run()
	}
}

func (s *Shared) run() {
	defer close(s.done)
	seq := s.proc.WakeSeq()
	lastReap := time.Now()
	for {
		timeout := reapInterval
		if at := s.yieldAt.Load(); at != 0 {
			timeout = max(0, time.Duration(at+int64(yieldGrace)-time.Now().UnixNano()))
		}
		s.proc.Wait(seq, timeout)
		select {
		case <-s.stop:
			return
		default:
		}
		seq = s.proc.WakeSeq() // before looking: a wake from now on is seen
		force := false
		if at := s.yieldAt.Load(); at != 0 && time.Now().UnixNano() >= at+int64(yieldGrace) &&
			s.yieldAt.CompareAndSwap(at, 0) {
			force = true // what was left to others and is still free is ours
		}
		s.dispatchAll(force)
		if time.Since(lastReap) >= reapInterval {
			lastReap = time.Now()
			s.proc.Reap()
			s.dispatchAll(false) // returned slots go to waiters
		}
	}
}

func (s *Shared) dispatchAll(force bool) {
	s.mu.Lock()
	pools := s.pools
	s.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		p.share.force = force
		p.dispatchLocked()
		p.share.force = false
		p.mu.Unlock()
	}
}

// Close stops the goroutine Start began and leaves the segment (shm.Process.Leave): what this
// process still holds is returned after its hold, as if it had crashed.
func (s *Shared) Close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	if s.started.Load() {
		s.proc.Wake(s.proc.Index())
		<-s.done
	}
	s.proc.Leave()
}
