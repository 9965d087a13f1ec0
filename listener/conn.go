package listener

import (
	"net"
	"sync/atomic"
)

// Conn is a connection accepted by a shard of a Group. It embeds the
// *net.TCPConn, so SyscallConn, CloseWrite, SetNoDelay and the rest work
// as usual. Close decrements the Group's Open count exactly once, however
// often it is called. Conn is safe for concurrent use.
type Conn struct {
	*net.TCPConn

	shard  int
	open   *atomic.Int64 // the Group's open-connection count
	closed atomic.Bool
	peeker Peeker // bound once at accept, so Peek does not allocate
}

func newConn(tc *net.TCPConn, shard int, open *atomic.Int64) *Conn {
	c := &Conn{TCPConn: tc, shard: shard, open: open}
	// A *net.TCPConn always has a RawConn; if it somehow had none, Peek
	// would report StateClosed.
	_ = c.peeker.init(tc)
	return c
}

// Shard returns the index of the shard that accepted the connection.
func (c *Conn) Shard() int { return c.shard }

// Peek reports the state of the connection without consuming data or
// blocking. It does not allocate. See the package function Peek.
func (c *Conn) Peek() State { return c.peeker.Peek() }

// Close closes the connection. The first call takes it off the Group's Open
// count; later calls only return the socket's error.
func (c *Conn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.open.Add(-1)
	}
	return c.TCPConn.Close()
}
