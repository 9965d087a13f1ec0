package upstream

// The cluster share (issue 14): when several replicas front the same
// backend, each may run at most its share of the backend's limit, agreed
// through etcd (package cluster). The share caps the limit admission reads
// and nothing else: a share lowered below in-flight behaves exactly like a
// lowered limit (rule 1), a raised share hands its new slots to waiters at
// once. Admission never waits on etcd.

// noShare is the share of a backend that no cluster caps.
const noShare = -1

// effLimit returns the limit admission enforces on b and whether there is
// one: the configured limit, capped by the cluster share when one is set.
// A share of 0 is a limit of 0 slots, not "unlimited".
func (b *Backend) effLimit() (int64, bool) {
	l := b.limit.Load()
	if s := b.share.Load().Load(); s >= 0 && (l == 0 || s < l) {
		return s, true
	}
	return l, l != 0
}

// full reports whether n requests in flight leave no slot on b.
func (b *Backend) full(n int64) bool {
	l, ok := b.effLimit()
	return ok && n >= l
}

// fits reports whether a slot held among n may pass to another request on
// b without exceeding its limit (which a reload or a share may have
// lowered).
func (b *Backend) fits(n int64) bool {
	l, ok := b.effLimit()
	return !ok || n <= l
}

// Share returns the cluster share of b, or -1 when no cluster caps it.
func (b *Backend) Share() int64 { return b.share.Load().Load() }

// SetShare caps b's limit at s slots (s >= 0), or lifts the cap (s < 0).
// A raised share hands its new slots to waiters at once.
func (b *Backend) SetShare(s int64) {
	if s < 0 {
		s = noShare
	}
	old := b.share.Load().Swap(s)
	if old == s || (old >= 0 && s >= 0 && s < old) {
		return
	}
	b.rot.mu.Lock()
	p := b.rot.pool
	b.rot.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		p.dispatchLocked()
		p.mu.Unlock()
	}
}

// Waiting reports whether requests wait for a slot in the pool b serves.
func (b *Backend) Waiting() bool {
	b.rot.mu.Lock()
	p := b.rot.pool
	b.rot.mu.Unlock()
	return p != nil && p.waiting.Load() > 0
}
