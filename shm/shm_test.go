package shm

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// twoMappings returns a new segment and a second, independent mapping of
// it, as another process would have after inheriting the file.
func twoMappings(t *testing.T) (*Segment, *Segment) {
	t.Helper()
	a, err := Create()
	if err != nil {
		t.Fatalf("Create() = %v", err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := Open(a.File())
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

func join(t *testing.T, s *Segment, pid int64) *Process {
	t.Helper()
	p, err := s.join(pid, 1)
	if err != nil {
		t.Fatalf("join(%d) = %v", pid, err)
	}
	return p
}

func slot(t *testing.T, p *Process, key string, hold time.Duration) *Slot {
	t.Helper()
	sl, err := p.Slot(key, hold, -1)
	if err != nil {
		t.Fatalf("Slot(%q) = %v", key, err)
	}
	return sl
}

// take is admission as upstream does it: CAS on the shared word, then
// record the holding.
func take(sl *Slot, limit int64) bool {
	for {
		n := sl.Inflight().Load()
		if n >= limit {
			return false
		}
		if sl.Inflight().CompareAndSwap(n, n+1) {
			sl.Held().Add(1)
			return true
		}
	}
}

func give(sl *Slot) {
	sl.Held().Add(-1)
	sl.Inflight().Add(-1)
}

func TestTwoMappingsShareOneSlot(t *testing.T) {
	a, b := twoMappings(t)
	pa, pb := join(t, a, 100), join(t, b, 200)
	sa := slot(t, pa, "b|app|127.0.0.1:8001", time.Second)
	sb := slot(t, pb, "b|app|127.0.0.1:8001", time.Second)
	if other := slot(t, pb, "b|app|127.0.0.1:8002", time.Second); other.j == sb.j {
		t.Fatalf("two keys got the same entry %d", sb.j)
	}
	const limit = 4
	// Both mappings fill the one limit together, exactly.
	for _, sl := range []*Slot{sa, sb, sa, sb} {
		if !take(sl, limit) {
			t.Fatalf("take() refused with %d of %d in flight", sa.Inflight().Load(), limit)
		}
	}
	if take(sa, limit) || take(sb, limit) {
		t.Fatalf("take() beyond the limit succeeded: %d in flight", sa.Inflight().Load())
	}
	for _, sl := range []*Slot{sa, sb, sa, sb} {
		give(sl)
	}
	var running, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		sl := sa
		if i%2 == 1 {
			sl = sb
		}
		wg.Go(func() {
			for range 5000 {
				if !take(sl, limit) {
					continue
				}
				n := running.Add(1)
				for {
					m := peak.Load()
					if n <= m || peak.CompareAndSwap(m, n) {
						break
					}
				}
				running.Add(-1)
				give(sl)
			}
		})
	}
	wg.Wait()
	// Whether the goroutines overlap is the scheduler's business (on two
	// busy cores they may not): only the upper bound is asserted here.
	if p := peak.Load(); p > limit {
		t.Errorf("peak concurrency = %d, over the limit %d", p, limit)
	}
	if n := sa.Inflight().Load(); n != 0 {
		t.Errorf("in-flight after the run = %d, want 0", n)
	}
	if ha, hb := sa.Held().Load(), sb.Held().Load(); ha != 0 || hb != 0 {
		t.Errorf("held after the run = %d, %d; want 0, 0", ha, hb)
	}
}

func TestDeadProcessSlotsReturnAfterHold(t *testing.T) {
	a, b := twoMappings(t)
	var now atomic.Int64
	now.Store(1_000_000_000)
	dead := map[int64]bool{}
	var mu sync.Mutex
	for _, s := range []*Segment{a, b} {
		s.now = now.Load
		s.alive = func(pid, _ int64) bool { mu.Lock(); defer mu.Unlock(); return !dead[pid] }
	}
	pa, pb := join(t, a, 100), join(t, b, 200)
	sa := slot(t, pa, "b|app|x", 3*time.Second)
	sb := slot(t, pb, "b|app|x", time.Second) // the longer hold of the two applies
	for range 3 {
		if !take(sb, 4) {
			t.Fatal("take() = false with free slots")
		}
	}
	sb.Waiting().Add(2)
	sb.MyWaiting().Add(2)
	sb.Publish(5, 6)

	mu.Lock()
	dead[200] = true
	mu.Unlock()
	if n := pa.Reap(); n != 1 {
		t.Errorf("Reap() = %d pending, want 1", n)
	}
	if n := sa.Waiting().Load(); n != 0 {
		t.Errorf("waiting after the death = %d, want 0 at once (its waiters died with it)", n)
	}
	if proc, _ := sa.Next(false); proc >= 0 {
		t.Errorf("Next() = process %d, want none: the dead process's waiters are gone", proc)
	}
	if !take(sa, 4) || take(sa, 4) {
		t.Fatalf("in-flight = %d: want the dead process's 3 slots kept during the hold, one left", sa.Inflight().Load())
	}
	now.Add(int64(2 * time.Second))
	pa.Reap()
	if n := sa.Inflight().Load(); n != 4 {
		t.Fatalf("in-flight = %d 2s after the death, want 4 (hold is 3s)", n)
	}
	now.Add(int64(time.Second + time.Nanosecond))
	if n := pa.Reap(); n != 0 {
		t.Errorf("Reap() = %d pending after the hold, want 0", n)
	}
	if n := sa.Inflight().Load(); n != 1 {
		t.Fatalf("in-flight = %d after the hold, want 1 (only this process's)", n)
	}
	procs := a.Procs()
	if len(procs) != 1 || procs[0].Pid != 100 || procs[0].Held != 1 {
		t.Errorf("Procs() = %+v, want only pid 100 holding 1", procs)
	}
	if _, err := b.join(300, 1); err != nil {
		t.Errorf("join() after the reclaim = %v, want the entry free again", err)
	}
}

func TestLeaveWithSlotsHeldActsLikeACrash(t *testing.T) {
	a, b := twoMappings(t)
	var now atomic.Int64
	a.now, b.now = now.Load, now.Load
	pa, pb := join(t, a, 100), join(t, b, 200)
	sa, sb := slot(t, pa, "p|app", time.Second), slot(t, pb, "p|app", time.Second)
	take(sb, 2)
	pb.Leave()
	pa.Reap()
	if n := sa.Inflight().Load(); n != 1 {
		t.Fatalf("in-flight = %d right after Leave, want 1 (held until the hold passes)", n)
	}
	now.Add(int64(time.Second))
	pa.Reap()
	if n := sa.Inflight().Load(); n != 0 {
		t.Fatalf("in-flight = %d after the hold, want 0", n)
	}
}

func TestNextPicksOldestOrNewest(t *testing.T) {
	a, b := twoMappings(t)
	pa, pb, pc := join(t, a, 1), join(t, b, 2), join(t, b, 3)
	sa, sb, sc := slot(t, pa, "p|app", 0), slot(t, pb, "p|app", 0), slot(t, pc, "p|app", 0)
	sb.Publish(10, 50)
	sc.Publish(20, 40)
	sa.Publish(1, 99) // its own waiters do not count
	if proc, at := sa.Next(false); proc != pb.idx || at != 10 {
		t.Errorf("Next(oldest) = %d at %d, want %d at 10", proc, at, pb.idx)
	}
	if proc, at := sa.Next(true); proc != pb.idx || at != 50 {
		t.Errorf("Next(newest) = %d at %d, want %d at 50", proc, at, pb.idx)
	}
	sb.Publish(0, 0)
	if proc, _ := sa.Next(false); proc != pc.idx {
		t.Errorf("Next(oldest) = %d, want %d once the other has no waiter", proc, pc.idx)
	}
}

func TestWakeAcrossMappings(t *testing.T) {
	a, b := twoMappings(t)
	pa, pb := join(t, a, 1), join(t, b, 2)
	seq := pa.WakeSeq()
	woke := make(chan bool, 1)
	go func() { woke <- pa.Wait(seq, 10*time.Second) }()
	time.Sleep(10 * time.Millisecond) // let it block in futex_wait; a wake before is seen too
	pb.Wake(pa.Index())
	select {
	case ok := <-woke:
		if !ok {
			t.Fatal("Wait() = false, want woken")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait() not woken by another mapping's Wake")
	}
	if pa.Wait(pa.WakeSeq(), 5*time.Millisecond) {
		t.Error("Wait() = true with no Wake, want a timeout")
	}
}

func TestSegmentFull(t *testing.T) {
	a, _ := twoMappings(t)
	p := join(t, a, 1)
	for i := range MaxSlots {
		slot(t, p, "k"+string(rune('A'+i%26))+string(rune(i)), 0)
	}
	if _, err := p.Slot("one more", 0, -1); !errors.Is(err, ErrFull) {
		t.Errorf("Slot() on a full table = %v, want ErrFull", err)
	}
	for range MaxProcs - 1 {
		join(t, a, 2)
	}
	if _, err := a.join(3, 1); !errors.Is(err, ErrFull) {
		t.Errorf("join() on a full table = %v, want ErrFull", err)
	}
}

func TestOpenRejectsOtherFiles(t *testing.T) {
	f, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.word(0).Store(1)
	if _, err := Open(f.File()); !errors.Is(err, ErrBadSegment) {
		t.Errorf("Open() of a file without the magic = %v, want ErrBadSegment", err)
	}
}

func TestParseStat(t *testing.T) {
	line := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10\n"
	state, start, ok := parseStat([]byte(line))
	if !ok || state != 'S' || start != 987654 {
		t.Errorf("parseStat() = %c, %d, %v; want S, 987654, true", state, start, ok)
	}
	if !procAlive(int64(os.Getpid()), startTime(int64(os.Getpid()))) {
		t.Error("procAlive(self) = false")
	}
}

func TestUnusedSlotEntryIsReused(t *testing.T) {
	a, b := twoMappings(t)
	pa, pb := join(t, a, 1), join(t, b, 2)
	x := slot(t, pa, "b|app|x", 0)
	take(x, 1)
	for i := range MaxSlots - 1 {
		slot(t, pb, fmt.Sprintf("b|app|%d", i), 0)
	}
	if _, err := pb.Slot("b|app|new", 0, -1); !errors.Is(err, ErrFull) {
		t.Fatalf("Slot() with every entry in use = %v, want ErrFull", err)
	}
	if again := slot(t, pb, "b|app|x", 0); again.j != x.j {
		t.Errorf("Slot(x) from another process = entry %d, want the same entry %d", again.j, x.j)
	}
	pb.Leave() // pb no longer uses its entries: they can be reused, x cannot (pa holds it)
	pc := join(t, b, 3)
	for i := range MaxSlots - 1 {
		if sl := slot(t, pc, fmt.Sprintf("b|other|%d", i), 0); sl.j == x.j {
			t.Fatalf("entry %d of x reused while a process holds a slot on it", x.j)
		}
	}
	if _, err := pc.Slot("b|one|more", 0, -1); !errors.Is(err, ErrFull) {
		t.Fatalf("Slot() = %v, want ErrFull while x is in use", err)
	}
	give(x)
	pa.Leave()
	if sl := slot(t, pc, "b|one|more", 0); sl.j != x.j || sl.Inflight().Load() != 0 {
		t.Errorf("Slot() after x was dropped = entry %d (in-flight %d), want x's entry %d, empty",
			sl.j, sl.Inflight().Load(), x.j)
	}
}

// Regression: a removed backend kept its entry in use by its process until
// the process exited, so a gateway whose DNS-discovered backends came and
// went filled the table and could not apply the next set.
func TestDroppedSlotEntryIsReused(t *testing.T) {
	a, _ := twoMappings(t)
	p := join(t, a, 1)
	held := slot(t, p, "b|app|held", 0)
	take(held, 1)
	held.Drop() // removed while a request still runs on it
	for i := range 3 * MaxSlots {
		sl := slot(t, p, fmt.Sprintf("b|app|10.0.0.%d:80", i), 0)
		if sl.j == held.j {
			t.Fatalf("entry %d reused while a request holds a slot on it", held.j)
		}
		sl.Drop()
	}
	give(held)
	for i := range MaxSlots {
		slot(t, p, fmt.Sprintf("b|next|%d", i), 0) // every entry, held's included, is free again
	}
}
