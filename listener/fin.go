package listener

import (
	"sync/atomic"
	"syscall"
)

// FinProbe reports whether the peer of a TCP connection has sent its FIN,
// even while unread bytes are still queued before it. Peek cannot tell: a
// peek at queued bytes returns them, not the end of stream behind them. TLS
// needs it, because a TLS client that leaves sends a close_notify record and
// then its FIN, so Peek sees data, not a closed peer.
//
// FinProbe is safe for concurrent use; it does not allocate.
type FinProbe struct {
	rc    syscall.RawConn
	probe func(fd uintptr)
	fin   atomic.Bool
}

// NewFinProbe returns a probe for c, typically a *Conn or *net.TCPConn.
func NewFinProbe(c syscall.Conn) (*FinProbe, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	p := &FinProbe{rc: rc}
	p.probe = func(fd uintptr) { p.fin.Store(peerFinished(int(fd))) }
	return p, nil
}

// PeerFinished reports whether the peer has closed its sending side (or the
// connection is gone). It reports false when the kernel cannot say.
func (p *FinProbe) PeerFinished() bool {
	if p.rc.Control(p.probe) != nil {
		return true
	}
	return p.fin.Load()
}
