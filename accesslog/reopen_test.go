package accesslog

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func lines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// Lines logged while the file is moved away and reopened all land in the
// old or the new file, none twice, none lost; those logged before the move
// are in the old file, those logged after Reopen returned in the new one.
func TestReopenLosesNoLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w, err := Open(path, 1<<15) // room for every line: none is dropped
	if err != nil {
		t.Fatal(err)
	}
	e := Entry{Method: []byte("GET"), Path: []byte("/x"), Status: 200}
	const before, after = 500, 500
	for range before {
		w.Log(&e)
	}
	deadline := time.Now().Add(5 * time.Second)
	for lines(t, path) < before {
		if time.Now().After(deadline) {
			t.Fatal("the first lines were not written")
		}
		time.Sleep(time.Millisecond)
	}
	var during atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				w.Log(&e)
				during.Add(1)
				if during.Load() > 20000 {
					return
				}
			}
		})
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatalf("Reopen() = %v", err)
	}
	for range after {
		w.Log(&e)
	}
	close(stop)
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != ErrClosed {
		t.Errorf("Reopen() after Close = %v, want ErrClosed", err)
	}
	no, nc := lines(t, path+".1"), lines(t, path)
	if total := before + int(during.Load()) + after; no+nc != total || no < before || nc < after {
		t.Fatalf("old file %d lines, new file %d; want %d in all, ≥ %d old, ≥ %d new (dropped %d)",
			no, nc, total, before, after, w.Dropped())
	}
}

func TestReopenStreamIsNoop(t *testing.T) {
	w := New(&bytes.Buffer{}, 4)
	defer w.Close()
	if err := w.Reopen(); err != nil {
		t.Fatalf("Reopen() on a stream = %v, want nil", err)
	}
}
