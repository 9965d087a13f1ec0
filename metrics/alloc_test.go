package metrics

import (
	"shardgate/upstream"
	"testing"
	"time"
)

func TestRequestPathDoesNotAllocate(t *testing.T) {
	m := NewMetrics("test")
	u := m.Upstream("app", []string{"10.0.0.1:80"})
	b := u.Backend(0)
	u.Request(200, time.Millisecond) // warm-up: the first 200 creates its series
	calls := []struct {
		name string
		f    func()
	}{
		{"Request", func() { u.Request(200, 3*time.Millisecond) }},
		{"QueueWait", func() { u.QueueWait(time.Millisecond) }},
		{"Shed", func() { u.Shed(upstream.ShedQueueTimeout) }},
		{"Backend", func() { _ = u.Backend(0) }},
		{"Response", func() { b.Response(2 * time.Millisecond) }},
		{"Error", func() { b.Error(upstream.ErrConnect) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, c.f); n != 0 {
				t.Errorf("%s allocs per run = %v, want 0", c.name, n)
			}
		})
	}
}

func BenchmarkRequestPath(b *testing.B) {
	m := NewMetrics("bench")
	u := m.Upstream("app", []string{"10.0.0.1:80", "10.0.0.2:80"})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			be := u.Backend(i & 1)
			u.QueueWait(time.Duration(i) * time.Microsecond)
			be.Response(time.Duration(i) * time.Microsecond)
			u.Request(200+i%3, time.Duration(i)*time.Microsecond)
		}
	})
}

func BenchmarkShedAndError(b *testing.B) {
	m := NewMetrics("bench")
	u := m.Upstream("app", []string{"10.0.0.1:80"})
	be := u.Backend(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		u.Shed(upstream.ShedReason(i & 3))
		be.Error(upstream.ErrorKind(i & 3))
	}
}

func BenchmarkScrape(b *testing.B) {
	m := populated(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
