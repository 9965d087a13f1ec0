package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// fake is a Backend whose state is plain values; tests set them directly.
type fake struct {
	inflight int64
	limit    int64 // 0 = unlimited
	weight   int64 // 0 here means 1, so tables can leave it out
	down     bool
}

func (f *fake) Inflight() int64 { return f.inflight }
func (f *fake) Limit() int64    { return f.limit }

func (f *fake) Weight() int64 {
	if f.weight == 0 {
		return 1
	}
	return f.weight
}

func (f *fake) Available() bool {
	return !f.down && (f.limit == 0 || f.inflight < f.limit)
}

// pool returns the fakes as a []Backend of pointers into a fresh copy.
func pool(fs ...fake) []Backend {
	bs := make([]Backend, len(fs))
	for i := range fs {
		f := fs[i]
		bs[i] = &f
	}
	return bs
}

// policies returns one fresh policy of every kind, by name.
func policies(t testing.TB) map[string]Policy {
	t.Helper()
	ps := make(map[string]Policy)
	for _, name := range []string{NameLeastInflight, NameP2C, NameRoundRobin, NameRandom} {
		p, err := New(name)
		if err != nil {
			t.Fatalf("New(%q) error = %v", name, err)
		}
		ps[name] = p
	}
	return ps
}

// counts picks n times and returns how often each index was chosen;
// index len(bs) counts -1.
func counts(p Policy, bs []Backend, n int) []int {
	got := make([]int, len(bs)+1)
	for range n {
		i := p.Pick(bs)
		if i < 0 {
			i = len(bs)
		}
		got[i]++
	}
	return got
}

// script returns a rnd seam that yields vals in order and records the
// bounds it was called with. It fails the test when a value is out of range
// or the script runs out.
func script(t *testing.T, vals ...int64) (rnd func(int64) int64, bounds *[]int64) {
	t.Helper()
	var ns []int64
	return func(n int64) int64 {
		ns = append(ns, n)
		if len(ns) > len(vals) {
			t.Fatalf("rnd called %d times, script has %d values", len(ns), len(vals))
		}
		v := vals[len(ns)-1]
		if v < 0 || v >= n {
			t.Fatalf("script value %d out of range [0, %d)", v, n)
		}
		return v
	}, &ns
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{NameLeastInflight, "*balancer.LeastInflight"},
		{NameP2C, "*balancer.P2C"},
		{NameRoundRobin, "*balancer.RoundRobin"},
		{NameRandom, "*balancer.Random"},
		{Default, "*balancer.LeastInflight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.name)
			if err != nil {
				t.Fatalf("New(%q) error = %v", tt.name, err)
			}
			if got := fmt.Sprintf("%T", p); got != tt.want {
				t.Errorf("New(%q) = %s, want %s", tt.name, got, tt.want)
			}
		})
	}
}

func TestNewUnknown(t *testing.T) {
	for _, name := range []string{"", "x", "LEAST_INFLIGHT", "least-inflight", "roundrobin"} {
		t.Run(name, func(t *testing.T) {
			p, err := New(name)
			if p != nil || err == nil {
				t.Fatalf("New(%q) = %v, %v; want nil, error", name, p, err)
			}
			if !errors.Is(err, ErrUnknownPolicy) {
				t.Errorf("New(%q) error = %v, want it to wrap ErrUnknownPolicy", name, err)
			}
			want := fmt.Sprintf("balancer: unknown policy %q", name)
			if err.Error() != want {
				t.Errorf("New(%q) error = %q, want %q", name, err, want)
			}
		})
	}
}

func TestCmpLoad(t *testing.T) {
	const big = uint64(1) << 62
	tests := []struct {
		name           string
		an, ad, bn, bd uint64
		want           int
	}{
		{"less", 1, 4, 1, 2, -1},
		{"greater", 3, 4, 1, 2, 1},
		{"equal fractions", 2, 4, 1, 2, 0},
		{"zero equals zero over any denominator", 0, 7, 0, 1, 0},
		// Both cross products exceed 64 bits; int64 multiplication would wrap.
		{"no overflow", 1 << 40, 1<<42 + 1, 1 << 41, 1 << 42, -1},
		{"huge equal", big, big, big - 1, big - 1, 0},
		{"huge close", big - 1, big, big - 2, big - 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cmpLoad(tt.an, tt.ad, tt.bn, tt.bd); got != tt.want {
				t.Errorf("cmpLoad(%d/%d, %d/%d) = %d, want %d", tt.an, tt.ad, tt.bn, tt.bd, got, tt.want)
			}
		})
	}
}

// TestPickNoneAvailable pins for every policy that Pick returns -1 when no
// backend can take a request.
func TestPickNoneAvailable(t *testing.T) {
	pools := []struct {
		name string
		bs   []Backend
	}{
		{"nil", nil},
		{"empty", []Backend{}},
		{"all down", pool(fake{down: true}, fake{down: true})},
		{"all full", pool(fake{inflight: 4, limit: 4}, fake{inflight: 1, limit: 1})},
		{"down or full", pool(fake{down: true}, fake{inflight: 2, limit: 2, weight: 5})},
	}
	for name, p := range policies(t) {
		for _, pl := range pools {
			t.Run(name+"/"+pl.name, func(t *testing.T) {
				if got := p.Pick(pl.bs); got != -1 {
					t.Errorf("Pick() = %d, want -1", got)
				}
			})
		}
	}
}

// TestPickOnlyAvailable checks every policy on random pool states: Pick
// returns -1 exactly when no backend is Available, and otherwise an
// Available one.
func TestPickOnlyAvailable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for name, p := range policies(t) {
		t.Run(name, func(t *testing.T) {
			for range 2000 {
				bs := randomPool(rng)
				anyUp := false
				for _, b := range bs {
					anyUp = anyUp || b.Available()
				}
				got := p.Pick(bs)
				switch {
				case !anyUp && got != -1:
					t.Fatalf("Pick(%v) = %d, want -1", describe(bs), got)
				case anyUp && (got < 0 || got >= len(bs) || !bs[got].Available()):
					t.Fatalf("Pick(%v) = %d, want an Available backend", describe(bs), got)
				}
			}
		})
	}
}

// randomPool returns 0 to 8 backends in random states, many of them down,
// full or idle.
func randomPool(rng *rand.Rand) []Backend {
	fs := make([]fake, rng.IntN(9))
	for i := range fs {
		f := &fs[i]
		f.limit = rng.Int64N(4)
		f.inflight = rng.Int64N(5)
		f.weight = rng.Int64N(4)
		f.down = rng.IntN(4) == 0
	}
	return pool(fs...)
}

func describe(bs []Backend) string {
	s := "["
	for i, b := range bs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%+v", *b.(*fake))
	}
	return s + "]"
}

// TestPickAllocs pins that no policy allocates per Pick, whether backends tie
// or not.
func TestPickAllocs(t *testing.T) {
	for name, p := range policies(t) {
		for _, n := range []int{3, 16} {
			for _, idle := range []bool{true, false} {
				bs := benchPool(n, idle)
				t.Run(fmt.Sprintf("%s/backends=%d/idle=%t", name, n, idle), func(t *testing.T) {
					if got := testing.AllocsPerRun(100, func() { p.Pick(bs) }); got != 0 {
						t.Errorf("Pick() allocs = %v, want 0", got)
					}
				})
			}
		}
	}
}

// atomicFake is a Backend safe for concurrent use, like upstream's.
type atomicFake struct {
	inflight atomic.Int64
	limit    int64
	weight   int64
	down     atomic.Bool
	picked   atomic.Int64
}

func (f *atomicFake) Inflight() int64 { return f.inflight.Load() }
func (f *atomicFake) Limit() int64    { return f.limit }
func (f *atomicFake) Weight() int64   { return f.weight }

func (f *atomicFake) Available() bool {
	return !f.down.Load() && (f.limit == 0 || f.inflight.Load() < f.limit)
}

// acquire takes a slot like upstream does: CAS, never above the limit.
func (f *atomicFake) acquire() bool {
	for {
		n := f.inflight.Load()
		if f.limit > 0 && n >= f.limit {
			return false
		}
		if f.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// TestPickConcurrent runs every policy from several goroutines while
// in-flight counts and health change underneath. Run it with -race.
func TestPickConcurrent(t *testing.T) {
	for name, p := range policies(t) {
		t.Run(name, func(t *testing.T) {
			fs := make([]*atomicFake, 4)
			bs := make([]Backend, len(fs))
			for i := range fs {
				fs[i] = &atomicFake{limit: int64(2 + i%2), weight: int64(1 + i)}
				bs[i] = fs[i]
			}
			fs[1].down.Store(true) // down for the whole test: never picked
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Go(func() { // flaps backend 2's health
				for {
					select {
					case <-stop:
						return
					default:
						fs[2].down.Store(!fs[2].down.Load())
					}
				}
			})
			var bad atomic.Int64
			var workers sync.WaitGroup
			for range 4 {
				workers.Go(func() { pickLoop(bs, fs, p, &bad) })
			}
			workers.Wait()
			close(stop)
			wg.Wait()
			if n := bad.Load(); n != 0 {
				t.Errorf("Pick() returned an index out of range %d times", n)
			}
			if n := fs[1].picked.Load(); n != 0 {
				t.Errorf("backend 1 (down) picked %d times, want 0", n)
			}
			for _, i := range []int{0, 3} {
				if fs[i].picked.Load() == 0 {
					t.Errorf("backend %d never picked", i)
				}
			}
		})
	}
}

func pickLoop(bs []Backend, fs []*atomicFake, p Policy, bad *atomic.Int64) {
	for range 2000 {
		i := p.Pick(bs)
		if i < -1 || i >= len(bs) {
			bad.Add(1)
			continue
		}
		if i < 0 {
			continue
		}
		fs[i].picked.Add(1)
		if fs[i].acquire() {
			fs[i].inflight.Add(-1)
		}
	}
}

// benchPool returns n backends; idle ones all tie at zero load, busy ones
// have varied in-flight counts, limits and weights.
func benchPool(n int, idle bool) []Backend {
	fs := make([]fake, n)
	for i := range fs {
		fs[i] = fake{limit: 8, weight: int64(1 + i%3)}
		if !idle {
			fs[i].inflight = int64(i * 5 % 7)
		}
	}
	return pool(fs...)
}

func BenchmarkPick(b *testing.B) {
	for _, name := range []string{NameLeastInflight, NameP2C, NameRoundRobin, NameRandom} {
		for _, n := range []int{3, 16} {
			bs := benchPool(n, false)
			b.Run(fmt.Sprintf("%s/backends=%d", name, n), func(b *testing.B) {
				p, _ := New(name)
				b.ReportAllocs()
				for b.Loop() {
					p.Pick(bs)
				}
			})
		}
	}
}

// BenchmarkPickParallel shows the cost of the shared counters under
// contention.
func BenchmarkPickParallel(b *testing.B) {
	for _, name := range []string{NameLeastInflight, NameP2C, NameRoundRobin, NameRandom} {
		bs := benchPool(3, true)
		b.Run(name+"/backends=3/idle", func(b *testing.B) {
			p, _ := New(name)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.Pick(bs)
				}
			})
		})
	}
}
