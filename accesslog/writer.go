// Package accesslog writes one JSON line per request without slowing the
// request down: Log encodes into a preallocated ring and returns at once, and a
// single background goroutine writes the lines out in batches. When the ring is
// full the line is dropped and counted instead of blocking the request.
package accesslog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBufferLines is the ring size used when New or Open get bufferLines <= 0.
const DefaultBufferLines = 4096

const (
	// batchBytes is how much the writer goroutine gathers before one Write.
	batchBytes = 64 << 10
	// lineBytes is the line buffer each ring slot starts with: room for a
	// typical entry with a path of a few hundred bytes.
	lineBytes = 512
	// maxKeptLine is the largest line buffer a ring slot keeps for reuse, so
	// one huge request line does not pin memory forever.
	maxKeptLine = 8 << 10
)

// Entry is one request's log record. Its fields are plain values so filling
// one costs nothing; the byte slices are only read during Log and may alias
// request memory.
type Entry struct {
	Time   time.Time // when the request arrived; the zero Time means now
	Client []byte    // peer address, ip:port
	Method []byte
	Host   []byte
	Path   []byte
	Status int   // status code sent to the client
	Bytes  int64 // response body bytes sent
	// Upstream and Backend are empty when the request was not routed or sent.
	Upstream string
	Backend  string
	Shard    int // listener shard that accepted the connection
	// QueueWait, BackendTime and Total are logged in milliseconds.
	QueueWait   time.Duration
	BackendTime time.Duration
	Total       time.Duration
	Shed        string // shed reason, "" if the request was not shed
	// Aborted says why the client did not get the whole response body:
	// "client" (it closed or reset), "timeout" (write_timeout between
	// writes), "min_rate" or "backend" (the backend failed mid-body). ""
	// for a response sent whole; it is logged only when set.
	Aborted string
}

// slot is one ring cell. seq tells who owns it (Vyukov's bounded queue):
// seq == pos means free for the producer claiming pos; seq == pos+1 means
// line holds the published entry pos.
type slot struct {
	seq  atomic.Uint64
	line []byte
	_    [32]byte // keep neighbouring slots on separate cache lines
}

// Writer writes access log lines through one background goroutine. Log never
// blocks. It is safe for concurrent use.
type Writer struct {
	enq atomic.Uint64 // next position producers claim
	_   [56]byte

	closing  atomic.Bool
	sleeping atomic.Bool // the writer goroutine waits on wake
	dropped  atomic.Uint64
	slots    []slot
	size     uint64
	wake     chan struct{} // capacity 1: a pending wake-up
	done     chan struct{} // closed when the writer goroutine returns

	out    io.Writer
	closer io.Closer // closed by Close; nil when the caller owns out
	path   string    // the file Open opened, for Reopen; "" for streams
	reopen chan reopenRequest

	// Owned by the writer goroutine until done is closed.
	deq        uint64
	batch      []byte
	batchLines uint64
	err        error // first write error

	closeOnce sync.Once
	closeErr  error
}

// New returns a Writer writing to w with room for bufferLines lines waiting
// to be written (DefaultBufferLines if bufferLines <= 0). Close does not close w.
func New(w io.Writer, bufferLines int) *Writer {
	return start(w, nil, bufferLines)
}

// Open returns a Writer on target: "stdout", "stderr", or a file path opened
// for appending (created with mode 0644). Close closes the file.
func Open(target string, bufferLines int) (*Writer, error) {
	switch target {
	case "":
		return nil, errors.New("accesslog: empty target")
	case "stdout":
		return New(os.Stdout, bufferLines), nil
	case "stderr":
		return New(os.Stderr, bufferLines), nil
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("accesslog: %w", err)
	}
	w := start(f, f, bufferLines)
	w.path = target
	return w, nil
}

func start(out io.Writer, closer io.Closer, bufferLines int) *Writer {
	if bufferLines <= 0 {
		bufferLines = DefaultBufferLines
	}
	w := &Writer{
		slots:  make([]slot, bufferLines),
		size:   uint64(bufferLines),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		out:    out,
		closer: closer,
		reopen: make(chan reopenRequest, 1),
		batch:  make([]byte, 0, batchBytes),
	}
	// Every slot gets its line buffer now, from one backing array, so that
	// Log allocates nothing even for the first lines through each slot.
	backing := make([]byte, bufferLines*lineBytes)
	for i := range w.slots {
		w.slots[i].seq.Store(uint64(i))
		w.slots[i].line = backing[i*lineBytes : i*lineBytes : (i+1)*lineBytes]
	}
	go w.run()
	return w
}

// Log queues e to be written and returns without waiting. When the buffer is
// full, or the Writer is closed, the line is dropped and counted. Log does not
// retain e or its slices.
func (w *Writer) Log(e *Entry) {
	if w.closing.Load() {
		w.dropped.Add(1)
		return
	}
	s, pos, ok := w.claim()
	if !ok {
		w.dropped.Add(1)
		return
	}
	s.line = appendEntry(s.line[:0], e)
	s.seq.Store(pos + 1) // publish
	if w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		w.signal()
	}
}

// claim reserves the next free slot, or reports false when the ring is full.
func (w *Writer) claim() (*slot, uint64, bool) {
	pos := w.enq.Load()
	for {
		s := &w.slots[pos%w.size]
		switch seq := s.seq.Load(); {
		case seq == pos:
			if w.enq.CompareAndSwap(pos, pos+1) {
				return s, pos, true
			}
			pos = w.enq.Load()
		case seq < pos:
			// The slot still holds the line written size positions ago.
			return nil, 0, false
		default:
			// Another producer claimed pos already.
			pos = w.enq.Load()
		}
	}
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Dropped returns how many lines were dropped so far because the buffer was
// full, the Writer was closed, or the underlying writer failed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Close writes every line Log accepted before Close was called, stops the
// background goroutine and closes the file Open opened. It returns the first
// write error, if any. Lines logged concurrently with Close may be lost.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		w.closing.Store(true)
		w.signal()
		<-w.done
		err := w.err
		if w.closer != nil {
			if cerr := w.closer.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("accesslog: %w", cerr))
			}
		}
		w.closeErr = err
	})
	return w.closeErr
}
