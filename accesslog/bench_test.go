package accesslog

import (
	"io"
	"testing"
	"time"
)

func sampleEntry() *Entry {
	return &Entry{
		Time: time.Now(), Client: []byte("192.0.2.7:51234"), Method: []byte("GET"),
		Host: []byte("shop.example.com"), Path: []byte("/api/v1/items?page=2&sort=\"price\""),
		Status: 200, Bytes: 5120, Upstream: "app", Backend: "127.0.0.1:8001", Shard: 1,
		QueueWait: 1500 * time.Microsecond, BackendTime: 42 * time.Millisecond, Total: 44 * time.Millisecond,
	}
}

func TestLogDoesNotAllocate(t *testing.T) {
	// No warm-up: a fresh writer's slots come with their line buffers.
	// Regression: each slot used to allocate its buffer on first use, six
	// allocations per request for the first access_log_buffer requests.
	w := New(io.Discard, 4096)
	t.Cleanup(func() { w.Close() })
	e := sampleEntry()
	if n := testing.AllocsPerRun(1000, func() { w.Log(e) }); n != 0 {
		t.Errorf("Log allocs per run = %v, want 0", n)
	}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(1000, func() { buf = appendEntry(buf[:0], e) }); n != 0 {
		t.Errorf("appendEntry allocs per run = %v, want 0", n)
	}
}

func BenchmarkAppendEntry(b *testing.B) {
	e := sampleEntry()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendEntry(buf[:0], e)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkLog(b *testing.B) {
	w := New(io.Discard, DefaultBufferLines)
	e := sampleEntry()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w.Log(e)
		}
	})
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w.Dropped())/float64(b.N), "dropped/op")
}
