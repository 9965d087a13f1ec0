package shm

import (
	"bytes"
	"sync/atomic"
	"time"
)

// Entry is a slot entry seen from a process that counts nothing on it: the
// supervisor of `processes: N`, which divides the instance's backends in a
// cluster (issue 14) on behalf of its workers.
type Entry struct {
	seg *Segment
	j   int
	// Key is the entry's key, as given to Process.Slot.
	Key string
}

// Entries returns the entries whose key starts with prefix and that a live
// process uses now.
func (s *Segment) Entries(prefix string) []Entry {
	var out []Entry
	for j := range MaxSlots {
		if s.slotState(j).Load() != stateReady || !s.inUse(j) {
			continue
		}
		name := s.mem[slotOff(j)+nameOff : slotOff(j)+slotSize]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if bytes.HasPrefix(name, []byte(prefix)) {
			out = append(out, Entry{seg: s, j: j, Key: string(name)})
		}
	}
	return out
}

// inUse reports whether a live process flags entry j as used.
func (s *Segment) inUse(j int) bool {
	for i := range MaxProcs {
		if s.procState(i).Load() == stateReady && s.rowUsed(i, j).Load() != 0 {
			return true
		}
	}
	return false
}

// Lookup returns the entry of key, if one is ready.
func (s *Segment) Lookup(key string) (Entry, bool) {
	if j := s.find(hashKey(key)); j >= 0 {
		return Entry{seg: s, j: j, Key: key}, true
	}
	return Entry{}, false
}

// Inflight is the entry's in-flight word (Slot.Inflight).
func (e Entry) Inflight() *atomic.Int64 { return e.seg.slotInflight(e.j) }

// Waiting is the entry's waiting word (Slot.Waiting).
func (e Entry) Waiting() *atomic.Int64 { return e.seg.slotWaiting(e.j) }

// Share is the entry's cluster share word (Slot.Share).
func (e Entry) Share() *atomic.Int64 { return e.seg.slotShare(e.j) }

// Limit is the entry's limit word (Slot.Limit).
func (e Entry) Limit() *atomic.Int64 { return e.seg.slotLimit(e.j) }

// Hold is the longest hold the entry's users asked for.
func (e Entry) Hold() time.Duration { return time.Duration(e.seg.slotHold(e.j).Load()) }

// WakeAll wakes every live process's Wait, so that each hands the slots a
// raised share freed to its waiters.
func (s *Segment) WakeAll() {
	for i := range MaxProcs {
		if s.procState(i).Load() == stateReady {
			s.wake(i)
		}
	}
}
