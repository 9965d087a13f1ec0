// Package shm is the shared slot segment of one shardgate instance: the
// in-flight and waiting counts of every backend and pool, kept in a memory
// segment (memfd_create + mmap) that every process of the instance maps —
// the workers of `processes: N` and, during a binary upgrade, the old and
// the new binary. Admission takes a slot with a CAS on the shared word, so a
// limit holds across all of them exactly as it does across goroutines.
//
// Layout (all words 8-byte aligned, native endian, accessed only atomically):
//
//	header   one page: magic, version, table sizes
//	procs    MaxProcs entries of 64 bytes: state, pid, start time, when it
//	         died, its wake-up word (a futex)
//	slots    MaxSlots entries of 512 bytes: state, key hash, in-flight,
//	         waiting, hold (the longest response_timeout of its users), the
//	         cluster share (-1: none; issue 14), the limit its users
//	         configured, name
//	rows     MaxProcs × MaxSlots rows of 40 bytes: what one process holds of
//	         one slot (in-flight, waiting), the enqueue times (Unix ns) of
//	         its oldest and newest queued waiter on it, and whether it uses
//	         the slot at all
//
// Invariants:
//
//  1. A slot's in-flight word is the sum over processes of their rows'
//     held words, plus at most one per process caught between its two
//     atomic operations (the process takes the slot first and records it
//     second, and un-records first and frees second, so a process killed in
//     between leaks a slot rather than over-admitting). The same holds for
//     the waiting word.
//  2. Slot entries are claimed under the claim lock (a header word; taken
//     over from an owner that died), so one key has one entry. An entry is
//     reused for another key only when no process uses it (each process
//     flags the entries it asked for until it leaves or dies) and nothing
//     is held or waiting on it, so a *Slot stays valid while its process
//     lives. A process clears its flag of a backend a reload or DNS
//     discovery removed (Slot.Drop), so backends coming and going do not
//     fill the table; what it still holds there keeps the entry.
//  3. A process that dies (its pid gone, or reused by another process) is
//     marked dead by whichever process notices first (Reap). Its waiting
//     counts are returned at once: its queued requests died with it. Its
//     held slots are returned only once the slot's hold (the upstream's
//     response_timeout) has passed since it was found dead: until then the
//     backend may still be running the requests it sent.
//  4. A process's wake word is bumped and FUTEX_WAKEd by another process
//     that freed a slot while this one published waiters; the owner waits
//     on it (Process.Wait) and then hands free slots to its waiters.
//
// A Segment (a mapping) is safe for concurrent use; so are Process and Slot.
package shm

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// MaxProcs is how many processes can map one segment at once (workers,
	// plus the processes of an upgrade in progress, plus dead ones whose
	// slots are not yet returned).
	MaxProcs = 32
	// MaxSlots is how many distinct backends and pools (by upstream name and
	// address) one instance can count over its lifetime.
	MaxSlots = 512

	magic   = 0x5348415244534c54 // "SHARDSLT"
	version = 2

	headerSize = 4096
	procSize   = 64
	slotSize   = 512
	rowSize    = 40
	nameOff    = 7 * 8
	// MaxKey is the longest key an entry keeps whole (Entries reads it
	// back); config bounds upstream names and addresses to fit.
	MaxKey = slotSize - nameOff

	claimLockOff = 32 // in the header

	procsOff = headerSize
	slotsOff = procsOff + MaxProcs*procSize
	rowsOff  = slotsOff + MaxSlots*slotSize
	// Size is the length of a segment in bytes.
	Size = rowsOff + MaxProcs*MaxSlots*rowSize
)

// entry states, of procs and slots alike.
const (
	stateEmpty    = 0
	stateClaiming = 1
	stateReady    = 2 // slot: usable; proc: alive
	stateDying    = 3 // proc: being marked dead
	stateDead     = 4 // proc: dead, slots not yet all returned
)

var (
	// ErrFull is returned when the segment has no free process entry or no
	// free slot entry.
	ErrFull = errors.New("shm: segment full")
	// ErrBadSegment is returned by Open for a file that is not a segment of
	// this version.
	ErrBadSegment = errors.New("shm: not a shardgate slot segment")
)

// Segment is one mapping of a shared slot segment.
type Segment struct {
	f   *os.File
	mem []byte

	// now returns wall-clock Unix nanoseconds; a seam for tests.
	now func() int64
	// alive reports whether the process with pid and start time is running;
	// a seam for tests, which join one segment as several fake processes.
	alive func(pid, start int64) bool
}

// Create makes a new, empty segment in anonymous shared memory.
func Create() (*Segment, error) {
	fd, err := unix.MemfdCreate("shardgate-slots", 0) // inheritable: no MFD_CLOEXEC needed, exec.Cmd dups it
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "shardgate-slots")
	if err := f.Truncate(Size); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: sizing the segment: %w", err)
	}
	s, err := mapFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.word(16).Store(MaxProcs)
	s.word(24).Store(MaxSlots)
	s.word(8).Store(version)
	s.word(0).Store(magic)
	return s, nil
}

// Open maps a segment another process created and handed down (f is
// dup'ed; the caller keeps f).
func Open(f *os.File) (*Segment, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shm: %w", err)
	}
	if fi.Size() != Size {
		return nil, fmt.Errorf("%w: size %d, want %d", ErrBadSegment, fi.Size(), Size)
	}
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("shm: dup: %w", err)
	}
	unix.CloseOnExec(fd)
	own := os.NewFile(uintptr(fd), f.Name())
	s, err := mapFile(own)
	if err != nil {
		own.Close()
		return nil, err
	}
	if s.word(0).Load() != magic || s.word(8).Load() != version ||
		s.word(16).Load() != MaxProcs || s.word(24).Load() != MaxSlots {
		s.Close()
		return nil, ErrBadSegment
	}
	return s, nil
}

func mapFile(f *os.File) (*Segment, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("shm: mmap: %w", err)
	}
	return &Segment{f: f, mem: mem, now: func() int64 { return time.Now().UnixNano() }, alive: procAlive}, nil
}

// File returns the segment's file, to hand to a child process. It stays
// owned by the Segment.
func (s *Segment) File() *os.File { return s.f }

// Close unmaps the segment and closes its file. Slots and processes of this
// mapping must not be used after.
func (s *Segment) Close() error {
	err := unix.Munmap(s.mem)
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// word returns the 8-byte word at byte offset off.
func (s *Segment) word(off int) *atomic.Int64 {
	return (*atomic.Int64)(unsafe.Pointer(&s.mem[off]))
}

func procOff(i int) int                          { return procsOff + i*procSize }
func slotOff(j int) int                          { return slotsOff + j*slotSize }
func rowOff(i, j int) int                        { return rowsOff + (i*MaxSlots+j)*rowSize }
func (s *Segment) procState(i int) *atomic.Int64 { return s.word(procOff(i)) }
func (s *Segment) slotState(j int) *atomic.Int64 { return s.word(slotOff(j)) }

// proc fields
func (s *Segment) procPid(i int) *atomic.Int64   { return s.word(procOff(i) + 8) }
func (s *Segment) procStart(i int) *atomic.Int64 { return s.word(procOff(i) + 16) }
func (s *Segment) procDied(i int) *atomic.Int64  { return s.word(procOff(i) + 24) }
func (s *Segment) procWake(i int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&s.mem[procOff(i)+32]))
}

// slot fields
func (s *Segment) slotHash(j int) *atomic.Int64     { return s.word(slotOff(j) + 8) }
func (s *Segment) slotInflight(j int) *atomic.Int64 { return s.word(slotOff(j) + 16) }
func (s *Segment) slotWaiting(j int) *atomic.Int64  { return s.word(slotOff(j) + 24) }
func (s *Segment) slotHold(j int) *atomic.Int64     { return s.word(slotOff(j) + 32) }
func (s *Segment) slotShare(j int) *atomic.Int64    { return s.word(slotOff(j) + 40) }
func (s *Segment) slotLimit(j int) *atomic.Int64    { return s.word(slotOff(j) + 48) }

// row fields
func (s *Segment) rowHeld(i, j int) *atomic.Int64    { return s.word(rowOff(i, j)) }
func (s *Segment) rowWaiting(i, j int) *atomic.Int64 { return s.word(rowOff(i, j) + 8) }
func (s *Segment) rowHead(i, j int) *atomic.Int64    { return s.word(rowOff(i, j) + 16) }
func (s *Segment) rowTail(i, j int) *atomic.Int64    { return s.word(rowOff(i, j) + 24) }
func (s *Segment) rowUsed(i, j int) *atomic.Int64    { return s.word(rowOff(i, j) + 32) }

// Process is this process's entry in a segment.
type Process struct {
	seg *Segment
	idx int
}

// Join registers the calling process in the segment.
func (s *Segment) Join() (*Process, error) {
	pid := int64(os.Getpid())
	return s.join(pid, startTime(pid))
}

func (s *Segment) join(pid, start int64) (*Process, error) {
	for i := range MaxProcs {
		st := s.procState(i)
		if !st.CompareAndSwap(stateEmpty, stateClaiming) {
			continue
		}
		for j := range MaxSlots { // a previous user of the entry left them zero
			s.rowHead(i, j).Store(0)
			s.rowTail(i, j).Store(0)
			s.rowUsed(i, j).Store(0)
		}
		s.procPid(i).Store(pid)
		s.procStart(i).Store(start)
		s.procDied(i).Store(0)
		st.Store(stateReady)
		return &Process{seg: s, idx: i}, nil
	}
	return nil, fmt.Errorf("%w: %d processes", ErrFull, MaxProcs)
}

// Index returns the process's entry number in the segment.
func (p *Process) Index() int { return p.idx }

// Leave ends the process's membership: once it holds nothing its entry is
// free at once; otherwise (a drain that timed out) it is marked dead, and
// what it still holds is returned after the hold time, like a crash.
func (p *Process) Leave() {
	s := p.seg
	for j := range MaxSlots {
		if n := s.rowWaiting(p.idx, j).Swap(0); n != 0 {
			s.slotWaiting(j).Add(-n)
		}
		s.rowHead(p.idx, j).Store(0)
		s.rowTail(p.idx, j).Store(0)
		s.rowUsed(p.idx, j).Store(0)
	}
	if !s.procState(p.idx).CompareAndSwap(stateReady, stateDying) {
		return
	}
	s.procDied(p.idx).Store(s.now())
	s.procState(p.idx).Store(stateDead)
	s.reclaim(p.idx)
}

// Slot returns the entry for key (for example "b|app|127.0.0.1:8001"),
// claiming one if no process uses key yet: an empty entry, or one that no
// process references or holds anything of any more (a backend every live
// process has dropped). hold is how long the slots of a dead process are
// kept before they are returned; the entry keeps the longest hold any user
// asked for. share is a new entry's cluster share (-1: none, 0: nothing
// until a cluster gives it some); an entry in use keeps its own. Finding and
// claiming happen under the segment's claim lock, so two processes asking
// for a new key at once get the same entry.
func (p *Process) Slot(key string, hold time.Duration, share int64) (*Slot, error) {
	if len(key) > MaxKey {
		return nil, fmt.Errorf("shm: key of %d bytes, more than %d", len(key), MaxKey)
	}
	s := p.seg
	h := hashKey(key)
	p.lockClaims()
	defer p.unlockClaims()
	j := s.find(h)
	if j < 0 {
		if j = s.claimable(); j < 0 {
			return nil, fmt.Errorf("%w: %d slots", ErrFull, MaxSlots)
		}
		s.slotState(j).Store(stateClaiming)
		s.slotHash(j).Store(h)
		s.slotHold(j).Store(0)
		s.slotShare(j).Store(share)
		s.slotLimit(j).Store(0)
		name := s.mem[slotOff(j)+nameOff : slotOff(j)+slotSize]
		clear(name)
		copy(name, key)
		s.slotState(j).Store(stateReady)
	}
	s.rowUsed(p.idx, j).Store(1)
	for {
		old := s.slotHold(j).Load()
		if int64(hold) <= old || s.slotHold(j).CompareAndSwap(old, int64(hold)) {
			break
		}
	}
	return &Slot{p: p, j: j}, nil
}

// claimable returns an empty entry, else one nobody uses, or -1. The
// caller holds the claim lock.
func (s *Segment) claimable() int {
	for j := range MaxSlots {
		if s.slotState(j).Load() == stateEmpty {
			return j
		}
	}
	for j := range MaxSlots {
		if s.slotInflight(j).Load() != 0 || s.slotWaiting(j).Load() != 0 {
			continue
		}
		used := false
		for i := range MaxProcs {
			if s.rowUsed(i, j).Load() != 0 || s.rowHeld(i, j).Load() != 0 || s.rowWaiting(i, j).Load() != 0 {
				used = true
				break
			}
		}
		if !used {
			return j
		}
	}
	return -1
}

// lockClaims takes the segment's claim lock (a word holding the owner's
// entry number + 1), taking it over from an owner that died.
func (p *Process) lockClaims() {
	s := p.seg
	w := s.word(claimLockOff)
	for {
		if w.CompareAndSwap(0, int64(p.idx+1)) {
			return
		}
		if o := w.Load(); o > 0 && s.procState(int(o-1)).Load() == stateReady &&
			!s.alive(s.procPid(int(o-1)).Load(), s.procStart(int(o-1)).Load()) {
			w.CompareAndSwap(o, 0)
		}
		time.Sleep(10 * time.Microsecond) // claims are rare: at config load
	}
}

func (p *Process) unlockClaims() { p.seg.word(claimLockOff).Store(0) }

func hashKey(key string) int64 {
	f := fnv.New64a()
	f.Write([]byte(key))
	h := int64(f.Sum64())
	if h == 0 {
		h = 1
	}
	return h
}

// Slot is one backend's or pool's counts, seen from one process.
type Slot struct {
	p *Process
	j int
}

// Drop records that this process no longer uses the slot (a reload or DNS
// discovery removed its backend). Once no process uses it or holds or
// awaits anything of it, its entry may be claimed for another key; what
// this process still holds is released through sl as usual. Without Drop a
// process that sees backends come and go would fill the table.
func (sl *Slot) Drop() { sl.p.seg.rowUsed(sl.p.idx, sl.j).Store(0) }

// Share is the word of the slot's cluster share: the slots the instance may
// run on the backend, which caps its limit; -1 when no cluster caps it.
func (sl *Slot) Share() *atomic.Int64 { return sl.p.seg.slotShare(sl.j) }

// Limit is the word where the slot's users publish the backend's
// configured limit (0: unlimited), for the process that divides it in a
// cluster (Entries).
func (sl *Slot) Limit() *atomic.Int64 { return sl.p.seg.slotLimit(sl.j) }

// Inflight is the word counting the slot's requests in flight across all
// processes. Admission CASes it.
func (sl *Slot) Inflight() *atomic.Int64 { return sl.p.seg.slotInflight(sl.j) }

// Held is the word counting what this process holds of Inflight. It is
// raised after a slot is taken and lowered before it is freed.
func (sl *Slot) Held() *atomic.Int64 { return sl.p.seg.rowHeld(sl.p.idx, sl.j) }

// Waiting is the word counting the requests queued (or about to queue) for
// the slot across all processes.
func (sl *Slot) Waiting() *atomic.Int64 { return sl.p.seg.slotWaiting(sl.j) }

// MyWaiting is this process's share of Waiting.
func (sl *Slot) MyWaiting() *atomic.Int64 { return sl.p.seg.rowWaiting(sl.p.idx, sl.j) }

// Publish records the enqueue times (Unix ns; 0 = nobody) of this process's
// oldest and newest waiter for the slot, which other processes read to
// decide who gets a freed slot.
func (sl *Slot) Publish(head, tail int64) {
	s := sl.p.seg
	s.rowHead(sl.p.idx, sl.j).Store(head)
	s.rowTail(sl.p.idx, sl.j).Store(tail)
}

// Next returns the other live process whose waiter should get a freed slot
// next — with newest false the one with the oldest waiter (and its enqueue
// time), with newest true the one with the newest — or -1 when no other
// process has a waiter.
func (sl *Slot) Next(newest bool) (proc int, enqueued int64) {
	s := sl.p.seg
	proc = -1
	for i := range MaxProcs {
		if i == sl.p.idx || s.procState(i).Load() != stateReady {
			continue
		}
		var t int64
		if newest {
			t = s.rowTail(i, sl.j).Load()
		} else {
			t = s.rowHead(i, sl.j).Load()
		}
		if t == 0 {
			continue
		}
		if proc < 0 || (!newest && t < enqueued) || (newest && t > enqueued) {
			proc, enqueued = i, t
		}
	}
	return proc, enqueued
}

// find returns the ready entry with key hash h, or -1.
func (s *Segment) find(h int64) int {
	for j := range MaxSlots {
		if s.slotState(j).Load() == stateReady && s.slotHash(j).Load() == h {
			return j
		}
	}
	return -1
}

// Wake wakes process proc's Wait.
func (p *Process) Wake(proc int) { p.seg.wake(proc) }

func (s *Segment) wake(proc int) {
	w := s.procWake(proc)
	w.Add(1)
	futexWake(w)
}

// Wait blocks until another process calls Wake for this one, or timeout
// passes. It reports whether it was woken. seq is the value WakeSeq
// returned before the caller last looked at the state it waits on, so a
// wake in between is not lost.
func (p *Process) Wait(seq uint32, timeout time.Duration) bool {
	w := p.seg.procWake(p.idx)
	if w.Load() != seq {
		return true
	}
	futexWait(w, seq, timeout)
	return w.Load() != seq
}

// WakeSeq returns the current value of this process's wake word.
func (p *Process) WakeSeq() uint32 { return p.seg.procWake(p.idx).Load() }
