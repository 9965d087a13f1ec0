package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// busyBackend appends a byte to path every 10ms until stop is closed, like
// a gunicorn backend still working off its backlog.
func busyBackend(t *testing.T, path string, stop <-chan struct{}) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { <-done; f.Close() })
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _ = f.Write([]byte("."))
			}
		}
	}()
}

func TestSettleWaitsUntilBackendsAreQuiet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b0.starts")
	stop := make(chan struct{})
	busyBackend(t, path, stop)
	bs := &backendSet{starts: []string{path}}
	busyFor := 300 * time.Millisecond
	timer := time.AfterFunc(busyFor, func() { close(stop) })
	defer timer.Stop()
	start := time.Now()
	// Quiet periods far longer than the writer's interval keep this test
	// steady on a loaded machine.
	if err := bs.settle(context.Background(), 500*time.Millisecond, 10*time.Second); err != nil {
		t.Fatalf("settle() error = %v", err)
	}
	if took := time.Since(start); took < busyFor {
		t.Errorf("settle() returned after %v, while the backend was busy for %v", took, busyFor)
	}
}

func TestSettleGivesUpOnABusyBackend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b0.starts")
	stop := make(chan struct{})
	defer close(stop)
	busyBackend(t, path, stop)
	bs := &backendSet{starts: []string{path}}
	if err := bs.settle(context.Background(), 500*time.Millisecond, time.Second); err == nil {
		t.Error("settle() = nil for a backend that never went quiet, want an error")
	}
}

func TestSettleWithoutGunicornReturnsAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // would fail any wait
	if err := (&backendSet{}).settle(ctx, time.Hour, time.Hour); err != nil {
		t.Errorf("settle() with no gunicorn backends = %v, want nil", err)
	}
}

func TestCountsReadsAccessLogs(t *testing.T) {
	dir := t.TempDir()
	logs := []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log"), filepath.Join(dir, "missing.log")}
	if err := os.WriteFile(logs[0], []byte("GET /work\nGET /work\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logs[1], []byte("GET /work\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := (&backendSet{logs: logs}).counts()
	if got[0] != 2 || got[1] != 1 || got[2] != 0 {
		t.Errorf("counts() = %v, want [2 1 0]", got)
	}
}
