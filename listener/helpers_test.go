package listener

import (
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

const waitTimeout = 10 * time.Second

// listenT binds a Group on address and closes it when the test ends.
func listenT(t *testing.T, address string, shards int) *Group {
	t.Helper()
	g, err := Listen(address, shards)
	if err != nil {
		t.Fatalf("Listen(%q, %d) error = %v", address, shards, err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// acceptAll runs one accept loop per shard of g until g is closed and sends
// every accepted connection on the returned channel. Connections the test did
// not take are closed when it ends.
func acceptAll(t *testing.T, g *Group) <-chan *Conn {
	t.Helper()
	conns := make(chan *Conn, 1024)
	var wg sync.WaitGroup
	for _, ln := range g.Shards() {
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns <- c.(*Conn)
			}
		})
	}
	t.Cleanup(func() {
		g.Close()
		wg.Wait()
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return conns
}

// collect takes n connections from conns, failing the test if they do not
// arrive in time.
func collect(t *testing.T, conns <-chan *Conn, n int) []*Conn {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	got := make([]*Conn, 0, n)
	for len(got) < n {
		select {
		case c := <-conns:
			got = append(got, c)
		case <-timeout.C:
			closeAll(got)
			t.Fatalf("accepted %d connections, want %d", len(got), n)
		}
	}
	return got
}

func closeAll(conns []*Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// dial connects to addr and closes the connection when the test ends.
func dial(t *testing.T, addr net.Addr) *net.TCPConn {
	t.Helper()
	c, err := net.Dial(addr.Network(), addr.String())
	if err != nil {
		t.Fatalf("Dial(%s) error = %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open descriptors: %v", err)
	}
	return len(entries)
}

// ipv6Loopback reports whether [::1] can be bound on this machine.
func ipv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
