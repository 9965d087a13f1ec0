package gateway

import (
	"fmt"
	"io"
	"sync"

	"shardgate/upstream"
)

// tee is a response body spooled while the client reads it. A writer
// goroutine copies the backend body into the spool file, as fast as the
// backend sends it, and releases the backend slot the moment the backend
// has sent everything; the client writer reads the file behind it at the
// client's pace. Should the file reach max_spool_bytes, or the disk fail,
// the writer hands the rest of the body to the reader, which then reads
// from the backend directly and owns the slot until the body ends.
//
// Ownership, settled under mu: while state is teeWriting the writer owns
// the backend body and the slot, and the reader may only Abort the body
// (it left); once the writer sets teeDone it closes the body and releases
// the slot itself; teeHanded gives both to the reader. The file is closed
// by whichever of the two finishes last.
type tee struct {
	mu   sync.Mutex // protects the fields below it, with cond
	cond sync.Cond
	// written is how much of the file the reader may read.
	written int64
	state   teeState
	err     error  // why the backend body failed (teeDone)
	pending []byte // bytes the file did not take, for the reader (teeHanded)
	// writerOut and readerOut say who has finished with the file.
	writerOut, readerOut bool

	f    *spoolFile
	body *upstream.Body
	slot func() // releases the backend slot
	u    *upstreamState
	off  int64 // the reader's offset in the file; the reader's alone

	filled bool // fillWhole ran: no writer goroutine
}

type teeState int

const (
	teeWriting teeState = iota
	teeDone             // the backend finished: err says how
	teeHanded           // the reader reads the rest from the backend
)

func newTee(f *spoolFile, body *upstream.Body, slot func(), u *upstreamState) *tee {
	t := &tee{f: f, body: body, slot: slot, u: u, written: f.size}
	t.cond.L = &t.mu
	return t
}

// fill is the writer goroutine: it spools the body up to max bytes in all.
func (t *tee) fill(g *Gateway, max int64) {
	var err error
	defer func() {
		if v := recover(); v != nil {
			g.log.Error("panic spooling a response", "panic", v)
			t.finish(fmt.Errorf("panic spooling a response: %v", v))
		}
	}()
	bp := copyBufs.Get().(*[copyBufSize]byte)
	defer copyBufs.Put(bp)
	for {
		if t.f.size >= max {
			g.spoolOK()
			t.handOver(nil)
			return
		}
		n, rerr := t.body.Read(bp[:min(int64(len(bp)), max-t.f.size)])
		if n > 0 {
			w, werr := t.f.Write(bp[:n])
			t.mu.Lock()
			t.written = t.f.size
			t.cond.Broadcast()
			t.mu.Unlock()
			if werr != nil {
				g.spoolFailed(werr)
				t.handOver(append([]byte(nil), bp[w:n]...))
				return
			}
		}
		if rerr != nil {
			if err = rerr; err == io.EOF {
				err = nil
				g.spoolOK()
			}
			t.finish(err)
			return
		}
	}
}

// fillWhole runs fill to its end on the calling goroutine and returns the
// body's length, or -1 when the rest was handed over (past max). On a
// backend failure everything is released and the error returned.
func (t *tee) fillWhole(g *Gateway, max int64) (int64, error) {
	t.filled = true
	t.fill(g, max)
	t.mu.Lock()
	state, err, n := t.state, t.err, t.written
	t.mu.Unlock()
	switch {
	case state == teeHanded:
		return -1, nil
	case err != nil:
		t.closeReader()
		return 0, err
	}
	return n, nil
}

// finish ends the writer: the backend has sent everything (err nil) or
// failed. The body goes back (its connection to the pool if it ended
// cleanly) and the slot is released.
func (t *tee) finish(err error) {
	t.mu.Lock()
	if t.state == teeWriting {
		t.state, t.err = teeDone, err
	}
	t.writerOut = true
	closeFile := t.readerOut
	t.cond.Broadcast()
	t.mu.Unlock()
	t.body.Close()
	t.slot()
	if closeFile {
		t.f.Close()
	}
}

// handOver gives the rest of the body, and the slot, to the reader.
func (t *tee) handOver(pending []byte) {
	t.mu.Lock()
	t.state, t.pending = teeHanded, pending
	t.writerOut = true
	gone := t.readerOut
	t.cond.Broadcast()
	t.mu.Unlock()
	t.u.metrics.Stream(1)
	t.u.streams.Add(1)
	if gone { // the reader left before the handover: nobody else will
		t.closeHanded()
	}
}

func (t *tee) closeHanded() {
	t.body.Close()
	t.slot()
	t.f.Close()
	t.u.metrics.Stream(-1)
	t.u.streams.Add(-1)
}

// Read reads the spooled body behind the writer, then what the writer
// handed over. A backend failure is returned once the file is read.
func (t *tee) Read(p []byte) (int, error) {
	t.mu.Lock()
	for t.off == t.written && t.state == teeWriting {
		t.cond.Wait()
	}
	written, state, err := t.written, t.state, t.err
	t.mu.Unlock()
	if t.off < written {
		n, rerr := t.f.f.ReadAt(p[:min(int64(len(p)), written-t.off)], t.off)
		t.off += int64(n)
		if n > 0 || rerr == nil {
			return n, nil
		}
		return 0, rerr
	}
	switch {
	case state == teeDone && err == nil:
		return 0, io.EOF
	case state == teeDone:
		return 0, err
	case len(t.pending) > 0:
		n := copy(p, t.pending)
		t.pending = t.pending[n:]
		return n, nil
	default:
		return t.body.Read(p)
	}
}

// spooling reports whether the writer still copies from the backend.
func (t *tee) spooling() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == teeWriting
}

// closeReader ends the reader. A reader that leaves while the writer still
// spools aborts the backend body: nobody wants the rest.
func (t *tee) closeReader() {
	t.mu.Lock()
	t.readerOut = true
	state, writerOut := t.state, t.writerOut
	if state == teeWriting {
		t.body.Abort()
	}
	t.mu.Unlock()
	switch {
	case state == teeHanded && writerOut:
		t.closeHanded()
	case writerOut:
		t.f.Close()
	}
}
