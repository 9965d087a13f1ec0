package shm

import (
	"bytes"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reap looks for processes of the segment that died and returns what they
// held (invariant 3): their waiting counts at once, each held slot once its
// hold has passed since the death was noticed. Every live process calls it
// periodically; concurrent calls are safe, and each count is returned once.
// It returns the number of dead processes whose slots are still kept.
func (p *Process) Reap() int {
	s := p.seg
	pending := 0
	for i := range MaxProcs {
		if i == p.idx {
			continue
		}
		switch s.procState(i).Load() {
		case stateReady:
			if s.alive(s.procPid(i).Load(), s.procStart(i).Load()) {
				continue
			}
			if !s.procState(i).CompareAndSwap(stateReady, stateDying) {
				continue
			}
			s.procDied(i).Store(s.now())
			for j := range MaxSlots {
				if n := s.rowWaiting(i, j).Swap(0); n != 0 {
					s.slotWaiting(j).Add(-n)
				}
				s.rowHead(i, j).Store(0)
				s.rowTail(i, j).Store(0)
				s.rowUsed(i, j).Store(0)
			}
			s.procState(i).Store(stateDead)
			if !s.reclaim(i) {
				pending++
			}
		case stateDead:
			if !s.reclaim(i) {
				pending++
			}
		}
	}
	return pending
}

// reclaim returns the held slots of dead process i whose hold has passed,
// and frees its entry once it holds nothing. It reports whether the entry
// was freed.
func (s *Segment) reclaim(i int) bool {
	died := s.procDied(i).Load()
	now := s.now()
	left := false
	for j := range MaxSlots {
		held := s.rowHeld(i, j)
		n := held.Load()
		if n == 0 {
			continue
		}
		if now-died < s.slotHold(j).Load() {
			left = true
			continue
		}
		if held.CompareAndSwap(n, 0) {
			s.slotInflight(j).Add(-n)
		} else {
			left = true // another reaper got it; look again next time
		}
	}
	if left {
		return false
	}
	return s.procState(i).CompareAndSwap(stateDead, stateEmpty)
}

// ProcInfo is one live or dead process as the segment records it.
type ProcInfo struct {
	Index int
	Pid   int64
	Dead  bool  // died; its held slots are kept until their hold passes
	Held  int64 // slots it holds, over all entries
}

// Procs lists the processes in the segment.
func (s *Segment) Procs() []ProcInfo {
	var out []ProcInfo
	for i := range MaxProcs {
		st := s.procState(i).Load()
		if st != stateReady && st != stateDead {
			continue
		}
		pi := ProcInfo{Index: i, Pid: s.procPid(i).Load(), Dead: st == stateDead}
		for j := range MaxSlots {
			pi.Held += s.rowHeld(i, j).Load()
		}
		out = append(out, pi)
	}
	return out
}

// procAlive reports whether pid runs and is the process that joined (its
// start time matches, so a reused pid is not mistaken for it). A zombie
// counts as dead: it runs nothing.
func procAlive(pid, start int64) bool {
	b, err := os.ReadFile("/proc/" + strconv.FormatInt(pid, 10) + "/stat")
	if err != nil {
		return false
	}
	state, st, ok := parseStat(b)
	if !ok {
		return unix.Kill(int(pid), 0) == nil
	}
	return state != 'Z' && state != 'X' && (start == 0 || st == start)
}

// startTime returns the start time of pid in clock ticks since boot, or 0.
func startTime(pid int64) int64 {
	b, err := os.ReadFile("/proc/" + strconv.FormatInt(pid, 10) + "/stat")
	if err != nil {
		return 0
	}
	_, st, _ := parseStat(b)
	return st
}

// parseStat returns the state (field 3) and start time (field 22) of a
// /proc/PID/stat line. The command (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStat(b []byte) (state byte, start int64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(b[i+1:])
	if len(fields) < 20 {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(string(fields[19]), 10, 64)
	if err != nil || len(fields[0]) != 1 {
		return 0, 0, false
	}
	return fields[0][0], start, true
}

const (
	futexWaitOp = 0 // FUTEX_WAIT, not _PRIVATE: the word is shared between processes
	futexWakeOp = 1 // FUTEX_WAKE
)

func futexWait(w *atomic.Uint32, val uint32, timeout time.Duration) {
	ts := unix.NsecToTimespec(int64(timeout))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

func futexWake(w *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, 1<<30, 0, 0, 0)
}
