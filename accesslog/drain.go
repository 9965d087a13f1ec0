package accesslog

import "fmt"

// run is the writer goroutine: it moves published lines into a batch, writes
// the batch when it is full or the ring is empty, and sleeps while idle.
func (w *Writer) run() {
	defer close(w.done)
	for {
		w.applyReopen()
		if w.collect() {
			continue
		}
		w.flush()
		if w.closing.Load() && !w.pending() {
			return
		}
		w.wait()
	}
}

// collect moves published lines into the batch until the ring is empty or the
// batch is full, writing a full batch. It reports whether it moved any line.
func (w *Writer) collect() bool {
	moved := false
	for len(w.batch) < batchBytes && w.pending() {
		s := &w.slots[w.deq%w.size]
		w.batch = append(w.batch, s.line...)
		w.batchLines++
		if cap(s.line) > maxKeptLine {
			s.line = nil
		}
		s.seq.Store(w.deq + w.size) // free for the producer of position deq+size
		w.deq++
		moved = true
	}
	if len(w.batch) >= batchBytes {
		w.flush()
	}
	return moved
}

// pending reports whether the next line to write has been published.
func (w *Writer) pending() bool {
	return w.slots[w.deq%w.size].seq.Load() == w.deq+1
}

// flush writes the batch; on failure its lines count as dropped.
func (w *Writer) flush() {
	if len(w.batch) == 0 {
		return
	}
	if _, err := w.out.Write(w.batch); err != nil {
		w.dropped.Add(w.batchLines)
		if w.err == nil {
			w.err = fmt.Errorf("accesslog: writing: %w", err)
		}
	}
	w.batch = w.batch[:0]
	w.batchLines = 0
}

// wait blocks until a producer publishes a line or Close is called. Setting
// sleeping before re-checking the ring pairs with Log publishing before
// reading sleeping, so a wake-up is never missed.
func (w *Writer) wait() {
	w.sleeping.Store(true)
	if w.pending() || w.closing.Load() {
		w.sleeping.Store(false)
		return
	}
	<-w.wake
	w.sleeping.Store(false)
}
