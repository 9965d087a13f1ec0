package shm

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEntriesShowWhatLiveProcessesUse(t *testing.T) {
	a, b := twoMappings(t)
	pa := join(t, a, 1)
	x, err := pa.Slot("b|app|10.0.0.1:80", 2*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pa.Slot("p|app", time.Second, -1); err != nil {
		t.Fatal(err)
	}
	y := slot(t, pa, "b|app|10.0.0.2:80", time.Second)
	x.Limit().Store(4)
	take(x, 4)

	keys := func() []string {
		var out []string
		for _, e := range b.Entries("b|") { // the other mapping sees the same
			out = append(out, e.Key)
		}
		slices.Sort(out)
		return out
	}
	if got := keys(); !slices.Equal(got, []string{"b|app|10.0.0.1:80", "b|app|10.0.0.2:80"}) {
		t.Fatalf("Entries(b|) = %q, want both backends and not the pool", got)
	}
	e := b.Entries("b|app|10.0.0.1")[0]
	if e.Limit().Load() != 4 || e.Inflight().Load() != 1 || e.Share().Load() != 0 || e.Hold() != 2*time.Second {
		t.Fatalf("entry limit %d, in-flight %d, share %d, hold %v; want 4, 1, 0 (as claimed), 2s",
			e.Limit().Load(), e.Inflight().Load(), e.Share().Load(), e.Hold())
	}
	if y.Share().Load() != -1 {
		t.Fatalf("share of an entry claimed with -1 = %d", y.Share().Load())
	}
	e.Share().Store(3) // the supervisor's node
	if x.Share().Load() != 3 {
		t.Fatalf("the process reads share %d, want the 3 set through the entry", x.Share().Load())
	}
	if again := slot(t, join(t, a, 2), "b|app|10.0.0.1:80", time.Second); again.Share().Load() != 3 {
		t.Fatalf("a second user of the entry reads share %d, want 3 (kept, not reset)", again.Share().Load())
	}
	if p, ok := b.Lookup("p|app"); !ok || p.Key != "p|app" {
		t.Fatalf("Lookup(p|app) = %v, %v", p, ok)
	}
	if _, ok := b.Lookup("p|other"); ok {
		t.Fatal("Lookup of a key nobody claimed found an entry")
	}
	y.Drop()
	if got := keys(); slices.Contains(got, "b|app|10.0.0.2:80") {
		t.Fatalf("Entries after Drop = %q, want the dropped backend gone", got)
	}
	pa.Leave() // process 2 still uses 10.0.0.1
	if got := keys(); !slices.Equal(got, []string{"b|app|10.0.0.1:80"}) {
		t.Fatalf("Entries after one user left = %q, want the entry the other still uses", got)
	}
}

func TestLongKeysAreRefused(t *testing.T) {
	a, _ := twoMappings(t)
	p := join(t, a, 1)
	key := "b|" + strings.Repeat("x", MaxKey-2)
	if _, err := p.Slot(key, 0, -1); err != nil {
		t.Fatalf("Slot() of a key of MaxKey bytes = %v", err)
	}
	if got := a.Entries("b|"); len(got) != 1 || got[0].Key != key {
		t.Fatalf("the key of MaxKey bytes does not read back whole")
	}
	if _, err := p.Slot(key+"y", 0, -1); err == nil {
		t.Fatal("Slot() of a key longer than MaxKey succeeded")
	}
}

func TestWakeAllWakesEveryProcess(t *testing.T) {
	a, b := twoMappings(t)
	procs := []*Process{join(t, a, 1), join(t, b, 2)}
	seqs := make([]uint32, len(procs))
	for i, p := range procs {
		seqs[i] = p.WakeSeq()
	}
	a.WakeAll()
	for i, p := range procs {
		if !p.Wait(seqs[i], time.Second) {
			t.Errorf("process %d not woken by WakeAll (wake word %d)", i, p.WakeSeq())
		}
	}
}
