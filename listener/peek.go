package listener

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
)

// State is what Peek saw on a connection.
type State int

const (
	// StateIdle means the connection is open and has nothing to read.
	StateIdle State = iota
	// StateData means bytes are waiting to be read.
	StateData
	// StateClosed means the peer closed or half-closed its side (EOF), reset
	// the connection, or the socket is unusable (any other error, or closed
	// locally).
	StateClosed
)

// String returns "idle", "data" or "closed".
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateData:
		return "data"
	case StateClosed:
		return "closed"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

// Peeker peeks at one connection without allocating: it holds the
// connection's syscall.RawConn and a probe func bound once. Use it for
// connections the package did not accept, such as backend connections; a
// *Conn has one built in. Peeker is safe for concurrent use, but concurrent
// calls may each report the other's observation.
type Peeker struct {
	rc    syscall.RawConn
	probe func(fd uintptr) // p.peekFD, bound once
	state atomic.Int32     // what the last probe saw
}

// NewPeeker returns a Peeker for c, typically a *net.TCPConn.
func NewPeeker(c syscall.Conn) (*Peeker, error) {
	p := new(Peeker)
	if err := p.init(c); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Peeker) init(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("peeking: %w", err)
	}
	p.rc = rc
	if p.probe == nil { // a pooled Peeker keeps its probe
		p.probe = p.peekFD
	}
	return nil
}

// Peek reports the state of the connection without consuming data or
// blocking. See the package function Peek.
func (p *Peeker) Peek() State {
	// RawConn.Control rather than Read: Read takes the read lock (so it would
	// wait behind a goroutine blocked in conn.Read) and fails without calling
	// the probe once a read deadline has passed, which would look like a
	// closed peer. Control only pins the descriptor; MSG_DONTWAIT keeps the
	// probe from blocking.
	if p.rc == nil || p.rc.Control(p.probe) != nil {
		return StateClosed
	}
	return State(p.state.Load())
}

func (p *Peeker) peekFD(fd uintptr) {
	p.state.Store(int32(peekFD(int(fd))))
}

// peeker is what Peek looks for to avoid building a RawConn per call.
type peeker interface{ Peek() State }

// peekers recycles the Peekers Peek builds for connections without one.
var peekers = sync.Pool{New: func() any { return new(Peeker) }}

// Peek reports the state of a connection without consuming data or blocking:
// StateIdle if it is open with nothing to read, StateData if bytes are waiting,
// StateClosed if the peer closed, half-closed or reset it, or on any error.
// Data already buffered in user space (a bufio.Reader) is not seen.
//
// For a *Conn it does not allocate. For any other connection it obtains a
// RawConn per call, which allocates once; wrap such a connection in a Peeker
// when it is peeked often.
func Peek(c syscall.Conn) State {
	if pc, ok := c.(peeker); ok {
		return pc.Peek()
	}
	p := peekers.Get().(*Peeker)
	defer peekers.Put(p)
	if err := p.init(c); err != nil {
		return StateClosed
	}
	s := p.Peek()
	p.rc = nil // do not keep the connection alive from the pool
	return s
}
