package gateway

import (
	"fmt"
	"sync/atomic"
)

// Backend exchanges run on long-lived worker goroutines rather than on the
// goroutine of the client connection. A backend round trip (fasthttp's
// client, request serialisation, the write and read paths) needs more than
// 4 KiB of stack; run on the connection's goroutine it would double that
// goroutine's stack to 8 KiB for the rest of the connection's life, and Go
// never shrinks a stack whose idle frames use over a quarter of it. With the
// exchange elsewhere, an idle keep-alive connection costs a 4 KiB stack:
// 10,000 idle connections measured 72 MiB RSS instead of 112 MiB (README,
// "Tuning"). The price is two goroutine switches per request.
//
// There is one pool of workers per GOMAXPROCS; a request uses the pool of
// the listener shard that accepted its connection (shard mod GOMAXPROCS), so
// with the default one shard per P no two shards share a channel.

// maxIdleWorkers bounds the parked workers kept per pool; a burst beyond it
// starts workers that exit after their job.
const maxIdleWorkers = 256

// exchanger is a pool of exchange workers. Safe for concurrent use.
type exchanger struct {
	idle chan *worker
	live atomic.Int64 // workers running
}

func newExchanger() *exchanger {
	return &exchanger{idle: make(chan *worker, maxIdleWorkers)}
}

// worker runs one exchange at a time, sent on jobs.
type worker struct {
	jobs chan *scratch
	ex   *exchanger
}

// run performs the exchange s describes (s.pool, s.backend, s.ctx) on a
// worker and returns its error once it is done.
func (ex *exchanger) run(s *scratch) error {
	var w *worker
	select {
	case w = <-ex.idle:
	default:
		w = &worker{jobs: make(chan *scratch, 1), ex: ex}
		ex.live.Add(1)
		go w.loop()
	}
	w.jobs <- s
	<-s.done
	if s.panicked != nil {
		v := s.panicked
		s.panicked = nil
		panic(v) // the handler's recover answers 500
	}
	return s.err
}

func (w *worker) loop() {
	defer w.ex.live.Add(-1)
	for s := range w.jobs {
		w.exchange(s)
		parked := false
		select {
		case w.ex.idle <- w:
			parked = true
		default: // enough idle workers: this one ends
		}
		s.done <- struct{}{}
		if !parked {
			return
		}
	}
}

// exchange runs one backend round trip, turning a panic into s.panicked so
// that it surfaces on the client's goroutine.
func (w *worker) exchange(s *scratch) {
	defer func() {
		if v := recover(); v != nil {
			s.panicked = fmt.Errorf("panic in backend exchange: %v", v)
		}
	}()
	s.err = do(s)
}

// close stops the parked workers. Workers busy now finish their job and
// park or end; close is for shutdown, when no new exchanges start.
func (ex *exchanger) close() {
	for {
		select {
		case w := <-ex.idle:
			close(w.jobs)
		default:
			return
		}
	}
}
