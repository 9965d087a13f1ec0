package accesslog

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Lines logged while the file is moved away and reopened all land in the
// old or the new file, none twice, none lost.
func TestReopenLosesNoLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w, err := Open(path, 1<<14) // room for every line: none is dropped
	if err != nil {
		t.Fatal(err)
	}
	const producers, perProducer = 4, 2000
	var wg sync.WaitGroup
	var logged sync.WaitGroup
	logged.Add(producers)
	for range producers {
		wg.Go(func() {
			e := Entry{Method: []byte("GET"), Path: []byte("/x"), Status: 200}
			for i := range perProducer {
				w.Log(&e)
				if i == perProducer/2 {
					logged.Done()
				}
			}
		})
	}
	logged.Wait()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatalf("Reopen() = %v", err)
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != ErrClosed {
		t.Errorf("Reopen() after Close = %v, want ErrClosed", err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	no, nc := bytes.Count(old, []byte("\n")), bytes.Count(cur, []byte("\n"))
	if no+nc != producers*perProducer || no == 0 || nc == 0 {
		t.Fatalf("old file %d lines, new file %d, want %d in all and some in each (dropped %d)",
			no, nc, producers*perProducer, w.Dropped())
	}
}

func TestReopenStreamIsNoop(t *testing.T) {
	w := New(&bytes.Buffer{}, 4)
	defer w.Close()
	if err := w.Reopen(); err != nil {
		t.Fatalf("Reopen() on a stream = %v, want nil", err)
	}
}
